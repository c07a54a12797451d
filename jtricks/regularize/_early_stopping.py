"""Early stopping as a pure, branch-free state machine that runs under ``jit``, ``scan`` and ``vmap``.

The rule of Prechelt (1998) and Keras' ``EarlyStopping``: with ``best`` the best metric so far::

    improved = metric < best - min_delta   (mode "min")   or   metric > best + min_delta   (mode "max")

an improvement records ``best, best_epoch, best_params <- metric, epoch, params`` and resets the
counter; otherwise ``count <- count + 1`` and ``should_stop <- count >= patience``. Once stopped the
state freezes. Every step is a ``jnp.where`` select (flax's
``flax.training.early_stopping.EarlyStopping`` branches in Python and cannot be traced), and
``patience`` / ``min_delta`` may be traced, so each member of a ``vmap``-ed population stops at its
own epoch and keeps its own best parameters.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp

from jtricks.regularize._base import PyTree, Scalar, check_int, check_same_structure, check_scalar_range

__all__ = [
    "EarlyStoppingState",
    "early_stopping_init",
    "early_stopping_update",
]

_MODES = ("min", "max")


def _check_mode(mode: Any) -> str:
    if not isinstance(mode, str) or mode not in _MODES:
        raise ValueError(f"`mode` must be one of {_MODES!r}, got {mode!r}")
    return mode


@dataclasses.dataclass(frozen=True)
class EarlyStoppingState:
    """State of the jittable early-stopping rule (a pytree; ``mode`` is static metadata).

    Attributes:
      best_metric: best metric seen so far (``+inf`` for ``"min"`` / ``-inf`` for ``"max"`` before
        the first improvement), float32.
      best_epoch: epoch of ``best_metric`` (``-1`` before the first improvement), int32.
      best_params: the parameters passed at ``best_epoch`` (the initial ones before).
      patience_count: consecutive updates without improvement, int32.
      should_stop: bool scalar; once ``True`` it stays ``True`` and the state freezes.
      stop_epoch: the epoch at which ``should_stop`` became ``True``, ``-1`` while running.
      mode: ``"min"`` or ``"max"`` (static: part of the tree structure, not a leaf).
    """

    best_metric: jax.Array
    best_epoch: jax.Array
    best_params: PyTree
    patience_count: jax.Array
    should_stop: jax.Array
    stop_epoch: jax.Array
    mode: str = "min"

    def replace(self, **changes: Any) -> EarlyStoppingState:
        """A copy with ``changes`` applied (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)


jax.tree_util.register_dataclass(
    EarlyStoppingState,
    data_fields=["best_metric", "best_epoch", "best_params", "patience_count", "should_stop", "stop_epoch"],
    meta_fields=["mode"],
)


def early_stopping_init(params: PyTree, *, mode: str = "min") -> EarlyStoppingState:
    """Initial :class:`EarlyStoppingState`: no best yet, counter 0, not stopped.

    ``best_metric = +inf`` (``mode="min"``, e.g. a validation loss) or ``-inf`` (``mode="max"``,
    e.g. an accuracy); ``best_params = params``; ``best_epoch = stop_epoch = -1``.
    Works under ``jax.vmap`` over a stacked ``params`` (one state per population member).

    Raises:
      ValueError: if ``mode`` is not ``"min"`` or ``"max"``.
    """
    mode = _check_mode(mode)
    return EarlyStoppingState(
        best_metric=jnp.asarray(math.inf if mode == "min" else -math.inf, jnp.float32),
        best_epoch=jnp.asarray(-1, jnp.int32),
        best_params=params,
        patience_count=jnp.asarray(0, jnp.int32),
        should_stop=jnp.asarray(False),
        stop_epoch=jnp.asarray(-1, jnp.int32),
        mode=mode,
    )


def _check_early_stopping_args(
    state: EarlyStoppingState, params: PyTree, patience: Any, min_delta: Any, mode: Any
) -> None:
    """Validate :func:`early_stopping_update`'s ``mode``, Python ``patience`` / ``min_delta`` and ``params``."""
    if mode is not None:
        mode = _check_mode(mode)
        if mode != state.mode:
            raise ValueError(
                f"`mode`={mode!r} differs from the state's mode {state.mode!r} (given to early_stopping_init)"
            )
    check_int(patience, "patience", 0)
    check_scalar_range(min_delta, "min_delta", 0.0, math.inf, True, "min_delta >= 0")
    check_same_structure(state.best_params, params, "state.best_params", "params", "early_stopping_update", True)


def early_stopping_update(
    state: EarlyStoppingState,
    metric: Scalar,
    params: PyTree,
    epoch: int | jax.Array,
    *,
    patience: int | jax.Array,
    min_delta: float | jax.Array = 0.0,
    mode: str | None = None,
) -> EarlyStoppingState:
    """One step of early stopping (Prechelt, 1998; the Keras ``EarlyStopping`` rule), branch-free.

    ``improved = metric < best - min_delta`` (``mode="min"``) or ``metric > best + min_delta``
    (``mode="max"``); a NaN metric never improves. Then, while not stopped:

    * improved: ``best, best_epoch, best_params <- metric, epoch, params`` and ``count <- 0``;
    * otherwise: ``count <- count + 1`` and ``should_stop <- count >= patience`` (so training stops
      after ``patience`` consecutive epochs without improvement; ``patience = 0`` stops at the first
      one). ``stop_epoch`` records the epoch.

    Once ``should_stop`` is ``True`` nothing changes any more, so a stopped member of a
    ``vmap``-ed population freezes while the others go on. Everything is ``jnp.where`` selects: it
    runs under ``jit`` / ``scan`` / ``vmap``, and ``patience`` / ``min_delta`` may be traced.

    Note: flax's ``EarlyStopping(patience=p)`` stops one epoch later (after ``p + 1`` epochs
    without improvement); this one with ``patience=p`` equals flax's with ``patience=p - 1``.

    Args:
      state: from :func:`early_stopping_init` (or a previous update).
      metric: scalar metric of this epoch.
      params: this epoch's parameters (same structure and shapes as ``state.best_params``).
      epoch: this epoch's index (int or int array).
      patience: Python int ``>= 0`` (validated) or an integer array.
      min_delta: Python number ``>= 0`` (validated) or a scalar array.
      mode: ``None`` (use ``state.mode``) or ``"min"`` / ``"max"``, which must equal ``state.mode``.

    Returns:
      The new state.

    Raises:
      ValueError / TypeError: bad ``mode``, a negative or non-int Python ``patience``, a negative
        Python ``min_delta``, or ``params`` whose structure / shapes differ from ``best_params``.
    """
    _check_early_stopping_args(state, params, patience, min_delta, mode)

    dt = state.best_metric.dtype
    metric = jnp.asarray(metric, dt)
    if jnp.ndim(metric) != 0:
        raise ValueError(f"`metric` must be a scalar, got shape {jnp.shape(metric)}")
    delta = jnp.asarray(min_delta, dt)
    epoch = jnp.asarray(epoch, jnp.int32)

    running = jnp.logical_not(state.should_stop)
    if state.mode == "min":
        better = metric < state.best_metric - delta
    else:
        better = metric > state.best_metric + delta
    improved = jnp.logical_and(running, better)  # False for NaN metrics (comparisons are False)
    count = jnp.where(improved, 0, state.patience_count + 1).astype(jnp.int32)
    stop_now = running & jnp.logical_not(improved) & (count >= patience)
    return EarlyStoppingState(
        best_metric=jnp.where(improved, metric, state.best_metric),
        best_epoch=jnp.where(improved, epoch, state.best_epoch),
        best_params=jax.tree_util.tree_map(
            lambda p, b: jnp.where(improved, p, b).astype(jnp.result_type(b)), params, state.best_params
        ),
        patience_count=jnp.where(running, count, state.patience_count),
        should_stop=state.should_stop | stop_now,
        stop_epoch=jnp.where(stop_now, epoch, state.stop_epoch),
        mode=state.mode,
    )
