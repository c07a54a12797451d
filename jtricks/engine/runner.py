"""Execute an :class:`~jtricks.experiment.Experiment`: one compiled, vmapped population per static configuration.

:func:`run` is four steps, each a function of its own:

1. :func:`plan` — validate the experiment, group the arms by static configuration and cut each group's
   members (arms × seeds) into chunks of equal size (the last chunk is padded with copies, so no chunk
   recompiles); nothing is loaded or compiled;
2. :func:`build` — per group: prepare the data (:mod:`jtricks.prepare`, shared by groups with the same
   data settings), check the targets against the loss and the model, and create the jitted programs
   (:class:`jtricks.programs.GroupPrograms`); on a many-core host the groups' programs are compiled ahead
   of time, several at once in threads (``compile_workers``);
3. :func:`execute` — the epoch loop on the host: after every epoch the metrics are copied out, a progress
   line is printed, and (with an output folder) the population state is checkpointed with orbax, so
   ``resume=True`` continues an interrupted run to the same final numbers;
4. :func:`write` — the results folder (``docs/results-format.md``).

With several devices the population axis is sharded across this process's devices (``jax.sharding``, an
explicit output sharding on every program). ``part`` trains one slice of the members (:mod:`jtricks.parts`);
several processes each train theirs (:mod:`jtricks.distributed`).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import errno
import json
import os
import platform
import shutil
import signal
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

import jtricks
from jtricks.engine import callbacks as jcb
from jtricks.engine import checkpoint as jckpt
from jtricks.engine import experiment as jexp
from jtricks.results import fingerprint as jfp
from jtricks import losses as jlosses
from jtricks import metrics as jmetrics
from jtricks.engine import parts as jparts
from jtricks.engine import population as jpop
from jtricks.engine import prepare as jprep
from jtricks.engine import programs as jprog
from jtricks.engine import provenance as jprov
from jtricks.results import report as jreport
from jtricks.results import files as jresults
from jtricks.engine import runtime as jruntime
from jtricks.engine import saved as jsaved
from jtricks.engine import search as jsearch
from jtricks.engine import train as jtrain
from jtricks.studies import tuning as jtuning
from jtricks._core.keys import seed_key
from jtricks._core import files as jfiles

__all__ = ["RunResult", "Plan", "Group", "GroupSetup", "run", "plan", "build", "execute", "write", "Progress"]


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

    def history(self, arm: str, metric: str) -> np.ndarray:
        """``(seeds, epochs)`` array of ``metric`` for ``arm``."""
        rows = [r for r in self.metric_rows if r["arm"] == arm and r["metric"] == metric]
        seeds = sorted({r["seed"] for r in rows})
        epochs = sorted({r["epoch"] for r in rows})
        out = np.full((len(seeds), len(epochs)), np.nan)
        for r in rows:
            out[seeds.index(r["seed"]), epochs.index(r["epoch"])] = r["value"]
        return out


# ----------------------------------------------------------------------------------------- progress
class Progress:
    """A one-line progress bar per epoch with ETA and the current mean of a validation metric."""

    def __init__(self, total_epochs: int, *, enabled: bool = True, stream: Any = None) -> None:
        self.total = max(1, total_epochs)
        self.done = 0
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.t0 = time.perf_counter()
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def update(self, label: str, mean_value: float, n_diverged: int, *, metric: str = "val_acc") -> None:
        self.done += 1
        if not self.enabled:
            return
        elapsed = time.perf_counter() - self.t0
        eta = elapsed / self.done * (self.total - self.done)
        width = 24
        fill = int(width * self.done / self.total)
        bar = "#" * fill + "-" * (width - fill)
        div = f" diverged {n_diverged}" if n_diverged else ""
        line = f"[{bar}] {self.done}/{self.total} {label} {metric} {mean_value:.4f}{div} | {elapsed:5.1f}s ETA {eta:5.1f}s"
        end = "\r" if self.tty and self.done < self.total else "\n"
        self.stream.write(("\r" if self.tty else "") + line + end)
        self.stream.flush()


# --------------------------------------------------------------------------------------------- plan
@dataclasses.dataclass(frozen=True)
class Group:
    """The arms of one static configuration and their members, cut into chunks of ``size``."""

    index: int
    arms: list[jexp.Arm]
    chunks: list[list[tuple[jexp.Arm, int]]]
    size: int

    @property
    def experiment(self) -> jexp.Experiment:
        return self.arms[0].experiment


@dataclasses.dataclass(frozen=True)
class Plan:
    """What a run will do, before anything is loaded or compiled."""

    experiment: jexp.Experiment
    arms: list[jexp.Arm]
    seeds: list[int]
    groups: list[Group]
    #: the slice of the members this run trains (``--part i/n``, :mod:`jtricks.parts`); ``None``: all
    part: jparts.Part | None = None
    #: the ``(arm, seed)`` pairs this run trains when a sample was asked for; ``None``: all
    members: list[tuple[str, int]] | None = None

    @property
    def total_epochs(self) -> int:
        return sum(len(g.chunks) * g.experiment.epochs for g in self.groups)


def plan(exp: jexp.Experiment, *, max_members: int | None = None, part: jparts.Part | None = None,
         members: Sequence[tuple[str, int]] | None = None) -> Plan:
    """Validate ``exp``, group its arms by static configuration and chunk each group's members (with
    ``part``, only that slice of the members: :func:`jtricks.parts.select`; with ``members``, only those
    ``(arm, seed)`` pairs; groups left empty are dropped). Every member computes what it would in the whole
    run: a group's program is made from all its arms, and no member depends on the population it runs in."""
    arms = jexp.validate(exp)
    max_members = max_members or exp.max_members
    seeds = list(range(exp.seed_offset, exp.seed_offset + exp.seeds))
    by_signature: dict[tuple, list[jexp.Arm]] = {}
    for arm in arms:
        by_signature.setdefault(jexp.static_signature(arm.experiment), []).append(arm)
    if part is not None and (exp.search is not None or exp.tune is not None):
        raise ValueError("a part (--part, several processes) cannot be combined with 'search' or 'tune': they rank "
                         "members against each other, so every member must be in one run")
    if max_members and exp.search is not None:
        raise ValueError("max_members cannot be combined with 'search' (successive halving and PBT run each "
                         "static group as one population)")
    wanted = None
    if part is not None:
        ordered = [(arm.name, s) for group_arms in by_signature.values() for arm in group_arms for s in seeds]
        wanted = set(jparts.select(ordered, part))
    if members is not None:
        asked = {(str(a), int(s)) for a, s in members}
        unknown = sorted(asked - {(arm.name, s) for arm in arms for s in seeds})
        if unknown or not asked:
            raise ValueError(f"`members` must be (arm, seed) pairs of the run; not in it: {unknown[:5] or 'none given'}")
        wanted = asked if wanted is None else wanted & asked
    groups = []
    for group_arms in by_signature.values():
        mine = [(arm, s) for arm in group_arms for s in seeds if wanted is None or (arm.name, s) in wanted]
        if not mine:
            continue
        size = jpop.padded_size(len(mine) if not max_members else min(max_members, len(mine)), jax.local_device_count())
        # all the group's arms, even in a part: they decide the program (e.g. whether dropout is built)
        groups.append(Group(len(groups), group_arms, [mine[i : i + size] for i in range(0, len(mine), size)], size))
    chosen = None if members is None else sorted(wanted, key=lambda m: ([a.name for a in arms].index(m[0]), m[1]))
    return Plan(exp, arms, seeds, groups, part, chosen)


# -------------------------------------------------------------------------------------------- build
@dataclasses.dataclass
class GroupSetup:
    """A group's prepared data, configuration and programs."""

    programs: jprog.GroupPrograms
    config: jtrain.TrainConfig
    data: jprep.PreparedData
    sharding: Any


def _population_sharding() -> Any:
    """The population axis split over this process's devices (``None`` with one device)."""
    devices = jax.local_devices()
    if len(devices) <= 1:
        return None
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    return NamedSharding(Mesh(np.array(devices), ("pop",)), PartitionSpec("pop"))


def build(the_plan: Plan, counter: jprog.TraceCounter) -> list[GroupSetup]:
    """Per group: the prepared data (shared by groups with the same data settings), the checked targets,
    the configuration and the jitted programs (not compiled yet)."""
    cache: dict[tuple, jprep.PreparedData] = {}
    setups = []
    for g in the_plan.groups:
        e0 = g.experiment
        loss = jlosses.get(e0.loss)
        key = jexp.data_key(e0) + (("targets", loss.targets),)
        if key not in cache:
            cache[key] = jprep.prepare_data(e0, loss)
        prepared = cache[key]
        jprep.check_batch_size(prepared, e0.batch_size)
        model = jexp.build_model(e0, prepared.num_outputs)
        jprep.check_targets(prepared, loss, model)
        config = jexp.build_config(
            e0, model, int(prepared.device.x_train.shape[0]),
            dropout=any("dropout_rate" in a.hparams for a in g.arms),
            init_scale=any("init_scale" in a.hparams for a in g.arms),
        )
        sharding = _population_sharding()
        progs = jprog.GroupPrograms(config, prepared.device, prepared.input_shape, counter, f"group{g.index}", e0.population,
                                    sharding=sharding)
        setups.append(GroupSetup(progs, config, prepared, sharding))
    return setups


def _population_inputs(
    chunk: Sequence[tuple[jexp.Arm, int]], size: int, config: jtrain.TrainConfig
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """The stacked seed keys and hyperparameters of ``chunk``, padded to ``size`` members with copies of
    its first member (so every chunk of a group has the same shape)."""
    padded = list(chunk) + [chunk[0]] * (size - len(chunk))
    keys = jnp.stack([seed_key(s) for _, s in padded])
    per = [jtrain.validate_hparams(config, dict(arm.hparams)) for arm, _ in padded]
    hp = {k: jnp.asarray(np.array([p[k] for p in per], dtype=np.float32)) for k in config.hparam_names()}
    return keys, hp


def _compile_workers(requested: int | None, groups: int) -> int:
    if requested is None:
        return max(1, min(groups, (os.cpu_count() or 1) // 2))
    if isinstance(requested, bool) or not isinstance(requested, int) or requested < 1:
        raise ValueError(f"`compile_workers` must be a positive integer or None, got {requested!r}")
    return requested


def _compile_ahead(the_plan: Plan, setups: Sequence[GroupSetup], workers: int, timing: list[dict[str, Any]]) -> None:
    """Lower every group's programs (here, in order), compile them ``workers`` at a time in threads and
    install the executables; each group's ``compile_s`` is the sum of its programs' compile times."""
    from concurrent.futures import ThreadPoolExecutor

    jobs = []
    for g, s in zip(the_plan.groups, setups):
        keys, hp = _population_inputs(g.chunks[0], g.size, s.config)
        jobs.extend((g.index, name, low) for name, low in s.programs.lower(keys, hp).items())

    def compile_one(job: tuple[int, str, Any]) -> tuple[int, str, Any, float]:
        gi, name, low = job
        t0 = time.perf_counter()
        return gi, name, low.compile(), time.perf_counter() - t0

    with ThreadPoolExecutor(max_workers=workers) as pool:
        done = list(pool.map(compile_one, jobs))
    for gi, name, exe, secs in done:
        setups[gi].programs.install({name: exe})
        timing[gi]["compile_s"] = round((timing[gi]["compile_s"] or 0.0) + secs, 3)


def _ckpt_dir(out_dir: Path, group: int, chunk: int) -> Path:
    return out_dir / "checkpoints" / f"group{group}_chunk{chunk}"


def _fingerprint(the_plan: Plan, setups: Sequence[GroupSetup], max_members: int | None) -> dict[str, Any]:
    """The run's fingerprint (:mod:`jtricks.fingerprint`): the settings its numbers depend on, the seeds,
    the chunking, the data checksums and the package version."""
    exp = the_plan.experiment
    fields = {f.name: getattr(exp, f.name) for f in dataclasses.fields(exp) if f.name not in jexp.REPORT_ONLY}
    as_json = jexp.to_json
    settings = {
        "experiment": as_json(fields),
        "arms": [{"arm": a.name, "factors": as_json(dict(a.factors))} for a in the_plan.arms],
        "seeds": list(the_plan.seeds),
        "max_members": max_members or exp.max_members,
        "data": sorted({s.data.checksum for s in setups}),
        "jtricks": jtricks.__version__,
        "numerics": jruntime.numerics_in_force(),
    }
    if the_plan.part is not None:  # a part's checkpoints and folder are its own; jtricks.parts.merge drops it
        settings["part"] = {"index": the_plan.part.index, "count": the_plan.part.count}
    if the_plan.members is not None:  # a sample of the members (jtricks reproduce)
        settings["members"] = [[a, s] for a, s in the_plan.members]
    return jfp.run_fingerprint(settings)


# ------------------------------------------------------------------------------------------ execute
@dataclasses.dataclass
class Collected:
    """The tidy rows of a run and the members' final parameters."""

    metric_rows: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    member_rows: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    final_states: dict[str, Any] = dataclasses.field(default_factory=dict)
    #: the index entries of the chunks saved to ``models/`` (:func:`jtricks.saved.save_chunk`)
    models: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    search: list[dict[str, Any]] = dataclasses.field(default_factory=list)


def _select_by(config: jtrain.TrainConfig) -> str:
    """The validation metric that picks a member's best epoch: accuracy when measured, else the first metric,
    else the loss."""
    names = config.metric_names()
    return "val_acc" if "acc" in names else (f"val_{names[0]}" if names else "val_loss")


def _run_chunk(gi: int, ci: int, the_plan: Plan, setup: GroupSetup, out: Path | None, *, resume: bool,
               checkpoint: bool, bar: Progress, timing: list[dict[str, Any]], fingerprint: Mapping[str, Any],
               kill_after: int | None, callbacks: Sequence[Any] = ()) -> tuple[Any, list]:
    """Train one chunk of a group from its initial (or checkpointed) state; returns (final state, history).

    A ``KeyboardInterrupt`` leaves with ``.epoch``: the chunk's last epoch whose checkpoint is complete
    (with checkpoints), else its last finished epoch."""
    g = the_plan.groups[gi]
    keys, hp = _population_inputs(g.chunks[ci], g.size, setup.config)
    if setup.sharding is not None:
        keys, hp = jax.device_put((keys, hp), setup.sharding)
    state = setup.programs.init(keys, hp)
    history: list[dict[str, np.ndarray]] = []
    ck = _ckpt_dir(out, gi, ci) if (out is not None and checkpoint) else None
    if resume and ck is not None:
        loaded = jckpt.restore(ck, state, fingerprint)
        if loaded is not None:
            _, state, history = loaded
            if setup.sharding is not None:
                state = jax.device_put(state, setup.sharding)
            bar.done += len(history)
    safe = len(history)
    try:
        for epoch in range(len(history), setup.config.epochs):
            t_epoch = time.perf_counter()
            state, m = setup.programs.run_epoch(state)
            history.append({k: np.asarray(v) for k, v in m.items()})
            timing[gi]["epoch_s"].append(round(time.perf_counter() - t_epoch, 4))
            _report_epoch(bar, the_plan, gi, ci, epoch, state, history[-1], setup.config)
            if callbacks:
                jcb.epoch_end(callbacks, [(a.name, s) for a, s in g.chunks[ci]], epoch + 1, history[-1])
            if ck is not None:
                jckpt.save(ck, epoch + 1, state, history, fingerprint)
            safe = epoch + 1
            if kill_after is not None and epoch + 1 == kill_after:
                os.kill(os.getpid(), signal.SIGKILL)
    except KeyboardInterrupt as e:
        e.epoch = safe  # type: ignore[attr-defined]
        raise
    return state, history


def _report_epoch(bar: Progress, the_plan: Plan, gi: int, ci: int, epoch: int, state: Any,
                  metrics: Mapping[str, np.ndarray], config: jtrain.TrainConfig) -> None:
    g = the_plan.groups[gi]
    n_real = len(g.chunks[ci])
    monitor = _select_by(config)
    shown = metrics[monitor][:n_real]
    finite = shown[np.isfinite(shown)]
    bar.update(
        f"group {gi + 1}/{len(the_plan.groups)} chunk {ci + 1}/{len(g.chunks)} epoch {epoch + 1}/{config.epochs}",
        float(finite.mean()) if finite.size else float("nan"),
        int(np.sum(np.asarray(state.diverged_epoch)[:n_real] >= 0)),
        metric=monitor,
    )


def execute(the_plan: Plan, setups: Sequence[GroupSetup], out: Path | None, *, fingerprint: Mapping[str, Any],
            resume: bool = False, checkpoint: bool = True, progress: bool = True, timing: list[dict[str, Any]],
            save_models: bool = False, callbacks: Sequence[Any] = (), _kill_after_epoch: int | None = None) -> Collected:
    """Train every chunk of every group; the rows come back in a deterministic order (arms in declaration
    order, seeds ascending, epochs, metrics sorted). With ``save_models`` (and ``out``) every finished
    chunk's members are saved to ``out/models`` (:mod:`jtricks.saved`)."""
    bar = Progress(the_plan.total_epochs, enabled=progress)
    collected = Collected()
    for g, setup in zip(the_plan.groups, setups):
        if the_plan.experiment.search is not None:
            collected.search.append(_run_search(the_plan, g, setup, bar, timing, collected))
            continue
        for ci, chunk in enumerate(g.chunks):
            state, history = _run_chunk(g.index, ci, the_plan, setup, out, resume=resume, checkpoint=checkpoint,
                                        bar=bar, timing=timing, fingerprint=fingerprint, kill_after=_kill_after_epoch,
                                        callbacks=callbacks)
            _collect(chunk, state, history, collected, setup.config)
            if save_models and out is not None:
                collected.models.append(jsaved.save_chunk(
                    out / jsaved.FOLDER, g.index, ci, setup.config, state, [(a.name, s) for a, s in chunk],
                    input_shape=setup.data.input_shape, num_outputs=setup.data.num_outputs,
                    num_train=int(setup.data.device.x_train.shape[0])))
    arm_order = {a.name: i for i, a in enumerate(the_plan.arms)}
    collected.metric_rows.sort(key=lambda r: (arm_order[r["arm"]], r["seed"], r["epoch"], r["metric"]))
    collected.member_rows.sort(key=lambda r: (arm_order[r["arm"]], r["seed"]))
    return collected


def _run_search(the_plan: Plan, g: Group, setup: GroupSetup, bar: Progress, timing: list[dict[str, Any]],
                collected: Collected) -> dict[str, Any]:
    """A group trained with successive halving (:func:`jtricks.search.run_halving`) or population-based
    training (:func:`jtricks.pbt.run_pbt`); returns its record."""
    from jtricks.engine import pbt as jpbt

    exp = the_plan.experiment
    config, search = setup.config, exp.search
    metric = search.metric or _select_by(config)
    t_epoch = [time.perf_counter()]

    def on_epoch(epoch: int, state: Any, m: Mapping[str, np.ndarray], n_real: int) -> None:
        timing[g.index]["epoch_s"].append(round(time.perf_counter() - t_epoch[0], 4))
        shown = m[metric][:n_real]
        finite = shown[np.isfinite(shown)]
        bar.update(f"group {g.index + 1}/{len(the_plan.groups)} epoch {epoch}/{config.epochs} members {n_real}",
                   float(finite.mean()) if finite.size else float("nan"),
                   int(np.sum(np.asarray(state.diverged_epoch)[:n_real] >= 0)), metric=metric)
        t_epoch[0] = time.perf_counter()

    common = dict(
        epochs=config.epochs, metric=metric, devices=jax.local_device_count(),
        higher_is_better=jmetrics.higher_is_better(metric, {m.name: m for m in config.metrics}),
        place=(lambda t: jax.device_put(t, setup.sharding)) if setup.sharding is not None else (lambda t: t),
        on_epoch=on_epoch, collect=lambda ms, state, hist: _collect(ms, state, hist, collected, config),
    )
    inputs = lambda ms, size: _population_inputs(ms, size, config)  # noqa: E731
    if isinstance(search, jsearch.PBT):
        explored = search.explored(list(exp.grid), config.hparam_names())
        record = jpbt.run_pbt(g.chunks[0], search, setup.programs, inputs, explored=explored,
                              distributions={k: exp.grid[k] for k in explored if k in exp.grid},
                              seed=exp.sample_seed, group=g.index, **common)
    else:
        record = jsearch.run_halving(g.chunks[0], search, setup.programs, inputs, **common)
    timing[g.index]["members_per_epoch"] = record["members_per_epoch"]
    return {"group": g.index, **record}


def _collect(chunk: Sequence[tuple[jexp.Arm, int]], state: jtrain.TrainState, history: list[dict[str, np.ndarray]],
             collected: Collected, config: jtrain.TrainConfig) -> None:
    diverged = np.asarray(state.diverged_epoch)
    stopped = np.asarray(state.early.stop_epoch) if config.early_stopping else np.full(diverged.shape, -1)
    es_best = np.asarray(state.early.best_epoch) if config.early_stopping else None
    select_by = _select_by(config)
    for e, h in enumerate(history):
        collected.metric_rows.extend(jcb.tidy_rows([(arm.name, seed) for arm, seed in chunk], e + 1, h))
    sign = 1.0 if jmetrics.higher_is_better(select_by, {m.name: m for m in config.metrics}) else -1.0
    for i, (arm, seed) in enumerate(chunk):
        curve = np.array([h[select_by][i] for h in history]) * sign
        if es_best is not None:
            best = int(es_best[i])
        else:
            best = int(np.nanargmax(curve)) + 1 if np.isfinite(curve).any() else -1
        collected.member_rows.append(
            {"arm": arm.name, "seed": seed, "diverged_epoch": int(diverged[i]), "stopped_epoch": int(stopped[i]), "best_epoch": best}
        )
        collected.final_states[f"{arm.name}/seed={seed}"] = jax.tree_util.tree_map(lambda x: np.asarray(x[i]), state.params)


# -------------------------------------------------------------------------------------------- write
def _version(dist: str) -> str:
    try:
        from importlib.metadata import version

        return version(dist)
    except Exception:
        return "unknown"


def _manifest(the_plan: Plan, setups: Sequence[GroupSetup], compiles: Mapping[str, int], wall: float,
              timing: Sequence[Mapping[str, Any]], metrics: Sequence[str], directions: Mapping[str, bool]) -> dict[str, Any]:
    import flax
    import optax

    exp, arms = the_plan.experiment, the_plan.arms
    as_json = jexp.to_json
    return {
        "experiment": exp.name,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "versions": {
            "python": platform.python_version(), "jax": jax.__version__, "jaxlib": _version("jaxlib"),
            "optax": optax.__version__, "flax": flax.__version__, "numpy": np.__version__, "jtricks": jtricks.__version__,
        },
        "device": {
            "backend": jax.default_backend(), "kind": jax.devices()[0].device_kind, "count": jax.local_device_count(),
            "platform": platform.platform(), "processor": platform.machine(),
        },
        "prng_impl": str(jax.config.jax_default_prng_impl),
        "numerics": jruntime.numerics_record(),
        "runtime": jruntime.current(),
        "seeds": list(the_plan.seeds),
        "config": as_json({f.name: getattr(exp, f.name) for f in dataclasses.fields(exp)}),
        "parts": {part: sorted(fields) for part, fields in jexp.parts(exp).items()},
        "data": sorted({(s.data.description, s.data.checksum) for s in setups}),
        "arms": [{"arm": a.name, "factors": as_json(dict(a.factors))} for a in arms],
        "baseline": exp.baseline or arms[0].name,
        "metrics": list(metrics),
        "directions": {k: ("higher" if v else "lower") for k, v in sorted(directions.items())},
        "target": exp.target,
        "static_groups": len(the_plan.groups),
        "compiles": dict(compiles),
        "timing": list(timing),
        "wall_time_s": round(wall, 3),
        **jprov.manifest_entries(the_plan.groups, [s.config for s in setups], [s.data.num_outputs for s in setups]),
    }


def write(out: Path, the_plan: Plan, collected: Collected, summary: list[dict[str, Any]], manifest: Mapping[str, Any],
          fingerprint: Mapping[str, Any], *, plot: bool = True) -> None:
    """Write the results folder, every file atomically (temporary file + rename): metrics.csv, members.csv,
    arms.json, summary.md/csv, curves.png, and last manifest.json with the fingerprint and the files' hashes
    (its presence marks a finished run)."""
    exp = the_plan.experiment
    with jfiles.atomic_file(out / "metrics.csv") as tmp:
        jreport.write_metrics_csv(tmp, collected.metric_rows)
    with jfiles.atomic_file(out / "members.csv") as tmp:
        jreport.write_members_csv(tmp, collected.member_rows)
    arm_dicts = [{"arm": a.name, "factors": dict(a.factors)} for a in the_plan.arms]
    jfiles.write_atomic(out / "arms.json", json.dumps(jexp.to_json(arm_dicts), indent=2) + "\n")
    if the_plan.part is not None:  # a part: the raw rows only; `jtricks merge` writes the summaries
        jresults.write_manifest(out, manifest, fingerprint)
        return
    jreport.write_summary(out, summary, title=f"{exp.name}: {exp.description}".strip(": "), directions=manifest["directions"],
                          arms=arm_dicts)
    lineage = [r for rec in collected.search for r in rec.get("lineage", ())]
    if lineage:  # population-based training: who copied whom, each member's hyperparameter schedule
        from jtricks.engine import pbt as jpbt

        explored = collected.search[0]["explored"]
        with jfiles.atomic_file(out / "lineage.csv") as tmp:
            jpbt.write_lineage(tmp, lineage, explored)
        jfiles.write_atomic(out / "pbt.md", jpbt.markdown(collected.search))
        jreport.append_sections(out, ("pbt.md",))
        if plot:
            with jfiles.atomic_file(out / "lineage.png") as tmp:
                jpbt.plot_lineage(tmp, lineage, explored, epochs=exp.epochs, title=f"{exp.name}: PBT lineage")
    if plot:
        produced = {r["metric"] for r in collected.metric_rows}
        panels = tuple(m for m in dict.fromkeys([*manifest["metrics"], "train_loss", "val_acc"]) if m in produced)
        with jfiles.atomic_file(out / "curves.png") as tmp:
            jreport.plot_curves(tmp, collected.metric_rows, metrics=panels, title=exp.name,
                                member_rows=collected.member_rows, arms=arm_dicts)
    if collected.models:
        jsaved.write_index(out / jsaved.FOLDER, collected.models)
    jresults.write_manifest(out, manifest, fingerprint)


# ---------------------------------------------------------------------------------------------- run
def run(
    exp: jexp.Experiment,
    *,
    out_dir: str | os.PathLike | None = None,
    resume: bool = False,
    max_members: int | None = None,
    progress: bool = True,
    checkpoint: bool = True,
    plot: bool = True,
    compile_workers: int | None = None,
    save_models: bool = True,
    callbacks: Sequence[Any] | None = None,
    part: jparts.Part | None = None,
    numerics: str = "portable",
    members: Sequence[tuple[str, int]] | None = None,
    _kill_after_epoch: int | None = None,
) -> RunResult:
    """Run every arm × seed of ``exp`` (:func:`plan`, :func:`build`, :func:`execute`) and write the results
    folder (:func:`write`; see ``docs/results-format.md``).

    Nothing is written before the settings are validated and the data is loaded and checked (a bad
    setting or data file leaves no folder behind). Then the run takes the folder's lock
    (:func:`jtricks.results_io.lock`: a second writer fails with "FOLDER is in use by PID n"; a folder
    already locked is refused before any data loads); a fresh (not resumed) run removes the folder's
    manifest and checkpoints, so stale results never count as this run's; a resumed run checks the
    checkpoints' fingerprints before anything compiles.

    Args:
      exp: the experiment (validated here, before any data is loaded or anything compiles).
      out_dir: results folder (``None``: nothing written, no checkpoints).
      resume: continue from the checkpoints in ``out_dir`` (chunks already finished are not re-run); a
        checkpoint made with other settings is refused (:class:`jtricks.fingerprint.FingerprintMismatchError`).
      max_members: population chunk size (overrides ``exp.max_members``).
      progress: print a progress line per epoch to stderr.
      checkpoint: save the population state after every epoch (needs ``out_dir``).
      plot: write ``curves.png``.
      compile_workers: compile the static groups' programs ahead of time, this many at once, before any
        training (XLA releases the GIL while it compiles, so the compile wall time of a multi-group run
        drops from the sum towards the largest group's on a many-core host). ``None``: ``min(groups,
        cpu_count // 2)``; ``1``: no ahead-of-time step, every program compiles on its first call
        (also the behaviour with several devices). Results are identical either way (same programs).
      save_models: save every member's final (and best, averaged) weights to ``out_dir/models`` with orbax
        (:mod:`jtricks.saved`; load one with :func:`jtricks.load`).
      callbacks: objects with ``on_epoch_end(rows)`` and/or ``on_run_end(result)`` (:mod:`jtricks.callbacks`;
        :class:`jtricks.tensorboard.TensorBoard` is one), checked before anything is loaded.
      part: train only this slice of the members (:mod:`jtricks.parts`): ``out_dir`` gets their rows and a
        manifest with ``part`` (no summaries), to be merged with the other parts by :func:`jtricks.parts.merge`;
        ``RunResult.summary`` is empty.
      numerics: ``"portable"`` (default: the same bits on every x86-64 CPU from AVX2 up) or ``"native"``
        (XLA as configured; exact on this machine only): :func:`jtricks.runtime.pin_numerics`, which can
        pin the process only before JAX has started. The mode in force is recorded in the manifest
        (``numerics``) and is part of the fingerprint; a portable run that could not be pinned warns once.
      members: train only these ``(arm, seed)`` pairs (a sample: each gives the rows it gives in the whole run).
    """
    pinned = jruntime.pin_numerics(numerics)
    if pinned.mode != numerics:
        warnings.warn(f"numerics: running {pinned.mode}, not {numerics}: {pinned.note}", RuntimeWarning, stacklevel=2)
    if exp.tune is not None and part is None:  # tune each arm first, then compare (jtricks.tuning)
        return jtuning.run(exp, run, out_dir=out_dir, resume=resume, max_members=max_members, progress=progress,
                          checkpoint=checkpoint, plot=plot, compile_workers=compile_workers, save_models=save_models,
                          callbacks=callbacks, numerics=pinned.mode)
    with jruntime.CompileMeter() as meter:
        return _plan_and_run(exp, out_dir, resume=resume, max_members=max_members, progress=progress, checkpoint=checkpoint,
                             plot=plot, compile_workers=compile_workers, kill_after=_kill_after_epoch, meter=meter,
                             save_models=save_models, callbacks=callbacks, part=part, members=members)


def _plan_and_run(exp: jexp.Experiment, out_dir: str | os.PathLike[str] | None, *, resume: bool, max_members: int | None,
                  progress: bool, checkpoint: bool, plot: bool, compile_workers: int | None, kill_after: int | None,
                  meter: jruntime.CompileMeter, save_models: bool, callbacks: Sequence[Any] | None,
                  part: jparts.Part | None, members: Sequence[tuple[str, int]] | None = None) -> RunResult:
    t_start = time.perf_counter()
    cbs = jcb.check_callbacks(callbacks)
    the_plan = plan(exp, max_members=max_members, part=part, members=members)
    if exp.search is not None and resume:
        raise ValueError("--resume is not supported with 'search' (successive halving, PBT); run it again")
    workers = _compile_workers(compile_workers, len(the_plan.groups))
    out = None if out_dir is None else Path(out_dir)
    if out is not None:
        _refuse_if_in_use(out)
    counter = jprog.TraceCounter()
    setups = build(the_plan, counter)
    fingerprint = _fingerprint(the_plan, setups, max_members)
    # a part saves no models: `jtricks merge` combines the parts' rows, not their weights
    kw = dict(resume=resume, progress=progress, checkpoint=checkpoint, plot=plot, workers=workers,
              kill_after=kill_after, t_start=t_start, meter=meter, save_models=save_models and part is None, callbacks=cbs)
    if out is None:
        return _run(the_plan, setups, counter, fingerprint, None, **kw)
    with jresults.lock(out):
        if resume:
            _check_checkpoints(out, fingerprint)
        else:
            jresults.invalidate(out)
            shutil.rmtree(out / "checkpoints", ignore_errors=True)
            shutil.rmtree(out / jsaved.FOLDER, ignore_errors=True)
        return _run(the_plan, setups, counter, fingerprint, out, **kw)


def _refuse_if_in_use(out: Path) -> None:
    """``FolderInUseError`` at once (before any data loads) when a live process holds ``out``'s lock."""
    holder = jresults.lock_holder(out) if out.is_dir() else None
    if holder is not None:
        raise jresults.FolderInUseError(errno.EBUSY, f"{out} is in use by PID {holder if holder >= 0 else '?'}")


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


def _run(the_plan: Plan, setups: list[GroupSetup], counter: jprog.TraceCounter, fingerprint: Mapping[str, Any],
         out: Path | None, *, resume: bool, progress: bool, checkpoint: bool, plot: bool, workers: int,
         kill_after: int | None, t_start: float, meter: jruntime.CompileMeter, save_models: bool = True,
         callbacks: Sequence[Any] = ()) -> RunResult:
    exp = the_plan.experiment
    timing = [{"group": g.index, "arms": [a.name for a in g.arms], "members": g.size, "compile_s": None, "epoch_s": []}
              for g in the_plan.groups]
    if workers > 1 and jax.local_device_count() == 1:
        t_compile = time.perf_counter()
        if progress:
            print(f"compiling {len(the_plan.groups)} static groups ahead of time, {workers} at once", file=sys.stderr, flush=True)
        _compile_ahead(the_plan, setups, workers, timing)
        if progress:
            print(f"compiled in {time.perf_counter() - t_compile:.1f} s", file=sys.stderr, flush=True)
    collected = execute(the_plan, setups, out, fingerprint=fingerprint, resume=resume, checkpoint=checkpoint,
                        progress=progress, timing=timing, save_models=save_models, callbacks=callbacks,
                        _kill_after_epoch=kill_after)
    metrics = jexp.summary_metrics(exp, setups[0].config)
    directions = _directions(setups, collected)
    arm_dicts = [{"arm": a.name, "factors": dict(a.factors)} for a in the_plan.arms]
    summary = [] if the_plan.part is not None else jreport.summarize(
        collected.metric_rows, collected.member_rows, arm_dicts, metrics=metrics,
        baseline=exp.baseline or the_plan.arms[0].name, target=exp.target, directions=directions, adjust=exp.adjust)
    wall = time.perf_counter() - t_start
    compiles = dict(counter.counts)
    if out is not None:
        manifest = {**_manifest(the_plan, setups, compiles, wall, timing, metrics, directions), "compile": meter.record()}
        if collected.search:
            manifest["search"] = jsearch.manifest_section(collected.search)
        if the_plan.part is not None:
            members = [(a.name, s) for g in the_plan.groups for c in g.chunks for a, s in c]
            total = len({jexp.static_signature(a.experiment) for a in the_plan.arms})
            manifest["part"] = jparts.part_record(the_plan.part, members, total)
        write(out, the_plan, collected, summary, manifest, fingerprint, plot=plot)
        shutil.rmtree(out / "checkpoints", ignore_errors=True)
    result = RunResult(out, the_plan.arms, collected.metric_rows, collected.member_rows, summary, compiles, wall,
                       collected.final_states, timing, tuple(metrics), directions, collected.search)
    jcb.run_end(callbacks, result)
    return result


def _directions(setups: Sequence[GroupSetup], collected: Collected) -> dict[str, bool]:
    """Whether higher is better, for every metric the run wrote (from the metrics' declarations)."""
    custom = {m.name: m for s in setups for m in s.config.metrics}  # type: ignore[union-attr]
    names = {r["metric"] for r in collected.metric_rows if "@" not in r["metric"]}  # train_loss@<step>: as train_loss
    return {name: jmetrics.higher_is_better(name, custom) for name in sorted(names)}
