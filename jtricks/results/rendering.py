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

from jtricks.results.plots import plot_curves
from jtricks.results.summary import DEFAULT_METRICS, confidence_label, edge_optima, metric_direction, summarize
from jtricks.results.tables import SUMMARY_COLUMNS, read_members_csv, read_metrics_csv, result_file, write_csv

__all__ = ["format_summary_table", "write_summary", "skipped_steps_notes", "SECTION_FILES", "append_sections", "render"]


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
        ci = f"[{_num(r['ci_lo'], dec)}, {_num(r['ci_hi'], dec)}]" if math.isfinite(r["ci_lo"]) else "n/a"
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
    return "\n".join(lines)


def _md_escape(s: str) -> str:
    return s.replace("|", "\\|")


def _legend(r0: Mapping[str, Any]) -> str:
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
    )


def _family_line(rows: Sequence[Mapping[str, Any]]) -> str:
    r0 = rows[0]
    k = r0["family"]
    what = {"holm": "Holm adjustment", "bh": "Benjamini-Hochberg adjustment", "none": "no adjustment"}[r0["adjust"]]
    return (
        f"Family: {k} comparison{'s' if k != 1 else ''} with `{r0['baseline']}` "
        f"({what} over the comparisons of this metric)."
    )


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
        parts += [_legend(summary_rows[0]), ""]
    metrics: list[str] = []
    for r in summary_rows:
        if r["metric"] not in metrics:
            metrics.append(r["metric"])
    for metric in metrics:
        d = metric_direction(metric, directions)
        hint = " (higher is better)" if d > 0 else (" (lower is better)" if d < 0 else "")
        header, body = _table_cells(summary_rows, metric, directions)
        parts += [f"## {metric}{hint}", "", _family_line([r for r in summary_rows if r["metric"] == metric]), ""]
        parts.append("| " + " | ".join(header) + " |")
        align = [":---" if h in ("arm", "verdict") else "---:" for h in header]
        parts.append("|" + "|".join(align) + "|")
        for row in body:
            parts.append("| " + " | ".join(_md_escape(c) for c in row) + " |")
        parts.append("")
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
    p | p (adjusted) | verdict | seeds (planning) [| epochs to target]), followed by the
    :func:`edge_optima` sentences when ``arms`` (the arm table with factors) is given.

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
    csv_path = write_csv(
        out_dir / "summary.csv",
        SUMMARY_COLUMNS,
        [tuple(r[c] for c in SUMMARY_COLUMNS) for r in summary_rows],
    )
    md_path = out_dir / "summary.md"
    with md_path.open("w", newline="", encoding="utf-8") as f:
        f.write(_markdown(summary_rows, title, notes, directions, arms))
    return csv_path, md_path


def _lookup(manifest: Mapping[str, Any], config: Mapping[str, Any], key: str) -> Any:
    value = config.get(key)
    return manifest.get(key) if value is None else value


#: Sections a run adds to the end of ``summary.md``, each kept in its own file of the folder, in this order:
#: the population-based training table (:func:`jtricks.pbt.markdown`) and the tuned values of a tune-then-ablate run.
SECTION_FILES = ("pbt.md", "tuning.md")


def append_sections(out_dir: str | Path, names: Sequence[str] = SECTION_FILES) -> None:
    """Append the section files ``names`` present in ``out_dir`` to its ``summary.md`` (``"\n"`` + file)."""
    out_dir = Path(out_dir)
    parts = [(out_dir / n).read_text(encoding="utf-8") for n in names if (out_dir / n).is_file()]
    if parts:
        summary = out_dir / "summary.md"
        text = summary.read_text(encoding="utf-8") + "".join("\n" + p for p in parts)
        with summary.open("w", newline="", encoding="utf-8") as f:
            f.write(text)


def render(out_dir: str | Path, *, plot: bool = True) -> list[dict[str, Any]]:
    """Re-derive ``summary.csv``, ``summary.md`` and ``curves.png`` of an existing results folder.

    Reads ``metrics.csv``, ``members.csv`` (optional), ``arms.json`` (optional; a list of
    ``{"arm", "factors"}`` or ``{"arms": [...], "baseline": name}``) and ``manifest.json``
    (optional). The keys ``baseline``, ``metrics``, ``target``, ``confidence`` and ``adjust`` are taken
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
    manifest: dict[str, Any] = {}
    if (out_dir / "manifest.json").is_file():
        manifest = json.loads((out_dir / "manifest.json").read_text(encoding="utf-8"))
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
    )
    name = str(config.get("name") or manifest.get("experiment") or out_dir.resolve().name)
    description = str(config.get("description") or "")
    title = f"{name}: {description}".strip(": ")
    notes = skipped_steps_notes(rows)
    write_summary(out_dir, summary, title=title, notes=notes, directions=manifest.get("directions"), arms=arms_doc)
    append_sections(out_dir)
    if plot and rows:
        plot_curves(
            out_dir / "curves.png",
            rows,
            metrics=tuple(
                m for m in dict.fromkeys([*metrics, "train_loss", "val_acc"]) if m in {r["metric"] for r in rows}
            ),
            title=name,
            confidence=confidence,
            member_rows=members,
            arms=arms_doc,
        )
    return summary
