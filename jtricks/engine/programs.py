"""The compiled population programs of one static configuration, in either execution mode.

A :class:`GroupPrograms` holds the ``jit`` -compiled functions that train a population (a leading member
axis) of one :class:`jtricks.train.TrainConfig`, and runs an epoch with :func:`jtricks.train.run_epoch`:

* ``"scan"``: one program per epoch, ``jit(vmap(make_epoch(config)))``: the steps fused in
  ``lax.scan``, evaluation by ``lax.map``, all inside;
* ``"loop"``: the same :func:`jtricks.train.run_epoch` driver on the host, over an
  :class:`jtricks.train.EpochOps` of jitted population pieces: a host loop of jitted steps and a host
  loop of jitted evaluation chunks (no convolution inside a loop construct: XLA CPU compiles those much
  slower). The step and the evaluation chunk are mapped over the members by
  :func:`jtricks.population.population_map` (``vmap`` or members unrolled).

Every traced function is counted (:class:`TraceCounter`): each one traces once per group.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp

from jtricks._core import numerics as jnum
from jtricks.engine import population as jpop
from jtricks.engine import train as jtrain

__all__ = ["TraceCounter", "GroupPrograms"]


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
    ) -> None:
        self.config = config
        self.data = data
        self.mode = jtrain.resolve_execution(config)
        c = counter.wrap
        out = {} if sharding is None else {"out_shardings": sharding}  # every output has the member axis first
        self.init = jax.jit(
            c(f"{tag}/init", jax.vmap(lambda k, hp: jtrain.init_state(config, k, hp, input_shape))), **out
        )
        exact = bool(getattr(config.model, "batch_invariant", True))
        pmap_kw = dict(strategy=population, model=getattr(config.model, "name", None), batch_invariant=exact)
        if self.mode == "scan":
            # the whole epoch is one program: vmapped, unless the members must be unrolled to stay exact
            scan_strategy = population if population != "auto" else ("vmap" if exact else "unroll")
            epoch = jpop.population_map(jtrain.make_epoch(config), in_axes=(0, None), strategy=scan_strategy)
            self.epoch = jax.jit(c(f"{tag}/epoch", epoch), donate_argnums=0, **out)
            return
        num_train = int(data.x_train.shape[0])
        self.chunk = jtrain.eval_chunk(config, data)
        self.indices = jax.jit(
            c(f"{tag}/indices", jax.vmap(lambda s: jtrain.epoch_indices(config, s, num_train))), **out
        )
        step = jpop.population_map(jtrain.make_train_step(config), in_axes=(0, None, None, 0), **pmap_kw)
        self.step = jax.jit(c(f"{tag}/step", step), donate_argnums=0, **out)
        totals = jpop.population_map(
            lambda *a: jtrain.chunk_totals(config, *a), in_axes=(0, 0, 0, 0, None, None, None), **pmap_kw
        )
        self.chunk_totals = jax.jit(c(f"{tag}/eval", totals), **out)
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
        low["step"] = self.step.lower(state, d.x_train, d.y_train, col)
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

    def run_epoch(self, state: jtrain.TrainState) -> tuple[jtrain.TrainState, dict]:
        """One epoch of the population (:func:`jtricks.train.run_epoch`)."""
        if self.mode == "scan":
            return self.epoch(state, self.data)
        return jtrain.run_epoch(self.config, self._loop_ops(), state, self.data)

    def _loop_ops(self) -> jtrain.EpochOps:
        return jtrain.EpochOps(
            steps=self._steps,
            guard=self.guard,
            evaluate=self._evaluate,
            early_stop=self.early_stop,
            average=self.average,
            finish=self.finish,
        )

    def _steps(self, state: jtrain.TrainState, d: jtrain.DeviceData) -> tuple[jtrain.TrainState, dict]:
        idx = self.indices(state)
        state = self.copy(state)  # leaves the caller's state (the epoch's start) intact
        step_metrics = []
        for b in range(idx.shape[1]):
            state, m = self.step(state, d.x_train, d.y_train, idx[:, b])
            step_metrics.append(m)
        return state, jax.tree_util.tree_map(lambda *xs: jnp.stack(xs, axis=1), *step_metrics)

    def _evaluate(
        self, params: Any, mstate: Any, one: jax.Array, hparams: Any, x: jax.Array, y: jax.Array, mask: jax.Array
    ) -> dict[str, jax.Array]:
        ch = self.chunk
        totals = [
            self.chunk_totals(
                params,
                mstate,
                one,
                hparams,
                x[i * ch : (i + 1) * ch],
                y[i * ch : (i + 1) * ch],
                mask[i * ch : (i + 1) * ch],
            )
            for i in range(x.shape[0] // ch)
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
