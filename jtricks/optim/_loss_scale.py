"""Dynamic loss scaling for float16 training: a state and pure functions, in the style of an optax transform.

float16 has a 5-bit exponent: gradients below ``2^-24`` flush to zero and values above 65504 overflow. Scaling
the loss by ``s`` before the backward pass lifts the small gradients into range; the scaled gradients are
unscaled before the optimizer sees them, and a step whose gradients came out non-finite is skipped::

    g      = ∇(s · L) · (1 / s)                      (s a power of two: the unscaling is exact)
    finite = all_i isfinite(g_i)
    finite:      n ← n + 1;  if n = period:  s ← s · factor,  n ← 0          (the update is applied)
    not finite:  s ← max(s / factor, min_scale),  n ← 0                     (the update is skipped)

with the standard values ``s₀ = 2^15``, ``period = 2000``, ``factor = 2``, ``min_scale = 1``
(Micikevicius et al., 2018, "Mixed precision training"; the defaults of ``torch.cuda.amp.GradScaler`` and of
``jmp.DynamicLossScale``). A non-finite step at ``s = min_scale`` cannot be rescued by a smaller scale:
:func:`loss_scale_exhausted` says so, and the engine reports such a member as diverged.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

__all__ = [
    "LossScaleState",
    "INITIAL_LOSS_SCALE",
    "LOSS_SCALE_PERIOD",
    "LOSS_SCALE_FACTOR",
    "MIN_LOSS_SCALE",
    "loss_scale_init",
    "scale_loss",
    "unscale_grads",
    "all_finite",
    "loss_scale_update",
    "loss_scale_exhausted",
]

INITIAL_LOSS_SCALE = 2.0**15
LOSS_SCALE_PERIOD = 2000
LOSS_SCALE_FACTOR = 2
MIN_LOSS_SCALE = 1.0


class LossScaleState(NamedTuple):
    """``scale``: the current loss scale ``s`` (float32, a power of two); ``good_steps``: finite steps since the
    last change of ``s`` (int32); ``skipped``: the steps skipped so far (int32)."""

    scale: jax.Array
    good_steps: jax.Array
    skipped: jax.Array


def _check_power_of_two(v: Any, name: str) -> float:
    """``float(v)`` when ``v`` is a positive, finite power of two (``2^k``, any integer ``k``), else ``ValueError``."""
    ok = not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v) and v > 0
    if not ok or math.frexp(v)[0] != 0.5:
        raise ValueError(f"{name!r} must be a positive power of two, got {v!r}")
    return float(v)


def loss_scale_init(initial: float = INITIAL_LOSS_SCALE) -> LossScaleState:
    """The state at the first step: ``s = initial`` (a power of two, so the unscaling is exact), no steps counted."""
    s = _check_power_of_two(initial, "initial")
    return LossScaleState(jnp.float32(s), jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))


def scale_loss(loss: jax.Array, state: LossScaleState) -> jax.Array:
    """``s · L``: the objective the backward pass differentiates."""
    return loss * state.scale.astype(loss.dtype)


def unscale_grads(grads: Any, state: LossScaleState) -> Any:
    """``g · (1 / s)`` leaf by leaf (exact: ``s`` is a power of two)."""
    inv = jnp.float32(1.0) / state.scale
    return jax.tree_util.tree_map(lambda g: g * inv.astype(g.dtype), grads)


def all_finite(tree: Any) -> jax.Array:
    """``True`` when every element of every leaf of ``tree`` is finite (a boolean scalar)."""
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree_util.tree_leaves(tree)]
    return jnp.stack(leaves).all() if leaves else jnp.asarray(True)


def loss_scale_update(
    state: LossScaleState,
    finite: jax.Array,
    *,
    period: int = LOSS_SCALE_PERIOD,
    factor: int = LOSS_SCALE_FACTOR,
    min_scale: float = MIN_LOSS_SCALE,
) -> LossScaleState:
    """The state after a step whose gradients were ``finite`` (see the module docstring for the rule)."""
    if isinstance(period, bool) or not isinstance(period, int) or period < 1:
        raise ValueError(f"'period' must be a positive int, got {period!r}")
    _check_power_of_two(factor, "factor")
    if factor < 2:
        raise ValueError(f"'factor' must be a power of two >= 2, got {factor!r}")
    _check_power_of_two(min_scale, "min_scale")
    good = state.good_steps + 1
    grow = good >= period
    up = jnp.where(grow, state.scale * jnp.float32(factor), state.scale)
    down = jnp.maximum(state.scale * jnp.float32(1.0 / factor), jnp.float32(min_scale))
    return LossScaleState(
        scale=jnp.where(finite, up, down),
        good_steps=jnp.where(finite & ~grow, good, jnp.zeros((), jnp.int32)),
        skipped=state.skipped + jnp.where(finite, 0, 1).astype(jnp.int32),
    )


def loss_scale_exhausted(state: LossScaleState, finite: jax.Array, min_scale: float = MIN_LOSS_SCALE) -> jax.Array:
    """``True`` for a non-finite step taken at ``s <= min_scale``: no smaller scale is left to try."""
    return ~finite & (state.scale <= jnp.float32(min_scale))
