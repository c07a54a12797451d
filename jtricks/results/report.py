"""Results layer: tidy CSV files, per-arm summaries with confidence intervals, Markdown and plots.

An experiment folder (see ``docs/results-format.md``) holds

* ``metrics.csv`` -- one row per member, epoch and metric: ``arm,seed,epoch,metric,value``;
* ``members.csv`` -- one row per member: ``arm,seed,diverged_epoch,stopped_epoch,best_epoch``
  (``-1`` = never);
* ``arms.json`` -- ``[{"arm": name, "factors": {factor: value}}, ...]``, the first arm is the
  baseline unless the config names one;
* ``manifest.json`` -- versions, device, seeds and the full config (``config.baseline``,
  ``config.metrics``, ``config.target`` are read here);

and this module derives ``summary.csv``, ``summary.md`` and ``curves.png`` from them
(:func:`render`). Everything is deterministic: the same inputs give byte-identical CSV and Markdown.

Pure NumPy and the standard library; matplotlib is imported only inside :func:`plot_curves`
(through its object-oriented Agg canvas, so the global pyplot backend is never touched).
"""

from __future__ import annotations

import csv
import json
import lzma
import math
import operator
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from jtricks.results import stats as _stats

__all__ = [
    "METRICS_COLUMNS",
    "MEMBERS_COLUMNS",
    "SUMMARY_COLUMNS",
    "DEFAULT_METRICS",
    "TARGET_METRIC",
    "metric_direction",
    "write_metrics_csv",
    "read_metrics_csv",
    "result_file",
    "open_text",
    "append_sections",
    "write_members_csv",
    "read_members_csv",
    "summarize",
    "write_summary",
    "format_summary_table",
    "edge_optima",
    "plot_curves",
    "render",
]

METRICS_COLUMNS: tuple[str, ...] = ("arm", "seed", "epoch", "metric", "value")
MEMBERS_COLUMNS: tuple[str, ...] = ("arm", "seed", "diverged_epoch", "stopped_epoch", "best_epoch")
SUMMARY_COLUMNS: tuple[str, ...] = (
    "metric",
    "arm",
    "baseline",
    "n_members",
    "n",
    "diverged",
    "mean",
    "std",
    "ci_lo",
    "ci_hi",
    "confidence",
    "best_epoch",
    "best_mean",
    "diff",
    "diff_std",
    "diff_lo",
    "diff_hi",
    "diff_n",
    "p_value",
    "verdict",
    "seeds_needed",
    "power",
    "target",
    "epochs_to_target",
    "at_best_mean",
    "div_rate",
    "div_lo",
    "div_hi",
    "itt_n",
    "itt_w",
    "itt_p",
    "test",
    "p_adjusted",
    "adjust",
    "family",
    "adj_lo",
    "adj_hi",
)
DEFAULT_METRICS: tuple[str, ...] = ("test_acc", "val_acc", "train_loss")
TARGET_METRIC: str = "val_acc"  # the metric a bare float ``target`` refers to (time-to-target)

_NAN = float("nan")
_INT_COLUMNS = {"seed", "epoch", "diverged_epoch", "stopped_epoch", "best_epoch"}


# ----------------------------------------------------------------------------------------------
# small helpers
# ----------------------------------------------------------------------------------------------


def metric_direction(metric: str, directions: Mapping[str, Any] | None = None) -> int:
    """Which way is better for a metric: ``+1`` higher, ``-1`` lower, ``0`` unknown (e.g. ``grad_norm``).

    ``directions`` (``{metric: True/"higher" or False/"lower"}``, e.g. a manifest's ``"directions"``) decides
    first; otherwise the name: a metric of :mod:`jtricks.metrics` after its split prefix (``test_r2``: higher,
    ``val_mse``: lower), else ``*acc*`` / ``*accuracy`` higher and ``*loss*`` / ``*error*`` / ``*err*`` lower.
    """
    if directions and metric in directions:
        d = directions[metric]
        return 1 if d in (True, "higher", 1) else -1
    name = metric.lower()
    if name.endswith("acc") or name.endswith("accuracy"):
        return 1
    if name.endswith("loss") or name.endswith("error") or name.endswith("err"):
        return -1
    from jtricks import metrics as _metrics  # the named metrics' declared directions (imports jax: only here)

    try:
        return _metrics.direction(metric)
    except ValueError:
        return 0


def _as_int(column: str, value: Any) -> int:
    if isinstance(value, bool):
        raise TypeError(f"{column} must be an int, got bool {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        pass
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            pass
    raise TypeError(f"{column} must be an int, got {type(value).__name__} {value!r}")


def _as_float(column: str, value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{column} must be a float, got {type(value).__name__} {value!r}") from e


def _fmt_float(value: float) -> str:
    """Shortest repr that round-trips the float64 exactly (``nan``, ``inf``, ``-inf`` included)."""
    return repr(float(value))


def _cell(value: Any) -> str:
    """Deterministic CSV cell for a summary value."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return _fmt_float(value)
    return str(value)


def _normalize_rows(rows: Iterable[Any], columns: tuple[str, ...], what: str) -> list[tuple]:
    out = []
    for i, row in enumerate(rows):
        if isinstance(row, Mapping):
            missing = [c for c in columns if c not in row]
            if missing:
                raise ValueError(
                    f"{what} row {i} lacks column(s) {missing}; expected columns {list(columns)}"
                )
            vals = [row[c] for c in columns]
        elif isinstance(row, Sequence) and not isinstance(row, (str, bytes)):
            if len(row) != len(columns):
                raise ValueError(
                    f"{what} row {i} has {len(row)} fields; expected {len(columns)}: {list(columns)}"
                )
            vals = list(row)
        else:
            raise TypeError(
                f"{what} row {i} must be a mapping or a sequence of {list(columns)}, "
                f"got {type(row).__name__}"
            )
        typed: list[Any] = []
        for c, v in zip(columns, vals):
            if c in _INT_COLUMNS:
                typed.append(_as_int(c, v))
            elif c == "value":
                typed.append(_as_float(c, v))
            else:
                if not isinstance(v, str):
                    raise TypeError(f"{what} row {i}: {c} must be a str, got {type(v).__name__}")
                typed.append(v)
        out.append(tuple(typed))
    return out


def _write_csv(path: str | Path, columns: tuple[str, ...], rows: list[tuple]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(columns)
        for row in rows:
            w.writerow([_cell(v) for v in row])
    return path


def result_file(folder: str | Path, name: str) -> Path:
    """``folder/name``, or its compressed copy ``folder/name.xz`` when only that exists (published folders,
    :func:`jtricks.results_io.publish`); ``folder/name`` when neither does."""
    plain = Path(folder) / name
    packed = plain.with_name(plain.name + ".xz")
    return packed if not plain.exists() and packed.is_file() else plain


def open_text(path: str | Path) -> Any:
    """A text stream of ``path`` (decompressed when it ends in ``.xz``)."""
    path = Path(path)
    if path.suffix == ".xz":
        return lzma.open(path, "rt", newline="", encoding="utf-8")
    return path.open(newline="", encoding="utf-8")


def _read_csv(path: str | Path, columns: tuple[str, ...], what: str) -> list[dict[str, Any]]:
    path = Path(path)
    with open_text(path) as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or tuple(header) != columns:
            raise ValueError(
                f"{path} is not a {what} file: header {header} != expected {list(columns)}"
            )
        out = []
        for lineno, rec in enumerate(reader, start=2):
            if len(rec) != len(columns):
                raise ValueError(f"{path}:{lineno}: expected {len(columns)} fields, got {len(rec)}")
            row: dict[str, Any] = {}
            for c, v in zip(columns, rec):
                if c in _INT_COLUMNS:
                    row[c] = int(v)
                elif c == "value":
                    row[c] = float(v)
                else:
                    row[c] = v
            out.append(row)
    return out


# ----------------------------------------------------------------------------------------------
# tidy CSV files
# ----------------------------------------------------------------------------------------------


def write_metrics_csv(path: str | Path, rows: Iterable[Any]) -> Path:
    """Write the tidy per-member metrics table ``arm,seed,epoch,metric,value``.

    One row per member (arm, seed), epoch (1-based) and metric. Rows are written in the order
    given; floats are written as ``repr(float(v))`` (shortest exact round trip of the float64,
    so float32 values survive exactly; ``nan``/``inf`` as such) and lines end in ``\\n``, so the
    same rows always give byte-identical files.

    Args:
      path: file to write (parent folders are created).
      rows: mappings with keys ``arm, seed, epoch, metric, value`` or 5-sequences in that order.

    Returns:
      The path written.
    """
    return _write_csv(path, METRICS_COLUMNS, _normalize_rows(rows, METRICS_COLUMNS, "metrics"))


def read_metrics_csv(path: str | Path) -> list[dict[str, Any]]:
    """Read ``metrics.csv`` into dicts ``{arm: str, seed: int, epoch: int, metric: str, value: float}``.

    Inverse of :func:`write_metrics_csv` (exact for every float, ``nan``/``inf`` included).
    A file whose header is not exactly ``arm,seed,epoch,metric,value`` raises ``ValueError``.
    """
    return _read_csv(path, METRICS_COLUMNS, "metrics")


def write_members_csv(path: str | Path, rows: Iterable[Any]) -> Path:
    """Write the member table ``arm,seed,diverged_epoch,stopped_epoch,best_epoch`` (ints, ``-1`` = never).

    ``diverged_epoch`` is the first epoch with a non-finite loss, ``stopped_epoch`` the epoch early
    stopping halted the member, ``best_epoch`` the epoch whose weights were kept. Same
    deterministic formatting as :func:`write_metrics_csv`.
    """
    return _write_csv(path, MEMBERS_COLUMNS, _normalize_rows(rows, MEMBERS_COLUMNS, "members"))


def read_members_csv(path: str | Path) -> list[dict[str, Any]]:
    """Read ``members.csv`` into dicts with ``arm: str`` and int ``seed, diverged_epoch,
    stopped_epoch, best_epoch``. Inverse of :func:`write_members_csv`."""
    return _read_csv(path, MEMBERS_COLUMNS, "members")


# ----------------------------------------------------------------------------------------------
# summary
# ----------------------------------------------------------------------------------------------


def _arm_names(arms: Any, metric_rows: list[tuple]) -> list[str]:
    if arms is None:
        names: list[str] = []
        for row in metric_rows:
            if row[0] not in names:
                names.append(row[0])
        return names
    if isinstance(arms, Mapping) and "arms" in arms:
        arms = arms["arms"]
    names = []
    for i, a in enumerate(arms):
        if isinstance(a, str):
            name = a
        elif isinstance(a, Mapping) and isinstance(a.get("arm"), str):
            name = a["arm"]
        else:
            raise TypeError(
                f"arms[{i}] must be an arm name or a dict {{'arm': name, 'factors': {{...}}}}, got {a!r}"
            )
        if name in names:
            raise ValueError(f"arms lists arm {name!r} twice")
        names.append(name)
    # Arms present in the data but missing from the arm table come last, in order of appearance.
    for row in metric_rows:
        if row[0] not in names:
            names.append(row[0])
    return names


def _targets(target: Any) -> dict[str, float]:
    if target is None:
        return {}
    if isinstance(target, Mapping):
        return {str(k): _as_float(f"target[{k!r}]", v) for k, v in target.items()}
    if isinstance(target, bool):
        raise TypeError(f"target must be a float or a {{metric: float}} mapping, got {target!r}")
    return {TARGET_METRIC: _as_float("target", target)}


def _reaches(value: float, target: float, direction: int) -> bool:
    return value <= target if direction < 0 else value >= target


def summarize(
    metrics_rows: Iterable[Any],
    member_rows: Iterable[Any] | None,
    arms: Any,
    *,
    metrics: Sequence[str] = DEFAULT_METRICS,
    baseline: str | None = None,
    confidence: float = 0.95,
    target: float | Mapping[str, float] | None = None,
    power: float = 0.8,
    directions: Mapping[str, Any] | None = None,
    adjust: str = "holm",
) -> list[dict[str, Any]]:
    """Per arm and metric: the final value over seeds, its t CI, and the paired difference vs baseline.

    For every member (arm, seed) the *final value* of a metric is its value at the last epoch the
    member has a row for (early-stopped members already carry the restored-best value there).
    Members with ``diverged_epoch >= 0`` in ``member_rows``, or with a non-finite final value,
    are excluded from the statistics and counted in ``diverged``. Then

    * ``mean, std, ci_lo, ci_hi, n`` = :func:`jtricks.stats.mean_ci` of the final values
      (Student-t interval at ``confidence``; ``n`` finite members);
    * ``best_epoch`` / ``best_mean``: the epoch where the *mean curve* (per-epoch mean over the
      non-diverged members) is best in the metric's direction (argmax when unknown); ties go to the
      earliest epoch; ``-1`` if there is none;
    * ``at_best_mean``: the mean over the non-diverged members of the metric at each member's own
      ``best_epoch`` (``members.csv``: the epoch the validation metric picked), next to the final value;
      ``nan`` without member rows;
    * ``div_rate, div_lo, div_hi``: the arm's divergence rate ``diverged / n_members`` with its
      Clopper-Pearson interval (:func:`jtricks.stats.binomial_ci`);
    * ``diff, diff_std, diff_lo, diff_hi, diff_n, p_value`` = :func:`jtricks.stats.paired_diff_ci`
      of arm - baseline, paired by seed (seeds present in both arms; a diverged member drops its
      pair; ``nan`` interval and p-value when every difference is equal); ``nan`` on the baseline row;
    * ``itt_n, itt_w, itt_p``: the intention-to-treat comparison over all ``itt_n`` shared seeds, a
      diverged member counting as the worst outcome (:func:`jtricks.stats.itt_paired`: exact Wilcoxon
      signed-rank test; ``itt_w = W+ - W-``, positive when the arm is higher);
    * ``test``: the test behind the verdict: ``"t"`` (the paired t-test) when every shared seed gave a
      pair, ``"itt"`` when fewer pairs than shared seeds were compared (``diff_n < itt_n``: a member
      diverged), empty when there is none;
    * ``p_adjusted, adjust, family``: that test's p-value adjusted (:func:`jtricks.stats.adjust_pvalues`,
      ``adjust`` = ``"holm"`` / ``"bh"`` / ``"none"``) over the *family* of the metric's comparisons with
      the baseline that have a p-value (``family`` of them);
    * ``adj_lo, adj_hi``: the paired t interval at the family-adjusted level: ``1 - alpha/family``
      (Bonferroni, the simultaneous interval of ``holm``), ``1 - R alpha/family`` with ``R`` the number of
      BH discoveries (Benjamini-Yekutieli's false-coverage interval, ``bh``), ``1 - alpha`` (``none``);
    * ``verdict``: ``"better"`` / ``"worse"`` when ``p_adjusted < alpha = 1 - confidence``, by the sign of
      the difference (``diff`` for the t-test, ``itt_w`` for the ITT test) in the metric's direction
      (``"higher"`` / ``"lower"`` when the direction is unknown), ``"n.s."`` otherwise, ``"degenerate"``
      when every paired difference is equal, ``"n/a"`` without a p-value, ``"baseline"`` on the baseline
      row; with ``adjust="none"`` and all pairs complete this is "the t interval excludes 0";
    * ``seeds_needed`` = :func:`jtricks.stats.seeds_needed` ``(diff, diff_std, 1 - alpha', power)``, a
      planning estimate (exact noncentral t) at the family's Bonferroni level ``alpha' = alpha/family``
      (``alpha`` with ``adjust="none"``);
    * ``epochs_to_target``: first epoch whose mean-curve value reaches ``target`` (``>=`` when higher is
      better or unknown, ``<=`` when lower is), ``-1`` if never; ``None`` (and ``target`` ``None``) when no
      target applies to the metric.

    Args:
      metrics_rows: tidy rows ``arm, seed, epoch, metric, value`` (dicts or 5-sequences).
      member_rows: rows ``arm, seed, diverged_epoch, stopped_epoch, best_epoch``, or ``None``.
      arms: the arm table ``[{"arm": name, "factors": {...}}, ...]`` (or names, or
        ``{"arms": [...]}``, or ``None`` for order of appearance); sets the row order.
      metrics: metrics to summarize, in output order; metrics absent from the data are skipped.
      baseline: name of the baseline arm; default the first arm.
      confidence: coverage of every interval, in (0, 1).
      target: ``{metric: target}``; a bare float is a validation-accuracy target, i.e.
        ``{"val_acc": target}`` (:data:`TARGET_METRIC`); ``None`` for none.
      power: power used for ``seeds_needed``, in (0, 1).
      directions: ``{metric: True/"higher" (higher is better) or False/"lower"}`` for metrics whose
        direction is not known by name (:func:`metric_direction`), e.g. a custom metric.
      adjust: the multiple-comparison adjustment within each metric: ``"holm"``, ``"bh"`` or ``"none"``.

    Returns:
      A list of dicts with keys :data:`SUMMARY_COLUMNS`, ordered by metric then arm.
    """
    confidence = _stats._check_prob("confidence", confidence)
    power = _stats._check_prob("power", power)
    if adjust not in _stats.ADJUST_METHODS:
        raise ValueError(f"adjust must be one of {list(_stats.ADJUST_METHODS)}, got {adjust!r}")
    metrics = (metrics,) if isinstance(metrics, str) else metrics
    mrows = _normalize_rows(metrics_rows, METRICS_COLUMNS, "metrics")
    brows = [] if member_rows is None else _normalize_rows(member_rows, MEMBERS_COLUMNS, "members")
    names = _arm_names(arms, mrows)
    if not names:
        raise ValueError("no arms: both `arms` and `metrics_rows` are empty")
    if baseline is None:
        baseline = names[0]
    elif baseline not in names:
        raise ValueError(f"baseline {baseline!r} is not an arm; arms are {names}")
    targets = _targets(target)
    diverged = {(r[0], r[1]) for r in brows if r[2] >= 0}
    best_of = {(r[0], r[1]): r[4] for r in brows}
    data = _curves(mrows)
    out: list[dict[str, Any]] = []
    for metric in metrics:
        if metric not in data:
            continue
        direction = metric_direction(metric, directions)
        finals = {arm: _finals(data[metric].get(arm, {}), arm, diverged) for arm in names}
        rows = []
        for arm in names:
            row = _arm_row(data[metric].get(arm, {}), finals, arm, baseline, direction, confidence,
                           targets.get(metric), best_of)
            rows.append({"metric": metric, "arm": arm, "baseline": baseline, **row})
        out.extend(_family(rows, direction, confidence, power, adjust))
    return out


def _curves(mrows: list[tuple]) -> dict[str, dict[str, dict[int, dict[int, float]]]]:
    """``data[metric][arm][seed] = {epoch: value}`` (a duplicate row is an error)."""
    data: dict[str, dict[str, dict[int, dict[int, float]]]] = {}
    for arm, seed, epoch, metric, value in mrows:
        per_epoch = data.setdefault(metric, {}).setdefault(arm, {}).setdefault(seed, {})
        if epoch in per_epoch:
            raise ValueError(f"duplicate metrics row for arm={arm!r} seed={seed} epoch={epoch} metric={metric!r}")
        per_epoch[epoch] = value
    return data


def _finals(members: Mapping[int, Mapping[int, float]], arm: str, diverged: set) -> dict[int, float]:
    """Seed → final value (``nan`` when the member diverged or its final value is not finite)."""
    out: dict[int, float] = {}
    for seed in sorted(members):
        curve = members[seed]
        v = curve[max(curve)]
        out[seed] = _NAN if (arm, seed) in diverged or not math.isfinite(v) else v
    return out


def _mean_curve(members: Mapping[int, Mapping[int, float]], ok: Sequence[int]) -> tuple[list[int], list[float]]:
    """The epochs and the per-epoch mean over the members ``ok`` (finite values only)."""
    epochs = sorted({e for s in ok for e in members[s]})
    curve = []
    for e in epochs:
        vals = [v for v in (members[s][e] for s in ok if e in members[s]) if math.isfinite(v)]
        curve.append(float(np.mean(vals)) if vals else _NAN)
    return epochs, curve


def _best(epochs: Sequence[int], curve: Sequence[float], direction: int) -> tuple[int, float]:
    best_epoch, best_mean = -1, _NAN
    for e, m in zip(epochs, curve):
        if math.isfinite(m) and (best_epoch < 0 or (m < best_mean if direction < 0 else m > best_mean)):
            best_epoch, best_mean = e, m
    return best_epoch, best_mean


def _epochs_to(epochs: Sequence[int], curve: Sequence[float], target: float | None, direction: int) -> int | None:
    if target is None:
        return None
    return next((e for e, m in zip(epochs, curve) if math.isfinite(m) and _reaches(m, target, direction)), -1)


def _at_best(members: Mapping[int, Mapping[int, float]], arm: str, ok: Sequence[int], best_of: Mapping) -> float:
    """Mean over the members ``ok`` of their value at their own best epoch (``nan`` when none is known)."""
    vals = [members[s].get(best_of.get((arm, s), -1), _NAN) for s in ok]
    vals = [v for v in vals if math.isfinite(v)]
    return float(np.mean(vals)) if vals else _NAN


def _arm_row(members: Mapping[int, Mapping[int, float]], finals: Mapping[str, Mapping[int, float]], arm: str,
             baseline: str, direction: int, confidence: float, target: float | None,
             best_of: Mapping[tuple[str, int], int]) -> dict[str, Any]:
    """One summary row's statistics before the family adjustment: the final values' CI, the divergence
    rate, the mean curve's best epoch, the paired t and ITT comparisons with the baseline."""
    ok = [s for s in sorted(members) if math.isfinite(finals[arm][s])]
    ci = _stats.mean_ci([finals[arm][s] for s in ok], confidence)
    epochs, curve = _mean_curve(members, ok)
    best_epoch, best_mean = _best(epochs, curve, direction)
    rate, rate_lo, rate_hi = _stats.binomial_ci(len(members) - len(ok), len(members), confidence)
    d = _stats.DiffCI(_NAN, _NAN, _NAN, _NAN, _NAN, 0, 0, 0, _NAN, _NAN)
    itt = _stats.RankTest(0, 0, _NAN, _NAN, _NAN)
    if arm != baseline:
        shared = sorted(set(finals[arm]) & set(finals[baseline]))
        xa, xb = [finals[arm][s] for s in shared], [finals[baseline][s] for s in shared]
        d = _stats.paired_diff_ci(xa, xb, confidence)
        if shared:
            itt = _stats.itt_paired(xa, xb, direction >= 0)
            if direction == 0 and d.n < len(shared):  # no "worst" outcome without a direction
                itt = itt._replace(p=_NAN)
    return {
        "n_members": len(members), "n": ci.n, "diverged": len(members) - len(ok), "mean": ci.mean, "std": ci.std,
        "ci_lo": ci.lo, "ci_hi": ci.hi, "confidence": confidence, "best_epoch": best_epoch, "best_mean": best_mean,
        "diff": d.diff, "diff_std": d.std, "diff_lo": d.lo, "diff_hi": d.hi, "diff_n": d.n, "p_value": d.p,
        "verdict": "baseline" if arm == baseline else "n/a", "seeds_needed": _NAN, "target": target,
        "epochs_to_target": _epochs_to(epochs, curve, target, direction),
        "at_best_mean": _at_best(members, arm, ok, best_of), "div_rate": rate, "div_lo": rate_lo, "div_hi": rate_hi,
        "itt_n": itt.n, "itt_w": itt.w_plus - itt.w_minus, "itt_p": itt.p, "test": "", "p_adjusted": _NAN,
        "_se": d.se, "_df": d.df,
    }


def _family(rows: list[dict[str, Any]], direction: int, confidence: float, power: float,
            adjust: str) -> list[dict[str, Any]]:
    """One metric's comparisons with the baseline as a family: the test behind each verdict (paired t, or
    the ITT rank test where pairs were lost), the adjusted p-values, the adjusted intervals, the verdicts and
    the planning estimates."""
    alpha = 1.0 - confidence
    for r in rows:
        if r["verdict"] == "baseline":
            continue
        r["test"] = "itt" if r["diff_n"] < r["itt_n"] else ("t" if math.isfinite(r["p_value"]) else "")
    comp = [r for r in rows if r["test"]]
    primary = [r["p_value"] if r["test"] == "t" else r["itt_p"] for r in comp]
    adjusted = _stats.adjust_pvalues(primary, adjust) if comp else []
    family = int(np.sum(np.isfinite(primary))) if comp else 0
    rejected = int(np.sum(np.asarray(adjusted) < alpha)) if comp else 0
    level = {"holm": alpha / max(family, 1), "bh": alpha * max(rejected, 1) / max(family, 1), "none": alpha}[adjust]
    plan_level = alpha if adjust == "none" else alpha / max(family, 1)
    for r, p_adj in zip(comp, adjusted):
        r["p_adjusted"] = float(p_adj)
    for r in rows:
        se, df = r.pop("_se"), r.pop("_df")
        r.update(power=power, adjust=adjust, family=family, adj_lo=_NAN, adj_hi=_NAN)
        if r["verdict"] == "baseline":
            continue
        if r["test"] == "t" and se > 0:
            half = _stats.t_ppf(1.0 - 0.5 * level, df) * se
            r["adj_lo"], r["adj_hi"] = r["diff"] - half, r["diff"] + half
        if r["diff_n"] >= 2 and math.isfinite(r["diff_std"]):
            r["seeds_needed"] = _stats.seeds_needed(r["diff"], r["diff_std"], 1.0 - plan_level, power)
        r["verdict"] = _verdict(r, direction, alpha)
    return rows


def _verdict(r: Mapping[str, Any], direction: int, alpha: float) -> str:
    """``better`` / ``worse`` (``higher`` / ``lower``) when the adjusted p-value is below ``alpha``."""
    if r["test"] == "" and r["diff_n"] >= 2 and r["diff_std"] == 0:
        return "degenerate"
    p = r["p_adjusted"]
    if not math.isfinite(p):
        return "n/a"
    if p >= alpha:
        return "n.s."
    effect = r["diff"] if r["test"] == "t" else r["itt_w"]
    side = 1 if effect > 0 else -1
    if direction == 0:
        return "higher" if side > 0 else "lower"
    return "better" if side * direction > 0 else "worse"


# ----------------------------------------------------------------------------------------------
# formatting
# ----------------------------------------------------------------------------------------------


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


def _pct(confidence: float) -> str:
    return f"{confidence * 100:g}%"


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


def _table_cells(rows: list[dict[str, Any]], metric: str, directions: Mapping[str, Any] | None = None
                 ) -> tuple[list[str], list[list[str]]]:
    rows = [r for r in rows if r["metric"] == metric]
    if not rows:
        raise ValueError(f"no summary rows for metric {metric!r}")
    conf = _pct(rows[0]["confidence"])
    dec = _decimals(metric, rows)
    at_best = metric.startswith("test_") and any(math.isfinite(r["at_best_mean"]) for r in rows)
    header = ["arm", "mean ± std", f"{conf} CI", "n", "diverged [CI]", "best epoch"]
    header += ["at val-best epoch"] if at_best else []
    header += [f"Δ vs baseline [{conf} CI]", "p", f"p ({_ADJUST_NAMES[rows[0]['adjust']]})", "verdict",
               "seeds (planning)"]
    has_target = any(r["target"] is not None for r in rows)
    if has_target:
        op = "≤" if metric_direction(metric, directions) < 0 else "≥"
        header.append(f"epochs to {op} {rows[0]['target']:g}" if rows[0]["target"] is not None
                      else "epochs to target")
    body = []
    for r in rows:
        mean = _num(r["mean"], dec)
        if math.isfinite(r["std"]):
            mean += f" ± {_num(r['std'], dec)}"
        ci = (f"[{_num(r['ci_lo'], dec)}, {_num(r['ci_hi'], dec)}]"
              if math.isfinite(r["ci_lo"]) else "n/a")
        if r["verdict"] == "baseline":
            delta, p, p_adj, verdict, need = "(baseline)", "", "", "baseline", ""
        else:
            delta = _delta_cell(r, dec)
            p = _p(r["itt_p"] if r["test"] == "itt" else r["p_value"])
            p_adj = _p(r["p_adjusted"])
            verdict = r["verdict"] + (" (ITT)" if r["test"] == "itt" else "")
            s = r["seeds_needed"]
            need = ("∞" if s == math.inf else "n/a") if not math.isfinite(s) else str(int(s))
        cells = [r["arm"], mean, ci, str(r["n"]), _diverged_cell(r),
                 str(r["best_epoch"]) if r["best_epoch"] >= 0 else "n/a"]
        cells += [_num(r["at_best_mean"], dec)] if at_best else []
        cells += [delta, p, p_adj, verdict, need]
        if has_target:
            e = r["epochs_to_target"]
            cells.append("" if e is None else ("never" if e < 0 else str(e)))
        body.append(cells)
    return header, body


def format_summary_table(summary_rows: list[dict[str, Any]], metric: str, directions: Mapping[str, Any] | None = None) -> str:
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
    conf, power = _pct(r0["confidence"]), _pct(r0["power"])
    alpha = f"{(1.0 - r0['confidence']) * 100:g}%"
    adj = {"holm": "Holm-adjusted (familywise error rate)", "bh": "Benjamini-Hochberg-adjusted (false discovery rate)",
           "none": "not adjusted for multiple comparisons"}[r0["adjust"]]
    return (
        f"Baseline: `{r0['baseline']}`. Each member contributes its value at the last epoch it "
        f"reached. mean ± std over the n finite, non-diverged seeds, with a {conf} Student-t "
        f"confidence interval; \"diverged\" counts the excluded members, with the Clopper-Pearson {conf} "
        f"interval of the divergence rate. Δ is the difference arm − baseline paired by seed (same "
        f"initial weights and data order), with its {conf} t interval and paired t-test p-value. Where a "
        f"member diverged, fewer pairs than seeds are compared (\"k/n pairs\"), and the verdict comes from "
        f"the intention-to-treat test instead (\"(ITT)\": every seed kept, a diverged member counted as the "
        f"worst outcome, exact Wilcoxon signed-rank test; its p-value is shown). The p-values of each "
        f"table's comparisons with the baseline form one family and are {adj}; the verdict is \"better\" / "
        f"\"worse\" when the adjusted p-value is below {alpha} (higher accuracy / lower loss is better), "
        f"\"degenerate\" when every paired difference is equal (no interval). \"seeds (planning)\" is a "
        f"planning estimate for a next run: the exact (noncentral t) number of seeds at which a true Δ equal to "
        f"the observed one, with the observed spread, would be found with {power} power at the family's "
        f"Bonferroni level. \"best epoch\" is the best epoch of the mean curve; \"at val-best epoch\" is "
        f"the mean of each member's value at the epoch its validation metric picked."
    )


def _family_line(rows: Sequence[Mapping[str, Any]]) -> str:
    r0 = rows[0]
    k = r0["family"]
    what = {"holm": "Holm adjustment", "bh": "Benjamini-Hochberg adjustment", "none": "no adjustment"}[r0["adjust"]]
    return (f"Family: {k} comparison{'s' if k != 1 else ''} with `{r0['baseline']}` "
            f"({what} over the comparisons of this metric).")


def edge_optima(summary_rows: Sequence[Mapping[str, Any]], arms: Any, metric: str,
                directions: Mapping[str, Any] | None = None, factor: str = "learning_rate") -> list[str]:
    """Sentences flagging a best ``factor`` value (by default the learning rate) at the edge of the grid.

    Arms that differ only in a numeric ``factor`` (``arms``: ``[{"arm", "factors"}]``) form a sweep; in
    each sweep of at least two values the best arm by the mean final ``metric`` (in its direction), among
    the arms without diverged members (all when every arm has some), is found; when it is the smallest
    or the largest value swept, the optimum may lie outside the grid, and one sentence says so.
    """
    direction = metric_direction(metric, directions)
    if direction == 0 or arms is None:
        return []
    arms = arms["arms"] if isinstance(arms, Mapping) and "arms" in arms else arms
    rows = {r["arm"]: r for r in summary_rows if r["metric"] == metric and math.isfinite(r["mean"])}
    sweeps: dict[tuple, list[tuple[float, Mapping[str, Any]]]] = {}
    for a in arms:
        f = a.get("factors", {}) if isinstance(a, Mapping) else {}
        v = f.get(factor)
        if a.get("arm") in rows and isinstance(v, (int, float)) and not isinstance(v, bool):
            rest = tuple(sorted((k, repr(x)) for k, x in f.items() if k != factor))
            sweeps.setdefault(rest, []).append((float(v), rows[a["arm"]]))
    notes = []
    for rest, members in sweeps.items():
        values = sorted({v for v, _ in members})
        if len(values) < 2:
            continue
        fewest = min(r["diverged"] for _, r in members)
        v, best = max(((v, r) for v, r in members if r["diverged"] == fewest), key=lambda t: direction * t[1]["mean"])
        if v in (values[0], values[-1]):
            where = "smallest" if v == values[0] else "largest"
            group = ", ".join(f"{k}={x}" for k, x in rest) or "the sweep"
            notes.append(f"Edge optimum: for {group}, the best {factor} by mean `{metric}` is {v:g} (`{best['arm']}`), "
                         f"the {where} value swept; the optimum may lie outside the grid.")
    return notes


def _markdown(summary_rows: list[dict[str, Any]], title: str, notes: str | Sequence[str] | None,
              directions: Mapping[str, Any] | None = None, arms: Any = None) -> str:
    parts = [f"# {title}", ""]
    if notes:
        if isinstance(notes, str):
            parts += [notes.strip(), ""]
        else:
            parts += [f"- {n}" for n in notes] + [""]
    if summary_rows:
        r0 = summary_rows[0]
        conf, power = _pct(r0["confidence"]), _pct(r0["power"])
        parts += [_legend(r0), ""]
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
    csv_path = _write_csv(
        out_dir / "summary.csv",
        SUMMARY_COLUMNS,
        [tuple(r[c] for c in SUMMARY_COLUMNS) for r in summary_rows],
    )
    md_path = out_dir / "summary.md"
    with md_path.open("w", newline="", encoding="utf-8") as f:
        f.write(_markdown(summary_rows, title, notes, directions, arms))
    return csv_path, md_path


# ----------------------------------------------------------------------------------------------
# plot
# ----------------------------------------------------------------------------------------------


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
    confidence = _stats._check_prob("confidence", confidence)
    mrows = _normalize_rows(metrics_rows, METRICS_COLUMNS, "metrics")
    brows = [] if member_rows is None else _normalize_rows(member_rows, MEMBERS_COLUMNS, "members")
    diverged = {(r[0], r[1]) for r in brows if r[2] >= 0}
    names = _arm_names(arms, mrows)
    metrics = _panels(mrows, metrics)
    # data[metric][arm][epoch] = list of values over non-diverged members
    data: dict[str, dict[str, dict[int, list[float]]]] = {}
    for arm, seed, epoch, metric, value in mrows:
        if (arm, seed) not in diverged:
            data.setdefault(metric, {}).setdefault(arm, {}).setdefault(epoch, []).append(value)
    n_div = {a: len({s for (a2, s) in diverged if a2 == a}) for a in names}

    from matplotlib import colormaps  # noqa: PLC0415 - lazy
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415
    from matplotlib.figure import Figure  # noqa: PLC0415

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
    axes[0][0].legend(fontsize=7, title=f"mean ± {_pct(confidence)} CI", title_fontsize=7)
    if title:
        fig.suptitle(title, fontsize=11)
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


def _panel(ax: Any, metric: str, per_arm: Mapping[str, Mapping[int, list[float]]], names: Sequence[str],
           colors: Mapping[str, Any], n_div: Mapping[str, int], confidence: float) -> None:
    """One metric's panel: per-arm mean curves with CI bands, or a dot per arm for a single-epoch metric."""
    single = all(len(per_arm.get(a, {})) <= 1 for a in names)  # recorded once per member: a dot plot over arms
    for ai, arm in enumerate(names):
        per_epoch = per_arm.get(arm)
        label = arm if not n_div.get(arm) else f"{arm} ({n_div[arm]} diverged)"
        if not per_epoch:
            ax.plot([], [], color=colors[arm], label=label)
            continue
        epochs = sorted(per_epoch)
        cis = [_stats.mean_ci(per_epoch[e], confidence) for e in epochs]
        x = np.asarray(epochs, dtype=float)
        mean, lo, hi = (np.asarray([getattr(c, f) for c in cis]) for f in ("mean", "lo", "hi"))
        if single:
            err = np.asarray([[mean[0] - lo[0]], [hi[0] - mean[0]]])
            ax.errorbar([ai], mean, yerr=np.where(np.isfinite(err), err, 0.0), fmt="o", color=colors[arm], capsize=3,
                        label=label)
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


# ----------------------------------------------------------------------------------------------
# render a results folder
# ----------------------------------------------------------------------------------------------


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
    write_summary(out_dir, summary, title=title, directions=manifest.get("directions"), arms=arms_doc)
    append_sections(out_dir)
    if plot and rows:
        plot_curves(
            out_dir / "curves.png",
            rows,
            metrics=tuple(m for m in dict.fromkeys([*metrics, "train_loss", "val_acc"]) if m in {r["metric"] for r in rows}),
            title=name,
            confidence=confidence,
            member_rows=members,
            arms=arms_doc,
        )
    return summary
