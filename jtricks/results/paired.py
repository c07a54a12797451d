"""Paired comparisons by seed of a results folder, as numbers (:func:`compare`) and as a plot (:func:`plot_paired`).

``ARM:METRIC`` names a series of final values, one per seed (the value at each member's last epoch; diverged
members excluded: :func:`jtricks.results.summary.final_values`), e.g. ``ema:avg_test_acc`` (the averaged weights
of the EMA arm) against ``none:test_acc``. The difference ``a - b`` is paired by seed, with its t interval and
p-value (:func:`jtricks.results.stats.paired_diff_ci`).

The plot is a forest plot: one row per comparison, the per-seed differences ``a_i - b_i`` as dots, the mean
difference with its interval as a bar, a line at 0; by default every arm against the baseline on one metric,
ordered by the difference (so 60 arms stay readable: the rows grow the figure, not the overlap).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from jtricks.results import stats
from jtricks.results.summary import final_values, metric_direction
from jtricks.results.tables import read_members_csv, read_metrics_csv, result_file

__all__ = ["Comparison", "parse_series", "compare", "comparisons", "plot_paired", "line", "title"]


class Comparison(NamedTuple):
    """One paired comparison: the series' names, their CIs, the paired difference and the per-seed differences
    (``nan`` where a member diverged)."""

    a: str
    b: str
    ci_a: stats.CI
    ci_b: stats.CI
    diff: stats.DiffCI
    deltas: np.ndarray


def parse_series(spec: str) -> tuple[str, str]:
    """``"ARM:METRIC"`` -> ``(arm, metric)`` (the last ``:`` splits, so an arm name may hold one)."""
    arm, sep, metric = spec.rpartition(":")
    if not sep or not arm or not metric:
        raise ValueError(f"a series is ARM:METRIC, got {spec!r}")
    return arm, metric


def _read(run_dir: str | Path) -> tuple[list[dict], list[dict] | None, dict[str, Any]]:
    d = Path(run_dir)
    path = result_file(d, "metrics.csv")  # a run or a published folder
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: is {d} a jtricks results folder?")
    members = read_members_csv(d / "members.csv") if (d / "members.csv").is_file() else None
    manifest = json.loads((d / "manifest.json").read_text()) if (d / "manifest.json").is_file() else {}
    return read_metrics_csv(path), members, manifest


def _series(rows: list[dict], members: list[dict] | None, arm: str, metric: str) -> dict[int, float]:
    per = final_values(rows, members, metric).get(arm)
    if per is None:
        raise ValueError(f"no values for arm {arm!r} metric {metric!r}")
    return per


def _compare(rows: list[dict], members: list[dict] | None, a: str, b: str) -> Comparison:
    fa, fb = _series(rows, members, *parse_series(a)), _series(rows, members, *parse_series(b))
    seeds = sorted(set(fa) | set(fb))
    xa = np.asarray([fa.get(s, math.nan) for s in seeds])
    xb = np.asarray([fb.get(s, math.nan) for s in seeds])
    return Comparison(a, b, stats.mean_ci(xa), stats.mean_ci(xb), stats.paired_diff_ci(xa, xb), xa - xb)


def compare(run_dir: str | Path, a: str, b: str) -> Comparison:
    """The paired comparison of the series ``a`` and ``b`` (``"arm:metric"``) of ``run_dir``."""
    rows, members, _ = _read(run_dir)
    return _compare(rows, members, a, b)


def comparisons(run_dir: str | Path, metric: str | None = None, baseline: str | None = None) -> list[Comparison]:
    """Every arm against ``baseline`` (default: the run's) on ``metric`` (default: the run's first summary metric),
    ordered by the paired difference, best first in the metric's direction."""
    rows, members, manifest = _read(run_dir)
    present = list(dict.fromkeys(r["metric"] for r in rows))
    metric = metric or next((m for m in manifest.get("metrics") or () if m in present), present[0])
    if metric not in present:
        raise ValueError(f"metric {metric!r} is not in {run_dir}; its metrics: {present}")
    arms = list(dict.fromkeys(r["arm"] for r in rows if r["metric"] == metric))
    baseline = baseline or manifest.get("baseline") or arms[0]
    if baseline not in arms:
        raise ValueError(f"baseline {baseline!r} is not an arm of {run_dir}; its arms: {arms[:8]}...")
    out = [_compare(rows, members, f"{a}:{metric}", f"{baseline}:{metric}") for a in arms if a != baseline]
    sign = -1.0 if metric_direction(metric, manifest.get("directions")) < 0 else 1.0
    return sorted(out, key=lambda c: -sign * c.diff.diff if math.isfinite(c.diff.diff) else math.inf)


def line(c: Comparison) -> str:
    """The comparison in three lines: both means with their CIs, the paired difference and its verdict."""
    d = c.diff
    verdict = "n.s." if not (d.lo > 0 or d.hi < 0) else ("higher" if d.lo > 0 else "lower")
    return (
        f"{c.a}: {c.ci_a.mean:.4f} [{c.ci_a.lo:.4f}, {c.ci_a.hi:.4f}] (n={c.ci_a.n})\n"
        f"{c.b}: {c.ci_b.mean:.4f} [{c.ci_b.lo:.4f}, {c.ci_b.hi:.4f}] (n={c.ci_b.n})\n"
        f"difference (paired by seed, n={d.n}): {d.diff:+.4f} [{d.lo:+.4f}, {d.hi:+.4f}], p={d.p:.2g}: {verdict}"
    )


def plot_paired(out_path: str | Path, comps: Sequence[Comparison], *, heading: str | None = None) -> Path:
    """The forest plot of ``comps`` (module docstring) at 100 dpi, matplotlib's Agg canvas."""
    if not comps:
        raise ValueError("nothing to plot: no comparisons (a run of one arm has no baseline to compare with)")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8.0, 1.2 + 0.26 * len(comps) + (0.3 if heading else 0.0)), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    for i, c in enumerate(comps):
        y = len(comps) - 1 - i
        seeds = c.deltas[np.isfinite(c.deltas)]
        ax.plot(seeds, np.full(seeds.size, y), "o", color="0.55", ms=2.5, zorder=2)
        d = c.diff
        color = "tab:blue" if d.lo > 0 else ("tab:red" if d.hi < 0 else "0.2")
        if math.isfinite(d.lo):
            ax.plot([d.lo, d.hi], [y, y], color=color, lw=2.0, zorder=3)
        ax.plot([d.diff], [y], "D", color=color, ms=4, zorder=4)
    ax.axvline(0.0, color="0.3", lw=0.8, ls="--")
    ax.set_yticks(range(len(comps)))
    ax.set_yticklabels([_row_label(c) for c in reversed(comps)], fontsize=7)
    ax.set_ylim(-0.7, len(comps) - 0.3)
    ax.set_xlabel(
        "paired difference a − b by seed (dots: seeds; bar: mean and 95% t interval, blue/red when it excludes 0)",
        fontsize=8,
    )
    ax.grid(True, axis="x", alpha=0.3)
    ax.tick_params(axis="x", labelsize=8)
    if heading:
        ax.set_title(heading, fontsize=10)
    fig.tight_layout()
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_path, format="png", dpi=100, metadata={"Software": None})
    return out_path


def _row_label(c: Comparison) -> str:
    (arm_a, met_a), met_b = parse_series(c.a), parse_series(c.b)[1]
    lost = int(np.sum(~np.isfinite(c.deltas)))
    what = arm_a if met_a == met_b else c.a
    return what + (f" ({lost} diverged)" if lost else "")


def title(comps: Sequence[Comparison], run: str) -> str:
    """The plot's title: the run, and what everything is compared with."""
    b = comps[0].b
    return f"{run}: each arm − {b}" if all(c.b == b for c in comps) else f"{run}: a − b"
