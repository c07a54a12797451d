"""Wall time of a whole ablation grid as one vmapped population vs its members run one after another.

    python -m benchmarks.grid_vs_sequential [--epochs 30] [--seeds 8]

The grid is the main job (``experiments/dropout_mnist1d.py``: 4 dropout rates x 8 seeds, MNIST-1D MLP
256-256, 30 epochs). "population" = ``jtricks.runner.run`` (one compiled program for the 32 members);
"sequential" = the same 32 members, each a separate ``runner.run`` of one arm and one seed (each its own
population of 1, so it compiles too: that is what a user looping over configurations pays). Both measured
in the same process, same data; prints a table and writes benchmarks/results/grid_vs_sequential-<date>-<host>.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import platform
import time
from pathlib import Path

import jax

from jtricks import experiment as jexp
from jtricks import prepare, runner
from jtricks.engine import grid as jgrid


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--seeds", type=int, default=8)
    args = ap.parse_args()
    exp = jexp.load_experiment("dropout_mnist1d")
    exp = dataclasses.replace(exp, epochs=args.epochs, seeds=args.seeds)
    prepare.prepare_data(exp)  # warm the data cache for both (generation is not what we measure)

    t0 = time.perf_counter()
    pop = runner.run(exp, progress=False, plot=False)
    t_pop = time.perf_counter() - t0

    rates = list(exp.grid["dropout_rate"])
    t0 = time.perf_counter()
    seq_final = {}
    for rate in rates:
        for seed in range(exp.seed_offset, exp.seed_offset + exp.seeds):
            one = dataclasses.replace(exp, grid={"dropout_rate": [rate]}, seeds=1, seed_offset=seed)
            res = runner.run(one, progress=False, plot=False)
            seq_final[(rate, seed)] = res.history(res.arms[0].name, "test_acc")[0, -1]
    t_seq = time.perf_counter() - t0

    # the population's members are bit-for-bit the sequential runs
    same = all(
        pop.history(f"dropout_rate={jgrid.value_text(rate)}", "test_acc")[seed - exp.seed_offset, -1] == v
        for (rate, seed), v in seq_final.items()
    )
    members = len(rates) * exp.seeds
    row = {
        "grid": f"{len(rates)} rates x {exp.seeds} seeds, {exp.epochs} epochs",
        "members": members,
        "population_s": round(t_pop, 2),
        "sequential_s": round(t_seq, 2),
        "speedup": round(t_seq / t_pop, 2),
        "bitwise_equal": bool(same),
        "backend": jax.default_backend(),
        "device": jax.devices()[0].device_kind,
        "jax": jax.__version__,
        "host": platform.node(),
    }
    print("| grid | members | population (s) | sequential (s) | speedup | members bit-identical |")
    print("|---|---|---|---|---|---|")
    print(f"| {row['grid']} | {members} | {row['population_s']} | {row['sequential_s']} | {row['speedup']}x | {same} |")
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    name = f"grid_vs_sequential-{dt.date.today().isoformat()}-{jax.default_backend()}.json"
    (out / name).write_text(json.dumps(row, indent=2) + "\n")


if __name__ == "__main__":
    main()
