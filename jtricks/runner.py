"""Execute an :class:`~jtricks.experiment.Experiment`: one compiled, vmapped population per static configuration.

For each group of arms sharing a static configuration, the members (numeric hyperparameters × seeds)
are stacked on a leading *population axis* and trained by ``jit(vmap(...))`` functions that are traced
exactly once per group (counted, and recorded in the manifest). Populations larger than
``max_members`` run in chunks of equal size (the last chunk is padded with copies, so no chunk
recompiles). With several devices the population axis is sharded across them (``jax.sharding``).
On a many-core host the groups' programs are compiled ahead of time, several at once in threads
(``compile_workers``); the manifest's ``timing`` records each group's compile and epoch times.

The epoch loop stays on the host: after every epoch the metrics are copied out, a progress line is
printed, and (with an output folder) the population state is checkpointed with orbax, so
``resume=True`` continues an interrupted run to the same final numbers.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as _dt
import json
import os
import platform
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

import jtricks
from jtricks import data as jdata
from jtricks import experiment as jexp
from jtricks import numerics as jnum
from jtricks import population as jpop
from jtricks import report as jreport
from jtricks import train as jtrain
from jtricks.keys import seed_key

__all__ = ["RunResult", "run", "prepare_data", "Progress"]


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

    def history(self, arm: str, metric: str) -> np.ndarray:
        """``(seeds, epochs)`` array of ``metric`` for ``arm``."""
        rows = [r for r in self.metric_rows if r["arm"] == arm and r["metric"] == metric]
        seeds = sorted({r["seed"] for r in rows})
        epochs = sorted({r["epoch"] for r in rows})
        out = np.full((len(seeds), len(epochs)), np.nan)
        for r in rows:
            out[seeds.index(r["seed"]), epochs.index(r["epoch"])] = r["value"]
        return out


# --------------------------------------------------------------------------------------------- data
def prepare_data(exp: jexp.Experiment) -> tuple[jtrain.DeviceData, int, tuple[int, ...]]:
    """Load ``exp.dataset``, hold out ``n_val`` validation examples (fixed ``split_seed``), take the
    ``n_train`` subset, preprocess (statistics from the training subset only) and put it on the device.

    Returns ``(device_data, num_classes, input_shape)``.
    """
    ds = jdata.load(exp.dataset, **dict(exp.dataset_kwargs))
    split_key = jax.random.PRNGKey(exp.split_seed)
    x_tr, y_tr, x_val, y_val = jdata.train_val_split(split_key, ds.x_train, ds.y_train, n_val=exp.n_val)
    if exp.n_train is not None:
        if exp.n_train > len(x_tr):
            raise ValueError(f"n_train={exp.n_train} exceeds the {len(x_tr)} training examples left after the validation split")
        x_tr, y_tr = x_tr[: exp.n_train], y_tr[: exp.n_train]
    # statistics / ranges come from the training subset only; validation and test are transformed with them
    n_val = len(x_val)
    held_out = np.concatenate([np.asarray(x_val), np.asarray(ds.x_test)])
    pre = jdata.preprocess(dataclasses.replace(ds, x_train=np.asarray(x_tr), y_train=np.asarray(y_tr), x_test=held_out,
                                               y_test=np.concatenate([np.asarray(y_val), np.asarray(ds.y_test)])), exp.preprocess)
    x_tr, x_val, x_te = pre.x_train, pre.x_test[:n_val], pre.x_test[n_val:]
    if exp.batch_size > len(x_tr):
        raise ValueError(f"batch_size={exp.batch_size} exceeds the {len(x_tr)} training examples")
    dd = jtrain.device_data(x_tr, y_tr, x_val, y_val, x_te, ds.y_test, eval_batch_size=exp.eval_batch_size)
    return dd, int(ds.num_classes), tuple(ds.input_shape)


# ----------------------------------------------------------------------------------------- progress
class Progress:
    """A one-line progress bar per epoch with ETA and the current mean validation accuracy."""

    def __init__(self, total_epochs: int, *, enabled: bool = True, stream: Any = None) -> None:
        self.total = max(1, total_epochs)
        self.done = 0
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.t0 = time.perf_counter()
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def update(self, label: str, mean_val_acc: float, n_diverged: int) -> None:
        self.done += 1
        if not self.enabled:
            return
        elapsed = time.perf_counter() - self.t0
        eta = elapsed / self.done * (self.total - self.done)
        width = 24
        fill = int(width * self.done / self.total)
        bar = "#" * fill + "-" * (width - fill)
        div = f" diverged {n_diverged}" if n_diverged else ""
        line = f"[{bar}] {self.done}/{self.total} {label} val_acc {mean_val_acc:.4f}{div} | {elapsed:5.1f}s ETA {eta:5.1f}s"
        end = "\r" if self.tty and self.done < self.total else "\n"
        self.stream.write(("\r" if self.tty else "") + line + end)
        self.stream.flush()


# ------------------------------------------------------------------------------------ population fns
class _Counter:
    def __init__(self) -> None:
        self.counts: collections.Counter[str] = collections.Counter()

    def wrap(self, name: str, fn: Callable) -> Callable:
        def traced(*args: Any) -> Any:
            self.counts[name] += 1  # runs only while tracing, i.e. once per compilation
            return fn(*args)

        return traced


class _GroupPrograms:
    """The jitted, vmapped programs of one static configuration (created once, reused by every chunk)."""

    def __init__(
        self,
        config: jtrain.TrainConfig,
        data: jtrain.DeviceData,
        input_shape: tuple[int, ...],
        counter: _Counter,
        tag: str,
        sharding: Any,
        population: str = "auto",
    ) -> None:
        self.config = config
        self.data = data
        self.mode = jtrain.resolve_execution(config)
        self.sharding = sharding
        c = counter.wrap
        self.init = jax.jit(c(f"{tag}/init", jax.vmap(lambda k, hp: jtrain.init_state(config, k, hp, input_shape))))
        if self.mode == "scan":
            self.epoch = jax.jit(c(f"{tag}/epoch", jax.vmap(jtrain.make_epoch(config), in_axes=(0, None))), donate_argnums=0)
        else:
            lf = jtrain.make_loop_functions(config, data)
            self.lf = lf
            self.indices = jax.jit(c(f"{tag}/indices", jax.vmap(lf.indices)))
            # convolutional steps: members unrolled one after another on CPU (vmap makes grouped convolutions,
            # slower and not bit-identical there); see jtricks.population and docs/performance.md
            pmap_kw = dict(strategy=population, model=getattr(config.model, "name", None))
            self.step = jax.jit(
                c(f"{tag}/step", jpop.population_map(lf.step, in_axes=(0, None, None, 0), **pmap_kw)), donate_argnums=0
            )
            self.early_stop = jax.jit(c(f"{tag}/early_stop", jax.vmap(lf.early_stop)))
            self.average = jax.jit(c(f"{tag}/average", jax.vmap(lf.average)))
            self.chunk_sums = jax.jit(
                c(f"{tag}/eval", jpop.population_map(lf.chunk_sums, in_axes=(0, 0, 0, None, None, None), **pmap_kw))
            )
            self.finish = jax.jit(c(f"{tag}/finish", jax.vmap(lf.finish)))

    def lower(self, keys: jax.Array, hparams: Mapping[str, jax.Array]) -> dict[str, Any]:
        """Trace and lower the group's heavy programs for a population of ``keys``/``hparams``' shape.

        Returns ``{attribute: jax.stages.Lowered}`` for ``init`` and ``epoch`` (scan mode) or ``init``,
        ``step`` and the evaluation ``chunk_sums`` (host-loop mode). Tracing happens here, once, as it
        would on the first call (the trace counter sees the same counts).
        """
        low: dict[str, Any] = {"init": self.init.lower(keys, hparams)}
        state = low["init"].out_info
        if self.mode == "scan":
            low["epoch"] = self.epoch.lower(state, self.data)
            return low
        d = self.data
        idx = self.indices.lower(state).out_info
        col = jax.ShapeDtypeStruct((idx.shape[0], *idx.shape[2:]), idx.dtype)
        low["step"] = self.step.lower(state, d.x_train, d.y_train, col)
        ch = self.lf.chunk
        ex = lambda a: jax.ShapeDtypeStruct((ch, *a.shape[1:]), a.dtype)  # noqa: E731
        low["chunk_sums"] = self.chunk_sums.lower(
            state.params, state.model_state, state.one, ex(d.x_val), ex(d.y_val), ex(d.val_mask)
        )
        return low

    def install(self, compiled: Mapping[str, Any]) -> None:
        """Use ahead-of-time compiled executables (from :meth:`lower` ``.compile()``) for the next calls."""
        for name, fn in compiled.items():
            setattr(self, name, fn)

    # host-loop execution of one epoch (same math as make_epoch)
    def _evaluate(self, params: Any, mstate: Any, one: jax.Array, x: jax.Array, y: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
        ch = self.lf.chunk
        sums = [
            self.chunk_sums(params, mstate, one, x[i * ch : (i + 1) * ch], y[i * ch : (i + 1) * ch], mask[i * ch : (i + 1) * ch])
            for i in range(x.shape[0] // ch)
        ]
        total = jnum.pairwise_sum(jnp.stack(sums), 0)  # (members, 2): same association as the scan mode
        inv_n = 1.0 / jnum.pairwise_sum(mask.astype(jnp.float32))
        return total[:, 0] * inv_n, total[:, 1] * inv_n

    def run_epoch(self, state: jtrain.TrainState) -> tuple[jtrain.TrainState, dict]:
        if self.mode == "scan":
            return self.epoch(state, self.data)
        d = self.data
        idx = self.indices(state)
        step_metrics = []
        for b in range(idx.shape[1]):
            state, m = self.step(state, d.x_train, d.y_train, idx[:, b])
            step_metrics.append(m)
        sm = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs, axis=1), *step_metrics)
        cfg = self.config
        if cfg.early_stopping:
            vl, _ = self._evaluate(state.params, state.model_state, state.one, d.x_val, d.y_val, d.val_mask)
            state = self.early_stop(state, vl)
        state, avg_params = self.average(state)
        evals = jtrain.evaluations(cfg, self._evaluate, d, state, avg_params)
        return self.finish(state, sm, evals)


# ----------------------------------------------------------------------------------- checkpointing
def _ckpt_dir(out_dir: Path, group: int, chunk: int) -> Path:
    return out_dir / "checkpoints" / f"group{group}_chunk{chunk}"


def _save_checkpoint(path: Path, epoch: int, state: Any, history: list[dict[str, np.ndarray]]) -> None:
    import orbax.checkpoint as ocp

    leaves = jax.tree_util.tree_leaves(state)
    payload = {
        "state": {str(i): np.asarray(leaf) for i, leaf in enumerate(leaves)},
        "history": {f"{e}/{k}": v for e, h in enumerate(history) for k, v in h.items()},
    }
    target = path / f"epoch_{epoch:04d}"
    if target.exists():
        shutil.rmtree(target)
    ck = ocp.StandardCheckpointer()
    ck.save(target.resolve(), payload)
    ck.wait_until_finished()
    # keep only the newest checkpoint of this chunk
    for old in path.glob("epoch_*"):
        if old != target:
            shutil.rmtree(old, ignore_errors=True)


def _load_checkpoint(path: Path, template: Any) -> tuple[int, Any, list[dict[str, np.ndarray]]] | None:
    import orbax.checkpoint as ocp

    done = sorted(p for p in path.glob("epoch_*") if p.is_dir() and not p.name.endswith(".tmp") and "tmp" not in p.name)
    if not done:
        return None
    latest = done[-1]
    epoch = int(latest.name.split("_")[1])
    restored = ocp.StandardCheckpointer().restore(latest.resolve())
    leaves, treedef = jax.tree_util.tree_flatten(template)
    new_leaves = [jnp.asarray(restored["state"][str(i)], dtype=leaf.dtype) for i, leaf in enumerate(leaves)]
    history: list[dict[str, np.ndarray]] = [dict() for _ in range(epoch)]
    for key, v in restored.get("history", {}).items():
        e, k = key.split("/", 1)
        history[int(e)][k] = np.asarray(v)
    return epoch, jax.tree_util.tree_unflatten(treedef, new_leaves), history


# --------------------------------------------------------------------------------------------- run
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


def _population_sharding() -> Any:
    devices = jax.devices()
    if len(devices) <= 1:
        return None
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    mesh = Mesh(np.array(devices), ("pop",))
    return NamedSharding(mesh, PartitionSpec("pop"))


def _compile_workers(requested: int | None, groups: int) -> int:
    if requested is None:
        return max(1, min(groups, (os.cpu_count() or 1) // 2))
    if isinstance(requested, bool) or not isinstance(requested, int) or requested < 1:
        raise ValueError(f"`compile_workers` must be a positive integer or None, got {requested!r}")
    return requested


def _compile_ahead(plan: Sequence[tuple], setups: Sequence[tuple], workers: int, timing: list[dict[str, Any]]) -> None:
    """Lower every group's programs (here, in order), compile them ``workers`` at a time in threads and
    install the executables; each group's ``compile_s`` is the sum of its programs' compile times."""
    from concurrent.futures import ThreadPoolExecutor

    jobs = []
    for (gi, group_arms, chunks, size), (progs, config, _) in zip(plan, setups):
        keys, hp = _population_inputs(chunks[0], size, config)
        jobs.extend((gi, name, low) for name, low in progs.lower(keys, hp).items())

    def compile_one(job: tuple[int, str, Any]) -> tuple[int, str, Any, float]:
        gi, name, low = job
        t0 = time.perf_counter()
        return gi, name, low.compile(), time.perf_counter() - t0

    with ThreadPoolExecutor(max_workers=workers) as pool:
        done = list(pool.map(compile_one, jobs))
    for gi, name, exe, secs in done:
        setups[gi][0].install({name: exe})
        timing[gi]["compile_s"] = round((timing[gi]["compile_s"] or 0.0) + secs, 3)


def _manifest(
    exp: jexp.Experiment,
    arms: Sequence[jexp.Arm],
    compiles: Mapping[str, int],
    wall: float,
    groups: int,
    timing: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    import flax
    import optax

    def version(mod: str) -> str:
        try:
            from importlib.metadata import version as v

            return v(mod)
        except Exception:
            return "unknown"

    cfg = dataclasses.asdict(exp)
    return {
        "experiment": exp.name,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "versions": {
            "python": platform.python_version(),
            "jax": jax.__version__,
            "jaxlib": version("jaxlib"),
            "optax": optax.__version__,
            "flax": flax.__version__,
            "numpy": np.__version__,
            "jtricks": jtricks.__version__,
        },
        "device": {
            "backend": jax.default_backend(),
            "kind": jax.devices()[0].device_kind,
            "count": jax.device_count(),
            "platform": platform.platform(),
            "processor": platform.machine(),
        },
        "prng_impl": str(jax.config.jax_default_prng_impl),
        "seeds": list(range(exp.seed_offset, exp.seed_offset + exp.seeds)),
        "config": json.loads(json.dumps(cfg, default=repr)),
        "arms": [{"arm": a.name, "factors": json.loads(json.dumps(dict(a.factors), default=repr))} for a in arms],
        "baseline": exp.baseline or arms[0].name,
        "metrics": list(exp.metrics),
        "target": exp.target,
        "static_groups": groups,
        "compiles": dict(compiles),
        "timing": list(timing),
        "wall_time_s": round(wall, 3),
    }


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
    _kill_after_epoch: int | None = None,
) -> RunResult:
    """Run every arm × seed of ``exp`` and write the results folder (see ``docs/results-format.md``).

    Args:
      exp: the experiment (validated here, before any data is loaded or anything compiles).
      out_dir: results folder (``None``: nothing written, no checkpoints).
      resume: continue from the checkpoints in ``out_dir`` (chunks already finished are not re-run).
      max_members: population chunk size (overrides ``exp.max_members``).
      progress: print a progress line per epoch to stderr.
      checkpoint: save the population state after every epoch (needs ``out_dir``).
      plot: write ``curves.png``.
      compile_workers: compile the static groups' programs ahead of time, this many at once, before any
        training (XLA releases the GIL while it compiles, so the compile wall time of a multi-group run
        drops from the sum towards the largest group's on a many-core host). ``None``: ``min(groups,
        cpu_count // 2)``; ``1``: no ahead-of-time step, every program compiles on its first call
        (also the behaviour with several devices). Results are identical either way (same programs).
    """
    t_start = time.perf_counter()
    arms = jexp.validate(exp)
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    max_members = max_members or exp.max_members
    seeds = list(range(exp.seed_offset, exp.seed_offset + exp.seeds))

    groups: dict[tuple, list[jexp.Arm]] = {}
    for arm in arms:
        groups.setdefault(jexp.static_signature(arm.experiment), []).append(arm)

    counter = _Counter()
    metric_rows: list[dict[str, Any]] = []
    member_rows: list[dict[str, Any]] = []
    final_states: dict[str, Any] = {}
    data_cache: dict[tuple, tuple[jtrain.DeviceData, int, tuple[int, ...]]] = {}
    total_epochs = 0
    plan = []
    for gi, group_arms in enumerate(groups.values()):
        members = [(arm, s) for arm in group_arms for s in seeds]
        size = len(members) if not max_members else min(max_members, len(members))
        n_dev = jax.device_count()
        if n_dev > 1:
            size = -(-size // n_dev) * n_dev
        chunks = [members[i : i + size] for i in range(0, len(members), size)]
        plan.append((gi, group_arms, chunks, size))
        total_epochs += len(chunks) * group_arms[0].experiment.epochs
    bar = Progress(total_epochs, enabled=progress)
    workers = _compile_workers(compile_workers, len(plan))

    # every group's data, configuration and programs first, so the programs can compile ahead of time together
    setups = []
    for gi, group_arms, chunks, size in plan:
        e0 = group_arms[0].experiment
        dkey = (e0.dataset, repr(e0.dataset_kwargs), e0.n_train, e0.n_val, e0.split_seed, e0.preprocess, e0.eval_batch_size)
        if dkey not in data_cache:
            data_cache[dkey] = prepare_data(e0)
        ddata, num_classes, input_shape = data_cache[dkey]
        model = jexp.build_model(e0, num_classes)
        config = jexp.build_config(
            e0,
            model,
            int(ddata.x_train.shape[0]),
            dropout=any("dropout_rate" in a.hparams for a in group_arms),
            init_scale=any("init_scale" in a.hparams for a in group_arms),
        )
        sharding = _population_sharding()
        progs = _GroupPrograms(config, ddata, input_shape, counter, f"group{gi}", sharding, e0.population)
        setups.append((progs, config, sharding))
    timing = [{"group": gi, "arms": [a.name for a in group_arms], "members": size, "compile_s": None, "epoch_s": []}
              for gi, group_arms, _, size in plan]
    if workers > 1 and jax.device_count() == 1:
        t_compile = time.perf_counter()
        if progress:
            print(f"compiling {len(plan)} static groups ahead of time, {workers} at once", file=bar.stream, flush=True)
        _compile_ahead(plan, setups, workers, timing)
        if progress:
            print(f"compiled in {time.perf_counter() - t_compile:.1f} s", file=bar.stream, flush=True)

    for (gi, group_arms, chunks, size), (progs, config, sharding) in zip(plan, setups):
        for ci, chunk in enumerate(chunks):
            keys, hp = _population_inputs(chunk, size, config)
            if sharding is not None:
                keys, hp = jax.device_put((keys, hp), sharding)
            state = progs.init(keys, hp)
            history: list[dict[str, np.ndarray]] = []
            start_epoch = 0
            ck = _ckpt_dir(out, gi, ci) if (out is not None and checkpoint) else None
            if resume and ck is not None and ck.exists():
                loaded = _load_checkpoint(ck, state)
                if loaded is not None:
                    start_epoch, state, history = loaded
                    if sharding is not None:
                        state = jax.device_put(state, sharding)
                    for _ in range(start_epoch):
                        bar.done += 1
            for epoch in range(start_epoch, config.epochs):
                t_epoch = time.perf_counter()
                state, m = progs.run_epoch(state)
                m_host = {k: np.asarray(v) for k, v in m.items()}
                timing[gi]["epoch_s"].append(round(time.perf_counter() - t_epoch, 4))
                history.append(m_host)
                n_real = len(chunk)
                va = m_host["val_acc"][:n_real]
                finite = va[np.isfinite(va)]
                bar.update(
                    f"group {gi + 1}/{len(plan)} chunk {ci + 1}/{len(chunks)} epoch {epoch + 1}/{config.epochs}",
                    float(finite.mean()) if finite.size else float("nan"),
                    int(np.sum(np.asarray(state.diverged_epoch)[:n_real] >= 0)),
                )
                if ck is not None:
                    _save_checkpoint(ck, epoch + 1, state, history)
                if _kill_after_epoch is not None and epoch + 1 == _kill_after_epoch:
                    os.kill(os.getpid(), signal.SIGKILL)
            _collect(chunk, state, history, metric_rows, member_rows, final_states, config)

    # deterministic order: arms in declaration order, seeds ascending, epochs, metrics sorted
    arm_order = {a.name: i for i, a in enumerate(arms)}
    metric_rows.sort(key=lambda r: (arm_order[r["arm"]], r["seed"], r["epoch"], r["metric"]))
    member_rows.sort(key=lambda r: (arm_order[r["arm"]], r["seed"]))
    arm_dicts = [{"arm": a.name, "factors": dict(a.factors)} for a in arms]
    baseline = exp.baseline or arms[0].name
    summary = jreport.summarize(
        metric_rows, member_rows, arm_dicts, metrics=tuple(exp.metrics), baseline=baseline, target=exp.target
    )
    wall = time.perf_counter() - t_start
    compiles = dict(counter.counts)
    if out is not None:
        jreport.write_metrics_csv(out / "metrics.csv", metric_rows)
        jreport.write_members_csv(out / "members.csv", member_rows)
        (out / "arms.json").write_text(json.dumps(json.loads(json.dumps(arm_dicts, default=repr)), indent=2) + "\n")
        manifest = _manifest(exp, arms, compiles, wall, len(plan), timing)
        (out / "manifest.json").write_text(json.dumps(manifest, indent=2, default=repr) + "\n")
        jreport.write_summary(out, summary, title=f"{exp.name}: {exp.description}".strip(": "))
        if plot:
            produced = {r["metric"] for r in metric_rows}
            panels = tuple(m for m in dict.fromkeys([*exp.metrics, "train_loss", "val_acc"]) if m in produced)
            jreport.plot_curves(
                out / "curves.png", metric_rows, metrics=panels, title=exp.name, member_rows=member_rows, arms=arm_dicts
            )
        if checkpoint and (out / "checkpoints").exists():
            shutil.rmtree(out / "checkpoints", ignore_errors=True)
    return RunResult(out, arms, metric_rows, member_rows, summary, compiles, wall, final_states, timing)


def _collect(
    chunk: Sequence[tuple[jexp.Arm, int]],
    state: jtrain.TrainState,
    history: list[dict[str, np.ndarray]],
    metric_rows: list[dict[str, Any]],
    member_rows: list[dict[str, Any]],
    final_states: dict[str, Any],
    config: jtrain.TrainConfig,
) -> None:
    diverged = np.asarray(state.diverged_epoch)
    stopped = np.asarray(state.early.stop_epoch) if config.early_stopping else np.full(diverged.shape, -1)
    es_best = np.asarray(state.early.best_epoch) if config.early_stopping else None
    for i, (arm, seed) in enumerate(chunk):
        va = np.array([h["val_acc"][i] for h in history])
        if es_best is not None:
            best = int(es_best[i])
        else:
            best = int(np.nanargmax(va)) + 1 if np.isfinite(va).any() else -1
        member_rows.append(
            {"arm": arm.name, "seed": seed, "diverged_epoch": int(diverged[i]), "stopped_epoch": int(stopped[i]), "best_epoch": best}
        )
        for e, h in enumerate(history):
            for metric, values in h.items():
                metric_rows.append({"arm": arm.name, "seed": seed, "epoch": e + 1, "metric": metric, "value": float(values[i])})
        final_states[f"{arm.name}/seed={seed}"] = jax.tree_util.tree_map(lambda x: np.asarray(x[i]), state.params)
