"""Summaries over seeds: per arm and metric the final value's mean and confidence interval, the paired difference with
the baseline and its test, adjusted within each metric's family of comparisons, the verdict, time to target, the
best epoch, divergence counts and the seeds a next run would need (:func:`summarize`); the learning-rate optima at
the edge of their grids (:func:`edge_optima`). Which way a metric is better: the run's record, else the metric's
declaration (:func:`metric_direction`).

The columns of a summary row (:data:`jtricks.results.tables.SUMMARY_COLUMNS`), per arm and metric:

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
  (``"higher"`` / ``"lower"`` when the direction is unknown); otherwise ``"equivalent"`` when
  ``eq_p_adjusted < alpha``; otherwise ``"not resolved"`` with a margin, ``"n.s."`` without one;
  ``"degenerate"`` when every paired difference is equal, ``"n/a"`` without a p-value, ``"baseline"`` on
  the baseline row; with ``adjust="none"``, all pairs complete and no margin this is "the t interval
  excludes 0";
* ``seeds_needed`` = :func:`jtricks.stats.seeds_needed` ``(diff, diff_std, 1 - alpha', power)``, a
  planning estimate (exact noncentral t) at the family's Bonferroni level ``alpha' = alpha/family``
  (``alpha`` with ``adjust="none"``);
* ``epochs_to_target``: first epoch whose mean-curve value reaches ``target`` (``>=`` when higher is
  better or unknown, ``<=`` when lower is), ``-1`` if never; ``None`` (and ``target`` ``None``) when no
  target applies to the metric;
* ``iqm, iqm_lo, iqm_hi`` = :func:`jtricks.results.robust.iqm_ci` of the ``n`` final values (interquartile
  mean, percentile bootstrap interval);
* ``poi, poi_lo, poi_hi`` = :func:`jtricks.results.robust.poi_ci` over the shared seeds, paired: the share of
  seeds on which the arm is better than the baseline in the metric's direction (higher when unknown), ties
  1/2, a diverged member the worst outcome (left out with its pair when the direction is unknown);
* ``div_arm_only, div_base_only, div_p`` = :func:`jtricks.stats.divergence_test` of the shared seeds' divergence
  flags (exact McNemar); ``div_p_adjusted, div_family``: adjusted within the family of the metric's
  comparisons with a discordant seed; ``div_verdict``: ``"more"`` / ``"fewer"`` when ``div_p_adjusted < alpha``,
  ``"n.s."`` otherwise, ``"n/a"`` without a discordant seed;
* ``eq_margin, eq_lo, eq_hi, eq_p`` = :func:`jtricks.stats.tost_paired` with the metric's margin
  (``equivalence_margin``; ``None`` and ``nan`` without one, ``nan`` where a member diverged);
  ``eq_p_adjusted, eq_family``: adjusted within the family of the comparisons with a TOST p-value.
* ``ci_clipped``: which end of ``[ci_lo, ci_hi]`` lies outside the metric's bounds (:func:`metric_bounds`:
  ``[0, 1]`` for accuracies): ``"lower"``, ``"upper"``, ``"both"`` or ``""``. ``ci_lo``/``ci_hi`` keep the
  t interval as computed; tables and plots show it clipped to the bounds (:func:`clip_ci`) and mark it.

The difference, equivalence and divergence families are adjusted each on its own (``docs/results-format.md``:
the verdict rule and what it guarantees).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from jtricks.results import robust as jrobust
from jtricks.results import stats as jstats
from jtricks.results.tables import MEMBERS_COLUMNS, METRICS_COLUMNS, as_float, normalize_rows

__all__ = [
    "DEFAULT_METRICS",
    "TARGET_METRIC",
    "metric_direction",
    "arm_names",
    "confidence_label",
    "summarize",
    "equivalence_margins",
    "final_values",
    "edge_optima",
]


DEFAULT_METRICS: tuple[str, ...] = ("test_acc", "val_acc", "train_loss")

TARGET_METRIC: str = "val_acc"  # the metric a bare float ``target`` refers to (time-to-target)

_NAN = float("nan")


def metric_direction(metric: str, directions: Mapping[str, Any] | None = None) -> int:
    """Which way is better for a metric: ``+1`` higher, ``-1`` lower, ``0`` unknown (``grad_norm``, ``lr``, a custom
    metric nobody declared).

    The run's record decides (``directions``: ``{metric: True/"higher" or False/"lower"}``, a manifest's
    ``"directions"``, written from the metrics' declarations); a metric it does not name is looked up in
    :func:`jtricks.metrics.direction` (the declarations of the library's metrics, after the split prefix).
    """
    if directions and metric in directions:
        d = directions[metric]
        return 1 if d in (True, "higher", 1) else -1
    from jtricks import metrics as jmetrics  # the declarations (jtricks.metrics imports jax: only when needed)

    try:
        return jmetrics.direction(metric)
    except ValueError:
        return 0


def metric_bounds(metric: str) -> tuple[float, float] | None:
    """The range a metric's values cannot leave: ``(0, 1)`` for an accuracy (a name ending in ``acc`` or
    ``accuracy``, after any split prefix: ``val_acc``, ``test_top5_acc``), else ``None`` (unbounded)."""
    return (0.0, 1.0) if metric.lower().endswith(("acc", "accuracy")) else None


def ci_clipped(metric: str, lo: float, hi: float) -> str:
    """Which end of the interval ``[lo, hi]`` of ``metric`` lies outside :func:`metric_bounds`:
    ``"lower"``, ``"upper"``, ``"both"`` or ``""`` (none, no bounds, or no interval)."""
    bounds = metric_bounds(metric)
    if bounds is None:
        return ""
    low = math.isfinite(lo) and lo < bounds[0]
    high = math.isfinite(hi) and hi > bounds[1]
    return "both" if low and high else ("lower" if low else ("upper" if high else ""))


def clip_ci(metric: str, lo: float, hi: float) -> tuple[float, float]:
    """``[lo, hi]`` clipped to :func:`metric_bounds` (``max(lo, 0)``, ``min(hi, 1)`` for an accuracy), for display;
    unchanged for an unbounded metric."""
    bounds = metric_bounds(metric)
    if bounds is None:
        return lo, hi
    return (max(lo, bounds[0]) if math.isfinite(lo) else lo, min(hi, bounds[1]) if math.isfinite(hi) else hi)


def arm_names(arms: Any, metric_rows: list[tuple]) -> list[str]:
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
            raise TypeError(f"arms[{i}] must be an arm name or a dict {{'arm': name, 'factors': {{...}}}}, got {a!r}")
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
        return {str(k): as_float(f"target[{k!r}]", v) for k, v in target.items()}
    if isinstance(target, bool):
        raise TypeError(f"target must be a float or a {{metric: float}} mapping, got {target!r}")
    return {TARGET_METRIC: as_float("target", target)}


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
    equivalence_margin: float | Mapping[str, float] | None = None,
) -> list[dict[str, Any]]:
    """Per arm and metric: the final value over seeds, its t CI, and the paired difference vs baseline
    (every column: the module docstring).

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
      equivalence_margin: the smallest difference of interest, for the equivalence tests: a number (every metric),
        ``{metric: number}`` (the metrics named) or ``None`` (no equivalence test) (:func:`equivalence_margins`).

    Returns:
      A list of dicts with keys :data:`SUMMARY_COLUMNS`, ordered by metric then arm.
    """
    confidence = jstats.check_probability("confidence", confidence)
    power = jstats.check_probability("power", power)
    if adjust not in jstats.ADJUST_METHODS:
        raise ValueError(f"adjust must be one of {list(jstats.ADJUST_METHODS)}, got {adjust!r}")
    metrics = (metrics,) if isinstance(metrics, str) else metrics
    mrows = normalize_rows(metrics_rows, METRICS_COLUMNS, "metrics")
    brows = [] if member_rows is None else normalize_rows(member_rows, MEMBERS_COLUMNS, "members")
    names = arm_names(arms, mrows)
    if not names:
        raise ValueError("no arms: both `arms` and `metrics_rows` are empty")
    if baseline is None:
        baseline = names[0]
    elif baseline not in names:
        raise ValueError(f"baseline {baseline!r} is not an arm; arms are {names}")
    targets = _targets(target)
    margins = equivalence_margins(equivalence_margin)
    if margins and confidence <= 0.5:
        raise ValueError(
            f"confidence must be > 0.5 with an equivalence_margin (TOST's interval is 1 - 2 alpha), got {confidence!r}"
        )
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
            row = _arm_row(
                data[metric].get(arm, {}),
                finals,
                arm,
                baseline,
                direction,
                confidence,
                targets.get(metric),
                best_of,
                margins.get(metric, margins.get("*")),
            )
            clipped = ci_clipped(metric, row["ci_lo"], row["ci_hi"])
            rows.append({"metric": metric, "arm": arm, "baseline": baseline, **row, "ci_clipped": clipped})
        out.extend(_family(rows, direction, confidence, power, adjust))
    return out


def equivalence_margins(
    margin: float | Mapping[str, float] | None, measured: Iterable[str] | None = None
) -> dict[str, float]:
    """``{metric: margin}`` of an ``equivalence_margin`` setting (``"*"``: every metric): ``None`` gives ``{}``, a
    number ``{"*": number}``, a mapping itself; every margin a finite number ``> 0``. With ``measured``, a mapping
    may name only those metrics. ``TypeError`` / ``ValueError`` naming ``equivalence_margin`` otherwise."""
    if margin is None:
        return {}
    allowed = "None, a finite number > 0 (every metric) or {metric: number > 0}"
    if isinstance(margin, Mapping):
        if not margin:
            raise ValueError(f"equivalence_margin must not be an empty mapping; give {allowed}")
        items = dict(margin)
    else:
        items = {"*": margin}
    known = None if measured is None else sorted(measured)
    for k, v in items.items():
        where = "equivalence_margin" if k == "*" else f"equivalence_margin[{k!r}]"
        if not isinstance(k, str):
            raise TypeError(f"equivalence_margin keys must be metric names, got {k!r}")
        if known is not None and k != "*" and k not in known:
            raise ValueError(f"equivalence_margin names metric {k!r}, measured by no arm; the arms measure {known}")
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
            raise TypeError(f"{where} must be {allowed}, got {type(v).__name__} {v!r}")
        if not (math.isfinite(float(v)) and float(v) > 0):
            raise ValueError(f"{where} must be a finite number > 0, got {v!r}")
    return {k: float(v) for k, v in items.items()}


def final_values(
    metrics_rows: Iterable[Any], member_rows: Iterable[Any] | None, metric: str
) -> dict[str, dict[int, float]]:
    """Arm -> seed -> the member's final value of ``metric``, ``nan`` for a diverged member: the values behind the
    summary's statistics (module docstring). Arms without rows of ``metric`` are absent."""
    mrows = normalize_rows(metrics_rows, METRICS_COLUMNS, "metrics")
    brows = [] if member_rows is None else normalize_rows(member_rows, MEMBERS_COLUMNS, "members")
    diverged = {(r[0], r[1]) for r in brows if r[2] >= 0}
    per_arm = _curves([r for r in mrows if r[3] == metric]).get(metric, {})
    return {arm: _finals(members, arm, diverged) for arm, members in per_arm.items()}


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


def _arm_row(
    members: Mapping[int, Mapping[int, float]],
    finals: Mapping[str, Mapping[int, float]],
    arm: str,
    baseline: str,
    direction: int,
    confidence: float,
    target: float | None,
    best_of: Mapping[tuple[str, int], int],
    margin: float | None,
) -> dict[str, Any]:
    """One summary row's statistics before the family adjustments: the final values' CI and IQM, the divergence
    rate, the mean curve's best epoch, and the comparisons with the baseline (:func:`_comparison`)."""
    ok = [s for s in sorted(members) if math.isfinite(finals[arm][s])]
    ci = jstats.mean_ci([finals[arm][s] for s in ok], confidence)
    iqm = jrobust.iqm_ci([finals[arm][s] for s in ok], confidence)
    epochs, curve = _mean_curve(members, ok)
    best_epoch, best_mean = _best(epochs, curve, direction)
    rate, rate_lo, rate_hi = jstats.binomial_ci(len(members) - len(ok), len(members), confidence)
    return {
        "n_members": len(members),
        "n": ci.n,
        "diverged": len(members) - len(ok),
        "mean": ci.mean,
        "std": ci.std,
        "ci_lo": ci.lo,
        "ci_hi": ci.hi,
        "confidence": confidence,
        "best_epoch": best_epoch,
        "best_mean": best_mean,
        "verdict": "baseline" if arm == baseline else "n/a",
        "seeds_needed": _NAN,
        "target": target,
        "epochs_to_target": _epochs_to(epochs, curve, target, direction),
        "at_best_mean": _at_best(members, arm, ok, best_of),
        "div_rate": rate,
        "div_lo": rate_lo,
        "div_hi": rate_hi,
        "test": "",
        "p_adjusted": _NAN,
        "iqm": iqm.value,
        "iqm_lo": iqm.lo,
        "iqm_hi": iqm.hi,
        "div_verdict": "baseline" if arm == baseline else "n/a",
        "div_p_adjusted": _NAN,
        "eq_margin": margin,
        "eq_p_adjusted": _NAN,
        **_comparison(finals, arm, baseline, direction, confidence, margin),
    }


def _comparison(
    finals: Mapping[str, Mapping[int, float]],
    arm: str,
    baseline: str,
    direction: int,
    confidence: float,
    margin: float | None,
) -> dict[str, Any]:
    """The comparisons of ``arm`` with the baseline over their shared seeds (``nan`` on the baseline row): paired t,
    ITT rank test, divergence test, probability of improvement (a diverged member the worst outcome) and TOST
    (only when every shared seed gave a pair)."""
    d = jstats.DiffCI(_NAN, _NAN, _NAN, _NAN, _NAN, 0, 0, 0, _NAN, _NAN)
    itt = jstats.RankTest(0, 0, _NAN, _NAN, _NAN)
    div = jstats.DivergenceTest(0, 0, 0, _NAN)
    poi = jrobust.Boot(_NAN, _NAN, _NAN, 0)
    eq = jstats.Equivalence(_NAN, _NAN, _NAN, _NAN, _NAN, _NAN, 0)
    if arm != baseline:
        shared = sorted(set(finals[arm]) & set(finals[baseline]))
        xa, xb = np.array([finals[arm][s] for s in shared]), np.array([finals[baseline][s] for s in shared])
        d = jstats.paired_diff_ci(xa, xb, confidence)
        if shared:
            itt = jstats.itt_paired(xa, xb, direction >= 0)
            if direction == 0 and d.n < len(shared):  # no "worst" outcome without a direction
                itt = itt._replace(p=_NAN)
            div = jstats.divergence_test(np.isnan(xa), np.isnan(xb))
            sign = -1.0 if direction < 0 else 1.0  # P(better): compare -x when lower is better
            worst = _NAN if direction == 0 else -math.inf
            poi = jrobust.poi_ci(*(np.where(np.isnan(x), worst, sign * x) for x in (xa, xb)), confidence)
        if margin is not None and d.n == len(shared):
            eq = jstats.tost_paired(xa, xb, margin, confidence)
    return {
        "diff": d.diff,
        "diff_std": d.std,
        "diff_lo": d.lo,
        "diff_hi": d.hi,
        "diff_n": d.n,
        "p_value": d.p,
        "itt_n": itt.n,
        "itt_w": itt.w_plus - itt.w_minus,
        "itt_p": itt.p,
        "poi": poi.value,
        "poi_lo": poi.lo,
        "poi_hi": poi.hi,
        "div_arm_only": div.arm_only,
        "div_base_only": div.base_only,
        "div_p": div.p,
        "eq_lo": eq.lo,
        "eq_hi": eq.hi,
        "eq_p": eq.p,
        "_se": d.se,
        "_df": d.df,
    }


def _adjusted(rows: list[dict[str, Any]], p_key: str, adjust: str, alpha: float) -> tuple[int, int]:
    """Adjust the finite ``p_key`` p-values of the comparison ``rows`` as one family into ``{p_key}_adjusted``
    (``p_adjusted`` for ``p``, the p-value of the test behind the verdict); returns the family's size and its
    number of rejections."""
    comp = [r for r in rows if math.isfinite(r[p_key])]
    if not comp:
        return 0, 0
    adjusted = jstats.adjust_pvalues([r[p_key] for r in comp], adjust)
    for r, q in zip(comp, adjusted):
        r[f"{p_key}_adjusted"] = float(q)
    return len(comp), int(np.sum(adjusted < alpha))


def _family(
    rows: list[dict[str, Any]], direction: int, confidence: float, power: float, adjust: str
) -> list[dict[str, Any]]:
    """One metric's comparisons with the baseline as three families, each adjusted on its own: the difference (the
    test behind each verdict: the paired t, or the ITT rank test where pairs were lost), the equivalence (TOST, with a
    margin) and the divergence (exact McNemar) tests; then the adjusted intervals, the verdicts and the planning
    estimates."""
    alpha = 1.0 - confidence
    comps = [r for r in rows if r["verdict"] != "baseline"]
    for r in comps:
        r["test"] = "itt" if r["diff_n"] < r["itt_n"] else ("t" if math.isfinite(r["p_value"]) else "")
        r["p"] = r["p_value"] if r["test"] == "t" else (r["itt_p"] if r["test"] == "itt" else _NAN)
    family, rejected = _adjusted(comps, "p", adjust, alpha)
    eq_family, _ = _adjusted(comps, "eq_p", adjust, alpha)
    div_family, _ = _adjusted(comps, "div_p", adjust, alpha)
    level = {"holm": alpha / max(family, 1), "bh": alpha * max(rejected, 1) / max(family, 1), "none": alpha}[adjust]
    plan_level = alpha if adjust == "none" else alpha / max(family, 1)
    for r in rows:
        se, df = r.pop("_se"), r.pop("_df")
        r.pop("p", None)
        r.update(power=power, adjust=adjust, family=family, adj_lo=_NAN, adj_hi=_NAN)
        r.update(eq_family=eq_family, div_family=div_family)
        if r["verdict"] == "baseline":
            continue
        if r["test"] == "t" and se > 0:
            half = jstats.t_ppf(1.0 - 0.5 * level, df) * se
            r["adj_lo"], r["adj_hi"] = r["diff"] - half, r["diff"] + half
        if r["diff_n"] >= 2 and math.isfinite(r["diff_std"]):
            r["seeds_needed"] = jstats.seeds_needed(r["diff"], r["diff_std"], 1.0 - plan_level, power)
        r["verdict"] = _verdict(r, direction, alpha)
        r["div_verdict"] = _div_verdict(r, alpha)
    return rows


def _verdict(r: Mapping[str, Any], direction: int, alpha: float) -> str:
    """``better`` / ``worse`` (``higher`` / ``lower``) when the difference test's adjusted p-value is below
    ``alpha``; else ``equivalent`` when the TOST's adjusted p-value is, ``not resolved`` with a margin and ``n.s.``
    without one (``n/a``: no p-value, ``degenerate``: no spread)."""
    if r["test"] == "" and r["diff_n"] >= 2 and r["diff_std"] == 0:
        return "degenerate"
    p = r["p_adjusted"]
    if math.isfinite(p) and p < alpha:
        effect = r["diff"] if r["test"] == "t" else r["itt_w"]
        side = 1 if effect > 0 else -1
        if direction == 0:
            return "higher" if side > 0 else "lower"
        return "better" if side * direction > 0 else "worse"
    if r["eq_p_adjusted"] < alpha:
        return "equivalent"
    if not math.isfinite(p):
        return "n/a"
    return "n.s." if r["eq_margin"] is None else "not resolved"


def _div_verdict(r: Mapping[str, Any], alpha: float) -> str:
    """``more`` / ``fewer`` (the arm diverges more / less often than the baseline) when the divergence test's
    adjusted p-value is below ``alpha``, ``n.s.`` otherwise, ``n/a`` without a discordant seed."""
    p = r["div_p_adjusted"]
    if not math.isfinite(p):
        return "n/a"
    if p >= alpha:
        return "n.s."
    return "more" if r["div_arm_only"] > r["div_base_only"] else "fewer"


def edge_optima(
    summary_rows: Sequence[Mapping[str, Any]],
    arms: Any,
    metric: str,
    directions: Mapping[str, Any] | None = None,
    factor: str = "learning_rate",
) -> list[str]:
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
            notes.append(
                f"Edge optimum: for {group}, the best {factor} by mean `{metric}` is {v:g} (`{best['arm']}`), "
                f"the {where} value swept; the optimum may lie outside the grid."
            )
    return notes


def confidence_label(confidence: float) -> str:
    return f"{confidence * 100:g}%"
