"""Learning curves: one panel per metric, the mean over seeds per arm with its confidence band
(``curves.png``). matplotlib is imported only here, through its object-oriented Agg canvas, so the global pyplot
backend is never touched."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from jtricks.results import stats as jstats
from jtricks.results.summary import arm_names, confidence_label
from jtricks.results.tables import MEMBERS_COLUMNS, METRICS_COLUMNS, normalize_rows

__all__ = ["plot_curves", "plot_expected_performance"]


def plot_curves(
    out_path: str | Path,
    metrics_rows: Iterable[Any],
    *,
    metrics: Sequence[str] | None = None,
    title: str | None = None,
    confidence: float = 0.95,
    member_rows: Iterable[Any] | None = None,
    arms: Any = None,
) -> Path:
    """Plot per-arm mean curves over seeds with a t confidence band, one panel per metric.

    For each arm and epoch the band is :func:`jtricks.stats.mean_ci` over the seeds' finite values
    at that epoch (non-finite values are dropped; members flagged diverged in ``member_rows`` are
    dropped entirely and counted in the legend). A metric recorded at a single epoch (e.g.
    ``test_acc``) is drawn as a point with an error bar. Written with matplotlib's Agg canvas
    (no pyplot, no global backend change) at 100 dpi.

    Args:
      out_path: PNG file to write (parent folders are created).
      metrics_rows: tidy rows ``arm, seed, epoch, metric, value``.
      metrics: metrics to plot, one panel each; default every metric in order of appearance.
      title: figure title.
      confidence: coverage of the bands, in (0, 1).
      member_rows: optional member table, to exclude diverged members.
      arms: optional arm table or names, to fix the legend order.

    Returns:
      The path written.
    """
    confidence = jstats.check_probability("confidence", confidence)
    mrows = normalize_rows(metrics_rows, METRICS_COLUMNS, "metrics")
    brows = [] if member_rows is None else normalize_rows(member_rows, MEMBERS_COLUMNS, "members")
    diverged = {(r[0], r[1]) for r in brows if r[2] >= 0}
    names = arm_names(arms, mrows)
    metrics = _panels(mrows, metrics)
    # data[metric][arm][epoch] = list of values over non-diverged members
    data: dict[str, dict[str, dict[int, list[float]]]] = {}
    for arm, seed, epoch, metric, value in mrows:
        if (arm, seed) not in diverged:
            data.setdefault(metric, {}).setdefault(arm, {}).setdefault(epoch, []).append(value)
    n_div = {a: len({s for (a2, s) in diverged if a2 == a}) for a in names}

    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    ncols = min(3, len(metrics))
    nrows = -(-len(metrics) // ncols)
    fig = Figure(figsize=(4.6 * ncols, 3.4 * nrows + (0.4 if title else 0.0)), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    cmap = colormaps["tab10" if len(names) <= 10 else "tab20"]
    colors = {a: cmap(i % cmap.N) for i, a in enumerate(names)}
    for idx, metric in enumerate(metrics):
        _panel(axes[idx // ncols][idx % ncols], metric, data.get(metric, {}), names, colors, n_div, confidence)
    for idx in range(len(metrics), nrows * ncols):
        axes[idx // ncols][idx % ncols].set_visible(False)
    axes[0][0].legend(fontsize=7, title=f"mean ± {confidence_label(confidence)} CI", title_fontsize=7)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
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


def _panel(
    ax: Any,
    metric: str,
    per_arm: Mapping[str, Mapping[int, list[float]]],
    names: Sequence[str],
    colors: Mapping[str, Any],
    n_div: Mapping[str, int],
    confidence: float,
) -> None:
    """One metric's panel: per-arm mean curves with CI bands, or a dot per arm for a single-epoch metric."""
    single = all(len(per_arm.get(a, {})) <= 1 for a in names)  # recorded once per member: a dot plot over arms
    for ai, arm in enumerate(names):
        per_epoch = per_arm.get(arm)
        label = arm if not n_div.get(arm) else f"{arm} ({n_div[arm]} diverged)"
        if not per_epoch:
            ax.plot([], [], color=colors[arm], label=label)
            continue
        epochs = sorted(per_epoch)
        cis = [jstats.mean_ci(per_epoch[e], confidence) for e in epochs]
        x = np.asarray(epochs, dtype=float)
        mean, lo, hi = (np.asarray([getattr(c, f) for c in cis]) for f in ("mean", "lo", "hi"))
        if single:
            err = np.asarray([[mean[0] - lo[0]], [hi[0] - mean[0]]])
            ax.errorbar(
                [ai],
                mean,
                yerr=np.where(np.isfinite(err), err, 0.0),
                fmt="o",
                color=colors[arm],
                capsize=3,
                label=label,
            )
        else:
            ax.plot(x, mean, color=colors[arm], lw=1.5, label=label)
            ax.fill_between(x, lo, hi, color=colors[arm], alpha=0.2, lw=0, where=np.isfinite(lo) & np.isfinite(hi))
    ax.set_title(metric, fontsize=10)
    if single:
        ax.set_xticks([])  # arms are told apart by colour (legend)
        ax.set_xlim(-0.5, len(names) - 0.5)
        ax.set_xlabel("arm (final epoch)")
    else:
        ax.set_xlabel("epoch")
    ax.grid(True, alpha=0.3)
    ax.tick_params(labelsize=8)
