"""Adaptive seeds: add seeds in batches until every comparison is resolved (``jtricks run NAME --until-resolved MAX``).

A group sequential design with looks fixed in advance. The looks are at ``n_1 = seeds``,
``n_2 = seeds + step``, ..., ``n_L = MAX`` seeds (``step`` defaults to the experiment's ``seeds``). At
look ``j`` only the new seeds ``n_{j-1} .. n_j - 1`` are trained; member ``i`` of a population is bit for
bit the run of seed ``i`` alone (``docs/engine.md``), so the union of the batches *is* the run with
``n_j`` seeds. Every comparison with the baseline on the decision metric (the first summary metric) is
tested with the summary's own rule -- the paired t-test, or the intention-to-treat rank test where pairs
were lost, adjusted within the family (``adjust``, Holm by default) -- at the look's level ``alpha_j``;
the run stops at the first look where every comparison is resolved -- its adjusted p-value is below
``alpha_j`` ("better" / "worse"), or, with an ``equivalence_margin``, its adjusted equivalence (TOST)
p-value is ("equivalent") -- or at ``MAX``.

Looking several times inflates the error rate, so ``alpha`` is *spent* across the looks (``rule``):

* ``"obf-exact"`` (default) and ``"pocock-exact"``: the exact group-sequential boundaries
  (:mod:`jtricks.results.sequential_bounds`, recursive integration) of the Lan-DeMets O'Brien-Fleming-type
  spending function ``a(t) = 2 - 2 Phi(z_{1-alpha'/2} / sqrt(t))`` or the Pocock-type
  ``a(t) = alpha' ln(1 + (e - 1) t)``, at the information fractions ``t_j = n_j / MAX``, for each of the
  ``m`` comparisons at ``alpha' = alpha / m`` (Bonferroni over the family; ``m = 1`` with ``adjust="none"``).
  Look ``j``'s family level is ``alpha_j = m * 2 (1 - Phi(c_j))``, ``c_j`` the boundary of ``alpha'``: the
  Holm-adjusted p-values are compared with it, so the smallest raw p-value with ``2 (1 - Phi(c_j))``;
  under the global null the probability of any false "better"/"worse" over all looks is at most ``alpha``
  (exactly ``alpha`` for one comparison of normal statistics; the looks' t-tests with few seeds:
  docs/results-format.md);
* ``"obf"``: the O'Brien-Fleming-type increments ``alpha_j = a(t_j) - a(t_{j-1})`` (``alpha' = alpha``)
  themselves as the levels (the union bound: conservative, total below ``alpha``);
* ``"bonferroni"``: ``alpha_j = alpha / L`` at every look (conservative).

The same levels hold for the equivalence (TOST) family. The final summary is written at
``confidence = 1 - alpha_j`` of the look it stopped at; its family-adjusted intervals (``adj_lo, adj_hi``, at
``1 - alpha_j / m``) are then the repeated confidence intervals of the design. The manifest's ``sequential``
record lists every look: seeds, level, each comparison's difference, repeated confidence interval, adjusted
p-value and verdict, and the first look at which each comparison was
resolved; ``sequential.md`` (appended to ``summary.md``) shows them.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from jtricks._core import files as jfiles
from jtricks.engine import experiment as jexp
from jtricks.engine import programs as jprog
from jtricks.engine import runner as jrunner
from jtricks.engine import write as jwrite
from jtricks.engine.options import RunOptions, options_from
from jtricks.results import folders as jfolders
from jtricks.results import rendering as jrendering
from jtricks.results import sequential_bounds as jbounds
from jtricks.results import summary as jsummary

__all__ = [
    "RULES",
    "DEFAULT_RULE",
    "planned_looks",
    "check_rule",
    "spending",
    "family_size",
    "markdown",
    "run_until_resolved",
]

RULES: tuple[str, ...] = ("obf-exact", "pocock-exact", "obf", "bonferroni")
DEFAULT_RULE = "obf-exact"
_RESOLVED = {"better", "worse", "higher", "lower", "equivalent"}


def planned_looks(start: int, step: int, max_seeds: int) -> list[int]:
    """The seed counts of the looks: ``start, start + step, ...``, the last one ``max_seeds``."""
    for name, v in (("seeds", start), ("step", step), ("max_seeds", max_seeds)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive int, got {v!r}")
    if start < 2:
        raise ValueError(f"the first look needs at least 2 seeds (a t interval), got seeds={start}")
    if max_seeds < start:
        raise ValueError(f"--until-resolved MAX must be >= the experiment's seeds ({start}), got {max_seeds}")
    looks = list(range(start, max_seeds, step))
    return looks + [max_seeds]


def check_rule(rule: str, alpha: float) -> None:
    """A clear error for an unknown ``rule`` or an ``alpha`` outside (0, 1)."""
    if rule not in RULES:
        raise ValueError(f"rule must be one of {list(RULES)}, got {rule!r}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")


def spending(looks: Sequence[int], alpha: float = 0.05, rule: str = DEFAULT_RULE, family: int = 1) -> list[float]:
    """The family level ``alpha_j`` of each look (module docstring): a comparison is resolved at look ``j``
    when its family-adjusted p-value is below it.

    Args:
      looks: the seed counts of the looks (:func:`planned_looks`); the information fractions are
        ``n_j / looks[-1]``.
      alpha: the total two-sided level over the looks and the family, in (0, 1).
      rule: one of :data:`RULES`.
      family: ``m``, the comparisons in the family (the exact rules design each at ``alpha / m``).
    """
    check_rule(rule, alpha)
    if isinstance(family, bool) or not isinstance(family, int) or family < 1:
        raise ValueError(f"family must be a positive int, got {family!r}")
    t = [n / looks[-1] for n in looks]
    if rule == "bonferroni":
        levels = [alpha / len(looks)] * len(looks)
    elif rule == "obf":
        levels = [float(a) for a in np.diff(jbounds.spent(t, alpha, "obf"), prepend=0.0)]
    else:
        c = jbounds.boundaries(t, alpha / family, rule.removesuffix("-exact"))
        levels = [float(family * p) for p in jbounds.nominal_levels(c)]
    if min(levels) <= 0.0:
        first = looks[levels.index(min(levels))]
        raise ValueError(
            f"the look at {first} of {looks[-1]} seeds spends no alpha under rule {rule!r}: "
            "start with more seeds or lower --until-resolved MAX"
        )
    return levels


def _look(
    rows: list,
    members: list,
    arm_dicts: list,
    exp: jexp.Experiment,
    metric: str,
    alpha_j: float,
    directions: Mapping[str, bool],
) -> dict[str, Any]:
    """One look: every comparison's difference, repeated confidence interval (the family-adjusted interval at
    level ``alpha_j``), adjusted p-value and verdict on ``metric``."""
    summary = jsummary.summarize(
        rows,
        members,
        arm_dicts,
        metrics=(metric,),
        baseline=exp.baseline or arm_dicts[0]["arm"],
        confidence=1.0 - alpha_j,
        directions=directions,
        adjust=exp.adjust,
        equivalence_margin=exp.equivalence_margin,
    )
    comps = {
        r["arm"]: {
            "diff": _finite(r["diff"]),
            "lo": _finite(r["adj_lo"]),
            "hi": _finite(r["adj_hi"]),
            "p_adjusted": r["p_adjusted"],
            "test": r["test"],
            "verdict": r["verdict"],
        }
        for r in summary
        if r["verdict"] != "baseline"
    }
    return {"alpha": alpha_j, "comparisons": comps, "resolved": all(c["verdict"] in _RESOLVED for c in comps.values())}


def _finite(x: float) -> float | None:
    """``x``, or ``None`` (JSON ``null``) where it is not finite."""
    return float(x) if math.isfinite(x) else None


def family_size(exp: jexp.Experiment, n_arms: int) -> int:
    """``m``, the comparisons with the baseline the exact rules share ``alpha`` among: the arms other than the
    baseline, or 1 with ``adjust="none"`` (each comparison on its own)."""
    return 1 if exp.adjust == "none" else max(n_arms - 1, 1)


def run_until_resolved(
    exp: jexp.Experiment,
    max_seeds: int,
    *,
    out_dir: str | Path | None,
    step: int | None = None,
    alpha: float = 0.05,
    rule: str = DEFAULT_RULE,
    metric: str | None = None,
    options: RunOptions | None = None,
    **option_changes: Any,
) -> tuple[jrunner.RunResult, dict[str, Any]]:
    """Run ``exp`` with ``exp.seeds`` seeds, then more in batches of ``step`` until every comparison on
    ``metric`` (default: the first summary metric) is resolved or ``max_seeds`` is reached; write the
    results folder of all the seeds run (with the manifest's ``sequential`` record).

    Returns:
      The :class:`jtricks.runner.RunResult` of all seeds (summary at the final look's level) and the
      sequential record.
    """
    opts = options_from(options, **option_changes)
    t_start = time.perf_counter()
    looks = planned_looks(exp.seeds, exp.seeds if step is None else step, max_seeds)
    check_rule(rule, alpha)
    family = family_size(exp, len(jrunner.plan(exp).arms))  # the plan validates everything before any training
    levels = spending(looks, alpha, rule, family)
    if out_dir is not None and not opts.overwrite:
        jfolders.refuse_overwrite(out_dir)
    done, results, record_looks = 0, [], []
    arm_dicts: list[dict[str, Any]] = []
    for n, alpha_j in zip(looks, levels):
        batch = dataclasses.replace(exp, seeds=n - done, seed_offset=exp.seed_offset + done)
        res = jrunner.run(batch, out_dir=None, options=opts.replace(plot=False, checkpoint=False))
        results.append(res)
        done = n
        arm_dicts = [{"arm": a.name, "factors": dict(a.factors)} for a in res.arms]
        rows, members = _merged(results, arm_dicts)
        metric = metric or res.metrics[0]
        look = {"seeds": n, **_look(rows, members, arm_dicts, exp, metric, alpha_j, res.directions)}
        record_looks.append(look)
        if look["resolved"]:
            break
    record = _record(looks, levels, record_looks, rule, alpha, family, metric, exp)
    final = dataclasses.replace(exp, seeds=done)
    return _finish(final, results, arm_dicts, record, out_dir, opts.plot, t_start), record


def _merged(results: Sequence[jrunner.RunResult], arm_dicts: list) -> tuple[list, list]:
    order = {a["arm"]: i for i, a in enumerate(arm_dicts)}
    rows = sorted(
        (r for res in results for r in res.metric_rows),
        key=lambda r: (order[r["arm"]], r["seed"], r["epoch"], r["metric"]),
    )
    members = sorted((m for res in results for m in res.member_rows), key=lambda m: (order[m["arm"]], m["seed"]))
    return rows, members


def _record(
    looks: list[int],
    levels: list[float],
    done: list[dict],
    rule: str,
    alpha: float,
    family: int,
    metric: str,
    exp: jexp.Experiment,
) -> dict[str, Any]:
    first: dict[str, int | None] = {arm: None for arm in done[-1]["comparisons"]}
    for look in done:
        for arm, c in look["comparisons"].items():
            if first[arm] is None and c["verdict"] in _RESOLVED:
                first[arm] = look["seeds"]
    return {
        "rule": rule,
        "alpha": alpha,
        "adjust": exp.adjust,
        "family": family,
        "metric": metric,
        "planned_looks": [{"seeds": n, "alpha": a} for n, a in zip(looks, levels)],
        "looks": done,
        "stopped_at": done[-1]["seeds"],
        "resolved": done[-1]["resolved"],
        "first_resolved_at": first,
    }


_RULE_NAMES = {
    "obf-exact": "exact O'Brien-Fleming-type (Lan-DeMets) boundaries",
    "pocock-exact": "exact Pocock-type (Lan-DeMets) boundaries",
    "obf": "O'Brien-Fleming-type spending increments as levels",
    "bonferroni": "alpha / L at each of the L looks",
}


def _interval(c: Mapping[str, Any]) -> str:
    if c["diff"] is None:
        return ""
    if c["lo"] is None:
        return f"{c['diff']:+.4g}"
    return f"{c['diff']:+.4g} [{c['lo']:+.4g}, {c['hi']:+.4g}]"


def markdown(record: Mapping[str, Any]) -> str:
    """``sequential.md``: the design and, per look run, each comparison's difference with its repeated
    confidence interval (family- and look-adjusted), adjusted p-value and verdict."""
    rule, family = record["rule"], record.get("family", 1)
    planned = ", ".join(f"{p['seeds']} ({p['alpha']:.3g})" for p in record["planned_looks"])
    lines = [
        f"## Adaptive seeds: `{record['metric']}` until resolved",
        "",
        f"Rule `{rule}` ({_RULE_NAMES.get(rule, rule)}), alpha {record['alpha']:g} over the looks and a family "
        f"of {family}; looks planned at seeds (family level): {planned}. At each look the comparisons' "
        f"{record['adjust']}-adjusted p-values are compared with the look's level, and Δ's interval is the "
        "repeated confidence interval at the look's level divided by the family (Bonferroni, simultaneous "
        f"over the family and the looks). Stopped at {record['stopped_at']} seeds"
        f"{', all resolved' if record['resolved'] else ', not all resolved'}.",
        "",
        "| seeds | level | arm | Δ vs baseline [repeated CI] | p (adjusted) | verdict |",
        "|---:|---:|:---|---:|---:|:---|",
    ]
    for look in record["looks"]:
        for arm, c in look["comparisons"].items():
            lines.append(
                f"| {look['seeds']} | {look['alpha']:.3g} | {arm} | {_interval(c)} | {c['p_adjusted']:.2g} | "
                f"{c['verdict']} |"
            )
    first = ", ".join(f"{a}: {n if n is not None else 'not resolved'}" for a, n in record["first_resolved_at"].items())
    return "\n".join([*lines, "", f"Seeds at which each comparison was first resolved: {first}."]) + "\n"


def _finish(
    final: jexp.Experiment,
    results: list[jrunner.RunResult],
    arm_dicts: list,
    record: dict[str, Any],
    out_dir: str | Path | None,
    plot: bool,
    t_start: float,
) -> jrunner.RunResult:
    """Merge the batches into one result; summarize at the final look's level; write the folder."""
    rows, members = _merged(results, arm_dicts)
    last = results[-1]
    confidence = 1.0 - record["looks"][-1]["alpha"]
    summary = jsummary.summarize(
        rows,
        members,
        arm_dicts,
        metrics=last.metrics,
        baseline=final.baseline or arm_dicts[0]["arm"],
        confidence=confidence,
        target=final.target,
        directions=last.directions,
        adjust=final.adjust,
        equivalence_margin=final.equivalence_margin,
    )
    compiles: dict[str, int] = {}
    for res in results:
        for k, v in res.compiles.items():
            compiles[k] = compiles.get(k, 0) + v
    timing = [t for res in results for t in res.timing]
    states = {k: v for res in results for k, v in res.final_states.items()}
    wall = time.perf_counter() - t_start
    out = None if out_dir is None else Path(out_dir)
    the_plan = jrunner.plan(final)
    collected = jrunner.Collected(rows, members, states)
    if out is not None:
        setups = jrunner.build(the_plan, jprog.TraceCounter())  # data and (uncompiled) programs: for the manifest
        manifest = jwrite.manifest(the_plan, setups, compiles, wall, timing, last.metrics, last.directions)
        manifest.update(confidence=confidence, sequential=record)
        jwrite.write_fresh(
            out, the_plan, collected, summary, manifest, jwrite.fingerprint(the_plan, setups, None), plot=plot
        )
        jfiles.write_atomic(out / "sequential.md", markdown(record))
        jrendering.append_sections(out, ("sequential.md",))
    return jrunner.RunResult.of(
        out, the_plan, collected, summary, compiles, wall, timing, last.metrics, last.directions
    )
