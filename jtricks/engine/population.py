"""Run a function over a population (a leading member axis) by ``jax.vmap`` or by unrolled members.

A population is a pytree whose leaves carry a leading *member axis*; :func:`population_map` turns a
function of one member into a function of the population::

    pop_step = population_map(step, strategy="unroll", in_axes=(0, None, None, 0))
    states, metrics = jax.jit(pop_step, donate_argnums=0)(states, x_all, y_all, batch_idx)

Strategies:

* ``"vmap"``: ``jax.vmap(fn, in_axes)``. One batched program: small matmuls of the members become one
  batched matmul, which is what makes an MLP population fast. But convolutions whose kernels are
  batched become *grouped* convolutions (``feature_group_count = S``), which XLA CPU runs several
  times slower per member than S separate convolutions (docs/performance.md).
* ``"unroll"``: a Python loop over the members inside the traced function: member ``i``'s arguments
  are sliced out (``lax.index_in_dim``), ``fn`` is traced once per member, and the outputs are stacked
  on a new leading axis. One program runs the members one after another, so each member runs exactly
  the operations of a standalone run (same shapes, same kernels), so members stay bit-identical to
  standalone runs. On XLA CPU a member-step costs 1.2–1.4× a standalone step (the members' activations
  get separate buffers: ~80 MiB per notebook-CNN member) against 2.7–3× for ``vmap``. The program and
  its compile time grow with S (S = 16: ~27 s).
* ``"auto"``: :func:`resolve_strategy` picks by backend and model (the rule and its measurements are
  in docs/performance.md).

Both give members identical to separate calls of ``fn`` (bit for bit on CPU for jtricks' steps: tested
in ``tests/engine/test_population.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

import jax
import jax.numpy as jnp

from jtricks import models as jmodels

__all__ = ["STRATEGIES", "MIN_PER_DEVICE", "population_map", "resolve_strategy", "population_size", "padded_size"]

Strategy = Literal["vmap", "unroll", "auto"]

#: The strategies :func:`population_map` accepts.
STRATEGIES: tuple[str, ...] = ("vmap", "unroll", "auto")


InAxes = int | None | Sequence[int | None]

#: The fewest members a device runs. XLA drops a mapped axis of length 1 and compiles a population of one
#: member as a different program (its matrix products without a batch dimension), whose rounding differs
#: from every larger population's on some CPUs (measured on an AVX2-only EPYC: the gradient of a
#: ``(B, 16) @ (16, 3)`` layer). So a device never runs fewer than two members: a smaller population is
#: padded with copies of its first member, whose results are discarded.
MIN_PER_DEVICE = 2


def padded_size(members: int, devices: int = 1) -> int:
    """The population size that runs ``members`` members on ``devices`` devices: the smallest multiple of
    ``devices`` that is ``>= members`` and gives every device at least :data:`MIN_PER_DEVICE` members.

    >>> padded_size(1), padded_size(3), padded_size(1, devices=4), padded_size(9, devices=4)
    (2, 3, 8, 12)
    """
    if members < 1 or devices < 1:
        raise ValueError(f"`members` and `devices` must be >= 1, got {members} and {devices}")
    per_device = max(MIN_PER_DEVICE, -(-members // devices))
    return per_device * devices


def resolve_strategy(
    strategy: Strategy = "auto", *, model: str | None = None, backend: str | None = None, batch_invariant: bool = True
) -> str:
    """The concrete strategy (``"vmap"`` or ``"unroll"``) for ``strategy``, a model name and a backend.

    ``"auto"`` = ``"unroll"`` when the model is not ``batch_invariant`` (a model not built from jtricks'
    vmap-stable primitives, e.g. a flax or equinox model: its reductions round differently under ``vmap``,
    so only unrolled members are bit-identical to standalone runs), or when the backend is ``"cpu"`` and
    ``model`` is a convolutional model (:data:`jtricks.models.CONVOLUTIONAL`); ``"vmap"`` otherwise. Measured
    (docs/performance.md, notebook CNN, batch 64): on XLA CPU vmapped convolutions become grouped convolutions
    costing 2.7–3.0× a standalone step per member, unrolled members 1.3–1.4×; MLP populations are bitwise and
    fastest vmapped. On a GPU (H200) vmap costs 0.11× a standalone step per member at S = 16 (unroll 0.15×), so
    vmap is kept there.

    Raises:
      ValueError: ``strategy`` is not one of :data:`STRATEGIES`.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"`strategy` must be one of {', '.join(map(repr, STRATEGIES))}; got {strategy!r}")
    if strategy != "auto":
        return strategy
    if not batch_invariant:
        return "unroll"
    backend = backend or jax.default_backend()
    if backend == "cpu" and model in jmodels.CONVOLUTIONAL:
        return "unroll"
    return "vmap"


def _normalize_in_axes(in_axes: InAxes, nargs: int) -> tuple[int | None, ...]:
    if in_axes is None or isinstance(in_axes, int) and not isinstance(in_axes, bool):
        return (in_axes,) * nargs  # type: ignore[return-value]
    if isinstance(in_axes, (list, tuple)):
        axes = tuple(in_axes)
        if len(axes) != nargs:
            raise ValueError(f"`in_axes` has {len(axes)} entries but the function got {nargs} positional arguments")
        for a in axes:
            if a is not None and (isinstance(a, bool) or not isinstance(a, int)):
                raise TypeError(f"`in_axes` entries must be int or None (one per positional argument), got {a!r}")
        return axes
    raise TypeError(f"`in_axes` must be an int, None or a tuple of int/None per positional argument; got {in_axes!r}")


def population_size(args: Sequence[Any], in_axes: InAxes = 0) -> int:
    """Number of members: the length of the mapped axis of the mapped arguments (all must agree).

    Raises:
      ValueError: no argument is mapped, or the mapped axes have different lengths.
    """
    axes = _normalize_in_axes(in_axes, len(args))
    sizes = set()
    for a, ax in zip(args, axes):
        if ax is None:
            continue
        for leaf in jax.tree_util.tree_leaves(a):
            nd = jnp.ndim(leaf)
            if not -nd <= ax < nd:
                raise ValueError(f"a mapped argument has a leaf of shape {jnp.shape(leaf)} without member axis {ax}")
            sizes.add(int(jnp.shape(leaf)[ax]))
    if not sizes:
        raise ValueError("population_map needs at least one mapped argument (an in_axes entry that is not None)")
    if len(sizes) > 1:
        raise ValueError(f"mapped arguments disagree on the population size: {sorted(sizes)}")
    return sizes.pop()


def _unrolled(fn: Callable[..., Any], in_axes: InAxes, serialize: bool) -> Callable[..., Any]:
    def mapped(*args: Any) -> Any:
        axes = _normalize_in_axes(in_axes, len(args))
        n = population_size(args, axes)
        outs: list[Any] = []
        for i in range(n):
            member_args = [
                a
                if ax is None
                else jax.tree_util.tree_map(lambda x, ax=ax: jax.lax.index_in_dim(x, i, ax, keepdims=False), a)
                for a, ax in zip(args, axes)
            ]
            if outs and serialize:
                # member i starts after member i-1 has finished (no concurrent thunks competing for the cores)
                member_args, _ = jax.lax.optimization_barrier((member_args, outs[-1]))
            outs.append(fn(*member_args))
        return jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *outs)

    return mapped


def population_map(
    fn: Callable[..., Any],
    *,
    strategy: Strategy = "vmap",
    in_axes: InAxes = 0,
    model: str | None = None,
    backend: str | None = None,
    batch_invariant: bool = True,
    serialize: bool = False,
) -> Callable[..., Any]:
    """Map ``fn`` (one member) over a population: ``out[i] = fn(*[a[i] if mapped else a for a in args])``.

    Args:
      fn: the function of one member (e.g. :func:`jtricks.train.make_train_step`'s step).
      strategy: ``"vmap"`` (``jax.vmap``), ``"unroll"`` (members one after another in one traced
        program) or ``"auto"`` (:func:`resolve_strategy` with ``model`` and ``backend``).
      in_axes: as ``jax.vmap``'s, one entry per positional argument (int or None, applied to every leaf
        of that argument) or one int / None for all; outputs always carry the member axis first.
      model: the model's name (``jtricks.models.Model.name``) for ``"auto"``.
      backend: the backend for ``"auto"`` (default: ``jax.default_backend()``).
      batch_invariant: for ``"auto"``: whether the model's members stay bit-identical under ``vmap``
        (jtricks' own models); ``False`` makes ``"auto"`` unroll.
      serialize: ``"unroll"`` only: member ``i + 1`` starts only after member ``i``'s outputs exist
        (``lax.optimization_barrier``), so the members' operations never run concurrently on the
        runtime's thread pool (values are unchanged).

    Returns:
      The population function (not jitted: wrap it in ``jax.jit``).

    Raises:
      ValueError / TypeError: an unknown strategy or malformed ``in_axes`` (before anything is traced).
    """
    if not callable(fn):
        raise TypeError(f"`fn` must be callable, got {type(fn).__name__}")
    concrete = resolve_strategy(strategy, model=model, backend=backend, batch_invariant=batch_invariant)
    if isinstance(in_axes, (list, tuple)):
        _normalize_in_axes(in_axes, len(in_axes))
    else:
        _normalize_in_axes(in_axes, 1)
    if concrete == "vmap":
        return jax.vmap(fn, in_axes=tuple(in_axes) if isinstance(in_axes, list) else in_axes)
    return _unrolled(fn, in_axes, bool(serialize))
