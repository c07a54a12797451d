"""What a person reads: the summary as a fixed-width table for the terminal (:func:`format_summary_table`), as
``summary.md`` and ``summary.csv`` (:func:`write_summary`), and a finished folder re-rendered from its files, byte for
byte (:func:`render`, ``jtricks report``)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from jtricks.results.bootstrap import TOTAL_COLUMNS, add_total_intervals, read_outcomes
from jtricks.results.plots import plot_curves
from jtricks.results.robust import N_BOOT
from jtricks.results.summary import (
    DEFAULT_METRICS,
    clip_ci,
    confidence_label,
    edge_optima,
    metric_bounds,
    metric_direction,
    still_improving,
    summarize,
)
from jtricks.results.tables import SUMMARY_COLUMNS, read_members_csv, read_metrics_csv, result_file, write_csv

__all__ = [
    "format_summary_table",
    "format_console_table",
    "write_summary",
    "skipped_steps_notes",
    "SECTION_FILES",
    "append_sections",
    "render",
    "plot_folder",
    "CLIPPED_MARK",
]

#: The mark of a confidence interval shown clipped to its metric's bounds (``summary.csv``: ``ci_clipped``)
CLIPPED_MARK = "†"


def _decimals(metric: str, rows: list[dict[str, Any]]) -> int:
    """Decimals for a table: 4 for accuracies, else 4 significant digits of the median |mean|."""
    if metric_direction(metric) > 0 and metric.lower().endswith(("acc", "accuracy")):
        return 4
    means = [abs(r["mean"]) for r in rows if math.isfinite(r["mean"]) and r["mean"] != 0]
    if not means:
        return 4
    mag = math.floor(math.log10(float(np.median(means))))
    return int(min(10, max(0, 3 - mag)))


def _num(v: float, decimals: int, signed: bool = False) -> str:
    if v is None or not math.isfinite(v):
        return "n/a" if v is None or math.isnan(v) else ("+inf" if v > 0 else "-inf")
    sign = "+" if signed else ""
    return f"{v:{sign}.{decimals}f}"


def _p(p: float) -> str:
    if not math.isfinite(p):
        return "n/a"
    if p < 1e-4:
        return "<1e-4"
    return f"{p:.2g}"


_ADJUST_NAMES = {"holm": "Holm", "bh": "BH", "none": "unadjusted"}


def _diverged_cell(r: Mapping[str, Any]) -> str:
    if not r["diverged"]:
        return "0"
    return f"{r['diverged']}/{r['n_members']} [{r['div_lo']:.0%}, {r['div_hi']:.0%}]"


def _delta_cell(r: Mapping[str, Any], dec: int) -> str:
    delta = _num(r["diff"], dec, signed=True)
    if math.isfinite(r["diff_lo"]):
        delta += f" [{_num(r['diff_lo'], dec, signed=True)}, {_num(r['diff_hi'], dec, signed=True)}]"
    if r["diff_n"] < r["itt_n"]:
        delta += f" ({r['diff_n']}/{r['itt_n']} pairs)"
    return delta


def _table_cells(
    rows: list[dict[str, Any]], metric: str, directions: Mapping[str, Any] | None = None
) -> tuple[list[str], list[list[str]]]:
    rows = [r for r in rows if r["metric"] == metric]
    if not rows:
        raise ValueError(f"no summary rows for metric {metric!r}")
    conf = confidence_label(rows[0]["confidence"])
    dec = _decimals(metric, rows)
    at_best = metric.startswith("test_") and any(math.isfinite(r["at_best_mean"]) for r in rows)
    header = ["arm", "mean ± std", f"{conf} CI", "n", "diverged [CI]", "best epoch"]
    header += ["at val-best epoch"] if at_best else []
    header += [
        f"Δ vs baseline [{conf} CI]",
        "p",
        f"p ({_ADJUST_NAMES[rows[0]['adjust']]})",
        "verdict",
        "seeds (planning)",
    ]
    has_target = any(r["target"] is not None for r in rows)
    if has_target:
        op = "≤" if metric_direction(metric, directions) < 0 else "≥"
        header.append(f"epochs to {op} {rows[0]['target']:g}" if rows[0]["target"] is not None else "epochs to target")
    body = []
    for r in rows:
        mean = _num(r["mean"], dec)
        if math.isfinite(r["std"]):
            mean += f" ± {_num(r['std'], dec)}"
        ci = _ci_cell(r, dec)
        if r["verdict"] == "baseline":
            delta, p, p_adj, verdict, need = "(baseline)", "", "", "baseline", ""
        else:
            delta = _delta_cell(r, dec)
            p = _p(r["itt_p"] if r["test"] == "itt" else r["p_value"])
            p_adj = _p(r["p_adjusted"])
            verdict = r["verdict"] + (" (ITT)" if r["test"] == "itt" else "")
            s = r["seeds_needed"]
            need = ("∞" if s == math.inf else "n/a") if not math.isfinite(s) else str(int(s))
        cells = [
            r["arm"],
            mean,
            ci,
            str(r["n"]),
            _diverged_cell(r),
            str(r["best_epoch"]) if r["best_epoch"] >= 0 else "n/a",
        ]
        cells += [_num(r["at_best_mean"], dec)] if at_best else []
        cells += [delta, p, p_adj, verdict, need]
        if has_target:
            e = r["epochs_to_target"]
            cells.append("" if e is None else ("never" if e < 0 else str(e)))
        body.append(cells)
    return header, body


def _ci_cell(r: Mapping[str, Any], dec: int) -> str:
    """``[lo, hi]`` clipped to the metric's bounds, with :data:`CLIPPED_MARK` when that changed it."""
    if not math.isfinite(r["ci_lo"]):
        return "n/a"
    lo, hi = clip_ci(r["metric"], r["ci_lo"], r["ci_hi"])
    return f"[{_num(lo, dec)}, {_num(hi, dec)}]" + (CLIPPED_MARK if r.get("ci_clipped") else "")


def clip_note(rows: Sequence[Mapping[str, Any]], metric: str) -> str:
    """The footnote of a table whose intervals were clipped (``""`` when none was)."""
    clipped = [r for r in rows if r["metric"] == metric and r.get("ci_clipped")]
    if not clipped:
        return ""
    lo, hi = metric_bounds(metric) or (math.nan, math.nan)
    at = sorted(
        {f"{lo:g}" for r in clipped if r["ci_clipped"] in ("lower", "both")}
        | {f"{hi:g}" for r in clipped if r["ci_clipped"] in ("upper", "both")}
    )
    return (
        f"{CLIPPED_MARK} interval clipped at {' and '.join(at)}, the bound{'s' if len(at) > 1 else ''} of {metric} "
        f"(the t interval crosses it; summary.csv keeps the unclipped ci_lo, ci_hi and names the end in ci_clipped)"
    )


def format_summary_table(
    summary_rows: list[dict[str, Any]], metric: str, directions: Mapping[str, Any] | None = None
) -> str:
    """Plain-text table of one metric's summary rows, columns padded to align, for the console.

    Same cells as the Markdown table of :func:`write_summary`: arm, mean ± std, CI, n, diverged [CI],
    best epoch, (value at the validation-best epoch,) Δ vs baseline [CI], p, adjusted p, verdict, seeds
    (planning) (and epochs to target).
    """
    header, body = _table_cells(summary_rows, metric, directions)
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()

    lines = [line(header), "  ".join("-" * w for w in widths)]
    lines += [line(row) for row in body]
    note = clip_note(summary_rows, metric)
    return "\n".join(lines + ([note] if note else []))


def _fit(text: str, width: int, *, middle: bool = False) -> str:
    """``text`` in at most ``width`` characters: cut at the end (``…``), or in the ``middle`` (keeping both ends,
    e.g. an arm's first factor and the value of its last)."""
    if len(text) <= width:
        return text
    if not middle:
        return text[: max(1, width - 1)] + "…"
    head = (width - 1) // 2
    return text[:head] + "…" + text[len(text) - (width - 1 - head) :]


def _console_cells(r: Mapping[str, Any], dec: int, *, interval: bool) -> list[str]:
    """One arm's cells of :func:`format_console_table` (Δ with its interval when ``interval``)."""
    base = r["verdict"] == "baseline"
    diff = _num(r["diff"], dec, signed=True)
    if interval and not base and math.isfinite(r["diff_lo"]):
        diff += f" [{_num(r['diff_lo'], dec, signed=True)}, {_num(r['diff_hi'], dec, signed=True)}]"
    verdict = r["verdict"] + (" (ITT)" if r["test"] == "itt" else "")
    div = f"{r['diverged']}/{r['n_members']}" if r["diverged"] else "0"
    cells = [r["arm"], _num(r["mean"], dec), _ci_cell(r, dec), "" if base else diff]
    return cells + ["" if base else _p(r["p_adjusted"]), verdict, div]


def format_console_table(
    summary_rows: list[dict[str, Any]],
    metric: str,
    directions: Mapping[str, Any] | None = None,
    *,
    width: int = 100,
) -> str:
    """The summary of ``metric`` for the end of a run, in at most ``width`` columns: a title naming the metric
    and its direction, then per arm the mean, its interval, Δ vs baseline with its interval, the adjusted p,
    the verdict and the diverged members; long arm names are shortened (``…``) to fit (the full table, every
    column and whole names, is ``summary.md``); a clipped interval is marked with its footnote.
    """
    rows = [r for r in summary_rows if r["metric"] == metric]
    if not rows:
        raise ValueError(f"no summary rows for metric {metric!r}")
    if width < 60:
        raise ValueError(f"`width` must be at least 60 columns, got {width}")
    conf, dec = confidence_label(rows[0]["confidence"]), _decimals(metric, rows)
    d = metric_direction(metric, directions)
    hint = {1: ", higher is better", -1: ", lower is better"}.get(d, "")
    n = max(r["n_members"] for r in rows)
    title = f"{metric}{hint}: final value over {n} seeds; Δ vs baseline {rows[0]['baseline']}, paired by seed"
    header = ["arm", "mean", f"{conf} CI", "Δ vs baseline", f"p ({_ADJUST_NAMES[rows[0]['adjust']]})", "verdict", "div"]
    body = [_console_cells(r, dec, interval=True) for r in rows]
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    if widths[0] + sum(widths[1:]) + 2 * (len(header) - 1) > width:  # Δ without its interval: room for the arms
        body = [_console_cells(r, dec, interval=False) for r in rows]
        widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    widths[0] = max(8, min(widths[0], width - sum(widths[1:]) - 2 * (len(header) - 1)))

    def line(cells: list[str]) -> str:
        return "  ".join(_fit(c, w, middle=i == 0).ljust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    lines = [_fit(title, width), line(header), "  ".join("-" * w for w in widths)]
    lines += [line(row) for row in body]
    note = clip_note(rows, metric)
    lines += [_fit(note, width)] if note else []
    return "\n".join(lines)


def _md_escape(s: str) -> str:
    return s.replace("|", "\\|")


def _legend(rows: Sequence[Mapping[str, Any]]) -> str:
    r0 = rows[0]
    conf, power = confidence_label(r0["confidence"]), confidence_label(r0["power"])
    alpha = f"{(1.0 - r0['confidence']) * 100:g}%"
    adj = {
        "holm": "Holm-adjusted (familywise error rate)",
        "bh": "Benjamini-Hochberg-adjusted (false discovery rate)",
        "none": "not adjusted for multiple comparisons",
    }[r0["adjust"]]
    return (
        f"Baseline: `{r0['baseline']}`. Each member contributes its value at the last epoch it "
        f"reached. mean ± std over the n finite, non-diverged seeds, with a {conf} Student-t "
        f'confidence interval; "diverged" counts the excluded members, with the Clopper-Pearson {conf} '
        f"interval of the divergence rate. Δ is the difference arm − baseline paired by seed (same "
        f"initial weights and data order), with its {conf} t interval and paired t-test p-value. Where a "
        f'member diverged, fewer pairs than seeds are compared ("k/n pairs"), and the verdict comes from '
        f'the intention-to-treat test instead ("(ITT)": every seed kept, a diverged member counted as the '
        f"worst outcome, exact Wilcoxon signed-rank test; its p-value is shown). The p-values of each "
        f'table\'s comparisons with the baseline form one family and are {adj}; the verdict is "better" / '
        f'"worse" when the adjusted p-value is below {alpha} (higher accuracy / lower loss is better), '
        f'"degenerate" when every paired difference is equal (no interval). "seeds (planning)" is a '
        f"planning estimate for a next run: the exact (noncentral t) number of seeds at which a true Δ equal to "
        f"the observed one, with the observed spread, would be found with {power} power at the family's "
        f'Bonferroni level. "best epoch" is the best epoch of the mean curve; "at val-best epoch" is '
        f"the mean of each member's value at the epoch its validation metric picked."
    ) + _legend_robust(rows, adj, alpha)


def _legend_robust(rows: Sequence[Mapping[str, Any]], adj: str, alpha: str) -> str:
    """The legend of the second table: IQM, P(better), and the divergence and equivalence tests where shown."""
    r0 = rows[0]
    conf = confidence_label(r0["confidence"])
    text = (
        f' The second table: "IQM" is the interquartile mean of the n members (the mean of their middle 50 %, '
        f"which one outlying seed cannot move far), with a {conf} percentile bootstrap interval ({N_BOOT} "
        f'resamples of the members, fixed random seed); "P(better)" is the probability that the arm\'s member beats '
        f"the baseline's member of the same seed (ties count 1/2, a diverged member is the worst outcome), with a "
        f"{conf} bootstrap interval over the seeds."
    )
    if any(r["div_family"] for r in rows):
        text += (
            ' "diverged alone" counts the seeds on which only the arm / only the baseline diverged; the exact '
            "McNemar test of these seeds (a two-sided binomial test: is the arm as likely as the baseline to be the "
            f"one that diverges?) forms its own family of the comparisons that have such a seed, {adj}, and "
            f'"divergence" is "more" / "fewer" when its adjusted p-value is below {alpha}.'
        )
    if any(r["eq_margin"] is not None for r in rows):
        text += (
            " With an equivalence margin m, the two one-sided paired t-tests (TOST) of |Δ| < m give the larger of "
            f"their p-values, a third family, {adj}; a comparison the difference test leaves open is "
            f'"equivalent" when its adjusted TOST p-value is below {alpha} (its '
            f'{confidence_label(2 * r0["confidence"] - 1)} interval then lies inside ±m), "not resolved" '
            "otherwise (TOST only where every seed gave a pair)."
        )
    return text


def _plural(k: int, what: str) -> str:
    return f"{k} {what}{'s' if k != 1 else ''}"


def _family_line(rows: Sequence[Mapping[str, Any]]) -> str:
    r0 = rows[0]
    what = {"holm": "Holm adjustment", "bh": "Benjamini-Hochberg adjustment", "none": "no adjustment"}[r0["adjust"]]
    line = f"Family: {_plural(r0['family'], 'comparison')} with `{r0['baseline']}` ({what} over the comparisons of "
    line += "this metric)"
    if r0["div_family"]:
        line += f"; divergence: {_plural(r0['div_family'], 'comparison')} with a seed on which only one arm diverged"
    if r0["eq_margin"] is not None:
        line += f"; equivalence within ±{r0['eq_margin']:g}: {_plural(r0['eq_family'], 'comparison')}"
    return line + "."


def _interval(value: float, lo: float, hi: float, fmt: str) -> str:
    if not math.isfinite(value):
        return "n/a"
    if not math.isfinite(lo):
        return format(value, fmt)
    return f"{value:{fmt}} [{lo:{fmt}}, {hi:{fmt}}]"


def _robust_cells(
    rows: list[dict[str, Any]], metric: str, directions: Mapping[str, Any] | None
) -> tuple[list[str], list[list[str]]]:
    """The second table of a metric in ``summary.md``: IQM, probability of improvement, and where they apply the
    divergence test and the equivalence test."""
    conf = confidence_label(rows[0]["confidence"])
    dec = _decimals(metric, rows)
    better = "P(higher)" if metric_direction(metric, directions) == 0 else "P(better)"
    adj = _ADJUST_NAMES[rows[0]["adjust"]]
    header = ["arm", f"IQM [{conf} CI]", f"{better} [{conf} CI]"]
    divergence = rows[0]["div_family"] > 0
    margin = rows[0]["eq_margin"]
    if divergence:
        header += ["diverged alone (arm / baseline)", f"p divergence ({adj})", "divergence"]
    if margin is not None:
        header += [f"Δ [{confidence_label(2 * rows[0]['confidence'] - 1)} CI] vs ±{margin:g}", f"p TOST ({adj})"]
    body = []
    for r in rows:
        base = r["verdict"] == "baseline"
        cells = [r["arm"], _interval(r["iqm"], r["iqm_lo"], r["iqm_hi"], f".{dec}f")]
        cells.append("(baseline)" if base else _interval(r["poi"], r["poi_lo"], r["poi_hi"], ".2f"))
        if divergence:
            counts = f"{r['div_arm_only']} / {r['div_base_only']}"
            cells += ["", "", "baseline"] if base else [counts, _p(r["div_p_adjusted"]), r["div_verdict"]]
        if margin is not None:
            eq = f"[{_num(r['eq_lo'], dec, signed=True)}, {_num(r['eq_hi'], dec, signed=True)}]"
            cells += ["", ""] if base else [eq if math.isfinite(r["eq_lo"]) else "n/a", _p(r["eq_p_adjusted"])]
        body.append(cells)
    return header, body


def _budget_line(rows: Sequence[Mapping[str, Any]]) -> str:
    """The plain line of a budget that may be too short (:func:`jtricks.results.summary.still_improving`), or ``""``."""
    arms, total = still_improving(rows)
    if not arms:
        return ""
    return (
        f"Budget: the best validation epoch is the last one (for at least half of the members) for {len(arms)} of "
        f"{total} arms ({', '.join(f'`{a}`' for a in arms)}): these arms may still be improving; compare with care."
    )


def _md_table(header: list[str], body: list[list[str]]) -> list[str]:
    align = [":---" if h in ("arm", "verdict", "divergence") else "---:" for h in header]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    return lines + ["| " + " | ".join(_md_escape(c) for c in row) + " |" for row in body]


def _total_lines(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The total intervals of the test-set bootstrap (seeds and test examples resampled), one bullet per arm;
    nothing when the rows have none."""
    rows = [r for r in rows if r.get("total_ci_low") is not None]
    if not rows:
        return []
    dec = _decimals(rows[0]["metric"], rows)
    out = [
        "Total interval (seeds and test examples resampled, a two-level bootstrap; the CI above is training "
        "variance only):",
        "",
    ]
    for r in rows:
        line = f"- {r['arm']}: [{_num(r['total_ci_low'], dec)}, {_num(r['total_ci_high'], dec)}]"
        if r.get("total_diff_low") is not None:
            lo, hi = _num(r["total_diff_low"], dec, signed=True), _num(r["total_diff_high"], dec, signed=True)
            line += f"; Δ vs {r['baseline']}: [{lo}, {hi}]"
        out.append(line)
    return [*out, ""]


def _markdown(
    summary_rows: list[dict[str, Any]],
    title: str,
    notes: str | Sequence[str] | None,
    directions: Mapping[str, Any] | None = None,
    arms: Any = None,
) -> str:
    parts = [f"# {title}", ""]
    if notes:
        if isinstance(notes, str):
            parts += [notes.strip(), ""]
        else:
            parts += [f"- {n}" for n in notes] + [""]
    if summary_rows:
        parts += [_legend(summary_rows), ""]
        budget = _budget_line(summary_rows)
        parts += [budget, ""] if budget else []
    metrics: list[str] = []
    for r in summary_rows:
        if r["metric"] not in metrics:
            metrics.append(r["metric"])
    for metric in metrics:
        d = metric_direction(metric, directions)
        hint = " (higher is better)" if d > 0 else (" (lower is better)" if d < 0 else "")
        header, body = _table_cells(summary_rows, metric, directions)
        parts += [f"## {metric}{hint}", "", _family_line([r for r in summary_rows if r["metric"] == metric]), ""]
        parts += [*_md_table(header, body), ""]
        note = clip_note(summary_rows, metric)
        parts += [note, ""] if note else []
        rows = [r for r in summary_rows if r["metric"] == metric]
        parts += [*_md_table(*_robust_cells(rows, metric, directions)), ""]
        parts += _total_lines(rows)
        edges = edge_optima(summary_rows, arms, metric, directions)
        parts += [*edges, ""] if edges else []
    return "\n".join(parts)


def skipped_steps_notes(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """One note per arm whose members had updates skipped by float16's dynamic loss scaling (the ``skipped_steps``
    rows of ``metrics.csv``, summed per member over the epochs), in the arms' order; ``[]`` when none was skipped::

        float16 loss scaling skipped 9 steps in arm 'baseline' (2 of 2 members; at most 5 per member)
    """
    per_arm: dict[str, dict[int, float]] = {}
    for r in rows:
        if r["metric"] == "skipped_steps" and math.isfinite(r["value"]):
            members = per_arm.setdefault(r["arm"], {})
            members[r["seed"]] = members.get(r["seed"], 0.0) + r["value"]
    notes = []
    for arm, members in per_arm.items():
        total = sum(members.values())
        if total > 0:
            hit = sum(1 for v in members.values() if v > 0)
            notes.append(
                f"float16 loss scaling skipped {total:.0f} steps in arm {arm!r} ({hit} of {len(members)} members; "
                f"at most {max(members.values()):.0f} per member)"
            )
    return notes


def write_summary(
    out_dir: str | Path,
    summary_rows: list[dict[str, Any]],
    *,
    title: str,
    notes: str | Sequence[str] | None = None,
    directions: Mapping[str, Any] | None = None,
    arms: Any = None,
) -> tuple[Path, Path]:
    """Write ``summary.csv`` (columns :data:`SUMMARY_COLUMNS`, floats as exact ``repr``, ``None``
    as empty) and ``summary.md`` (a title, ``notes`` -- a paragraph or a list of bullets --, a
    legend of the statistics, then per metric the family of its comparisons and a Markdown table:
    arm | mean ± std | CI | n | diverged [CI] | best epoch [| at val-best epoch] | Δ vs baseline [CI] |
    p | p (adjusted) | verdict | seeds (planning) [| epochs to target]) and a second table: arm | IQM [CI] |
    P(better) [CI] [| diverged alone | p divergence | divergence] [| Δ [1 - 2 alpha CI] vs ±margin | p TOST]
    (the divergence columns when a comparison has a seed on which only one arm diverged, the equivalence columns
    with a margin), followed by the :func:`edge_optima` sentences when ``arms`` (the arm table with factors) is
    given.

    Accuracies are shown with 4 decimals, other values with 4 significant digits, p-values with 2.
    Output is deterministic (byte-identical for the same rows).

    Returns:
      ``(csv_path, md_path)``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for i, r in enumerate(summary_rows):
        missing = [c for c in SUMMARY_COLUMNS if c not in r]
        if missing:
            raise ValueError(f"summary_rows[{i}] lacks key(s) {missing}; use summarize() to build them")
    # the test-set bootstrap's columns, when the rows carry them (Experiment.test_bootstrap)
    extra = tuple(c for c in TOTAL_COLUMNS if summary_rows and all(c in r for r in summary_rows))
    columns = SUMMARY_COLUMNS + extra
    csv_path = write_csv(out_dir / "summary.csv", columns, [tuple(r[c] for c in columns) for r in summary_rows])
    md_path = out_dir / "summary.md"
    with md_path.open("w", newline="", encoding="utf-8") as f:
        f.write(_markdown(summary_rows, title, notes, directions, arms))
    return csv_path, md_path


def _lookup(manifest: Mapping[str, Any], config: Mapping[str, Any], key: str) -> Any:
    value = config.get(key)
    return manifest.get(key) if value is None else value


#: Sections a run adds to the end of ``summary.md``, each kept in its own file of the folder, in this order:
#: the population-based training table (:func:`jtricks.pbt.markdown`) and the tuned values of a tune-then-ablate run.
SECTION_FILES = ("pbt.md", "tuning.md", "sequential.md")


def append_sections(out_dir: str | Path, names: Sequence[str] = SECTION_FILES) -> None:
    """Append the section files ``names`` present in ``out_dir`` to its ``summary.md`` (``"\n"`` + file)."""
    out_dir = Path(out_dir)
    parts = [(out_dir / n).read_text(encoding="utf-8") for n in names if (out_dir / n).is_file()]
    if parts:
        summary = out_dir / "summary.md"
        text = summary.read_text(encoding="utf-8") + "".join("\n" + p for p in parts)
        with summary.open("w", newline="", encoding="utf-8") as f:
            f.write(text)


def _read_manifest(out_dir: Path) -> dict[str, Any]:
    path = out_dir / "manifest.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def plot_folder(
    out_dir: str | Path,
    path: str | Path | None = None,
    *,
    rows: list[dict[str, Any]] | None = None,
    members: list[dict[str, Any]] | None = None,
    arms: Any = None,
    manifest: Mapping[str, Any] | None = None,
) -> Path:
    """Draw a results folder's learning curves (:func:`jtricks.results.plots.plot_curves`) to ``path`` (default
    ``out_dir/curves.png``): the panels of the run's summary metrics, ``train_loss`` and ``val_acc``, titled with
    the run's name; ``rows``, ``members``, ``arms``, ``manifest`` are read from the folder unless given. The same
    picture a run writes (``jtricks plot RUN``, and ``jtricks report``)."""
    out_dir = Path(out_dir)
    if rows is None:
        metrics_path = result_file(out_dir, "metrics.csv")
        if not metrics_path.is_file():
            raise FileNotFoundError(f"{metrics_path} not found: is {out_dir} a jtricks results folder?")
        rows = read_metrics_csv(metrics_path)
        members = read_members_csv(out_dir / "members.csv") if (out_dir / "members.csv").is_file() else None
        arms_path = out_dir / "arms.json"
        arms = json.loads(arms_path.read_text(encoding="utf-8")) if arms_path.is_file() else None
    manifest = _read_manifest(out_dir) if manifest is None else manifest
    config = manifest.get("config") or {}
    metrics = _lookup(manifest, config, "metrics") or DEFAULT_METRICS
    confidence = _lookup(manifest, config, "confidence")
    present = {r["metric"] for r in rows}
    return plot_curves(
        out_dir / "curves.png" if path is None else path,
        rows,
        metrics=tuple(m for m in dict.fromkeys([*metrics, "train_loss", "val_acc"]) if m in present),
        title=str(config.get("name") or manifest.get("experiment") or out_dir.resolve().name),
        confidence=0.95 if confidence is None else confidence,
        member_rows=members,
        arms=arms,
        directions=manifest.get("directions"),
    )


def render(out_dir: str | Path, *, plot: bool = True) -> list[dict[str, Any]]:
    """Re-derive ``summary.csv``, ``summary.md`` and ``curves.png`` of an existing results folder.

    Reads ``metrics.csv``, ``members.csv`` (optional), ``arms.json`` (optional; a list of
    ``{"arm", "factors"}`` or ``{"arms": [...], "baseline": name}``) and ``manifest.json``
    (optional). The keys ``baseline``, ``metrics``, ``target``, ``confidence``, ``adjust`` and ``equivalence_margin``
    are taken
    from the manifest's ``config`` or, where that lacks them or holds ``null``, from the manifest's top
    level (defaults: the first arm, :data:`DEFAULT_METRICS`, none, 0.95, ``"holm"``). The Markdown title is
    ``"{name}: {description}"`` (``name`` from ``config.name``, else ``experiment``, else the folder
    name; ``description`` from ``config.description``, omitted when empty) and the plot title is
    ``name``; the folder's section files (:data:`SECTION_FILES`) are appended to ``summary.md``. Used by
    ``jtricks report DIR``; the same call after a run reproduces its ``summary.csv`` and ``summary.md``
    byte for byte.

    Args:
      out_dir: the results folder.
      plot: also write ``curves.png`` (needs matplotlib).

    Returns:
      The summary rows (see :func:`summarize`).
    """
    out_dir = Path(out_dir)
    metrics_path = result_file(out_dir, "metrics.csv")  # or its published, compressed copy
    if not metrics_path.is_file():
        raise FileNotFoundError(f"{metrics_path} not found: is {out_dir} a jtricks results folder?")
    rows = read_metrics_csv(metrics_path)
    members_path = out_dir / "members.csv"
    members = read_members_csv(members_path) if members_path.is_file() else None
    arms_doc: Any = None
    if (out_dir / "arms.json").is_file():
        arms_doc = json.loads((out_dir / "arms.json").read_text(encoding="utf-8"))
    manifest = _read_manifest(out_dir)
    config = manifest.get("config") or {}

    baseline = _lookup(manifest, config, "baseline")
    if baseline is None and isinstance(arms_doc, Mapping):
        baseline = arms_doc.get("baseline")
    metrics = _lookup(manifest, config, "metrics") or DEFAULT_METRICS
    confidence = _lookup(manifest, config, "confidence")
    confidence = 0.95 if confidence is None else confidence
    summary = summarize(
        rows,
        members,
        arms_doc,
        metrics=tuple(metrics),
        baseline=baseline,
        confidence=confidence,
        target=_lookup(manifest, config, "target"),
        directions=manifest.get("directions"),
        adjust=_lookup(manifest, config, "adjust") or "holm",
        equivalence_margin=_lookup(manifest, config, "equivalence_margin"),
    )
    outcomes = read_outcomes(out_dir) if config.get("test_bootstrap") else None
    if outcomes is not None:
        summary = add_total_intervals(summary, outcomes, members or [])
    name = str(config.get("name") or manifest.get("experiment") or out_dir.resolve().name)
    description = str(config.get("description") or "")
    title = f"{name}: {description}".strip(": ")
    notes = skipped_steps_notes(rows)
    write_summary(out_dir, summary, title=title, notes=notes, directions=manifest.get("directions"), arms=arms_doc)
    append_sections(out_dir)
    if plot and rows:
        plot_folder(out_dir, rows=rows, members=members, arms=arms_doc, manifest=manifest)
    return summary
