"""Tune, then ablate: each arm's numeric factors tuned on validation before the seeds × arms comparison.

A fair ablation tunes every arm: "Adam beats SGD" at one shared learning rate says little. With
``Experiment.tune = Tune(factors={"learning_rate": loguniform(1e-3, 1.0)}, samples=16, halving=Halving(...))``
:func:`run` does two runs:

1. **tuning** — the experiment with the tuned factors added to its grid (``samples`` draws, or lists), on
   ``Tune.seeds`` seeds disjoint from the comparison's (``seed_offset + seeds``, ...), with successive halving
   across the tuned factors only (each arm is its own bracket) when ``halving`` is given; every arm's value
   is the one with the best mean validation metric at the last epoch (among the configurations that reached
   it; ties to the earlier configuration);
2. **comparison** — the experiment's seeds × arms, each arm at its tuned values.

The results folder holds the comparison (as any run) and ``tuning/`` (the tuning run's folder); ``tuning.md``
and the end of ``summary.md`` state each arm's tuned values and tuning budget (configurations tried,
member-epochs run, against the exhaustive grid's).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from jtricks import metrics as jmetrics
from jtricks._core import files as jfiles
from jtricks.engine import experiment as jexp
from jtricks.engine import runner as jrunner
from jtricks.engine import search as jsearch
from jtricks.engine import validation as jvalidation
from jtricks.engine.options import RunOptions, options_from
from jtricks.results import budget as jbudget
from jtricks.results import plots as jplots
from jtricks.results import rendering as jrendering

__all__ = ["Tune", "tuning_experiment", "best_values", "expected_performance", "run"]


@dataclasses.dataclass(frozen=True)
class Tune:
    """What is tuned per arm, and how.

    Attributes:
      factors: numeric factor → distribution (with ``samples``) or list of values, tuned per arm.
      samples: draws of the distribution factors (``None`` when all are lists).
      halving: successive halving of the tuning run (its ``across`` is set to the tuned factors), or ``None``.
      seeds: tuning seeds per configuration (disjoint from the comparison's seeds).
      metric: the validation metric that picks the value (``None``: the halving's, else ``val_acc`` when
        measured, else ``val_loss``).
    """

    factors: Mapping[str, Any]
    samples: int | None = None
    halving: jsearch.Halving | None = None
    seeds: int = 1
    metric: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.factors, Mapping) or not self.factors:
            raise ValueError(
                f"Tune: `factors` must be a non-empty {{factor: distribution or list}}, got {self.factors!r}"
            )
        if isinstance(self.seeds, bool) or not isinstance(self.seeds, int) or self.seeds < 1:
            raise ValueError(f"Tune: `seeds` must be a positive int, got {self.seeds!r}")
        if self.halving is not None and not isinstance(self.halving, jsearch.Halving):
            raise TypeError(f"Tune: `halving` must be None or jtricks.search.Halving, got {self.halving!r}")

    def __str__(self) -> str:
        factors = {k: str(v) if jsearch.is_distribution(v) else list(v) for k, v in self.factors.items()}
        return f"Tune(factors={factors}, samples={self.samples}, halving={self.halving}, seeds={self.seeds})"


def tuning_experiment(exp: jexp.Experiment) -> jexp.Experiment:
    """The tuning run of ``exp``: its grid plus the tuned factors, the tuning seeds, halving across the tuned
    factors."""
    t: Tune = exp.tune
    clash = sorted(set(t.factors) & set(exp.grid))
    if clash:
        raise ValueError(f"tuned factors {clash} are also grid factors; tune them or sweep them, not both")
    halving = (
        None if t.halving is None else dataclasses.replace(t.halving, across=tuple(t.factors), metric=_metric(exp))
    )
    return dataclasses.replace(
        exp,
        name=f"{exp.name}_tuning",
        grid={**exp.grid, **t.factors},
        samples=t.samples,
        search=halving,
        seeds=t.seeds,
        seed_offset=exp.seed_offset + exp.seeds,
        tune=None,
        baseline=None,
        target=None,
    )


def _metric(exp: jexp.Experiment) -> str:
    t: Tune = exp.tune
    return t.metric or (t.halving.metric if t.halving is not None else None) or "val_acc"


def _configurations(res: Any, base: jexp.Arm, tuned: Sequence[str]) -> list[jexp.Arm]:
    """The tuning run's configurations of ``base``: its arms that differ from ``base`` only in the tuned factors."""
    key = tuple(sorted((k, repr(v)) for k, v in base.factors.items()))
    return [a for a in res.arms if tuple(sorted((k, repr(v)) for k, v in a.factors.items() if k not in tuned)) == key]


def _stops(res: Any) -> dict[str, int]:
    return {k: v for r in res.search for k, v in r["stop_epoch"].items()}


def best_values(
    res: Any, base_arms: Sequence[jexp.Arm], tuned: Sequence[str], metric: str, higher_is_better: bool, epochs: int
) -> list[dict[str, Any]]:
    """Per base arm: its tuned values (the best configuration at the last epoch) and its budget."""
    stop = _stops(res)
    out = []
    for base in base_arms:
        mine = _configurations(res, base, tuned)
        finished = [a for a in mine if stop.get(a.name, epochs) == epochs]
        scores = [float(np.mean(res.history(a.name, metric)[:, -1])) for a in finished]
        sign = -1.0 if higher_is_better else 1.0
        order = sorted(
            range(len(finished)), key=lambda j: (0, sign * scores[j], j) if math.isfinite(scores[j]) else (1, 0.0, j)
        )
        best = finished[order[0]]
        seeds = res.history(best.name, metric).shape[0]
        out.append(
            {
                "arm": base.name,
                "tuned": {k: best.factors[k] for k in tuned},
                "metric": metric,
                "score": scores[order[0]],
                "configurations": len(mine),
                "member_epochs": int(sum(stop.get(a.name, epochs) for a in mine) * seeds),
                "member_epochs_full": len(mine) * epochs * seeds,
            }
        )
    return out


def expected_performance(
    res: Any, base_arms: Sequence[jexp.Arm], tuned: Sequence[str], metric: str, higher_is_better: bool, epochs: int
) -> list[dict[str, Any]]:
    """Per base arm: the expected best ``metric`` of ``n = 1..N`` of its ``N`` configurations drawn at random, with
    its sd (:func:`jtricks.results.budget.expected_max_curve`; Dodge et al. 2019), from each configuration's mean
    over the tuning seeds at ``epoch``, the last epoch all of them reached (the last epoch without halving: with
    halving, the first rung). Configurations without a finite score there (diverged) are left out and counted."""
    stop = _stops(res)
    out = []
    for base in base_arms:
        mine = _configurations(res, base, tuned)
        epoch = min(stop.get(a.name, epochs) for a in mine)
        values: dict[str, list[float]] = {a.name: [] for a in mine}
        for r in res.metric_rows:
            if r["metric"] == metric and r["epoch"] == epoch and r["arm"] in values:
                values[r["arm"]].append(r["value"])
        scores = [float(np.mean(v)) if v else math.nan for v in values.values()]
        finite = [x for x in scores if math.isfinite(x)]
        row: dict[str, Any] = {"arm": base.name, "metric": metric, "epoch": epoch, "configurations": len(mine)}
        row.update(left_out=len(mine) - len(finite), n=[], mean=[], sd=[])
        if finite:
            n, mean, sd = jbudget.expected_max_curve(finite, higher_is_better)
            row.update(n=n.tolist(), mean=mean.tolist(), sd=sd.tolist())
        out.append(row)
    return out


def _final_experiment(
    exp: jexp.Experiment, base_arms: Sequence[jexp.Arm], table: Sequence[Mapping[str, Any]]
) -> jexp.Experiment:
    arms = [{"name": b.name, **dict(b.factors), **row["tuned"]} for b, row in zip(base_arms, table)]
    return dataclasses.replace(exp, grid={}, arms=arms, samples=None, tune=None)


def _markdown(table: Sequence[Mapping[str, Any]], tuning_wall: float, tune: Tune) -> str:
    lines = [
        "## Tuning",
        "",
        f"Each arm tuned on validation before the comparison: `{tune}`; tuning wall time {tuning_wall:.1f} s.",
        "",
        "| arm | tuned | " + "val score | configurations | member-epochs (of full grid) |",
        "|---|---|---|---|---|",
    ]
    for r in table:
        tuned = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in r["tuned"].items())
        lines.append(
            f"| {r['arm']} | {tuned} | {r['metric']} {r['score']:.4f} | {r['configurations']} | "
            f"{r['member_epochs']} ({r['member_epochs_full']}) |"
        )
    return "\n".join(lines) + "\n"


def _evp_markdown(evp: Sequence[Mapping[str, Any]]) -> str:
    """The expected validation performance table: ``E[best of n] ± sd`` at n = 1, 2, 4, ..., N."""
    sizes = sorted({n for r in evp for n in r["n"] if n & (n - 1) == 0 or n == len(r["n"])})
    lines = [
        "### Expected validation performance",
        "",
        f"The expected best `{evp[0]['metric']}` of n configurations drawn at random from an arm's N, ± the sd of "
        "that best (Dodge et al. 2019: exact, from the configurations' scores at the epoch shown, the last epoch "
        "all of them reached). It says how much of an arm's tuned score a smaller search would have found.",
        "",
        "| arm | epoch | configurations (left out) | " + " | ".join(f"n = {n}" for n in sizes) + " |",
        "|---|---:|---:|" + "---:|" * len(sizes),
    ]
    for r in evp:
        cells = [f"{r['mean'][n - 1]:.4f} ± {r['sd'][n - 1]:.4f}" if n <= len(r["n"]) else "" for n in sizes]
        head = f"| {r['arm']} | {r['epoch']} | {r['configurations']} ({r['left_out']}) | "
        lines.append(head + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def run(exp: jexp.Experiment, *, out_dir: Any = None, options: RunOptions | None = None, **option_changes: Any) -> Any:
    """Tune every arm of ``exp`` (``exp.tune``), then run the seeds × arms comparison at the tuned values.

    Returns the comparison's :class:`jtricks.engine.runner.RunResult` with ``tuning`` set to the per-arm table
    (``arm``, ``tuned``, ``metric``, ``score``, ``configurations``, ``member_epochs``, ``member_epochs_full``,
    ``expected_performance``: :func:`expected_performance`'s ``epoch``, ``left_out``, ``n``, ``mean``, ``sd``). Both
    runs get ``options`` (:class:`jtricks.engine.options.RunOptions`, or its fields as keywords).
    """
    opts = options_from(options, **option_changes)
    if not isinstance(exp.tune, Tune):
        raise TypeError(f"'tune' must be jtricks.tuning.Tune(...), got {exp.tune!r}")
    base_arms = jvalidation.validate(dataclasses.replace(exp, tune=None))
    t_exp = tuning_experiment(exp)
    out = None if out_dir is None else Path(out_dir)
    tuning_res = jrunner.run(t_exp, out_dir=None if out is None else out / "tuning", options=opts)
    metric = _metric(exp) if _metric(exp) in tuning_res.directions else "val_loss"
    higher = (
        jmetrics.higher_is_better(metric, {}) if metric not in tuning_res.directions else tuning_res.directions[metric]
    )
    table = best_values(tuning_res, base_arms, list(exp.tune.factors), metric, higher, exp.epochs)
    evp = expected_performance(tuning_res, base_arms, list(exp.tune.factors), metric, higher, exp.epochs)
    for row, e in zip(table, evp):
        row["expected_performance"] = {k: e[k] for k in ("epoch", "left_out", "n", "mean", "sd")}
    final = jrunner.run(_final_experiment(exp, base_arms, table), out_dir=out, options=opts)
    final.tuning = table
    if out is not None:
        md = _markdown(table, tuning_res.wall_time_s, exp.tune) + "\n" + _evp_markdown(evp)
        jfiles.write_atomic(out / "tuning.md", md)
        jfiles.write_atomic(
            out / "tuning.json",
            json.dumps(
                jexp.to_json({"tune": str(exp.tune), "arms": table, "tuning_wall_time_s": tuning_res.wall_time_s}),
                indent=2,
            )
            + "\n",
        )
        jrendering.append_sections(out, ("tuning.md",))
        if opts.plot:
            jplots.plot_expected_performance(out / "evp.png", evp, title=exp.name)
    return final
