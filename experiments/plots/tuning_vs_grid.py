"""Per-arm tuning by successive halving against the exhaustive grid: the chosen values, the compute, the wall time.

    python experiments/plots/tuning_vs_grid.py [EXPERIMENT] [--out DIR]

Runs the tuning stage of EXPERIMENT (``Experiment.tune``) twice, with its halving and without it (every
configuration to the last epoch), and writes a markdown table (``DIR/tuning_vs_grid.md``, stdout).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

from jtricks import experiment, metrics, runner, tuning


def _split_epochs(timing: list[dict]) -> tuple[float, float]:
    """Seconds of the epochs that start a new population size (they include its compile) and of the others."""
    first = steady = 0.0
    for t in timing:
        sizes = t.get("population_per_epoch") or [t["members"]] * len(t["epoch_s"])
        for e, secs in enumerate(t["epoch_s"]):
            if e == 0 or sizes[e] != sizes[e - 1]:
                first += secs
            else:
                steady += secs
    return first, steady


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("experiment", nargs="?", default="tuned_optimizers")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    exp = experiment.load_experiment(args.experiment)
    base_arms = experiment.validate(dataclasses.replace(exp, tune=None))
    metric = exp.tune.metric or exp.tune.halving.metric or "val_acc"
    higher = metrics.higher_is_better(metric, {})
    rows = {}
    for label, t_exp in (
        ("halving", tuning.tuning_experiment(exp)),
        ("exhaustive grid", dataclasses.replace(tuning.tuning_experiment(exp), search=None)),
    ):
        t0 = time.perf_counter()
        res = runner.run(t_exp, progress=False, plot=False)
        wall = time.perf_counter() - t0
        first, steady = _split_epochs(res.timing)
        n_compiles = sum(v for k, v in res.compiles.items() if k.endswith("/epoch"))
        rows[label] = (
            tuning.best_values(res, base_arms, list(exp.tune.factors), metric, higher, exp.epochs),
            wall,
            first,
            steady,
            n_compiles,
        )
    lines = [
        f"Tuning stage of `{exp.name}`: {exp.tune}",
        "",
        f"| method | arm | tuned | {metric} | member-epochs | stage wall time (s) | epoch programs compiled | "
        "first epoch of each population size, compile included (s) | other epochs (s) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for label, (table, wall, first, steady, n_compiles) in rows.items():
        for i, r in enumerate(table):
            tuned = ", ".join(f"{k}={v:g}" for k, v in r["tuned"].items())
            extra = f"{wall:.1f} | {n_compiles} | {first:.1f} | {steady:.1f}" if i == 0 else " | | | "
            lines.append(
                f"| {label if i == 0 else ''} | {r['arm']} | {tuned} | {r['score']:.4f} | "
                f"{r['member_epochs']} | {extra} |"
            )
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "tuning_vs_grid.md").write_text(text)


if __name__ == "__main__":
    main()
