"""Benchmark 5 (``memory``): peak resident memory per population member, to size ``--max-members``.

Each population size runs in a fresh subprocess (``python -m benchmarks.memory --point ...``) that
measures its peak RSS (``VmHWM`` in /proc/self/status; ``getrusage`` where that is missing) once the data is on the
device (``baseline``) and again after compiling and running the population (``peak``). Compilation memory
does not grow with S, so the cost of one more member is the slope between population sizes:
``per_member = (peak(S2) − peak(S1)) / (S2 − S1)``.

* MLP: one MNIST-1D epoch (40 steps in ``lax.scan`` + evaluation), ``jit(vmap(make_epoch))``, as the
  runner's scan mode does.
* CNN: one training step of the notebook CNN (batch 64) on Fashion-MNIST-shaped data, through
  ``population_map`` with ``vmap`` and ``unroll``.
"""

from __future__ import annotations

import argparse
import json
import resource
from typing import Any

from benchmarks import common


def _rss_mib() -> float:
    """Peak resident set size of this process in MiB: ``VmHWM`` of /proc/self/status (reset by exec).

    ``getrusage(RUSAGE_SELF).ru_maxrss`` is the fallback; on Linux it survives fork + exec, so a child of a
    large parent would report the parent's peak.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def point(kind: str, S: int, strategy: str) -> dict[str, Any]:
    """Peak RSS (MiB) of one population of size S (run in its own process)."""
    import jax
    import jax.numpy as jnp

    from jtricks import population as jpop
    from jtricks import train

    if kind == "mlp":
        from benchmarks import population as bp

        x, y, _ = bp.mnist1d_arrays()
        config = bp.mlp_config()
        dd = train.device_data(x[:3500], y[:3500], x[3500:], y[3500:], x[3500:], y[3500:], eval_batch_size=500)
        shape = x.shape[1:]
        epoch = train.make_epoch(config)  # epoch(state, data); data shared by the population
        fn = jax.jit(lambda s: jax.vmap(epoch, in_axes=(0, None))(s, dd), donate_argnums=0)
    else:
        from benchmarks import models_ref as ref
        from benchmarks import step as bstep

        x, y = ref.synthetic_data("cnn", 16)
        config = bstep.jtricks_config("cnn")
        shape = (28, 28, 1)
        x_all, y_all = jnp.asarray(x), jnp.asarray(y)
        step = jpop.population_map(
            train.make_train_step(config),
            strategy=strategy.split("_")[0],
            in_axes=(0, None, None, 0),
            serialize=strategy.endswith("_serial"),
        )
        idx = jnp.zeros((S, 64), jnp.int32)
        fn = jax.jit(lambda s: step(s, x_all, y_all, idx), donate_argnums=0)
    hp = train.as_arrays(train.validate_hparams(config, {"learning_rate": 1e-3}))
    baseline = _rss_mib()
    init = jax.jit(jax.vmap(lambda k, h: train.init_state(config, k, h, shape)))
    state = init(
        jnp.stack([jax.random.PRNGKey(i) for i in range(S)]), {k: jnp.broadcast_to(v, (S,)) for k, v in hp.items()}
    )
    for _ in range(2):
        state, m = fn(state)
    jax.block_until_ready((state, m))
    return {
        "kind": kind,
        "S": S,
        "strategy": strategy,
        "baseline_mib": round(baseline, 1),
        "peak_mib": round(_rss_mib(), 1),
    }


def run_memory(*, quick: bool, verbose: bool = True) -> dict[str, Any]:
    plan = [("mlp", "vmap", (1, 256) if quick else (1, 64, 256, 1024))]
    if not quick:
        plan.append(("cnn", "unroll", (1, 4, 16)))
        plan.append(("cnn", "unroll_serial", (1, 4)))
        plan.append(("cnn", "vmap", (1, 4, 16)))
    out: dict[str, Any] = {}
    for kind, strategy, sizes in plan:
        pts = [common.run_subprocess_json("benchmarks.memory", ["--point", kind, str(S), strategy]) for S in sizes]
        slopes = [(b["peak_mib"] - a["peak_mib"]) / (b["S"] - a["S"]) for a, b in zip(pts, pts[1:])]
        per_member = max(slopes) if slopes else None
        key = f"{kind}/{strategy}"
        out[key] = {"points": pts, "per_member_mib": round(per_member, 3) if per_member is not None else None}
        if verbose:
            print(
                f"[memory] {key}: "
                + ", ".join(f"S={p['S']} peak {p['peak_mib']} MiB" for p in pts)
                + f"; per member {out[key]['per_member_mib']} MiB",
                flush=True,
            )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--point", nargs=3, metavar=("KIND", "S", "STRATEGY"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.point:
        kind, S, strategy = args.point
        print(json.dumps(point(kind, int(S), strategy)))
        return
    print(json.dumps(run_memory(quick=args.quick)))


if __name__ == "__main__":
    main()
