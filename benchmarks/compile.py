"""Benchmark 4 (``compile``): compile times, and the number of compilations of a grid.

* Step compile time: ``jax.jit(step).lower(...)`` (trace + lower) and ``.compile()`` (XLA), for the
  MLP (case a), the MLP with batch norm + dropout (b) and the notebook CNN (c); and for the CNN
  population program of ``population_map(strategy="unroll")`` at S = 4 and 16 (its program grows
  with S) against ``vmap``.
* Grid: ``jtricks.runner.run`` of the MNIST-1D MLP with 3 learning rates × 4 dropout rates × 8 seeds
  (96 members, one static configuration): wall time of the whole run (1 epoch, so it is mostly
  compilation) and ``RunResult.compiles`` (must be 1 per function).
* Halving: the random-search grid of ``docs/search.md`` (2 optimizers x 8 draws of learning rate and dropout
  rate x 2 seeds, digits MLP 64, 3 epochs) with and without successive halving (rungs after epochs 1 and 2):
  the epoch programs traced and the XLA programs compiled (the manifest's ``compile`` record). Halving
  compiles one epoch program per population size. Both run in this process, the grid first, so the halving
  run reuses the grid's programs of its first population size (in a process of its own it compiles more).
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import jax
import jax.numpy as jnp

from benchmarks import models_ref as ref


def step_compile_time(case: str, *, population: int | None = None, strategy: str = "vmap") -> dict[str, float]:
    """Seconds to trace+lower and to XLA-compile the jtricks step of ``case`` (optionally a population)."""
    from benchmarks import step as bstep
    from jtricks import population as jpop
    from jtricks import train

    config = bstep.jtricks_config(case)
    c = ref.CASES[case]
    hp = train.as_arrays(train.validate_hparams(config, {"learning_rate": 1e-3}))
    step = train.make_train_step(config)
    x, y = ref.synthetic_data(case, 2)
    if population is None:
        state = train.init_state(config, jax.random.PRNGKey(0), hp, c["input"])
        fn = jax.jit(step, donate_argnums=0)
        idx = jnp.arange(c["batch"], dtype=jnp.int32)
    else:
        S = population
        state = jax.vmap(lambda k, h: train.init_state(config, k, h, c["input"]))(
            jnp.stack([jax.random.PRNGKey(i) for i in range(S)]), {k: jnp.broadcast_to(v, (S,)) for k, v in hp.items()}
        )
        fn = jax.jit(jpop.population_map(step, strategy=strategy, in_axes=(0, None, None, 0)), donate_argnums=0)
        idx = jnp.zeros((S, c["batch"]), jnp.int32)
    t0 = time.perf_counter()
    lowered = fn.lower(state, jnp.asarray(x), jnp.asarray(y), idx)
    t1 = time.perf_counter()
    lowered.compile()
    t2 = time.perf_counter()
    return {"trace_lower_s": round(t1 - t0, 3), "compile_s": round(t2 - t1, 3), "total_s": round(t2 - t0, 3)}


def grid_compiles(*, model: str = "mlp", seeds: int = 8) -> dict[str, Any]:
    """Run a 3 lr × 4 dropout × ``seeds`` grid for 1 epoch with ``jtricks.runner.run``; count compilations."""
    from jtricks import experiment as jexp
    from jtricks import runner

    try:
        import mnist1d  # noqa: F401

        dataset = "mnist1d"
    except ImportError:  # e.g. a GPU image without the package: the same grid on scikit-learn's digits
        dataset = "digits"
    if model == "mlp":
        exp = jexp.Experiment(
            name="bench_grid",
            dataset=dataset,
            model="mlp",
            model_kwargs={"widths": (100, 100)},
            optimizer="adam",
            epochs=1,
            batch_size=100,
            n_val=500,
            seeds=seeds,
            grid={"learning_rate": [1e-3, 3e-3, 1e-2], "dropout_rate": [0.0, 0.2, 0.5, 0.8]},
        )
    else:
        exp = jexp.Experiment(
            name="bench_grid_cnn",
            dataset="fashion_mnist",
            preprocess="unit",
            model="cnn",
            optimizer="adam",
            epochs=1,
            batch_size=64,
            n_train=640,
            n_val=500,
            seeds=seeds,
            eval_batch_size=500,
            grid={"learning_rate": [1e-3, 3e-3, 1e-2], "dropout_rate": [0.0, 0.2, 0.5, 0.8]},
        )
    t0 = time.perf_counter()
    res = runner.run(exp, progress=False, plot=False, checkpoint=False)
    wall = time.perf_counter() - t0
    members = len(res.member_rows)
    return {
        "model": model,
        "dataset": exp.dataset,
        "grid": f"3 learning rates x 4 dropout rates x {seeds:d} seeds",
        "members": members,
        "static_configurations": len({k.split("/")[0] for k in res.compiles}),
        "compiles": dict(res.compiles),
        "one_per_function": all(v == 1 for v in res.compiles.values()),
        "wall_s_1_epoch": round(wall, 2),
    }


def halving_compiles() -> list[dict[str, Any]]:
    """The random-search grid of ``docs/search.md`` run plainly and with halving: traces, XLA programs, time."""
    import dataclasses
    import tempfile
    from pathlib import Path

    from jtricks import experiment as jexp
    from jtricks import runner, search

    grid = jexp.Experiment(
        name="bench_halving",
        dataset="digits",
        preprocess="unit",
        n_val=200,
        model="mlp",
        model_kwargs={"widths": (64,)},
        optimizer="adam",
        epochs=3,
        batch_size=64,
        eval_batch_size=128,
        seeds=2,
        grid={
            "optimizer": ["sgd", "adam"],
            "learning_rate": search.loguniform(1e-4, 1e-1),
            "dropout_rate": search.uniform(0.0, 0.5),
        },
        samples=8,
        sample_seed=0,
    )
    halving = dataclasses.replace(grid, search=search.Halving(rungs=(1, 2), keep=0.5, metric="val_loss"))
    rows = []
    for method, exp in (("grid", grid), ("halving", halving)):
        out = Path(tempfile.mkdtemp()) / method
        t0 = time.perf_counter()
        res = runner.run(exp, out_dir=out, progress=False, plot=False, save_models=False, compile_workers=1)
        wall = time.perf_counter() - t0
        compile_record = json.loads((out / "manifest.json").read_text())["compile"]
        rows.append(
            {
                "method": method,
                "members_per_epoch": [s["members_per_epoch"] for s in res.search] or "16 per group",
                "epoch_traces": {k: v for k, v in res.compiles.items() if k.endswith("/epoch")},
                "xla_programs": compile_record["programs"],
                "xla_compile_s": compile_record["xla_s"],
                "wall_s": round(wall, 1),
            }
        )
    return rows


def run_compile(*, quick: bool, verbose: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {"steps": {}, "cnn_population": {}, "grids": [], "halving": []}
    for case in ("mlp", "cnn") if quick else tuple(ref.CASES):
        out["steps"][case] = step_compile_time(case)
        if verbose:
            print(f"[compile] {case} step: {out['steps'][case]}", flush=True)
    sizes = () if quick else (4, 16)  # quick: the CNN population's first-call time is in `population`
    for S in sizes:
        for strategy in ("vmap", "unroll"):
            out["cnn_population"][f"{strategy} S={S}"] = step_compile_time("cnn", population=S, strategy=strategy)
            if verbose:
                print(
                    f"[compile] cnn population {strategy} S={S}: {out['cnn_population'][f'{strategy} S={S}']}",
                    flush=True,
                )
    out["grids"].append(grid_compiles(model="mlp", seeds=8))
    # (a CNN grid compiles the same way, one program per function; it is left out because its 1-epoch wall
    # time is dominated by evaluating 10,000 test images per member, not by compilation)
    if verbose:
        for g in out["grids"]:
            print(
                f"[compile] grid {g['model']} ({g['grid']}, {g['members']} members): compiles {g['compiles']}, "
                f"{g['wall_s_1_epoch']} s for 1 epoch",
                flush=True,
            )
    if not quick:  # two 3-epoch runs, mostly compilation: minutes on a CPU
        out["halving"] = halving_compiles()
        if verbose:
            for r in out["halving"]:
                print(f"[compile] {r['method']}: {r}", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    print(json.dumps(run_compile(quick=args.quick)))


if __name__ == "__main__":
    main()
