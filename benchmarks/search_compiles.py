"""Benchmark: compiled programs and wall time of successive halving and PBT against the plain grid.

    python -m benchmarks.search_compiles [--reps 2] [--cases toy] [--cases tuned]

Each case is one ``jtricks.runner.run`` in a fresh process (so no compiled program is reused from another
case), the cases interleaved ``--reps`` times (repetition 1 of every case, then repetition 2, ...). Per case:

* ``epoch programs``: the engine's epoch programs compiled (``RunResult.compiles``, ``*/epoch``);
* ``XLA programs``: every XLA compilation in the run (``jax.monitoring``'s backend-compile events through
  :class:`jtricks.engine.runtime.CompileMeter`: the engine's programs and every small eager operation);
* ``compile s``: their XLA compile seconds; ``wall s``: the run (data loading included, Python start excluded);
* ``population``: the population size computed at each epoch (halving: ``population_per_epoch`` of the groups).

Cases: ``toy`` is the search tests' toy problem (4 learning rates, 3 epochs; ``tests/support/experiments.py``)
as a grid, halving with ``repack`` ``auto`` / ``always`` / ``never`` (rungs 1 and 2, keep 1/2) and PBT (every
epoch, fraction 1/2); ``tuned`` is the tuning stage of ``experiments/tuned_optimizers.py`` (3 optimizers × 16
learning rates, 8 epochs, MNIST-1D) as the exhaustive grid and with its halving (rungs 2 and 4) under each
``repack``. On a version of jtricks without ``Halving.repack`` the halving cases run its only behaviour.
Timings on a shared machine are indicative: the load average is printed with the table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

TOY = ("toy/grid", "toy/halving-auto", "toy/halving-always", "toy/halving-never", "toy/pbt")
TUNED = ("tuned/grid", "tuned/halving-auto", "tuned/halving-always", "tuned/halving-never")


def _halving(halving: Any, repack: str) -> Any:
    """``halving`` with ``repack`` (where this version of jtricks has it)."""
    fields = {f.name for f in dataclasses.fields(halving)}
    return dataclasses.replace(halving, repack=repack) if "repack" in fields else halving


def experiment_of(case: str) -> Any:
    """The experiment a case runs."""
    from jtricks import experiment, search, tuning

    family, method = case.split("/")
    if family == "toy":
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from support.experiments import search_toy

        base = search_toy()
        if method == "pbt":
            return dataclasses.replace(base, search=search.PBT(every=1, fraction=0.5, metric="val_loss"))
        if method == "grid":
            return base
        halving = search.Halving(rungs=(1, 2), keep=0.5, metric="val_loss")
        return dataclasses.replace(base, search=_halving(halving, method.split("-")[1]))
    staged = tuning.tuning_experiment(experiment.load_experiment("tuned_optimizers"))
    if method == "grid":
        return dataclasses.replace(staged, search=None)
    return dataclasses.replace(staged, search=_halving(staged.search, method.split("-")[1]))


def run_one(case: str) -> dict[str, Any]:
    """Run ``case`` in this process and measure it."""
    from jtricks import runner
    from jtricks.engine import runtime

    exp = experiment_of(case)
    with runtime.CompileMeter() as meter:
        t0 = time.perf_counter()
        res = runner.run(exp, progress=False, plot=False, compile_workers=1)
        wall = time.perf_counter() - t0
    pops = [r.get("population_per_epoch", r["members_per_epoch"]) for r in res.search]
    grid_pop = [res.timing[0]["members"]] * exp.epochs  # the first group's population
    member_epochs = sum(r["member_epochs"] for r in res.search) if res.search else len(res.member_rows) * exp.epochs
    return {
        "case": case,
        "epoch_programs": sum(v for k, v in res.compiles.items() if k.endswith("/epoch")),
        "xla_programs": meter.programs,
        "compile_s": round(meter.xla_s, 2),
        "wall_s": round(wall, 2),
        "population": pops[0] if pops else grid_pop,
        "member_epochs": member_epochs,
        **({"tuned": _tuned(res)} if case.startswith("tuned/") else {}),
    }


def _tuned(res: Any) -> dict[str, list[Any]]:
    """Per optimizer of ``tuned_optimizers``: the learning rate chosen and its validation accuracy at the last epoch."""
    from jtricks import experiment, tuning

    exp = experiment.load_experiment("tuned_optimizers")
    base = experiment.validate(dataclasses.replace(exp, tune=None))
    rows = tuning.best_values(res, base, list(exp.tune.factors), "val_acc", True, exp.epochs)
    return {r["arm"]: [r["tuned"]["learning_rate"], r["score"]] for r in rows}


def _spawn(case: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.search_compiles", "--one", case],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[1],
        env={**os.environ},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| case | rep | epoch programs | XLA programs | compile s | wall s | member-epochs | population per epoch |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['case']} | {r['rep']} | {r['epoch_programs']} | {r['xla_programs']} | {r['compile_s']:.1f} | "
            f"{r['wall_s']:.1f} | {r['member_epochs']} | {r['population']} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--one", help="run one case in this process and print its JSON line")
    ap.add_argument("--cases", action="append", choices=("toy", "tuned"), help="case families (default: both)")
    ap.add_argument("--reps", type=int, default=2)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one)))
        return
    cases = [c for fam in (args.cases or ["toy", "tuned"]) for c in (TOY if fam == "toy" else TUNED)]
    rows = []
    load = [os.getloadavg()[0]]
    for rep in range(1, args.reps + 1):
        for case in cases:
            rows.append({**_spawn(case), "rep": rep})
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    load.append(os.getloadavg()[0])
    print(table(rows))
    print(f"\nload average (1 min) before / after: {load[0]:.1f} / {load[1]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
