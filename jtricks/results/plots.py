"""Learning curves: one panel per metric, the mean over seeds per arm with its confidence band
(``curves.png``). matplotlib is imported only here (and in the other plot modules), through its object-oriented
Agg canvas, so the global pyplot backend is never touched.

What keeps a plot of many arms readable (the rules, each a function tested on its own):

* **legend** (:func:`legend_outside`): up to :data:`MAX_INSIDE` arms, a legend inside the first panel; with more,
  the :data:`HIGHLIGHT` best arms (:func:`best_arms`, by the final mean of the first panel's metric in its
  direction) are drawn in colour with their bands and listed in a legend below the panels, the others as thin
  grey lines under one legend entry ("N other arms");
* **log scale** (:func:`log_scale`): a loss panel whose finite positive values span more than
  :data:`LOG_DECADES` decades (``max / min > 10**2``);
* **robust y-range** (:func:`robust_limits`): the y-range holds the finite mean-curve values inside the fences
  ``[q05 - 1.5 (q95 - q05), q95 + 1.5 (q95 - q05)]`` (``q`` the quantiles, in log10 on a log panel), so a
  diverging arm's few huge values do not flatten everyone else's; the panel's title counts the points left
  off-scale;
* **bounds**: an accuracy's band is clipped to ``[0, 1]`` (:func:`jtricks.results.summary.clip_ci`) and the
  legend says so when it was.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from jtricks.results import stats as jstats
from jtricks.results.summary import arm_names, clip_ci, confidence_label, metric_direction
from jtricks.results.tables import MEMBERS_COLUMNS, METRICS_COLUMNS, normalize_rows

__all__ = [
    "plot_curves",
    "plot_expected_performance",
    "legend_outside",
    "log_scale",
    "robust_limits",
    "best_arms",
    "MAX_INSIDE",
    "HIGHLIGHT",
]

#: the most arms drawn each in its colour with a legend inside the first panel
MAX_INSIDE = 10
#: the arms highlighted (colour, band, legend) when there are more than :data:`MAX_INSIDE`
HIGHLIGHT = 6
#: a loss panel spanning more decades than this is drawn on a log scale
LOG_DECADES = 2.0
_GREY = (0.6, 0.6, 0.6, 0.55)

# curves[metric][arm] = (epochs, mean, lo, hi), the CI band clipped to the metric's bounds
Curves = dict[str, dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]]


def legend_outside(n_arms: int) -> bool:
    """Whether ``n_arms`` arms get the many-arm layout: a legend outside the panels, the best highlighted."""
    return n_arms > MAX_INSIDE


def log_scale(metric: str, values: Any) -> bool:
    """Whether a panel of ``metric`` is drawn on a log scale: a loss (``"loss"`` in its name) whose finite values
    are all positive and span more than :data:`LOG_DECADES` decades (``log10(max / min) > 2``)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if "loss" not in metric.lower() or v.size < 2 or np.any(v <= 0):
        return False
    return bool(np.log10(v.max() / v.min()) > LOG_DECADES)


def robust_limits(values: Any, *, log: bool = False, margin: float = 0.05) -> tuple[float, float, int] | None:
    """The y-range of a panel: ``(lo, hi, off_scale)``, ``None`` without finite values.

    With ``q05``, ``q95`` the 5% and 95% quantiles of the finite ``values`` (of ``log10(values)`` when ``log``)
    and ``s = q95 - q05``, the range is the smallest and largest value inside the fences ``[q05 - 1.5 s,
    q95 + 1.5 s]``, widened by ``margin`` of its span on each side (multiplicatively on a log scale);
    ``off_scale`` counts the values outside it. Values of ordinary curves all lie inside the fences (nothing is
    cut); a diverging arm's spikes do not.
    """
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v) & ((v > 0) if log else True)]
    if v.size == 0:
        return None
    t = np.log10(v) if log else v
    q05, q95 = np.quantile(t, [0.05, 0.95])
    spread = q95 - q05
    inside = t[(t >= q05 - 1.5 * spread) & (t <= q95 + 1.5 * spread)]
    lo, hi = float(inside.min()), float(inside.max())
    pad = margin * (hi - lo) if hi > lo else (0.05 * abs(lo) if lo else 0.05)
    lo, hi = lo - pad, hi + pad
    off = int(np.sum((t < lo) | (t > hi)))
    return (10.0**lo, 10.0**hi, off) if log else (lo, hi, off)


def best_arms(
    finals: Mapping[str, float], direction: int, k: int = HIGHLIGHT, order: Sequence[str] | None = None
) -> list[str]:
    """The ``k`` arms with the best final mean (highest for ``direction >= 0``, lowest for ``< 0``), best
    first; arms without a finite value last; ties in ``order`` (default: ``finals``' order)."""
    order = list(order if order is not None else finals)
    sign = -1.0 if direction < 0 else 1.0

    def key(arm: str) -> tuple[float, int]:
        v = finals.get(arm, math.nan)
        return (-sign * v if math.isfinite(v) else math.inf, order.index(arm))

    return sorted((a for a in order if a in finals), key=key)[:k]


def plot_curves(
    out_path: str | Path,
    metrics_rows: Iterable[Any],
    *,
    metrics: Sequence[str] | None = None,
    title: str | None = None,
    confidence: float = 0.95,
    member_rows: Iterable[Any] | None = None,
    arms: Any = None,
    directions: Mapping[str, Any] | None = None,
) -> Path:
    """Plot per-arm mean curves over seeds with a t confidence band, one panel per metric.

    For each arm and epoch the band is :func:`jtricks.stats.mean_ci` over the seeds' finite values
    at that epoch (non-finite values are dropped; members flagged diverged in ``member_rows`` are
    dropped entirely and counted in the legend). A metric recorded at a single epoch (e.g.
    ``test_acc``) is drawn as a point with an error bar. Many arms, log scales and y-ranges: the module
    docstring. Written with matplotlib's Agg canvas (no pyplot, no global backend change) at 100 dpi.

    Args:
      out_path: PNG file to write (parent folders are created).
      metrics_rows: tidy rows ``arm, seed, epoch, metric, value``.
      metrics: metrics to plot, one panel each; default every metric in order of appearance.
      title: figure title.
      confidence: coverage of the bands, in (0, 1).
      member_rows: optional member table, to exclude diverged members.
      arms: optional arm table or names, to fix the legend order.
      directions: which way each metric is better (:func:`jtricks.results.summary.metric_direction`), for
        the best arms of a many-arm plot.

    Returns:
      The path written.
    """
    confidence = jstats.check_probability("confidence", confidence)
    mrows = normalize_rows(metrics_rows, METRICS_COLUMNS, "metrics")
    brows = [] if member_rows is None else normalize_rows(member_rows, MEMBERS_COLUMNS, "members")
    diverged = {(r[0], r[1]) for r in brows if r[2] >= 0}
    names = arm_names(arms, mrows)
    metrics = _panels(mrows, metrics)
    curves = _curves(mrows, diverged, confidence)
    n_div = {a: len({s for (a2, s) in diverged if a2 == a}) for a in names}
    many = legend_outside(len(names))
    first = curves.get(metrics[0], {})
    finals = {a: float(first[a][1][-1]) for a in names if a in first}
    top = best_arms(finals, metric_direction(metrics[0], directions), order=names) if many else list(names)

    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    ncols = min(3, len(metrics))
    nrows = -(-len(metrics) // ncols)
    legend_h = 0.3 + 0.22 * -(-(len(top) + 1) // 2) if many else 0.0
    fig = Figure(figsize=(4.6 * ncols, 3.4 * nrows + (0.4 if title else 0.0) + legend_h), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    cmap = colormaps["tab10" if len(top) <= 10 else "tab20"]
    colors = {a: cmap(i % cmap.N) for i, a in enumerate(top)}
    labels = {a: _label(a, n_div, top, finals, many) for a in names}
    clipped = False
    for idx, metric in enumerate(metrics):
        ax = axes[idx // ncols][idx % ncols]
        clipped |= _panel(ax, metric, curves.get(metric, {}), names, colors, labels)
    for idx in range(len(metrics), nrows * ncols):
        axes[idx // ncols][idx % ncols].set_visible(False)
    legend_title = f"mean ± {confidence_label(confidence)} CI" + (" (clipped at the bounds)" if clipped else "")
    if many:
        _outside_legend(fig, axes[0][0], len(names) - len(top), legend_title, metrics[0])
    else:
        axes[0][0].legend(fontsize=7, title=legend_title, title_fontsize=7)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, legend_h / fig.get_figheight(), 1, 1))
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_path, format="png", dpi=100, metadata={"Software": None})
    return out_path


def plot_expected_performance(
    out_path: str | Path, rows: Sequence[Mapping[str, Any]], *, title: str | None = None
) -> Path:
    """Plot each arm's expected best validation score of ``n`` tuning configurations against ``n`` with its
    ``± sd`` band (``evp.png``; Dodge et al. 2019).

    Args:
      out_path: PNG file to write (parent folders are created).
      rows: per arm ``{"arm", "metric", "n", "mean", "sd"}`` (:func:`jtricks.tuning.expected_performance`); an
        arm with no finite score (empty ``n``) is left out.
      title: figure title.

    Returns:
      The path written.
    """
    if not rows:
        raise ValueError("rows must hold at least one arm's expected performance, got none")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    fig = Figure(figsize=(5.0, 3.6), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    for r in rows:
        if not r["n"]:
            continue
        n, mean, sd = (np.asarray(r[k], dtype=float) for k in ("n", "mean", "sd"))
        (line,) = ax.plot(n, mean, marker=".", label=r["arm"])
        ax.fill_between(n, mean - sd, mean + sd, color=line.get_color(), alpha=0.2, linewidth=0)
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
    ax.set_xlabel("configurations tried (n)")
    ax.set_ylabel(f"expected best {rows[0]['metric']}")
    ax.legend(fontsize=7, title="E[best of n] ± sd", title_fontsize=7)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_path, format="png", dpi=100, metadata={"Software": None})
    return out_path


def _label(arm: str, n_div: Mapping[str, int], top: Sequence[str], finals: Mapping[str, float], many: bool) -> str:
    label = arm if not n_div.get(arm) else f"{arm} ({n_div[arm]} diverged)"
    if many and arm in top:
        return f"{top.index(arm) + 1}. {label}: {finals[arm]:.4g}"
    return label


def _outside_legend(fig: Any, ax: Any, others: int, title: str, ranked_by: str) -> None:
    """The legend of a many-arm plot below the panels: the highlighted arms (ranked) and one grey entry."""
    from matplotlib.lines import Line2D

    handles, labels = ax.get_legend_handles_labels()
    keep = [(h, lab) for h, lab in zip(handles, labels) if not lab.startswith("_")]
    keep.append((Line2D([], [], color=_GREY, lw=0.8), f"{others} other arms"))
    fig.legend(
        [h for h, _ in keep],
        [lab for _, lab in keep],
        loc="lower center",
        ncol=2,
        fontsize=7,
        title=f"the {len(keep) - 1} best arms by final {ranked_by}, {title}",
        title_fontsize=7,
        frameon=False,
    )


def _panels(mrows: list[tuple], metrics: Sequence[str] | str | None) -> list[str]:
    """The metrics to plot (default: every metric in order of appearance); each must be in the data."""
    present: list[str] = []
    for r in mrows:
        if r[3] not in present:
            present.append(r[3])
    metrics = present if metrics is None else ([metrics] if isinstance(metrics, str) else list(metrics))
    unknown = [m for m in metrics if m not in present]
    if unknown:
        raise ValueError(f"metrics {unknown} not in the data; available: {present}")
    if not metrics:
        raise ValueError("nothing to plot: metrics_rows is empty")
    return metrics


def _curves(mrows: list[tuple], diverged: set, confidence: float) -> Curves:
    """Per metric and arm the epochs, the mean over the non-diverged members and the CI band (clipped to the
    metric's bounds)."""
    data: dict[str, dict[str, dict[int, list[float]]]] = {}
    for arm, seed, epoch, metric, value in mrows:
        if (arm, seed) not in diverged:
            data.setdefault(metric, {}).setdefault(arm, {}).setdefault(epoch, []).append(value)
    out: Curves = {}
    for metric, per_arm in data.items():
        for arm, per_epoch in per_arm.items():
            epochs = sorted(per_epoch)
            cis = [jstats.mean_ci(per_epoch[e], confidence) for e in epochs]
            mean = np.asarray([c.mean for c in cis])
            lo, hi = (np.asarray(v) for v in zip(*(clip_ci(metric, c.lo, c.hi) for c in cis)))
            out.setdefault(metric, {})[arm] = (np.asarray(epochs, dtype=float), mean, lo, hi)
    return out


def _panel(
    ax: Any,
    metric: str,
    per_arm: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
    names: Sequence[str],
    colors: Mapping[str, Any],
    labels: Mapping[str, str],
) -> bool:
    """One metric's panel: per-arm mean curves with CI bands (grey thin lines, no band, for the arms not
    highlighted), or a dot per arm for a single-epoch metric; log scale and y-range by the module's rules.
    Returns whether a band was clipped to the metric's bounds."""
    single = all(len(per_arm[a][0]) <= 1 for a in names if a in per_arm)  # a dot plot over arms
    clipped = False
    for arm in [*[a for a in names if a not in colors], *colors]:  # the highlighted arms drawn last, on top
        color, hl = colors.get(arm, _GREY), arm in colors
        label = labels[arm] if hl else "_" + arm
        if arm not in per_arm:
            ax.plot([], [], color=color, label=label)
            continue
        x, mean, lo, hi = per_arm[arm]
        if single:
            err = np.asarray([mean[:1] - lo[:1], hi[:1] - mean[:1]])
            kw = dict(fmt="o", color=color, capsize=3 if hl else 0, ms=5 if hl else 3, label=label)
            ax.errorbar([names.index(arm)], mean[:1], yerr=np.where(np.isfinite(err), err, 0.0), **kw)
        else:
            ax.plot(x, mean, color=color, lw=1.6 if hl else 0.7, label=label, zorder=3 if hl else 1)
            if hl:
                ok = np.isfinite(lo) & np.isfinite(hi)
                ax.fill_between(x, lo, hi, color=color, alpha=0.2, lw=0, where=ok)
    for arm in per_arm:
        clipped |= _band_clipped(metric, per_arm[arm])
    _y_axis(ax, metric, [per_arm[a][1] for a in names if a in per_arm])
    if single:
        ax.set_xticks([])  # arms are told apart by colour (legend)
        ax.set_xlim(-0.5, len(names) - 0.5)
        ax.set_xlabel("arm (final epoch)")
    else:
        ax.set_xlabel("epoch")
    ax.grid(True, alpha=0.3)
    ax.tick_params(labelsize=8)
    return clipped


def _band_clipped(metric: str, curve: tuple[np.ndarray, ...]) -> bool:
    """Whether a band of ``metric`` touches a bound it was clipped to (``lo == 0 < mean`` or ``hi == 1 > mean``)."""
    from jtricks.results.summary import metric_bounds

    bounds = metric_bounds(metric)
    if bounds is None:
        return False
    _, mean, lo, hi = curve
    return bool(np.any((lo == bounds[0]) & (mean > bounds[0])) or np.any((hi == bounds[1]) & (mean < bounds[1])))


def _y_axis(ax: Any, metric: str, means: Sequence[np.ndarray]) -> None:
    """Log scale and robust y-range of a panel from its mean curves; the title says what was applied."""
    values = np.concatenate(means) if means else np.zeros(0)
    log = log_scale(metric, values)
    notes = []
    if log:
        ax.set_yscale("log")
        notes.append("log scale")
    limits = robust_limits(values, log=log)
    if limits is not None and limits[2]:
        ax.set_ylim(limits[0], limits[1])
        notes.append(f"{limits[2]} points off-scale")
    ax.set_title(metric + (f" ({', '.join(notes)})" if notes else ""), fontsize=10)
