"""Execute a built run: the epoch loop on the host, chunk by chunk and group by group.

After every epoch the members' metrics are copied out, the progress line is printed, the callbacks see the rows,
and (with a results folder) the population state is checkpointed with orbax, so a resumed run continues to the
same final numbers. Between epochs the run's stop request (:mod:`jtricks.engine.stopping`) is polled: when a
signal or the time limit asks for it, the last finished epoch's checkpoint is made sure of (written if older,
read back and verified) and :class:`~jtricks.engine.stopping.RunStopped` ends the run. A group with
``Experiment.search`` is trained by successive halving (:func:`jtricks.engine.search.run_halving`) or
population-based training (:func:`jtricks.engine.pbt.run_pbt`).
Many-group runs on a many-core host compile their programs ahead of time, several at once in threads.
The rows come back in a deterministic order: arms in declaration order, seeds ascending, epochs, metrics sorted.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jtricks import metrics as jmetrics
from jtricks._core.keys import seed_key
from jtricks.engine import callbacks as jcb
from jtricks.engine import checkpoint as jckpt
from jtricks.engine import experiment as jexp
from jtricks.engine import mesh as jmesh
from jtricks.engine import pbt as jpbt
from jtricks.engine import runlog as jrunlog
from jtricks.engine import saved as jsaved
from jtricks.engine import search as jsearch
from jtricks.engine import stopping as jstop
from jtricks.engine import train as jtrain
from jtricks.engine.build import GroupSetup
from jtricks.engine.options import RunOptions
from jtricks.engine.plan import Group, Plan
from jtricks.engine.progress import Progress, waiter
from jtricks.results import bootstrap as jboot

log = jrunlog.logger(__name__)

__all__ = [
    "Collected",
    "execute",
    "population_inputs",
    "compile_ahead",
    "compile_workers",
    "checkpoint_dir",
    "select_by",
]


@dataclasses.dataclass
class Collected:
    """The tidy rows of a run and the members' final parameters."""

    metric_rows: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    member_rows: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    final_states: dict[str, Any] = dataclasses.field(default_factory=dict)
    #: the index entries of the chunks saved to ``models/`` (:func:`jtricks.engine.saved.save_chunk`)
    models: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    search: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    #: with ``Experiment.test_bootstrap``: per-example test outcomes of every member (:mod:`jtricks.results.bootstrap`)
    outcomes: jboot.Outcomes | None = None


@dataclasses.dataclass
class _Execution:
    """What every chunk of one execution shares."""

    plan: Plan
    out: Path | None
    fingerprint: Mapping[str, Any]
    options: RunOptions
    bar: Progress
    timing: list[dict[str, Any]]
    collected: Collected
    #: seconds of every checkpoint this process wrote (a time limit keeps room for the next one)
    saves: list[float] = dataclasses.field(default_factory=list)
    #: XLA compile seconds so far in this process (``None``: not measured)
    compile_seconds: Callable[[], float] | None = None


def population_inputs(
    chunk: Sequence[tuple[jexp.Arm, int]], size: int, config: jtrain.TrainConfig
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """The stacked seed keys and hyperparameters of ``chunk``, padded to ``size`` members with copies of
    its first member (so every chunk of a group has the same shape)."""
    padded = list(chunk) + [chunk[0]] * (size - len(chunk))
    keys = jnp.stack([seed_key(s) for _, s in padded])
    per = [jtrain.validate_hparams(config, dict(arm.hparams)) for arm, _ in padded]
    hp = {k: jnp.asarray(np.array([p[k] for p in per], dtype=np.float32)) for k in config.hparam_names()}
    return keys, hp


def compile_workers(requested: int | None, groups: int) -> int:
    if requested is None:
        return max(1, min(groups, (os.cpu_count() or 1) // 2))
    if isinstance(requested, bool) or not isinstance(requested, int) or requested < 1:
        raise ValueError(f"`compile_workers` must be a positive integer or None, got {requested!r}")
    return requested


def compile_ahead(
    the_plan: Plan,
    setups: Sequence[GroupSetup],
    workers: int,
    timing: list[dict[str, Any]],
    bar: Progress | None = None,
) -> None:
    """Lower every group's programs (here, in order), compile them ``workers`` at a time in threads and
    install the executables; each group's ``compile_s`` is the sum of its programs' compile times, shown on
    ``bar`` (``compiling group g/G ... S s``) as soon as the group's last program is compiled."""
    jobs = []
    for g, s in zip(the_plan.groups, setups):
        keys, hp = population_inputs(g.chunks[0], g.size, s.config)
        jobs.extend((g.index, name, low) for name, low in s.programs.lower(keys, hp).items())
    left = {g.index: sum(1 for j in jobs if j[0] == g.index) for g in the_plan.groups}

    def compile_one(job: tuple[int, str, Any]) -> tuple[int, str, Any, float]:
        gi, name, low = job
        t0 = time.perf_counter()
        return gi, name, low.compile(), time.perf_counter() - t0

    if bar is not None:
        bar.compiling(f"{len(the_plan.groups)} static groups ahead of time, {workers} at once")
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for future in as_completed([pool.submit(compile_one, j) for j in jobs]):
            gi, name, exe, secs = future.result()
            setups[gi].programs.install({name: exe})
            timing[gi]["compile_s"] = round((timing[gi]["compile_s"] or 0.0) + secs, 3)
            left[gi] -= 1
            if bar is not None and not left[gi]:
                bar.compiled(_group_label(the_plan, gi), timing[gi]["compile_s"])


def _group_label(the_plan: Plan, gi: int) -> str:
    return f"group {gi + 1}/{len(the_plan.groups)}"


def checkpoint_dir(out_dir: Path, group: int, chunk: int) -> Path:
    return out_dir / "checkpoints" / f"group{group}_chunk{chunk}"


def select_by(config: jtrain.TrainConfig) -> str:
    """The validation metric that picks a member's best epoch: accuracy when measured, else the first metric,
    else the loss."""
    names = config.metric_names()
    return "val_acc" if "acc" in names else (f"val_{names[0]}" if names else "val_loss")


def execute(
    the_plan: Plan,
    setups: Sequence[GroupSetup],
    out: Path | None,
    *,
    fingerprint: Mapping[str, Any],
    options: RunOptions,
    timing: list[dict[str, Any]],
    bar: Progress | None = None,
    compile_seconds: Callable[[], float] | None = None,
) -> Collected:
    """Train every chunk of every group (module docstring). With ``options.save_models`` (and ``out``) every
    finished chunk's members are saved to ``out/models`` (:mod:`jtricks.engine.saved`).

    ``bar`` shows the progress (default: a :class:`~jtricks.engine.progress.Progress` on stderr when
    ``options.progress``); ``compile_seconds`` (the XLA compile seconds so far, e.g.
    :class:`jtricks.engine.runtime.CompileMeter`'s ``xla_s``) times the compiles of programs compiled on their
    first call, shown as the group's compile phase."""
    run = _Execution(
        the_plan,
        out,
        fingerprint,
        options,
        bar if bar is not None else Progress(the_plan.total_epochs, enabled=options.progress),
        timing,
        Collected(),
        compile_seconds=compile_seconds,
    )
    for g, setup in zip(the_plan.groups, setups):
        if the_plan.experiment.search is not None:
            run.collected.search.append(_run_search(run, g, setup))
            continue
        for ci, chunk in enumerate(g.chunks):
            state, history = _run_chunk(run, g, ci, setup)
            _collect(chunk, state, history, run.collected, setup.config)
            if the_plan.experiment.test_bootstrap:
                _collect_outcomes(chunk, setup, state, run.collected)
            if options.save_models and out is not None:
                run.collected.models.append(
                    jsaved.save_chunk(
                        out / jsaved.FOLDER,
                        g.index,
                        ci,
                        setup.config,
                        state,
                        [(a.name, s) for a, s in chunk],
                        input_shape=setup.data.input_shape,
                        num_outputs=setup.data.num_outputs,
                        num_train=setup.data.num_train,
                        preprocessing=setup.data.preprocessing,
                    )
                )
    arm_order = {a.name: i for i, a in enumerate(the_plan.arms)}
    run.collected.metric_rows.sort(key=lambda r: (arm_order[r["arm"]], r["seed"], r["epoch"], r["metric"]))
    run.collected.member_rows.sort(key=lambda r: (arm_order[r["arm"]], r["seed"]))
    return run.collected


def _run_chunk(run: _Execution, g: Group, ci: int, setup: GroupSetup) -> tuple[Any, list]:
    """Train one chunk of a group from its initial (or checkpointed) state; returns (final state, history).

    Before every epoch the stop request is polled (:func:`_poll_stop`). A ``KeyboardInterrupt`` (a second stop
    signal: :class:`~jtricks.engine.stopping.Interrupted`) leaves with ``.epoch``: the chunk's last epoch whose
    checkpoint is complete (with checkpoints), else its last finished epoch; ``.epochs`` and ``.where`` too."""
    lazy = ci == 0 and run.timing[g.index]["compile_s"] is None  # compiled on first use, i.e. now
    compile_at = run.compile_seconds() if (lazy and run.compile_seconds is not None) else None
    if lazy:
        run.bar.compiling(_group_label(run.plan, g.index))
    keys, hp = population_inputs(g.chunks[ci], g.size, setup.config)
    if setup.sharding is not None:
        keys, hp = jax.device_put((keys, hp), setup.sharding)
    state = setup.programs.init(keys, hp)
    history: list[dict[str, np.ndarray]] = []
    ck = checkpoint_dir(run.out, g.index, ci) if (run.out is not None and run.options.checkpoint) else None
    if run.options.resume and ck is not None:
        loaded = jckpt.restore(ck, state, run.fingerprint)
        if loaded is not None:
            _, state, history = loaded
            if setup.sharding is not None:
                state = jax.device_put(state, setup.sharding)
            run.bar.done += len(history)
            _say_resumed(run, g, ci, len(history))
    epochs, every = setup.config.epochs, run.options.checkpoint_every
    safe = first = len(history)
    try:
        for epoch in range(first, epochs):
            _poll_stop(run, g, ci, state, history, ck, safe, epochs)
            t_epoch = time.perf_counter()
            state, m = _one_epoch(run, _epoch_label(run, g, ci, epoch, epochs), setup, state)
            history.append({k: np.asarray(v) for k, v in m.items()})
            run.timing[g.index]["epoch_s"].append(round(time.perf_counter() - t_epoch, 4))
            if lazy and epoch == first:
                _say_compiled(run, g, compile_at)
            _report_epoch(run, g, ci, epoch, state, history[-1], setup.config)
            if run.options.callbacks:
                jcb.epoch_end(run.options.callbacks, [(a.name, s) for a, s in g.chunks[ci]], epoch + 1, history[-1])
            if ck is None:
                safe = epoch + 1
            elif (epoch + 1) % every == 0 or epoch + 1 == epochs:
                _save(run, ck, state, history)
                safe = epoch + 1
    except KeyboardInterrupt as e:
        e.epoch, e.epochs, e.where = safe, epochs, _where(run, g, ci)  # type: ignore[attr-defined]
        raise
    return state, history


def _epoch_label(run: _Execution, g: Group, ci: int, epoch: int, epochs: int) -> str:
    return f"{_group_label(run.plan, g.index)} chunk {ci + 1}/{len(g.chunks)} epoch {epoch + 1}/{epochs}"


def _one_epoch(run: _Execution, label: str, setup: GroupSetup, state: Any) -> tuple[Any, dict[str, Any]]:
    """One epoch of the population, with heartbeats while it runs: per step in the host-loop mode (the step
    done on the device, waited for only when a line is printed), a running time in the scan mode."""
    bar = run.bar
    bar.start_epoch(label)
    on_step = None
    if bar.enabled:
        on_step = lambda done, total, m: bar.beat((done, total), wait=lambda: jax.block_until_ready(m))  # noqa: E731
    state, m = setup.programs.run_epoch(state, on_step=on_step)
    if bar.enabled:
        bar.wait(waiter(m))
    return state, m


def _say_compiled(run: _Execution, g: Group, compile_at: float | None) -> None:
    """The compile phase of a group compiled on first use, once its first epoch is done."""
    label = _group_label(run.plan, g.index)
    if compile_at is None or run.compile_seconds is None:
        run.bar.compiled(label, run.timing[g.index]["epoch_s"][-1], " (on first use, with the first epoch)")
    else:
        run.bar.compiled(label, run.compile_seconds() - compile_at, " (on first use)")


def _save(run: _Execution, ck: Path, state: Any, history: list[dict[str, np.ndarray]]) -> None:
    t_save = time.perf_counter()
    jckpt.save(ck, len(history), state, history, run.fingerprint)
    run.saves.append(time.perf_counter() - t_save)


def _where(run: _Execution, g: Group, ci: int) -> str:
    """``"chunk c/C"`` counting the chunks of every group, ``""`` for a run of one chunk."""
    total = sum(len(x.chunks) for x in run.plan.groups)
    if total <= 1:
        return ""
    return f"chunk {sum(len(x.chunks) for x in run.plan.groups[: g.index]) + ci + 1}/{total}"


def _next_epoch_s(run: _Execution, g: Group) -> float | None:
    """The seconds the next epoch of group ``g`` is expected to take: the longest of its last three epochs in
    this process (its first epoch, which may include compiling, only when it is the only one), else of the
    run's; ``None`` before any epoch ran."""
    times = run.timing[g.index]["epoch_s"] or [t for gt in run.timing for t in gt["epoch_s"]]
    if not times:
        return None
    return max((times[1:] if len(times) > 1 else times)[-3:])


def _poll_stop(
    run: _Execution,
    g: Group,
    ci: int,
    state: Any,
    history: list[dict[str, np.ndarray]],
    ck: Path | None,
    saved: int,
    epochs: int,
) -> None:
    """Raise :class:`~jtricks.engine.stopping.RunStopped` when the stop request asks for it, after making sure
    the checkpoint of the last finished epoch is on disk and reads back intact (written when ``saved``, the
    newest checkpointed epoch, is older)."""
    stop = run.options.stop
    if stop is None:
        return
    estimate = _next_epoch_s(run, g)
    reason = stop.due(estimate, max(run.saves, default=0.0))
    if reason is None:
        return
    epoch = len(history)
    if ck is not None and epoch > 0:
        if saved < epoch or not jckpt.verify(ck, epoch):
            _save(run, ck, state, history)
        if not jckpt.verify(ck, epoch):
            raise jckpt.CheckpointWriteError(
                errno.EIO, f"cannot write checkpoint {ck / str(epoch)}: it does not read back intact"
            )
    raise jstop.RunStopped(
        reason,
        signum=stop.signum,
        epoch=epoch,
        epochs=epochs,
        where=_where(run, g, ci),
        resumable=ck is not None,
        not_resumable="" if ck is not None else ("checkpoints are off" if run.out is not None else "no results folder"),
        next_epoch_s=estimate,
    )


def _say_resumed(run: _Execution, g: Group, ci: int, epoch: int) -> None:
    """``jtricks: resumed from epoch N`` on the terminal and in the run log (naming the chunk when the run has
    several)."""
    where = _where(run, g, ci)
    log.info("jtricks: resumed from epoch %d%s", epoch, f" ({where})" if where else "")


def _report_epoch(
    run: _Execution,
    g: Group,
    ci: int,
    epoch: int,
    state: Any,
    metrics: Mapping[str, np.ndarray],
    config: jtrain.TrainConfig,
) -> None:
    rows = list(range(len(g.chunks[ci])))
    _show_epoch(run, g, _epoch_label(run, g, ci, epoch, config.epochs), state, metrics, select_by(config), rows)


def _show_epoch(
    run: _Execution, g: Group, label: str, state: Any, metrics: Mapping[str, np.ndarray], metric: str, rows: list[int]
) -> None:
    """The progress line of an epoch just timed: the mean finite ``metric`` over the members ``rows`` and how many
    of them diverged; the epoch's seconds count toward the ETA unless it is the group's first in this process
    (which includes compiling)."""
    shown = metrics[metric][rows]
    finite = shown[np.isfinite(shown)]
    times = run.timing[g.index]["epoch_s"]
    run.bar.update(
        label,
        float(finite.mean()) if finite.size else float("nan"),
        int(np.sum(np.asarray(state.diverged_epoch)[rows] >= 0)),
        metric=metric,
        seconds=times[-1],
        measured=len(times) > 1,
    )


def _run_search(run: _Execution, g: Group, setup: GroupSetup) -> dict[str, Any]:
    """A group trained with successive halving (:func:`jtricks.engine.search.run_halving`) or population-based
    training (:func:`jtricks.engine.pbt.run_pbt`); returns its record."""
    exp = run.plan.experiment
    config, search = setup.config, exp.search
    metric = search.metric or select_by(config)
    t_epoch = [time.perf_counter()]

    def on_epoch(epoch: int, state: Any, m: Mapping[str, np.ndarray], rows: Sequence[int]) -> None:
        run.timing[g.index]["epoch_s"].append(round(time.perf_counter() - t_epoch[0], 4))
        label = f"{_group_label(run.plan, g.index)} epoch {epoch}/{config.epochs} members {len(rows)}"
        _show_epoch(run, g, label, state, m, metric, list(rows))
        stop = run.options.stop
        reason = stop.due(_next_epoch_s(run, g)) if stop is not None and epoch < config.epochs else None
        if reason is not None:
            raise jstop.RunStopped(
                reason,
                signum=stop.signum,
                epoch=epoch,
                epochs=config.epochs,
                where=_where(run, g, 0),
                resumable=False,
                not_resumable="a search (halving, PBT) keeps no checkpoints",
                next_epoch_s=_next_epoch_s(run, g),
            )
        t_epoch[0] = time.perf_counter()

    common = dict(
        epochs=config.epochs,
        metric=metric,
        devices=jmesh.member_devices(run.plan.data_parallel),
        higher_is_better=jmetrics.higher_is_better(metric, {m.name: m for m in config.metrics}),
        place=(lambda t: jax.device_put(t, setup.sharding)) if setup.sharding is not None else (lambda t: t),
        on_epoch=on_epoch,
        collect=lambda ms, state, hist: _collect(ms, state, hist, run.collected, config),
    )
    inputs = lambda ms, size: population_inputs(ms, size, config)  # noqa: E731
    if isinstance(search, jsearch.PBT):
        explored = search.explored(list(exp.grid), config.hparam_names())
        record = jpbt.run_pbt(
            g.chunks[0],
            search,
            setup.programs,
            inputs,
            explored=explored,
            distributions={k: exp.grid[k] for k in explored if k in exp.grid},
            seed=exp.sample_seed,
            group=g.index,
            **common,
        )
    else:
        record = jsearch.run_halving(
            g.chunks[0], search, setup.programs, inputs, compile_s=run.timing[g.index]["compile_s"], **common
        )
    run.timing[g.index]["population_per_epoch"] = record["population_per_epoch"]
    return {"group": g.index, **record}


def _collect_outcomes(
    chunk: Sequence[tuple[jexp.Arm, int]], setup: GroupSetup, state: jtrain.TrainState, collected: Collected
) -> None:
    """Add the chunk's per-example test outcomes (its final state: the restored best model of an early-stopped
    member) to ``collected.outcomes``."""
    values = setup.programs.test_outcomes(state)[: len(chunk)].astype(np.float64)
    members = [(arm.name, seed) for arm, seed in chunk]
    metric = jtrain.outcome_metric(setup.config)
    old = collected.outcomes
    if old is None:
        collected.outcomes = jboot.Outcomes(metric, members, values)
    elif old.metric != metric or old.values.shape[1] != values.shape[1]:
        raise ValueError(
            f"test_bootstrap: the static groups measure different test outcomes ({old.metric} of "
            f"{old.values.shape[1]} examples, {metric} of {values.shape[1]}); run them as separate experiments"
        )
    else:
        collected.outcomes = jboot.Outcomes(metric, old.members + members, np.concatenate([old.values, values]))


def _collect(
    chunk: Sequence[tuple[jexp.Arm, int]],
    state: jtrain.TrainState,
    history: list[dict[str, np.ndarray]],
    collected: Collected,
    config: jtrain.TrainConfig,
) -> None:
    diverged = np.asarray(state.diverged_epoch)
    stopped = np.asarray(state.early.stop_epoch) if config.early_stopping else np.full(diverged.shape, -1)
    es_best = np.asarray(state.early.best_epoch) if config.early_stopping else None
    picked_by = select_by(config)
    params = jax.device_get(state.params)  # one transfer (indexing device arrays compiles a slice per shape)
    for e, h in enumerate(history):
        collected.metric_rows.extend(jcb.tidy_rows([(arm.name, seed) for arm, seed in chunk], e + 1, h))
    sign = 1.0 if jmetrics.higher_is_better(picked_by, {m.name: m for m in config.metrics}) else -1.0
    for i, (arm, seed) in enumerate(chunk):
        curve = np.array([h[picked_by][i] for h in history]) * sign
        if es_best is not None:
            best = int(es_best[i])
        else:
            best = int(np.nanargmax(curve)) + 1 if np.isfinite(curve).any() else -1
        collected.member_rows.append(
            {
                "arm": arm.name,
                "seed": seed,
                "diverged_epoch": int(diverged[i]),
                "stopped_epoch": int(stopped[i]),
                "best_epoch": best,
            }
        )
        collected.final_states[f"{arm.name}/seed={seed}"] = jax.tree_util.tree_map(lambda x: np.array(x[i]), params)
