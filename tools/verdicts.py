"""The numbers behind docs/results.md's verdict table, recomputed from the published results folders.

For every folder ``docs/results/<experiment>/`` with a ``summary.csv``, every row (metric, arm) goes to
one CSV with the numbers the verdict table quotes: the mean and its interval, the paired difference to
the baseline and its interval, the p-value, the family-adjusted p-value and the verdict, the divergence
rate with its interval, the intention-to-treat p-value, the divergence test (p-value, adjusted p-value, verdict),
the interquartile mean and the probability of improvement, at full precision. Triples written in the
folder's other published tables (``lr_sensitivity.md``: best learning rates; ``table.md``,
``ensemble.md``) are collected as text by :func:`published_triples`, and the paired differences between
any two arms (and between a metric and its averaged-weights ``avg_`` twin) are recomputed from the
published ``metrics.csv`` by :func:`paired_triples`, for the check of ``docs/results.md`` in
``tests/results/test_verdicts.py``::

    python tools/verdicts.py                    # writes docs/results/verdicts.csv
    python tools/verdicts.py --out /tmp/v.csv
"""

from __future__ import annotations

import argparse
import csv
import re
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"
COLUMNS = (
    "experiment",
    "metric",
    "arm",
    "baseline",
    "n",
    "diverged",
    "mean",
    "ci_lo",
    "ci_hi",
    "diff",
    "diff_lo",
    "diff_hi",
    "diff_n",
    "p_value",
    "p_adjusted",
    "adjust",
    "family",
    "verdict",
    "div_rate",
    "div_lo",
    "div_hi",
    "itt_p",
    "at_best_mean",
    "div_p",
    "div_p_adjusted",
    "div_verdict",
    "iqm",
    "poi",
)
#: "0.843 [0.839, 0.846]" or "+0.169 [+0.146, +0.191]" (ASCII or Unicode minus)
TRIPLE = re.compile(r"([+\-−]?\d+\.\d+) \[([+\-−]?\d+\.\d+), ([+\-−]?\d+\.\d+)\]")


def rows(results: Path = RESULTS) -> list[dict[str, str]]:
    """Every summary row of every published folder, with the columns :data:`COLUMNS`."""
    out = []
    for folder in sorted(p for p in results.iterdir() if (p / "summary.csv").is_file()):
        with (folder / "summary.csv").open(newline="", encoding="utf-8") as f:
            for r in csv.DictReader(f):
                out.append(
                    {"experiment": folder.name, **{c: r.get(c, "") for c in COLUMNS[1:]}}
                )  # "": an older summary
    return out


def number(text: str) -> float:
    """A number as printed (Unicode minus allowed)."""
    return float(text.replace("−", "-"))


def published_triples(folder: Path) -> list[tuple[float, float, float]]:
    """``value [lo, hi]`` triples printed in the folder's Markdown tables other than summary.md."""
    found = []
    for md in sorted(folder.glob("*.md")):
        if md.name != "summary.md":
            found += [tuple(number(x) for x in m.groups()) for m in TRIPLE.finditer(md.read_text(encoding="utf-8"))]
    return found


def final_values(folder: Path) -> dict[tuple[str, str], dict[int, float]]:
    """``{(arm, metric): {seed: value at the member's last epoch}}`` from the folder's metrics.csv (or
    metrics.csv.xz)."""
    from jtricks import report

    last: dict[tuple[str, str, int], tuple[int, float]] = {}
    for r in report.read_metrics_csv(report.result_file(folder, "metrics.csv")):
        key = (r["arm"], r["metric"], r["seed"])
        if key not in last or r["epoch"] > last[key][0]:
            last[key] = (r["epoch"], r["value"])
    out: dict[tuple[str, str], dict[int, float]] = {}
    for (arm, metric, seed), (_, value) in last.items():
        out.setdefault((arm, metric), {})[seed] = value
    return out


def paired_triples(folder: Path) -> list[tuple[float, float, float]]:
    """``diff [lo, hi]`` (95% paired t) of every ordered pair of (arm, metric) cells that measure the same
    quantity on any split (``test_acc``, ``avg_test_acc``, ``val_acc`` and ``train_eval_acc`` pair: e.g. a
    train/validation gap), seeds matched; empty without a published metrics.csv."""
    from jtricks import metrics, report, stats

    if not report.result_file(folder, "metrics.csv").is_file():
        return []
    cells = final_values(folder)
    by_base: dict[str, list[tuple[str, str]]] = {}
    for arm, metric in cells:
        try:
            base = metrics.parse(metric)[1]
        except ValueError:  # a metric of the user's own: pairs with itself across arms only
            base = metric
        by_base.setdefault(base, []).append((arm, metric))
    found = []
    for group in by_base.values():
        for i, a in enumerate(group):
            for b in group[i + 1 :]:
                seeds = sorted(set(cells[a]) & set(cells[b]))
                if len(seeds) < 2:
                    continue
                d = stats.paired_diff_ci([cells[a][s] for s in seeds], [cells[b][s] for s in seeds])
                # b - a is the mirror image, exactly (negation is exact in floating point)
                found += [(d.diff, d.lo, d.hi), (-d.diff, -d.hi, -d.lo)]
    return found


def write(path: Path, results: Path = RESULTS) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, COLUMNS, lineterminator="\n")
        w.writeheader()
        w.writerows(rows(results))
    return path


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--results", default=str(RESULTS), help="folder of the published results folders")
    p.add_argument("--out", default=None, help="CSV to write (default: RESULTS/verdicts.csv)")
    args = p.parse_args(argv)
    out = write(Path(args.out or Path(args.results) / "verdicts.csv"), Path(args.results))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
