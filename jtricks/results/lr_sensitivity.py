"""Best learning rate and learning-rate sensitivity of each arm group of a results folder.

Arms named ``"<group>,learning_rate=<lr>"`` (a grid over ``learning_rate`` crossed with anything
else: optimizers, preprocessing, batch norm, clipping, schedules) are grouped by ``<group>``. For
each group and learning rate, the final value of ``--metric`` over seeds (mean, 95% t-CI, diverged
members) and the paired difference to the ``--baseline`` group *at the same learning rate*; then
per group the best learning rate (highest mean final ``--select`` metric, the validation accuracy by
default, so the test set does not choose it) and the paired difference to the baseline group at ITS
best learning rate. Diverged members (non-finite values) are excluded from the means and counted; a
learning rate at which any member diverged is not eligible as the best one (unless every learning rate
of the group had divergences: then the one with the fewest is taken, and said so). A best learning rate
at the smallest or largest value swept is flagged in words: the optimum may lie outside the grid.

:func:`markdown` gives ``lr_sensitivity.md``, :func:`plot` ``lr_sensitivity.png`` (final metric vs learning rate
with CI bands; mean validation curves at each group's best learning rate); :func:`write` both::

    jtricks plot runs/optimizers --kind lr-sensitivity --baseline optimizer=sgd --out runs/optimizers/lr.png
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from jtricks.results import stats
from jtricks.results.tables import read_members_csv, read_metrics_csv, result_file

__all__ = ["split_arm", "load", "finals", "analyse", "markdown", "plot", "write"]

_LR = re.compile(r"(^|,)learning_rate=([^,]+)")


def split_arm(arm: str) -> tuple[str, float]:
    """``"optimizer=adam,learning_rate=0.001"`` -> ``("optimizer=adam", 0.001)``."""
    m = _LR.search(arm)
    if m is None:
        raise ValueError(f"arm {arm!r} has no 'learning_rate=' factor")
    group = (arm[: m.start()] + arm[m.end() :]).strip(",") or "baseline"
    return group, float(m.group(2))


def load(run_dir: str | Path) -> tuple[dict, set, list[str]]:
    """``values[(arm, metric)][seed] = {epoch: value}``, the diverged (arm, seed) pairs, arm order."""
    run_dir = Path(run_dir)
    rows = read_metrics_csv(result_file(run_dir, "metrics.csv"))  # a run or a published folder
    members = read_members_csv(run_dir / "members.csv") if (run_dir / "members.csv").is_file() else []
    diverged = {(m["arm"], m["seed"]) for m in members if m["diverged_epoch"] >= 0}
    values: dict = {}
    order: list[str] = []
    for r in rows:
        values.setdefault((r["arm"], r["metric"]), {}).setdefault(r["seed"], {})[r["epoch"]] = r["value"]
        if r["arm"] not in order:
            order.append(r["arm"])
    return values, diverged, order


def finals(values: dict, diverged: set, arm: str, metric: str, seeds: Sequence[int]) -> np.ndarray:
    """Final value per seed (NaN for a diverged member or a non-finite value)."""
    per = values.get((arm, metric), {})
    out = []
    for s in seeds:
        curve = per.get(s)
        v = curve[max(curve)] if curve else math.nan
        out.append(math.nan if (arm, s) in diverged or not math.isfinite(v) else v)
    return np.asarray(out, dtype=float)


def analyse(
    run_dir: str | Path, *, metric: str = "test_acc", select: str = "val_acc", baseline: str | None = None
) -> dict:
    """The numbers behind the table: per group and learning rate, and per group at its best learning rate."""
    values, diverged, order = load(run_dir)
    seeds = sorted({s for (a, m), per in values.items() for s in per})
    groups: dict[str, dict[float, str]] = {}
    for arm in order:
        g, lr = split_arm(arm)
        groups.setdefault(g, {})[lr] = arm
    names = list(groups)
    baseline = baseline or names[0]
    if baseline not in groups:
        raise ValueError(f"baseline {baseline!r} is not a group; groups: {names}")
    cells: dict[tuple[str, float], dict] = {}
    for g in names:
        for lr, arm in sorted(groups[g].items()):
            f = finals(values, diverged, arm, metric, seeds)
            sel = finals(values, diverged, arm, select, seeds)
            base_arm = groups[baseline].get(lr)
            d = (
                stats.paired_diff_ci(f, finals(values, diverged, base_arm, metric, seeds))
                if base_arm and g != baseline
                else None
            )
            cells[(g, lr)] = {
                "arm": arm,
                "ci": stats.mean_ci(f),
                "select": stats.mean_ci(sel),
                "n_div": int(np.sum(~np.isfinite(f))),
                "diff": d,
                "finals": f,
            }
    best, notes = _best_lrs(cells, groups, names, seeds)
    best_diff = {}
    for g in names:
        if g == baseline:
            continue
        best_diff[g] = stats.paired_diff_ci(cells[(g, best[g])]["finals"], cells[(baseline, best[baseline])]["finals"])
    # the comparisons at the best learning rates are one family: Holm-adjusted p-values give the verdicts
    p_adj = dict(zip(best_diff, stats.adjust_pvalues([d.p for d in best_diff.values()], "holm"))) if best_diff else {}
    return {
        "groups": groups,
        "names": names,
        "baseline": baseline,
        "cells": cells,
        "best": best,
        "best_diff": best_diff,
        "best_p_adjusted": p_adj,
        "values": values,
        "diverged": diverged,
        "seeds": seeds,
        "metric": metric,
        "select": select,
        "notes": notes,
    }


def _best_lrs(cells: dict, groups: dict, names: list[str], seeds: Sequence[int]) -> tuple[dict[str, float], list[str]]:
    """Per group the learning rate with the highest mean selection metric among those where no member
    diverged (else the fewest diverged), and notes for an optimum at the edge of the grid or a fallback."""
    best: dict[str, float] = {}
    notes: list[str] = []
    for g in names:
        lrs = sorted(groups[g])
        div = {lr: len(seeds) - cells[(g, lr)]["select"].n for lr in lrs}
        fewest = min(div.values())
        eligible = [lr for lr in lrs if div[lr] == fewest]
        best[g] = max(
            eligible, key=lambda lr: (cells[(g, lr)]["select"].mean if cells[(g, lr)]["select"].n else -math.inf, lr)
        )
        if fewest > 0:
            notes.append(
                f"`{g}`: members diverged at every learning rate; lr {best[g]:g} has the fewest "
                f"({fewest}/{len(seeds)})."
            )
        excluded = [lr for lr in lrs if div[lr] > fewest]
        if excluded:
            notes.append(
                f"`{g}`: learning rate(s) {', '.join(f'{lr:g}' for lr in excluded)} excluded from the "
                f"choice (diverged members)."
            )
        if len(lrs) >= 2 and best[g] in (lrs[0], lrs[-1]):
            edge = "smallest" if best[g] == lrs[0] else "largest"
            notes.append(
                f"`{g}`: the best learning rate {best[g]:g} is the {edge} swept: the optimum may lie "
                f"outside the grid, and the tuned result may be underestimated."
            )
    return best, notes


def _fmt_ci(ci: stats.CI) -> str:
    if ci.n == 0:
        return "—"
    if ci.n == 1 or not math.isfinite(ci.lo):
        return f"{ci.mean:.4f}"
    return f"{ci.mean:.4f} [{ci.lo:.4f}, {ci.hi:.4f}]"


def _fmt_diff(d: stats.DiffCI | None) -> str:
    """``Δ [lo, hi] verdict`` with the verdict of the unadjusted interval (the per-learning-rate table)."""
    if d is None or d.n < 2 or not math.isfinite(d.lo):
        return "—"
    verdict = "better" if d.lo > 0 else ("worse" if d.hi < 0 else "n.s.")
    return f"{d.diff:+.4f} [{d.lo:+.4f}, {d.hi:+.4f}] {verdict}"


def _fmt_best(d: stats.DiffCI, p_adj: float) -> str:
    """``Δ [lo, hi] | p | p (Holm) | verdict`` cells: the verdict from the adjusted p-value."""
    if d.n < 2 or not math.isfinite(d.lo):
        return "— | | | n/a"
    verdict = "n.s." if not p_adj < 0.05 else ("better" if d.diff > 0 else "worse")
    return f"{d.diff:+.4f} [{d.lo:+.4f}, {d.hi:+.4f}] | {d.p:.2g} | {p_adj:.2g} | {verdict}"


def markdown(a: dict, title: str) -> str:
    m, sel, base = a["metric"], a["select"], a["baseline"]
    n = len(a["seeds"])
    lines = [
        f"# {title}",
        "",
        f"Final `{m}` over {n} seeds: mean [95% t-CI]; diverged members are excluded and counted. "
        f"Δ: paired by seed against `{base}`, 95% CI.",
        "",
        f"## Best learning rate of each group (chosen by the final mean `{sel}`)",
        "",
        "A learning rate where a member diverged is not eligible as the best one. The comparisons at the "
        'best learning rates form one family: paired t-test p-values, Holm-adjusted; "better"/"worse" '
        "when the adjusted p-value is below 5%.",
        "",
        f"| group | best lr | {m} at best lr | diverged | Δ vs {base} at its best lr ({a['best'][base]:g}) "
        "| p | p (Holm) | verdict |",
        "|:---|---:|---:|---:|---:|---:|---:|:---|",
    ]
    for g in a["names"]:
        c = a["cells"][(g, a["best"][g])]
        cmp = "(baseline) | | | baseline" if g == base else _fmt_best(a["best_diff"][g], a["best_p_adjusted"][g])
        lines.append(f"| {g} | {a['best'][g]:g} | {_fmt_ci(c['ci'])} | {c['n_div']}/{n} | {cmp} |")
    if a["notes"]:
        lines += [""] + [f"- {n}" for n in a["notes"]]
    lines += [
        "",
        f"## Every learning rate (Δ vs {base} at the same learning rate)",
        "",
        'Descriptive: "better"/"worse" when the unadjusted 95% interval excludes 0.',
        "",
        f"| group | lr | {m} | diverged | Δ vs {base} (same lr) |",
        "|:---|---:|---:|---:|---:|",
    ]
    for g in a["names"]:
        for lr in sorted(a["groups"][g]):
            c = a["cells"][(g, lr)]
            lines.append(
                f"| {g} | {lr:g} | {_fmt_ci(c['ci'])} | {c['n_div']}/{n} | "
                f"{'(baseline)' if g == base else _fmt_diff(c['diff'])} |"
            )
    return "\n".join(lines) + "\n"


def plot(a: dict, path: Path, title: str) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.2), dpi=100)
    FigureCanvasAgg(fig)
    ax1, ax2 = fig.subplots(1, 2)
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    for i, g in enumerate(a["names"]):
        col = cmap(i % 10)
        lrs = sorted(a["groups"][g])
        cis = [a["cells"][(g, lr)]["ci"] for lr in lrs]
        mean = np.array([c.mean for c in cis])
        lo = np.array([c.lo if math.isfinite(c.lo) else c.mean for c in cis])
        hi = np.array([c.hi if math.isfinite(c.hi) else c.mean for c in cis])
        ax1.plot(lrs, mean, "o-", color=col, label=g, ms=3)
        ax1.fill_between(lrs, lo, hi, color=col, alpha=0.2, lw=0)
        arm = a["cells"][(g, a["best"][g])]["arm"]
        per = a["values"].get((arm, a["select"]), {})
        seeds = [s for s in sorted(per) if (arm, s) not in a["diverged"]]
        if seeds:
            epochs = sorted(per[seeds[0]])
            curve = np.array([[per[s][e] for e in epochs] for s in seeds])
            ax2.plot(epochs, np.nanmean(curve, 0), color=col, label=f"{g} (lr {a['best'][g]:g})")
    ax1.set_xscale("log")
    ax1.set_xlabel("learning rate")
    ax1.set_ylabel(f"final {a['metric']} (mean, 95% CI)")
    ax1.grid(True, alpha=0.3)
    ax1.legend(fontsize=7)
    ax2.set_xlabel("epoch")
    ax2.set_ylabel(f"{a['select']} at the best learning rate (mean over seeds)")
    ax2.grid(True, alpha=0.3)
    ax2.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100, metadata={"Software": None})


def write(
    run_dir: str | Path,
    out: str | Path | None = None,
    *,
    metric: str = "test_acc",
    select: str = "val_acc",
    baseline: str | None = None,
    png: str | Path | None = None,
) -> str:
    """:func:`analyse` ``run_dir``; write ``lr_sensitivity.md`` into the folder ``out`` (default ``run_dir``;
    ``None`` markdown file when only ``png`` is asked for) and the plot to ``png`` (default
    ``out/lr_sensitivity.png``). Returns the markdown."""
    a = analyse(run_dir, metric=metric, select=select, baseline=baseline)
    title = f"{Path(run_dir).resolve().name}: learning-rate sensitivity"
    text = markdown(a, title)
    if png is None:
        folder = Path(out or run_dir)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "lr_sensitivity.md").write_text(text)
        png = folder / "lr_sensitivity.png"
    Path(png).parent.mkdir(parents=True, exist_ok=True)
    plot(a, Path(png), title)
    return text
