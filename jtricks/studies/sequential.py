"""Adaptive seeds: add seeds in batches until every comparison is resolved (``jtricks run NAME --until-resolved MAX``).

A group sequential design with looks fixed in advance. The looks are at ``n_1 = seeds``,
``n_2 = seeds + step``, ..., ``n_L = MAX`` seeds (``step`` defaults to the experiment's ``seeds``). At
look ``j`` only the new seeds ``n_{j-1} .. n_j - 1`` are trained; member ``i`` of a population is bit for
bit the run of seed ``i`` alone (``docs/engine.md``), so the union of the batches *is* the run with
``n_j`` seeds. Every comparison with the baseline on the decision metric (the first summary metric) is
tested with the summary's own rule -- the paired t-test, or the intention-to-treat rank test where pairs
were lost, adjusted within the family (``adjust``, Holm by default) -- at the look's nominal level
``alpha_j``; the run stops at the first look where every comparison is resolved -- its adjusted p-value is
below ``alpha_j`` ("better" / "worse"), or, with an ``equivalence_margin``, its adjusted equivalence (TOST)
p-value is ("equivalent") -- or at ``MAX``.

Looking several times inflates the error rate, so ``alpha`` is *spent* across the looks:

* ``"obf"`` (default): the O'Brien-Fleming-type spending function of Lan & DeMets (1983),
  ``a(t) = 2 - 2 Phi(z_{1-alpha/2} / sqrt(t))`` with information fraction ``t_j = n_j / MAX``, and
  ``alpha_j = a(t_j) - a(t_{j-1})``: almost nothing is spent at the early looks, most at ``MAX``;
* ``"bonferroni"``: ``alpha_j = alpha / L`` at every look.

Both use the increments themselves as the nominal levels, which by the union bound keeps the
probability of any false "better"/"worse" (and of any false "equivalent") over all looks at or below
``alpha`` (conservative: the exact
Lan-DeMets boundaries would use the correlation between looks and be slightly less strict). The final
summary is written at ``confidence = 1 - alpha_j`` of the look it stopped at, and the manifest's
``sequential`` record lists every look: seeds, nominal level, each comparison's adjusted p-value and
verdict, and the first look at which each comparison was resolved.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from statistics import NormalDist
from typing import Any

from jtricks.engine import experiment as jexp
from jtricks.engine import programs as jprog
from jtricks.engine import runner as jrunner
from jtricks.engine import write as jwrite
from jtricks.engine.options import RunOptions, options_from
from jtricks.results import folders as jfolders
from jtricks.results import summary as jsummary

__all__ = ["RULES", "planned_looks", "spending", "run_until_resolved"]

RULES: tuple[str, ...] = ("obf", "bonferroni")
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


def spending(looks: Sequence[int], alpha: float = 0.05, rule: str = "obf") -> list[float]:
    """Nominal level of each look (module docstring); they sum to ``alpha``."""
    if rule not in RULES:
        raise ValueError(f"rule must be one of {list(RULES)}, got {rule!r}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    if rule == "bonferroni":
        return [alpha / len(looks)] * len(looks)
    z = NormalDist().inv_cdf(1.0 - alpha / 2.0)
    spent = [2.0 - 2.0 * NormalDist().cdf(z / math.sqrt(n / looks[-1])) for n in looks]
    return [b - a for a, b in zip([0.0, *spent[:-1]], spent)]


def _look(
    rows: list,
    members: list,
    arm_dicts: list,
    exp: jexp.Experiment,
    metric: str,
    alpha_j: float,
    directions: Mapping[str, bool],
) -> dict[str, Any]:
    """One look: every comparison's adjusted p-value and verdict on ``metric`` at level ``alpha_j``."""
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
        r["arm"]: {"p_adjusted": r["p_adjusted"], "test": r["test"], "verdict": r["verdict"]}
        for r in summary
        if r["verdict"] != "baseline"
    }
    return {"alpha": alpha_j, "comparisons": comps, "resolved": all(c["verdict"] in _RESOLVED for c in comps.values())}


def run_until_resolved(
    exp: jexp.Experiment,
    max_seeds: int,
    *,
    out_dir: str | Path | None,
    step: int | None = None,
    alpha: float = 0.05,
    rule: str = "obf",
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
    levels = spending(looks, alpha, rule)
    jrunner.plan(exp)  # validate everything before any training
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
    record = _record(looks, levels, record_looks, rule, alpha, metric, exp)
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
    looks: list[int], levels: list[float], done: list[dict], rule: str, alpha: float, metric: str, exp: jexp.Experiment
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
        "metric": metric,
        "planned_looks": [{"seeds": n, "alpha": a} for n, a in zip(looks, levels)],
        "looks": done,
        "stopped_at": done[-1]["seeds"],
        "resolved": done[-1]["resolved"],
        "first_resolved_at": first,
    }


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
    return jrunner.RunResult.of(
        out, the_plan, collected, summary, compiles, wall, timing, last.metrics, last.directions
    )
