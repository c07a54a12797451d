"""The compiled population programs of one static configuration, in either execution mode.

A :class:`GroupPrograms` holds the ``jit`` -compiled functions that train a population (a leading member
axis) of one :class:`jtricks.train.TrainConfig`, and runs an epoch with :func:`jtricks.train.run_epoch`:

* ``"scan"``: one program per epoch, ``jit(vmap(make_epoch(config)))``: the steps fused in
  ``lax.scan``, evaluation by ``lax.map``, all inside;
* ``"loop"``: the same :func:`jtricks.train.run_epoch` driver on the host, over an
  :class:`jtricks.train.EpochOps` of jitted population pieces: a host loop of jitted steps and a host
  loop of jitted evaluation chunks (no convolution inside a loop construct: XLA CPU compiles those much
  slower). The step and the evaluation chunk are mapped over the members by
  :func:`jtricks.population.population_map` (``vmap`` or members unrolled);
* streamed (``stream``: the training split on the host, docs/streaming.md): the host-loop execution whose
  step takes each member's batch as an input (:func:`jtricks.train.make_batch_step`); the batches are gathered
  on the host from the epoch's indices (the same indices as on the device) and put on the device ahead by
  :func:`jtricks.data.prefetch` (``prefetch`` batches ahead, a background thread).

Every traced function is counted (:class:`TraceCounter`): each one traces once per group.
"""

from __future__ import annotations

import collections
import contextlib
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jtricks import data as jdata
from jtricks._core import numerics as jnum
from jtricks.engine import population as jpop
from jtricks.engine import train as jtrain

__all__ = ["TraceCounter", "GroupPrograms", "PROGRAMS", "programs_of"]

#: The programs a group can compile in each execution mode (named ``"group<g>/<name>"`` in the trace counter);
#: :func:`programs_of` gives those a configuration compiles
PROGRAMS: dict[str, tuple[str, ...]] = {
    "scan": ("init", "epoch"),
    "loop": ("init", "indices", "step", "eval", "copy", "guard", "early_stop", "average", "finish"),
}


def programs_of(config: jtrain.TrainConfig, mode: str) -> tuple[str, ...]:
    """The programs a group of ``config`` compiles in ``mode``: :data:`PROGRAMS`, without ``early_stop`` when
    early stopping is off (:func:`jtricks.engine.train.run_epoch` calls it only then)."""
    return tuple(p for p in PROGRAMS[mode] if p != "early_stop" or config.early_stopping)


class TraceCounter:
    """Counts how often each named function is traced (= compiled), for the manifest."""

    def __init__(self) -> None:
        self.counts: collections.Counter[str] = collections.Counter()

    def wrap(self, name: str, fn: Callable) -> Callable:
        def traced(*args: Any) -> Any:
            self.counts[name] += 1  # runs only while tracing, i.e. once per compilation
            return fn(*args)

        return traced


class GroupPrograms:
    """The jitted population programs of one static configuration (created once, reused by every chunk).

    Args:
      config: the static configuration.
      data: the group's device data (shared by the members).
      input_shape: one example's shape.
      counter: the trace counter; programs are named ``"{tag}/{piece}"``.
      tag: the group's name in the counter.
      population: the member mapping of the host-loop pieces (:func:`jtricks.population.population_map`).
      sharding: the sharding of the member axis (a ``NamedSharding`` over this process's devices) or
        ``None`` (one device). Every program's outputs get it explicitly, ``init``'s included, so each
        device holds only its members' state (never a replicated copy of the population's).
      stream: the training split on the host (``data.x_train`` is then its shape only); it needs the host-loop
        execution (``config.execution`` ``"loop"``).
      prefetch: with ``stream``, the batches prepared ahead by a background thread (0: none).
      batch_sharding: the sharding of one member's examples (``NamedSharding(mesh, PartitionSpec("data"))``
        of :mod:`jtricks.engine.mesh`: data parallelism) or ``None``: each training batch and evaluation chunk
        is split over the mesh's ``"data"`` axis (:func:`jtricks.train.shard_batch`).
    """

    def __init__(
        self,
        config: jtrain.TrainConfig,
        data: jtrain.DeviceData,
        input_shape: tuple[int, ...],
        counter: TraceCounter,
        tag: str,
        population: str = "auto",
        *,
        sharding: Any = None,
        stream: jdata.HostSplit | None = None,
        prefetch: int = 2,
        batch_sharding: Any = None,
    ) -> None:
        self.config = config
        self.data = data
        self.mode = jtrain.resolve_execution(config)
        self.stream, self.prefetch, self.sharding = stream, jdata.check_prefetch(prefetch), sharding
        if stream is not None and self.mode != "loop":
            raise ValueError(
                f"a streamed training split needs the host-loop execution; got execution={config.execution!r}"
            )
        c = counter.wrap
        split = batch_sharding
        out = {} if sharding is None else {"out_shardings": sharding}  # every output has the member axis first
        self.init = jax.jit(
            c(f"{tag}/init", jax.vmap(lambda k, hp: jtrain.init_state(config, k, hp, input_shape))), **out
        )
        exact = bool(getattr(config.model, "batch_invariant", True))
        pmap_kw = dict(strategy=population, model=getattr(config.model, "name", None), batch_invariant=exact)
        outcomes = jpop.population_map(
            lambda *a: jtrain.example_outcomes(config, *a), in_axes=(0, 0, 0, 0, None, None), **pmap_kw
        )
        self.outcomes_chunk = jax.jit(c(f"{tag}/outcomes", outcomes), **out)
        if self.mode == "scan":
            # the whole epoch is one program: vmapped, unless the members must be unrolled to stay exact
            scan_strategy = population if population != "auto" else ("vmap" if exact else "unroll")
            epoch_fn = jtrain.make_epoch(config, batch_sharding=split)
            epoch = jpop.population_map(epoch_fn, in_axes=(0, None), strategy=scan_strategy)
            self.epoch = jax.jit(c(f"{tag}/epoch", epoch), donate_argnums=0, **out)
            return
        num_train = jtrain.train_size(config, data)
        self.chunk = jtrain.eval_chunk(config, data)
        self.indices = jax.jit(
            c(f"{tag}/indices", jax.vmap(lambda s: jtrain.epoch_indices(config, s, num_train))), **out
        )
        if stream is None:
            step_fn = jtrain.make_train_step(config, batch_sharding=split)
            step = jpop.population_map(step_fn, in_axes=(0, None, None, 0), **pmap_kw)
        else:
            step_fn = jtrain.make_batch_step(config, batch_sharding=split)
            step = jpop.population_map(step_fn, in_axes=(0, 0, 0), **pmap_kw)
        self.step = jax.jit(c(f"{tag}/step", step), donate_argnums=0, **out)
        totals = jpop.population_map(
            lambda p, ms, one, hp, *xym: jtrain.chunk_totals(config, p, ms, one, hp, *jtrain.shard_batch(split, *xym)),
            in_axes=(0, 0, 0, 0, None, None, None),
            **pmap_kw,
        )
        self.chunk_totals = jax.jit(c(f"{tag}/eval", totals), **out)
        if config.member_split is not None:  # each member's own validation split (vary_split)
            own = jpop.population_map(
                lambda *a: jtrain.chunk_totals(config, *a), in_axes=(0, 0, 0, 0, 0, 0, None), **pmap_kw
            )
            self.own_chunk_totals = jax.jit(c(f"{tag}/own_eval", own), **out)
            pick = lambda s, d: jtrain.member_data(config, s, d)[2:4]  # noqa: E731 - (x_val, y_val)
            self.own_val = jax.jit(c(f"{tag}/own_val", jax.vmap(pick, in_axes=(0, None))), **out)
        # the steps donate their state, so the epoch's start state is a copy (kept for the guard)
        self.copy = jax.jit(c(f"{tag}/copy", lambda s: jax.tree_util.tree_map(jnp.copy, s)), **out)
        self.guard = jax.jit(
            c(f"{tag}/guard", jax.vmap(lambda a, b: jtrain.guard_epoch(config, a, b))), donate_argnums=1, **out
        )
        self.early_stop = jax.jit(c(f"{tag}/early_stop", jax.vmap(lambda s, v: jtrain.early_stop(config, s, v))), **out)
        self.average = jax.jit(c(f"{tag}/average", jax.vmap(lambda s: jtrain.average(config, s))), **out)
        self.finish = jax.jit(
            c(f"{tag}/finish", jax.vmap(lambda s, sm, ev: jtrain.finish_epoch(config, s, sm, ev))), **out
        )

    def lower(self, keys: jax.Array, hparams: Mapping[str, jax.Array]) -> dict[str, Any]:
        """Trace and lower the group's heavy programs for a population of ``keys``/``hparams``' shape.

        Returns ``{attribute: jax.stages.Lowered}`` for ``init`` and ``epoch`` (scan mode) or ``init``,
        ``step`` and the evaluation ``chunk_totals`` (host-loop mode). Tracing happens here, once, as it
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
        if self.stream is None:
            low["step"] = self.step.lower(state, d.x_train, d.y_train, col)
        else:
            batch = lambda a: jax.ShapeDtypeStruct((*col.shape, *a.shape[1:]), a.dtype)  # noqa: E731
            low["step"] = self.step.lower(state, batch(d.x_train), batch(d.y_train))
        ex = lambda a: jax.ShapeDtypeStruct((self.chunk, *a.shape[1:]), a.dtype)  # noqa: E731
        low["chunk_totals"] = self.chunk_totals.lower(
            state.params, state.model_state, state.one, state.hparams, ex(d.x_val), ex(d.y_val), ex(d.val_mask)
        )
        return low

    def install(self, compiled: Mapping[str, Any]) -> None:
        """Use ahead-of-time compiled executables (from :meth:`lower` ``.compile()``) for the next calls of their
        population size; a population of another size (a re-packed halving population) still compiles its own."""
        for name, exe in compiled.items():
            setattr(self, name, _sized(exe, getattr(self, name)))

    def run_epoch(
        self, state: jtrain.TrainState, on_step: Callable[[int, int, Any], None] | None = None
    ) -> tuple[jtrain.TrainState, dict]:
        """One epoch of the population (:func:`jtricks.train.run_epoch`).

        ``on_step(done, total, metrics)`` is called after each step is dispatched in the host-loop mode (with
        the step's metrics, still computing); the scan mode runs the epoch as one program and never calls it."""
        if self.mode == "scan":
            return self.epoch(state, self.data)
        data = self.data
        if self.config.member_split is not None:  # (members, n_val, ...): each member's validation split
            x_val, y_val = self.own_val(state, data)
            data = data._replace(x_val=x_val, y_val=y_val)
        return jtrain.run_epoch(self.config, self._loop_ops(on_step), state, data)

    def test_outcomes(self, state: jtrain.TrainState) -> np.ndarray:
        """Per member and test example, the outcome of the members' current parameters
        (:func:`jtricks.train.example_outcomes`): ``(members, n_test)``, a host loop of jitted chunks."""
        d, ch = self.data, jtrain.eval_chunk(self.config, self.data)
        chunks = [
            self.outcomes_chunk(
                state.params, state.model_state, state.one, state.hparams, d.x_test[i : i + ch], d.y_test[i : i + ch]
            )
            for i in range(0, int(d.x_test.shape[0]), ch)
        ]
        return np.concatenate([np.asarray(c) for c in chunks], axis=1)[:, np.asarray(d.test_mask)]

    def _loop_ops(self, on_step: Callable[[int, int, Any], None] | None = None) -> jtrain.EpochOps:
        return jtrain.EpochOps(
            steps=lambda state, d: self._steps(state, d, on_step),
            guard=self.guard,
            evaluate=self._evaluate,
            early_stop=self.early_stop,
            average=self.average,
            finish=self.finish,
        )

    def _steps(
        self,
        state: jtrain.TrainState,
        d: jtrain.DeviceData,
        on_step: Callable[[int, int, Any], None] | None = None,
    ) -> tuple[jtrain.TrainState, dict]:
        idx = self.indices(state)
        state = self.copy(state)  # leaves the caller's state (the epoch's start) intact
        step_metrics = []
        n = int(idx.shape[1])
        if self.stream is None:
            for b in range(n):
                state, m = self.step(state, d.x_train, d.y_train, idx[:, b])
                step_metrics.append(m)
                if on_step is not None:
                    on_step(b + 1, n, m)
        else:  # closed on any exit, so the prefetching thread never outlives the epoch
            with contextlib.closing(self._batches(np.asarray(idx))) as batches:
                for b, (xb, yb) in enumerate(batches):
                    state, m = self.step(state, xb, yb)
                    step_metrics.append(m)
                    if on_step is not None:
                        on_step(b + 1, n, m)
        return state, jax.tree_util.tree_map(lambda *xs: jnp.stack(xs, axis=1), *step_metrics)

    def _batches(self, idx: np.ndarray) -> Any:
        """The epoch's batches ``(members, B, ...)`` gathered on the host from ``idx`` ``(members, steps, B)`` and
        put on the device, ``self.prefetch`` ahead (:func:`jtricks.data.prefetch`)."""
        split = self.stream
        assert split is not None
        put = jax.device_put if self.sharding is None else (lambda a: jax.device_put(a, self.sharding))
        return jdata.prefetch(lambda b: put(split.rows(idx[:, b])), int(idx.shape[1]), self.prefetch)

    def _evaluate(
        self, params: Any, mstate: Any, one: jax.Array, hparams: Any, x: jax.Array, y: jax.Array, mask: jax.Array
    ) -> dict[str, jax.Array]:
        ch = self.chunk
        own = x.ndim > self.data.x_val.ndim  # a split per member: (members, n, ...), sliced along its examples
        program = self.own_chunk_totals if own else self.chunk_totals
        rows = (lambda a, i: a[:, i * ch : (i + 1) * ch]) if own else (lambda a, i: a[i * ch : (i + 1) * ch])
        totals = [
            program(params, mstate, one, hparams, rows(x, i), rows(y, i), mask[i * ch : (i + 1) * ch])
            for i in range(mask.shape[0] // ch)
        ]
        # per metric (members, k) sums over the chunks: the same association as the scan mode
        summed = jax.tree_util.tree_map(lambda *t: jnum.pairwise_sum(jnp.stack(t), 0), *totals)
        return jax.vmap(lambda t: jtrain.finalize_evaluation(self.config, t, mask))(summed)


def _members(tree: Any) -> int:
    """The population size of ``tree``: its first leaf's leading axis."""
    return int(jax.tree_util.tree_leaves(tree)[0].shape[0])


def _sized(exe: Any, jitted: Callable) -> Callable:
    """``exe`` (compiled for one population size) for arguments of that size, ``jitted`` for any other."""
    size = int(jax.tree_util.tree_leaves(exe.args_info[0][0])[0].shape[0])

    def call(*args: Any) -> Any:
        return exe(*args) if _members(args[0]) == size else jitted(*args)

    return call
