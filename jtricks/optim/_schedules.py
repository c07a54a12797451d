"""The learning-rate schedules of :mod:`jtricks.optim`: ``count -> value`` callables (``optax.Schedule``).

:func:`constant`, :func:`exponential_decay`, the guide's :func:`per_epoch_decay` (x0.98 per epoch),
:func:`step_decay`, :func:`cosine_decay` and :func:`warmup_cosine`. Their numeric parameters
(initial value, decay rate, final fraction) may be traced arrays, so a population can ``vmap``
over them; their lengths are static Python integers.
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp
import optax

from jtricks.optim._base import Numeric, check, check_static_int

__all__ = [
    "constant",
    "exponential_decay",
    "per_epoch_decay",
    "step_decay",
    "cosine_decay",
    "warmup_cosine",
]


def constant(value: Numeric) -> optax.Schedule:
    """Constant schedule: ``eta_t = value`` (``optax.constant_schedule``)."""
    check("learning_rate", value, "value")
    return optax.constant_schedule(value)


def exponential_decay(
    init_value: Numeric,
    decay_rate: Numeric,
    transition_steps: int,
    staircase: bool = True,
) -> optax.Schedule:
    """Exponential decay: ``eta_t = init_value * decay_rate ** p``.

    ``p = t // transition_steps`` (integer division) if ``staircase`` else
    ``p = t / transition_steps``. Same values as ``optax.exponential_decay`` (tested), but
    ``init_value`` and ``decay_rate`` may be traced arrays (optax's version branches on the value
    of ``decay_rate`` in Python, which fails under ``jit`` / ``vmap``), and the staircase exponent
    is an exact integer division.

    Args:
      init_value: ``eta_0 >= 0``.
      decay_rate: factor per transition, ``0 < decay_rate <= 1``.
      transition_steps: static int >= 1.
      staircase: decay in discrete jumps (default) or continuously.
    """
    check("learning_rate", init_value, "init_value")
    check("decay_rate", decay_rate)
    steps = check_static_int("transition_steps", transition_steps, minimum=1)
    staircase = bool(staircase)

    def schedule(count: jax.typing.ArrayLike) -> jax.Array:
        count = jnp.asarray(count)
        p = count // steps if staircase else count / steps
        return init_value * jnp.power(decay_rate, p)

    return schedule


def per_epoch_decay(init_value: Numeric, decay_rate: Numeric = 0.98, *, steps_per_epoch: int) -> optax.Schedule:
    """The guide's "multiply the learning rate by 0.98 after every epoch".

    ``eta_t = init_value * decay_rate ** (t // steps_per_epoch)`` for the update number ``t``
    (0-based): a staircase :func:`exponential_decay` with one transition per epoch.
    """
    steps = check_static_int("steps_per_epoch", steps_per_epoch, minimum=1)
    return exponential_decay(init_value, decay_rate, steps, staircase=True)


def step_decay(
    init_value: Numeric,
    boundaries_and_scales: Mapping[int, float] | None = None,
    *,
    every_epochs: int | None = None,
    factor: Numeric = 0.1,
    steps_per_epoch: int = 1,
) -> optax.Schedule:
    """Step decay: drop the learning rate by a factor at chosen steps.

    Either give ``boundaries_and_scales`` ``{step: scale}`` (``eta`` is multiplied by ``scale``
    once ``t >= step``; ``optax.piecewise_constant_schedule``), or ``every_epochs`` and ``factor``:
    ``eta_t = init_value * factor ** (t // (every_epochs * steps_per_epoch))``.
    """
    check("learning_rate", init_value, "init_value")
    if (boundaries_and_scales is None) == (every_epochs is None):
        raise ValueError(
            "step_decay: give exactly one of boundaries_and_scales or every_epochs, "
            f"got boundaries_and_scales={boundaries_and_scales!r}, every_epochs={every_epochs!r}"
        )
    if boundaries_and_scales is not None:
        for step, scale in boundaries_and_scales.items():
            check_static_int("boundaries_and_scales key", step, minimum=0)
            check("learning_rate", scale, "boundaries_and_scales value")
        return optax.piecewise_constant_schedule(init_value, dict(boundaries_and_scales))
    every = check_static_int("every_epochs", every_epochs, minimum=1)
    spe = check_static_int("steps_per_epoch", steps_per_epoch, minimum=1)
    check("decay_rate", factor, "factor")
    return exponential_decay(init_value, factor, every * spe, staircase=True)


def cosine_decay(init_value: Numeric, decay_steps: int, alpha: Numeric = 0.0) -> optax.Schedule:
    """Cosine decay (Loshchilov & Hutter, 2017, without restarts).

    ``eta_t = init_value * ((1 - alpha) * 0.5 * (1 + cos(pi * min(t, T) / T)) + alpha)`` with
    ``T = decay_steps``: from ``init_value`` down to ``alpha * init_value``, then constant.
    Wraps ``optax.cosine_decay_schedule`` (``init_value`` and ``alpha`` may be traced).
    """
    check("learning_rate", init_value, "init_value")
    check("alpha", alpha)
    steps = check_static_int("decay_steps", decay_steps, minimum=1)
    return optax.cosine_decay_schedule(init_value, steps, alpha=alpha)


def warmup_cosine(
    peak_value: Numeric,
    warmup_steps: int,
    decay_steps: int,
    init_value: Numeric = 0.0,
    end_value: Numeric = 0.0,
) -> optax.Schedule:
    """Linear warm-up then cosine decay (Goyal et al., 2017; Loshchilov & Hutter, 2017).

    For ``t < W = warmup_steps``: ``eta_t = init_value + (peak_value - init_value) * t / W``.
    For ``t >= W``: ``eta_t = end_value + (peak_value - end_value) * 0.5 * (1 + cos(pi * s / D))``
    with ``s = min(t - W, D)`` and ``D = decay_steps - W``. As in
    ``optax.warmup_cosine_decay_schedule`` (same values, tested), ``decay_steps`` is the total
    length INCLUDING the warm-up. Built from ``optax.join_schedules``, ``optax.linear_schedule``
    and ``optax.cosine_decay_schedule`` so that the three values may be traced arrays.
    """
    check("learning_rate", peak_value, "peak_value")
    check("learning_rate", init_value, "init_value")
    check("learning_rate", end_value, "end_value")
    w = check_static_int("warmup_steps", warmup_steps, minimum=0)
    total = check_static_int("decay_steps", decay_steps, minimum=1)
    if total <= w:
        raise ValueError(
            f"decay_steps must be > warmup_steps (it includes the warm-up), got decay_steps={total}, warmup_steps={w}"
        )
    unit_cosine = optax.cosine_decay_schedule(1.0, total - w)

    def decay(count: jax.typing.ArrayLike) -> jax.Array:
        return end_value + (peak_value - end_value) * unit_cosine(count)

    warm = optax.linear_schedule(init_value, peak_value, w)
    return optax.join_schedules([warm, decay], [w])
