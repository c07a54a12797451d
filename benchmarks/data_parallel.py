"""Benchmark ``data_parallel``: epochs per second of a population on ``D`` devices split as ``D / K`` member shards x
``K`` data shards (:mod:`jtricks.engine.mesh`), for every ``K`` dividing ``D``, with few members (one seed: the
members-only mesh pads it with copies) and with many (``2 D`` seeds).

    python -m benchmarks.data_parallel --devices 2            # host CPU devices (XLA_FLAGS is set here)
    python -m benchmarks.data_parallel --devices 0            # every device the backend has (a GPU node)

The model: a digits MLP 64-256-256-10 with batch norm, Adam, batch 128, 1024 training examples (8 steps per epoch),
the scan execution (one program per epoch). Every ``K`` of a case is timed in interleaved blocks
(:func:`benchmarks.common.measure`); reported: the median epochs/s [min-max], member-epochs/s (real members x
epochs/s) and the ratio to ``K = 1`` of the same case, measured in the same process.
"""

from __future__ import annotations

import argparse
import json
import os
import sys


def _set_devices(argv: list[str]) -> None:
    """Set the host device count before JAX starts (``--devices N``, N > 0)."""
    for i, a in enumerate(argv):
        if a == "--devices" and i + 1 < len(argv) and int(argv[i + 1]) > 0:
            flag = f"--xla_force_host_platform_device_count={argv[i + 1]}"
            os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {flag}".strip()


def _programs(seeds: int, k: int):
    """The built programs and initial state of the benchmark population for ``data_parallel=k``."""
    import jax

    from jtricks.engine import build, execute, plan, programs
    from jtricks.engine.experiment import Experiment

    exp = Experiment(
        name="bench_data_parallel",
        dataset="digits",
        preprocess="unit",
        n_train=1024,
        n_val=256,
        model="mlp",
        model_kwargs={"widths": (256, 256), "norm": "batch"},
        optimizer="adam",
        hparams={"learning_rate": 1e-3},
        epochs=1000,
        batch_size=128,
        eval_batch_size=256,
        seeds=seeds,
        execution="scan",
    )
    the_plan = plan.plan(exp, data_parallel=k)
    setup = build.build(the_plan, programs.TraceCounter())[0]
    g = the_plan.groups[0]
    keys, hp = execute.population_inputs(g.chunks[0], g.size, setup.config)
    if setup.sharding is not None:
        keys, hp = jax.device_put((keys, hp), setup.sharding)
    return setup.programs, setup.programs.init(keys, hp), g.size


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    _set_devices(argv)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=2, help="host CPU devices (0: the backend's own devices)")
    ap.add_argument("--blocks", type=int, default=5)
    args = ap.parse_args(argv)

    from jtricks import runtime

    runtime.pin_numerics("portable")
    import jax

    from benchmarks import common

    d = jax.local_device_count()
    splits = [k for k in range(1, d + 1) if d % k == 0]
    rows, record = [], {"machine": common.machine_info(), "versions": common.versions(), "cases": []}
    load_before = os.getloadavg()[0]
    for seeds in (1, 2 * d):
        runners, sizes = {}, {}
        for k in splits:
            progs, state, sizes[k] = _programs(seeds, k)
            runners[f"K={k}"] = common.stateful_runner(state, lambda s, _i, p=progs: p.run_epoch(s))
        rates = common.measure(runners, steps=1, blocks=args.blocks, warmup=2, min_block_s=0.5)
        base = rates["K=1"].median
        for k in splits:
            r = rates[f"K={k}"]
            row = [seeds, f"{d // k} x {k}", sizes[k], common.fmt_rate(r, 2), f"{seeds * r.median:.2f}"]
            rows.append(row + [f"{r.median / base:.2f}"])
            record["cases"].append({"seeds": seeds, "mesh": [d // k, k], "population": sizes[k], **r.as_dict()})
    record["load"] = [load_before, os.getloadavg()[0]]
    header = ["seeds", "mesh (pop x data)", "population", "epochs/s", "member-epochs/s", "vs K=1"]
    print(common.markdown_table(header, rows))
    print(f"{d} {jax.default_backend()} device(s); load average {load_before:.1f} -> {os.getloadavg()[0]:.1f}")
    print(json.dumps(record))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
