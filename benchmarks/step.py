"""Benchmark 1 (``step``) and 2 (``peak``): one training step per framework, and the machine's matmul peak.

Cases (see :mod:`benchmarks.models_ref`): (a) ``mlp`` 784-512-512-10 ReLU, batch 128, Adam 1e-3;
(b) ``mlp_bn_dropout`` the same with batch norm and dropout 0.2; (c) ``cnn`` the guide's notebook CNN
(dropout 0.5), batch 64. jtricks runs its engine step (:func:`jtricks.train.make_train_step`) jitted with
the state donated, the way the runner's host loop does (dropout rate as data, as in a dropout grid), on
device-resident data gathered by batch indices. Everything else runs on pre-made device batches.

Run alone: ``python -m benchmarks.step [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import common
from benchmarks import models_ref as ref

N_BATCHES = 16


def jtricks_config(case: str) -> Any:
    """The :class:`jtricks.train.TrainConfig` of a case."""
    from jtricks import models, optim, train

    c = ref.CASES[case]
    if case.startswith("mlp"):
        model = models.mlp(c["widths"], 10, norm="batch" if c["bn"] else None, dropout_rate=c["dropout"])
    else:
        model = models.cnn(10, dropout_rate=c["dropout"])
    return train.TrainConfig(
        model=model,
        optimizer=optim.OptimizerSpec("adam"),
        epochs=1,
        batch_size=c["batch"],
        dropout=c["dropout"] > 0,
        execution="loop",
    )


def jtricks_runner(case: str, x: np.ndarray, y: np.ndarray, *, population: int | None = None) -> Callable[[int], None]:
    """The jtricks engine step, jitted with donated state (``population``: vmapped over that many members)."""
    from jtricks import train

    config = jtricks_config(case)
    c = ref.CASES[case]
    hp = train.as_arrays(train.validate_hparams(config, {"learning_rate": 1e-3}))
    step_fn = train.make_train_step(config)
    bs = c["batch"]
    nb = len(x) // bs
    perm = np.arange(nb * bs).reshape(nb, bs).astype(np.int32)
    if population is None:
        # jitted init: distinct output buffers (the hparams also live in the optimizer state), so donation works
        state = jax.jit(lambda k, h: train.init_state(config, k, h, c["input"]))(jax.random.PRNGKey(0), hp)
        step = jax.jit(step_fn, donate_argnums=0)
        batches = [jnp.asarray(perm[i]) for i in range(nb)]
    else:
        keys = jnp.stack([jax.random.PRNGKey(i) for i in range(population)])
        hps = {k: jnp.broadcast_to(v, (population,)) for k, v in hp.items()}
        state = jax.jit(jax.vmap(lambda k, h: train.init_state(config, k, h, c["input"])))(keys, hps)
        step = jax.jit(jax.vmap(step_fn, in_axes=(0, None, None, 0)), donate_argnums=0)
        batches = [jnp.asarray(np.broadcast_to(perm[i], (population, bs))) for i in range(nb)]
    x_all, y_all = jnp.asarray(x), jnp.asarray(y)
    return common.stateful_runner(state, lambda s, i: step(s, x_all, y_all, batches[i % nb]))


def matmul_peak(*, n: int = 2048, reps: int = 10, blocks: int = 5) -> dict[str, Any]:
    """float32 ``(n×n) @ (n×n)`` throughput of jax on this machine: GFLOP/s = 2n³ / time."""
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    b = jax.random.normal(jax.random.key(1), (n, n), jnp.float32)
    mm = jax.jit(lambda a, b: a @ b)

    def run(k: int) -> None:
        out = None
        for _ in range(k):
            out = mm(a, b)
        jax.block_until_ready(out)

    rate = common.measure({"matmul": run}, steps=reps, blocks=blocks, warmup=2)["matmul"]
    g = rate.scaled(2.0 * n**3 / 1e9)
    return {"n": n, "gflops": g.as_dict()}


def run_step(
    *, quick: bool, cases: tuple[str, ...] = tuple(ref.CASES), peak: dict[str, Any] | None = None, verbose: bool = True
) -> dict[str, Any]:
    """Time every framework on every case, interleaved; return rates, ratios and GFLOP/s."""
    steps, blocks = (3, 3) if quick else (10, 9)
    has_torch = common.torch_available()
    adam_kind = ref.torch_adam_kind() if has_torch else None
    out: dict[str, Any] = {"torch_adam": adam_kind, "cases": {}}
    for case in cases:
        x, y = ref.synthetic_data(case, N_BATCHES)
        builders: dict[str, Callable[[], Callable[[int], None]]] = {
            "jtricks": lambda: jtricks_runner(case, x, y),
            "jax+optax": lambda: ref.jax_runner(case, x, y),
            "flax_nnx": lambda: ref.nnx_runner(case, x, y),
        }
        if has_torch:
            builders[f"torch({adam_kind})"] = lambda: ref.torch_runner(case, x, y, adam=adam_kind)
            if not quick:
                builders[f"torch({adam_kind},1 thread)"] = lambda: ref.torch_runner(
                    case, x, y, adam=adam_kind, threads=1
                )
        runners: dict[str, Callable[[int], None]] = {}
        errors: dict[str, str] = {}
        for name, build in builders.items():
            try:
                run = build()
                run(1)
                runners[name] = run
            except Exception as e:  # a framework version without an API used here: report, keep the others
                errors[name] = f"{type(e).__name__}: {e}"[:300]
                print(f"[step] {case}: {name} skipped ({errors[name]})", flush=True)
        t0 = time.perf_counter()
        rates = common.measure(runners, steps=steps, blocks=blocks, warmup=3, min_block_s=0.2 if quick else 0.5)
        flops = ref.model_flops(case)
        bs = ref.CASES[case]["batch"]
        res: dict[str, Any] = {"batch": bs, "model_gflop_per_step": flops / 1e9, "frameworks": {}}
        if errors:
            res["skipped"] = errors
        base = rates["jtricks"].median
        for name, r in rates.items():
            entry = {
                "steps_per_s": r.as_dict(),
                "samples_per_s": round(r.median * bs, 1),
                "ratio_to_jtricks": round(r.median / base, 3),
                "gflops": round(r.median * flops / 1e9, 1),
            }
            if peak is not None:
                entry["fraction_of_peak"] = round(r.median * flops / 1e9 / peak["gflops"]["median"], 3)
            res["frameworks"][name] = entry
        res["seconds"] = round(time.perf_counter() - t0, 1)
        out["cases"][case] = res
        if verbose:
            print(f"[step] {case}: " + ", ".join(f"{k} {common.fmt_rate(v)}" for k, v in rates.items()), flush=True)
    if not has_torch:
        out["note"] = "torch not installed: PyTorch skipped (pip install torch==2.13.0)"
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--case", action="append", choices=tuple(ref.CASES))
    args = ap.parse_args()
    peak = matmul_peak(blocks=3 if args.quick else 5)
    print(f"[peak] {common.fmt_rate(peak['gflops'], 1)} GFLOP/s")
    res = run_step(quick=args.quick, cases=tuple(args.case or ref.CASES), peak=peak)
    print(json.dumps({"peak": peak, "step": res}))


if __name__ == "__main__":
    main()
