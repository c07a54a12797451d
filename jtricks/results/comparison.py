"""Two finished runs compared arm by arm (``jtricks compare RUN_A RUN_B``, :func:`compare`).

For every arm the two runs share (by name, in run A's order) the members' final values of one metric (the values
behind the summary: the last epoch each member has a row for, diverged members left out) are compared as
``B - A``: paired by seed (:func:`jtricks.stats.paired_diff_ci`, the paired t-test) when both runs hold the arm with
the same seeds, since seed *i* gives the same initial weights and data order in both; Welch's unpaired t
(:func:`jtricks.stats.welch_diff_ci`) otherwise. The p-values of the arms are Holm-adjusted as one family and the
verdict says whether B is ``better`` / ``worse`` than A (``higher`` / ``lower`` for a metric without a direction)
at ``1 - confidence``, ``n.s.`` otherwise, ``degenerate`` when the difference has no spread, ``n/a`` without a
p-value.
"""

from __future__ import annotations

import json
import math
import os
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from jtricks.results import folders as jfolders
from jtricks.results import stats as jstats
from jtricks.results.rendering import _decimals, _num, _p
from jtricks.results.summary import DEFAULT_METRICS, arm_names, confidence_label, final_values, metric_direction
from jtricks.results.tables import read_members_csv, read_metrics_csv, result_file

__all__ = ["COMPARE_COLUMNS", "MAX_WIDTH", "compare", "format_comparison", "comparison_report"]

#: The keys of a row of :func:`compare`.
COMPARE_COLUMNS: tuple[str, ...] = (
    "metric",
    "arm",
    "test",
    "n_a",
    "n_b",
    "mean_a",
    "mean_b",
    "diff",
    "lo",
    "hi",
    "confidence",
    "p",
    "p_adjusted",
    "verdict",
)

#: The widest line :func:`format_comparison` prints (long arm names are shortened to fit).
MAX_WIDTH = 100

_NAN = float("nan")


class _Run:
    """A finished results folder: its manifest, arm order, metric rows and member rows."""

    def __init__(self, folder: str | os.PathLike[str], param: str) -> None:
        if not isinstance(folder, (str, os.PathLike)):
            raise TypeError(f"{param} must be a path, got {type(folder).__name__} {folder!r}")
        self.folder = Path(folder)
        self.manifest = jfolders.check_complete(self.folder)
        part = self.manifest.get("part")
        if isinstance(part, dict):
            raise ValueError(
                f"{self.folder} is part {part.get('index')}/{part.get('count')} of a run: "
                "merge the parts with `jtricks merge OUT PART_DIRS...` first"
            )
        self.rows = read_metrics_csv(result_file(self.folder, "metrics.csv"))
        members = self.folder / "members.csv"
        self.members = read_members_csv(members) if members.is_file() else None
        arms = self.folder / "arms.json"
        doc = json.loads(arms.read_text(encoding="utf-8")) if arms.is_file() else None
        self.arms = arm_names(doc, [(r["arm"],) for r in self.rows])
        self.metrics = list(dict.fromkeys(r["metric"] for r in self.rows))

    def setting(self, key: str) -> Any:
        """A summary setting (``metrics``, ``confidence``): the manifest's ``config`` first, then its top level."""
        value = (self.manifest.get("config") or {}).get(key)
        return self.manifest.get(key) if value is None else value


def _metric(a: _Run, b: _Run, metric: str | None) -> str:
    """The metric compared: ``metric`` when both runs have it, else run A's first summary metric both have."""
    if metric is not None:
        if not isinstance(metric, str):
            raise TypeError(f"metric must be a str, got {type(metric).__name__} {metric!r}")
        for name, run in (("RUN_A", a), ("RUN_B", b)):
            if metric not in run.metrics:
                raise ValueError(f"metric {metric!r} is not in {name}'s metrics.csv; it has {run.metrics}")
        return metric
    for m in list(a.setting("metrics") or DEFAULT_METRICS):
        if m in a.metrics and m in b.metrics:
            return m
    raise ValueError(f"the runs share none of RUN_A's summary metrics; pass metric (RUN_A has {a.metrics})")


def _arm_row(metric: str, arm: str, xa: Mapping[int, float], xb: Mapping[int, float], conf: float) -> dict[str, Any]:
    """One arm's ``B - A``: paired by seed when the arm has the same seeds in both runs, else Welch."""
    paired = sorted(xa) == sorted(xb)
    va = [xa[s] for s in sorted(xa)]
    vb = [xb[s] for s in sorted(xb)]
    d = jstats.paired_diff_ci(vb, va, conf) if paired else jstats.welch_diff_ci(vb, va, conf)
    degenerate = d.n >= 2 and d.std == 0 if paired else d.se == 0
    return {
        "metric": metric,
        "arm": arm,
        "test": "paired" if paired else "welch",
        "n_a": d.n_b,  # the stats functions' `a` is run B (B - A)
        "n_b": d.n_a,
        "mean_a": jstats.mean_ci(va, conf).mean,
        "mean_b": jstats.mean_ci(vb, conf).mean,
        "diff": d.diff,
        "lo": d.lo,
        "hi": d.hi,
        "confidence": conf,
        "p": d.p,
        "p_adjusted": _NAN,
        "verdict": "degenerate" if degenerate else "n/a",
    }


def _verdict(row: Mapping[str, Any], direction: int, alpha: float) -> str:
    if row["verdict"] == "degenerate" or not math.isfinite(row["p_adjusted"]):
        return row["verdict"]
    if row["p_adjusted"] >= alpha:
        return "n.s."
    side = 1 if row["diff"] > 0 else -1
    if direction == 0:
        return "higher" if side > 0 else "lower"
    return "better" if side * direction > 0 else "worse"


def _compare(run_a: _Run, run_b: _Run, metric: str | None, confidence: float | None) -> list[dict[str, Any]]:
    metric = _metric(run_a, run_b, metric)
    if confidence is None:
        confidence = run_a.setting("confidence") or 0.95
    conf = jstats.check_probability("confidence", confidence)
    fa = final_values(run_a.rows, run_a.members, metric)
    fb = final_values(run_b.rows, run_b.members, metric)
    shared = [arm for arm in run_a.arms if arm in fa and arm in fb]
    if not shared:
        raise ValueError(f"RUN_A {run_a.folder} and RUN_B {run_b.folder} have no arm with {metric!r} in common")
    rows = [_arm_row(metric, arm, fa[arm], fb[arm], conf) for arm in shared]
    tested = [r for r in rows if math.isfinite(r["p"])]
    for r, p in zip(tested, jstats.adjust_pvalues([r["p"] for r in tested], "holm")):
        r["p_adjusted"] = float(p)
    directions = {**(run_b.manifest.get("directions") or {}), **(run_a.manifest.get("directions") or {})}
    direction = metric_direction(metric, directions)
    for r in rows:
        r["verdict"] = _verdict(r, direction, 1.0 - conf)
    return rows


def compare(
    a: str | os.PathLike[str],
    b: str | os.PathLike[str],
    metric: str | None = None,
    *,
    confidence: float | None = None,
) -> list[dict[str, Any]]:
    """Compare two finished results folders arm by arm: ``B - A`` of the members' final values of ``metric``.

    Args:
      a: results folder of run A (the reference).
      b: results folder of run B.
      metric: the metric compared; default the first of run A's summary metrics that both runs recorded.
      confidence: coverage of the intervals and ``1 - alpha`` of the verdicts; default run A's.

    Returns:
      One dict per arm both runs hold, in run A's arm order, with the keys :data:`COMPARE_COLUMNS`: ``test``
      (``"paired"`` by seed when the arm has the same seeds in both runs, else ``"welch"``), ``n_a`` / ``n_b`` (the
      finite values used; paired: the pairs), ``mean_a`` / ``mean_b``, ``diff`` = ``B - A`` with its interval
      ``[lo, hi]``, the t-test's ``p``, ``p_adjusted`` (Holm over the arms with a p-value) and ``verdict``
      (module docstring).

    Raises:
      ValueError: a folder is not one finished run (one line saying why), the metric is missing, or the runs share
        no arm.
    """
    return _compare(_Run(a, "a"), _Run(b, "b"), metric, confidence)


def _fit(name: str, width: int) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"


def _cells(rows: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[list[str]]]:
    r0 = rows[0]
    dec = _decimals(r0["metric"], [{"mean": r["mean_a"]} for r in rows])
    header = ["arm", "seeds", f"B − A [{confidence_label(r0['confidence'])} CI]", "p", "p (Holm)", "verdict"]
    body = []
    for r in rows:
        seeds = f"{r['n_a']} pairs" if r["test"] == "paired" else f"{r['n_a']} vs {r['n_b']}"
        diff = _num(r["diff"], dec, signed=True)
        if math.isfinite(r["lo"]):
            diff += f" [{_num(r['lo'], dec, signed=True)}, {_num(r['hi'], dec, signed=True)}]"
        body.append([r["arm"], seeds, diff, _p(r["p"]), _p(r["p_adjusted"]), r["verdict"]])
    return header, body


def format_comparison(rows: Sequence[Mapping[str, Any]], *, width: int = MAX_WIDTH) -> str:
    """The rows of :func:`compare` as a fixed-width table no wider than ``width`` (long arm names end in ``…``)."""
    if not rows:
        raise ValueError("rows must hold at least one row of compare()")
    header, body = _cells(rows)
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    widths[0] = max(len("arm"), min(widths[0], width - sum(widths[1:]) - 2 * (len(widths) - 1)))
    body = [[_fit(row[0], widths[0]), *row[1:]] for row in body]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()

    return "\n".join([line(header), "  ".join("-" * w for w in widths), *(line(row) for row in body)])


def comparison_report(
    a: str | os.PathLike[str], b: str | os.PathLike[str], metric: str | None = None, *, confidence: float | None = None
) -> str:
    """What ``jtricks compare A B`` prints: a line naming the metric and the tests, the table of
    :func:`format_comparison`, and the arms only one run holds (every line at most :data:`MAX_WIDTH` wide, long arm
    lists wrapped)."""
    run_a, run_b = _Run(a, "a"), _Run(b, "b")
    rows = _compare(run_a, run_b, metric, confidence)
    tests = tuple(sorted({r["test"] for r in rows}))
    how = {("paired",): "paired by seed", ("welch",): "Welch (the runs' seeds differ)"}.get(
        tests, "paired by seed where an arm has the same seeds in both runs, else Welch"
    )
    family = sum(math.isfinite(r["p"]) for r in rows)
    holm = f"Holm over {family} p-values" if family else "no arm has a p-value"
    lines = [f"{rows[0]['metric']}, B − A: {how}; {holm}", format_comparison(rows)]
    for name, run, other in (("A", run_a, run_b), ("B", run_b, run_a)):
        alone = [arm for arm in run.arms if arm not in other.arms]
        if alone:
            lines.append(f"only in {name}: {', '.join(alone)}")
    return "\n".join(line if "\n" in line else textwrap.fill(line, MAX_WIDTH, subsequent_indent="  ") for line in lines)
