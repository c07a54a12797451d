"""Run an :class:`~jtricks.engine.experiment.Experiment`: one compiled, vmapped population per static
configuration, in four steps, a module each:

1. :func:`~jtricks.engine.plan.plan` — validate the experiment, group the arms by static configuration, cut each
   group's members into chunks; nothing is loaded or compiled;
2. :func:`~jtricks.engine.build.build` — per group: prepare the data, check the targets, make the jitted programs;
3. :func:`~jtricks.engine.execute.execute` — the epoch loop: metrics copied out, progress, checkpoints, callbacks;
4. :func:`~jtricks.engine.write.write` — the results folder (``docs/results-format.md``).

:func:`run` runs them in order under the results folder's lock. What wraps runs (tune-then-ablate, seeds until
resolved, several processes) lives above, in :mod:`jtricks.studies`.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import shutil
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jtricks.engine import callbacks as jcb
from jtricks.engine import checkpoint as jckpt
from jtricks.engine import configure as jconfigure
from jtricks.engine import experiment as jexp
from jtricks.engine import grid as jgrid
from jtricks.engine import parts as jparts
from jtricks.engine import programs as jprog
from jtricks.engine import runtime as jruntime
from jtricks.engine import saved as jsaved
from jtricks.engine import search as jsearch
from jtricks.engine import write as jwrite
from jtricks.engine.build import GroupSetup, build
from jtricks.engine.execute import Collected, compile_ahead, compile_workers, execute
from jtricks.engine.options import RunOptions, options_from
from jtricks.engine.plan import Group, Plan, plan
from jtricks.engine.progress import Progress
from jtricks.engine.write import write
from jtricks.results import bootstrap as jboot
from jtricks.results import fingerprint as jfp
from jtricks.results import folders as jfolders
from jtricks.results import summary as jsummary

__all__ = [
    "RunResult",
    "RunOptions",
    "run",
    "plan",
    "build",
    "execute",
    "write",
    "Plan",
    "Group",
    "GroupSetup",
    "Collected",
    "Progress",
]


@dataclasses.dataclass
class RunResult:
    """What :func:`run` returns (and writes to ``out_dir``)."""

    out_dir: Path | None
    arms: list[jexp.Arm]
    metric_rows: list[dict[str, Any]]
    member_rows: list[dict[str, Any]]
    summary: list[dict[str, Any]]
    compiles: dict[str, int]
    wall_time_s: float
    final_states: dict[str, Any]
    #: per static group: ``arms``, ``members`` (population size), ``compile_s`` (ahead-of-time compile
    #: seconds, ``None`` when compiled on first use) and ``epoch_s`` (wall seconds of every epoch run)
    timing: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    #: the metrics summarised (``Experiment.metrics`` or the defaults of the task)
    metrics: tuple[str, ...] = ()
    #: whether higher is better, for every metric written (as the metrics declare it)
    directions: dict[str, bool] = dataclasses.field(default_factory=dict)
    #: with ``Experiment.search``: per static group, the record of :func:`jtricks.search.run_halving` or
    #: :func:`jtricks.pbt.run_pbt`
    search: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    #: with ``Experiment.tune``: per arm, its tuned values and tuning budget (:func:`jtricks.tuning.run`)
    tuning: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    @classmethod
    def of(
        cls,
        out: Path | None,
        the_plan: Plan,
        collected: Collected,
        summary: list[dict[str, Any]],
        compiles: Mapping[str, int],
        wall: float,
        timing: list[dict[str, Any]],
        metrics: Sequence[str],
        directions: Mapping[str, bool],
    ) -> RunResult:
        """The result of a run of ``the_plan`` whose rows are ``collected`` (the one place a result is assembled)."""
        return cls(
            out_dir=out,
            arms=the_plan.arms,
            metric_rows=collected.metric_rows,
            member_rows=collected.member_rows,
            summary=summary,
            compiles=dict(compiles),
            wall_time_s=wall,
            final_states=collected.final_states,
            timing=timing,
            metrics=tuple(metrics),
            directions=dict(directions),
            search=collected.search,
        )

    def diverged_at_start(self) -> list[str]:
        """The members (``"arm/seed=s"``) that diverged in epoch 1 from finite initial parameters.

        A member that diverges is restored to its state at the start of that epoch, so the final parameters of
        one that diverged in epoch 1 are its initial ones. When those are finite, the first epoch's steps
        failed although the model started sound: the data (NaN/Inf, huge values), the loss, or a learning
        rate far too large is the likely cause. The step within the epoch is not recorded.
        """
        out = []
        for row in self.member_rows:
            if row["diverged_epoch"] != 1:
                continue
            key = f"{row['arm']}/seed={row['seed']}"
            leaves = jax.tree_util.tree_leaves(self.final_states.get(key))
            if leaves and all(np.isfinite(np.asarray(leaf)).all() for leaf in leaves):
                out.append(key)
        return out

    def history(self, arm: str, metric: str) -> np.ndarray:
        """``(seeds, epochs)`` array of ``metric`` for ``arm``."""
        rows = [r for r in self.metric_rows if r["arm"] == arm and r["metric"] == metric]
        seeds = sorted({r["seed"] for r in rows})
        epochs = sorted({r["epoch"] for r in rows})
        out = np.full((len(seeds), len(epochs)), np.nan)
        for r in rows:
            out[seeds.index(r["seed"]), epochs.index(r["epoch"])] = r["value"]
        return out


def run(
    exp: jexp.Experiment,
    *,
    out_dir: str | os.PathLike | None = None,
    options: RunOptions | None = None,
    **option_changes: Any,
) -> RunResult:
    """Run every arm x seed of ``exp`` and write the results folder (module docstring).

    Nothing is written before the settings are validated and the data is loaded and checked (a bad setting or
    data file leaves no folder behind). Then the run takes the folder's lock (:func:`jtricks.results.folders.lock`:
    a second writer fails with "FOLDER is in use by PID n"; a folder already locked is refused before any data
    loads); a fresh (not resumed) run removes the folder's manifest and checkpoints, so stale results never count
    as this run's; a resumed run checks the checkpoints' fingerprints before anything compiles.

    Args:
      exp: the experiment (validated here, before any data is loaded or anything compiles). An experiment with
        ``tune`` runs through :func:`jtricks.studies.run` (tuning, then the comparison).
      out_dir: results folder (``None``: nothing written, no checkpoints).
      options: the :class:`~jtricks.engine.options.RunOptions`; its fields may also be given as keywords
        (``progress=False, plot=False``), which replace those of ``options``. ``numerics`` pins the process
        (:func:`jtricks.engine.runtime.pin_numerics`, before JAX has started); the mode in force is in the
        manifest and the fingerprint, and a portable run that could not be pinned warns once. A ``part`` writes
        its rows and a manifest with ``part`` (no summaries; ``RunResult.summary`` is empty), for
        :func:`jtricks.engine.parts.merge`.
    """
    opts = options_from(options, **option_changes)
    if exp.tune is not None and opts.part is None:
        raise ValueError(
            f"experiment {exp.name!r} tunes its arms first ('tune'): run it with jtricks.studies.run "
            "(or `jtricks run`), which tunes, then compares"
        )
    pinned = jruntime.pin_numerics(opts.numerics)
    if pinned.mode != opts.numerics:
        warnings.warn(
            f"numerics: running {pinned.mode}, not {opts.numerics}: {pinned.note}", RuntimeWarning, stacklevel=2
        )
    opts = opts.replace(callbacks=jcb.check_callbacks(opts.callbacks))
    with jruntime.CompileMeter() as meter:
        return _plan_and_run(exp, None if out_dir is None else Path(out_dir), opts, meter)


def _plan_and_run(exp: jexp.Experiment, out: Path | None, opts: RunOptions, meter: jruntime.CompileMeter) -> RunResult:
    t_start = time.perf_counter()
    if out is not None:
        _refuse_if_in_use(out)
        if not (opts.resume or opts.overwrite):
            jfolders.refuse_overwrite(out)
    the_plan = plan(exp, opts)
    if exp.search is not None and opts.resume:
        raise ValueError("--resume is not supported with 'search' (successive halving, PBT); run it again")
    workers = compile_workers(opts.compile_workers, len(the_plan.groups))
    counter = jprog.TraceCounter()
    setups = build(the_plan, counter, prefetch=opts.prefetch)
    fingerprint = jwrite.fingerprint(the_plan, setups, opts.max_members)
    # a part saves no models: `jtricks merge` combines the parts' rows, not their weights
    opts = opts.replace(save_models=opts.save_models and opts.part is None)
    if out is None:
        return _run(the_plan, setups, counter, fingerprint, None, opts, workers, t_start, meter)
    with jfolders.lock(out):
        if opts.resume:
            _check_checkpoints(out, fingerprint)
        else:
            jfolders.invalidate(out)
            shutil.rmtree(out / "checkpoints", ignore_errors=True)
            shutil.rmtree(out / jsaved.FOLDER, ignore_errors=True)
        return _run(the_plan, setups, counter, fingerprint, out, opts, workers, t_start, meter)


def _refuse_if_in_use(out: Path) -> None:
    """``FolderInUseError`` at once (before any data loads) when a live process holds ``out``'s lock."""
    holder = jfolders.lock_holder(out) if out.is_dir() else None
    if holder is not None:
        raise jfolders.FolderInUseError(errno.EBUSY, f"{out} is in use by PID {holder if holder >= 0 else '?'}")


def _check_checkpoints(out: Path, fingerprint: Mapping[str, Any]) -> None:
    """Refuse (``FingerprintMismatchError`` naming the settings) checkpoints in ``out`` made with other
    settings, before anything compiles (only their metadata is read)."""
    root = out / "checkpoints"
    if not root.is_dir():
        return
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        stored = jckpt.stored_fingerprint(folder)
        if stored is not None:
            jfp.check_same(stored, fingerprint, f"the checkpoint {folder}")


def _run(
    the_plan: Plan,
    setups: list[GroupSetup],
    counter: jprog.TraceCounter,
    fingerprint: Mapping[str, Any],
    out: Path | None,
    opts: RunOptions,
    workers: int,
    t_start: float,
    meter: jruntime.CompileMeter,
) -> RunResult:
    exp = the_plan.experiment
    timing = [
        {"group": g.index, "arms": [a.name for a in g.arms], "members": g.size, "compile_s": None, "epoch_s": []}
        for g in the_plan.groups
    ]
    bar = Progress(the_plan.total_epochs, enabled=opts.progress)
    if workers > 1 and jax.local_device_count() == 1:
        compile_ahead(the_plan, setups, workers, timing, bar)
    collected = execute(
        the_plan,
        setups,
        out,
        fingerprint=fingerprint,
        options=opts,
        timing=timing,
        bar=bar,
        compile_seconds=lambda: meter.xla_s,
    )
    metrics = jconfigure.summary_metrics(exp, setups[0].config)
    directions = jwrite.directions(setups, collected)
    arm_dicts = [{"arm": a.name, "factors": dict(a.factors)} for a in the_plan.arms]
    summary = (
        []
        if the_plan.part is not None
        else jsummary.summarize(
            collected.metric_rows,
            collected.member_rows,
            arm_dicts,
            metrics=metrics,
            baseline=exp.baseline or the_plan.arms[0].name,
            target=exp.target,
            directions=directions,
            adjust=exp.adjust,
            equivalence_margin=exp.equivalence_margin,
        )
    )
    if collected.outcomes is not None and summary:
        summary = jboot.add_total_intervals(summary, collected.outcomes, collected.member_rows)
    wall = time.perf_counter() - t_start
    compiles = dict(counter.counts)
    if out is not None:
        record = {
            **jwrite.manifest(the_plan, setups, compiles, wall, timing, metrics, directions),
            "compile": meter.record(),
        }
        if collected.search:
            record["search"] = jsearch.manifest_section(collected.search)
        if the_plan.part is not None:
            members = [(a.name, s) for g in the_plan.groups for c in g.chunks for a, s in c]
            total = len({jgrid.static_signature(a.experiment) for a in the_plan.arms})
            record["part"] = jparts.part_record(the_plan.part, members, total)
        write(out, the_plan, collected, summary, record, fingerprint, plot=opts.plot)
        shutil.rmtree(out / "checkpoints", ignore_errors=True)
    result = RunResult.of(out, the_plan, collected, summary, compiles, wall, timing, metrics, directions)
    jcb.run_end(opts.callbacks, result)
    return result
