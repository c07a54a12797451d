"""Optimizers, gradient clipping and learning-rate schedules as optax objects.

Every optimizer here is a thin, validated wrapper around optax (``optax.sgd``, ``optax.adam``, ...):
the returned objects are plain ``optax.GradientTransformation`` s and schedules are plain
``count -> value`` callables, so they drop into any optax / flax / equinox training loop.

jtricks adds

* names and conventions of the classic guide (``momentum`` with ``gamma``, ``normalized_sgd``,
  ``per_epoch_decay`` with the guide's x0.98 per epoch),
* validation against the ranges of :data:`jtricks.hparams.REGISTRY`: a hyperparameter given as a
  Python number or a concrete array is checked and a bad one raises ``ValueError`` naming the
  parameter and its range; tracers (inside ``jit`` / ``vmap``) pass through unchecked, so a
  population can ``jax.vmap`` over them,
* schedules whose own parameters (initial value, decay rate, final fraction) may be traced, and
* a builder, :func:`build`, that turns a static :class:`OptimizerSpec` (a named optimizer above or
  any optax optimizer factory such as ``optax.lion``) plus a dict of numeric
  hyperparameters into an optimizer whose hyperparameters live as arrays in the optimizer state
  (``optax.inject_hyperparams``): a grid over learning rates, momenta, decay rates, clip thresholds
  or weight decays is a ``vmap``, never a recompile.

Four transforms are re-expressed instead of re-exported, because the optax versions are not
vmap-invariant on XLA:CPU (a vmapped population member would drift from the run alone by an ulp
per step): :func:`clip_by_global_norm`, :func:`scale_by_adam` (used by :func:`adam` /
:func:`adamw`), :func:`trace_nesterov` (used by :func:`nesterov`) and
:func:`scale_by_inverse_global_norm` (used by :func:`normalized_sgd`). They compute the same
formulas as ``optax.clip_by_global_norm`` / ``optax.scale_by_adam`` / ``optax.trace(nesterov=True)``
/ ``optax.normalize_by_update_norm`` (agreement to float32 rounding is tested) but avoid
(a) divisions by a broadcast scalar, which XLA rewrites into a multiplication by the reciprocal in
some programs and not in others, and (b) sums of two products such as ``(1-b1) g + b1 m``, where
XLA:CPU's always-on FMA contraction may fuse either product depending on how the surrounding
program was fused. See "Population = vmap" in ``docs/optimizers.md``.

Update conventions (``u`` is the update added to the parameters, ``g`` the gradient,
``eta`` the learning rate at the current step): SGD ``u = -eta g``; momentum
``m = gamma m + g, u = -eta m`` (nesterov: ``u = -eta (g + gamma m)``); Adam as Kingma & Ba with
``eps`` outside the square root. These are the ``torch.optim`` conventions (with ``dampening=0``)
and those of optax.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple, Union

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jtricks import hparams as jhp
from jtricks._core import numerics as jnum

__all__ = [
    "sgd",
    "momentum",
    "nesterov",
    "adagrad",
    "rmsprop",
    "adam",
    "adamw",
    "normalized_sgd",
    "clip_by_global_norm",
    "scale_by_adam",
    "scale_by_inverse_global_norm",
    "trace_nesterov",
    "chain",
    "constant",
    "exponential_decay",
    "per_epoch_decay",
    "step_decay",
    "cosine_decay",
    "warmup_cosine",
    "OptimizerSpec",
    "OPTIMIZERS",
    "SCHEDULES",
    "hparam_names",
    "default_hparams",
    "build_schedule",
    "build",
]

ScalarOrSchedule = Union[float, jax.Array, optax.Schedule]
Numeric = Union[float, jax.Array]

NORMALIZED_SGD_EPS: float = 1e-8
"""Default guard of :func:`normalized_sgd`: the step is ``-eta g / (||g|| + eps)``."""


# --------------------------------------------------------------------------------------------
# validation helpers (Python numbers only; arrays and tracers pass through)
# --------------------------------------------------------------------------------------------


def _is_python_number(x: Any) -> bool:
    """True for Python / numpy scalars (which are validated); False for arrays, tracers, callables."""
    if isinstance(x, (bool, np.bool_)):
        return False
    return isinstance(x, (int, float, np.integer, np.floating))


def _check(name: str, value: Any, label: str | None = None) -> None:
    """Range check of ``value`` as hyperparameter ``name`` of :data:`jtricks.hparams.REGISTRY`.

    Python numbers and concrete arrays are checked (``ValueError`` naming ``label`` or ``name`` and
    the allowed interval); booleans and strings raise ``TypeError``; tracers and callables
    (schedules) pass through so that they can be traced / vmapped.
    """
    jhp.check(name, value, label=label)


def _check_learning_rate(learning_rate: Any) -> None:
    if callable(learning_rate):
        return
    _check("learning_rate", learning_rate)


def _check_static_int(name: str, value: Any, *, minimum: int) -> int:
    """A static (Python) integer >= minimum; returns it as ``int``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be a Python int (a static value), got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


# --------------------------------------------------------------------------------------------
# optimizers
# --------------------------------------------------------------------------------------------


def _decayed(
    direction: optax.GradientTransformation,
    learning_rate: ScalarOrSchedule,
    weight_decay: Numeric,
    mask: Any,
) -> optax.GradientTransformation:
    """``u = -eta_t (d_t + weight_decay * theta)``: ``chain(direction, add_decayed_weights, scale_by_learning_rate)``."""
    _check("weight_decay", weight_decay)
    return optax.chain(
        direction,
        optax.add_decayed_weights(weight_decay, mask),
        optax.scale_by_learning_rate(learning_rate),
    )


def sgd(
    learning_rate: ScalarOrSchedule, *, weight_decay: Numeric | None = None, mask: Any = None
) -> optax.GradientTransformation:
    """Plain stochastic gradient descent: ``theta <- theta - eta_t * g``.

    Wraps ``optax.sgd(learning_rate)``; same update as ``torch.optim.SGD`` without momentum.

    Args:
      learning_rate: ``eta``: a number >= 0, a (traced) scalar array or a schedule ``count -> eta``.
      weight_decay: ``None`` (no decay) or decoupled weight decay ``lambda >= 0``:
        ``u_t = -eta_t * (d_t + lambda * theta_t)`` with ``d_t`` the direction above (``update``
        then needs ``params``).
      mask: leaves that decay (pytree of bools or callable ``params -> pytree``), with ``weight_decay``.

    Returns:
      An ``optax.GradientTransformation``.
    """
    _check_learning_rate(learning_rate)
    if weight_decay is not None:
        return _decayed(optax.identity(), learning_rate, weight_decay, mask)
    return optax.sgd(learning_rate)


def momentum(
    learning_rate: ScalarOrSchedule,
    gamma: Numeric = 0.9,
    nesterov: bool = False,
    *,
    weight_decay: Numeric | None = None,
    mask: Any = None,
) -> optax.GradientTransformation:
    """SGD with (heavy-ball or Nesterov) momentum, the optax / ``torch.optim.SGD`` convention.

    ``m_t = gamma * m_{t-1} + g_t`` (``m_0 = 0``) and the update is ``u_t = -eta_t * m_t``, or
    ``u_t = -eta_t * (g_t + gamma * m_t)`` when ``nesterov=True`` (Sutskever et al., 2013).

    The classic guide writes momentum as ``v_t = gamma v_{t-1} - eta g_t``, ``theta += v_t``.
    With a constant ``eta`` this is the same iteration (``v_t = -eta m_t``; equal up to float
    rounding). With a time-varying ``eta_t`` they differ: the guide's velocity keeps each past
    gradient with the learning rate it was seen with (``v_t = -sum_s gamma^(t-s) eta_s g_s``),
    while here the current ``eta_t`` rescales the whole accumulated ``m_t``, so a decayed learning
    rate takes effect immediately (as in ``torch.optim.SGD`` and ``optax.sgd``).

    Args:
      learning_rate: ``eta`` (number >= 0, traced scalar or schedule).
      gamma: momentum coefficient, ``0 <= gamma < 1`` (or a traced scalar).
      nesterov: use Nesterov's look-ahead form.
      weight_decay: ``None`` (no decay) or decoupled weight decay ``lambda >= 0``:
        ``u_t = -eta_t * (d_t + lambda * theta_t)`` with ``d_t`` the direction above (``update``
        then needs ``params``).
      mask: leaves that decay (pytree of bools or callable ``params -> pytree``), with ``weight_decay``.

    Returns:
      ``optax.sgd(learning_rate, momentum=gamma)``, or with ``nesterov=True``
      ``optax.chain(trace_nesterov(gamma), optax.scale_by_learning_rate(learning_rate))``, equal to
      ``optax.sgd(learning_rate, momentum=gamma, nesterov=True)`` to float32 rounding.
    """
    _check_learning_rate(learning_rate)
    _check("gamma", gamma)
    if not isinstance(nesterov, (bool, np.bool_)):
        raise TypeError(f"nesterov must be a bool, got {nesterov!r}")
    if weight_decay is not None:
        direction = trace_nesterov(gamma) if nesterov else optax.trace(decay=gamma)
        return _decayed(direction, learning_rate, weight_decay, mask)
    if nesterov:
        return optax.chain(trace_nesterov(gamma), optax.scale_by_learning_rate(learning_rate))
    return optax.sgd(learning_rate, momentum=gamma)


def nesterov(
    learning_rate: ScalarOrSchedule,
    gamma: Numeric = 0.9,
    *,
    weight_decay: Numeric | None = None,
    mask: Any = None,
) -> optax.GradientTransformation:
    """Nesterov momentum: ``m_t = gamma m_{t-1} + g_t``, ``u_t = -eta_t (g_t + gamma m_t)``.

    Shorthand for ``momentum(learning_rate, gamma, nesterov=True, weight_decay=..., mask=...)``
    (``torch.optim.SGD(..., nesterov=True)`` convention).
    """
    return momentum(learning_rate, gamma, nesterov=True, weight_decay=weight_decay, mask=mask)


def adagrad(
    learning_rate: ScalarOrSchedule,
    initial_accumulator_value: Numeric = 0.1,
    eps: Numeric = 1e-7,
    *,
    weight_decay: Numeric | None = None,
    mask: Any = None,
) -> optax.GradientTransformation:
    """AdaGrad (Duchi et al., 2011): per-coordinate step shrinking with the gradient history.

    ``G_t = G_{t-1} + g_t^2`` (``G_0 = initial_accumulator_value``),
    ``u_t = -eta_t * g_t / sqrt(G_t + eps)``. Wraps ``optax.adagrad`` with its defaults (note:
    ``torch.optim.Adagrad`` starts from ``G_0 = 0`` and adds ``eps=1e-10`` outside the root).
    ``weight_decay`` / ``mask``: decoupled weight decay as in :func:`sgd`.
    """
    _check_learning_rate(learning_rate)
    _check("initial_accumulator_value", initial_accumulator_value)
    _check("eps", eps)
    if weight_decay is not None:
        direction = optax.scale_by_rss(initial_accumulator_value=initial_accumulator_value, eps=eps)
        return _decayed(direction, learning_rate, weight_decay, mask)
    return optax.adagrad(learning_rate, initial_accumulator_value=initial_accumulator_value, eps=eps)


def rmsprop(
    learning_rate: ScalarOrSchedule,
    decay: Numeric = 0.9,
    eps: Numeric = 1e-8,
    *,
    eps_in_sqrt: bool = True,
    centered: bool = False,
    weight_decay: Numeric | None = None,
    mask: Any = None,
) -> optax.GradientTransformation:
    """RMSProp (Hinton, 2012): scale by a running root-mean-square of the gradients.

    ``v_t = decay * v_{t-1} + (1 - decay) * g_t^2`` (``v_0 = 0``),
    ``u_t = -eta_t * g_t / sqrt(v_t + eps)`` (``eps_in_sqrt=True``, the optax default) or
    ``u_t = -eta_t * g_t / (sqrt(v_t) + eps)`` (``eps_in_sqrt=False``, the ``torch.optim.RMSprop``
    form; torch's default decay ``alpha`` is 0.99). ``centered=True`` divides by the running
    standard deviation instead. Wraps ``optax.rmsprop``. ``weight_decay`` / ``mask``: decoupled
    weight decay as in :func:`sgd`.
    """
    _check_learning_rate(learning_rate)
    _check("decay", decay)
    _check("eps", eps)
    if weight_decay is not None:
        rms = optax.scale_by_stddev if centered else optax.scale_by_rms
        direction = rms(decay=decay, eps=eps, eps_in_sqrt=bool(eps_in_sqrt))
        return _decayed(direction, learning_rate, weight_decay, mask)
    return optax.rmsprop(
        learning_rate, decay=decay, eps=eps, eps_in_sqrt=bool(eps_in_sqrt), centered=bool(centered)
    )


def _check_adam(b1: Any, b2: Any, eps: Any) -> None:
    _check("b1", b1)
    _check("b2", b2)
    _check("eps", eps)


class ScaleByAdamState(NamedTuple):
    """State of :func:`scale_by_adam`: step count and first / second moment estimates."""

    count: jax.Array  # int32 scalar: number of updates done
    mu: optax.Updates
    nu: optax.Updates


def scale_by_adam(
    b1: Numeric = 0.9, b2: Numeric = 0.999, eps: Numeric = 1e-8
) -> optax.GradientTransformation:
    """Adam's preconditioner (Kingma & Ba, 2015), without the learning rate.

    ``m_t = m_{t-1} + (1-b1) (g_t - m_{t-1})`` (= ``b1 m_{t-1} + (1-b1) g_t``),
    ``v_t = v_{t-1} + (1-b2) (g_t^2 - v_{t-1})`` (= ``b2 v_{t-1} + (1-b2) g_t^2``),
    ``u_t = m_t c1_t / (sqrt(v_t c2_t) + eps)`` with the bias corrections
    ``c1_t = 1 / (1 - b1^t)`` and ``c2_t = 1 / (1 - b2^t)``. The same formula as
    ``optax.scale_by_adam`` (agreement to float32 rounding tested); written with one product per
    sum and explicit reciprocals, which keeps the members of a vmapped population bit-identical to
    the runs alone on CPU (tested; see the module docstring).
    """
    _check_adam(b1, b2, eps)

    def init_fn(params: optax.Params) -> ScaleByAdamState:
        zeros = lambda p: jnp.zeros_like(p)  # noqa: E731
        return ScaleByAdamState(
            count=jnp.zeros([], jnp.int32),
            mu=jax.tree.map(zeros, params),
            nu=jax.tree.map(zeros, params),
        )

    def update_fn(
        updates: optax.Updates, state: ScaleByAdamState, params: optax.Params | None = None
    ) -> tuple[optax.Updates, ScaleByAdamState]:
        del params
        mu = jax.tree.map(lambda g, m: m + (1 - b1) * (g - m), updates, state.mu)
        nu = jax.tree.map(lambda g, v: v + (1 - b2) * (g * g - v), updates, state.nu)
        count = optax.safe_increment(state.count)
        c1 = 1 / (1 - jnp.power(b1, count))
        c2 = 1 / (1 - jnp.power(b2, count))

        def direction(m: jax.Array, v: jax.Array) -> jax.Array:
            return (m * c1.astype(m.dtype)) / (jnp.sqrt(v * c2.astype(v.dtype)) + eps)

        return jax.tree.map(direction, mu, nu), ScaleByAdamState(count=count, mu=mu, nu=nu)

    return optax.GradientTransformation(init_fn, update_fn)


def trace_nesterov(gamma: Numeric = 0.9) -> optax.GradientTransformation:
    """Nesterov momentum's direction (before the learning rate), as ``optax.trace(gamma, True)``.

    ``m_t = g_t + gamma m_{t-1}`` (the state) and ``u_t = g_t + gamma m_t``, computed as
    ``u_t = m_t + gamma (m_t - m_{t-1})`` (the same value: ``g_t = m_t - gamma m_{t-1}``;
    agreement with optax to float32 rounding tested) so that each sum holds a single product, which
    keeps vmapped members bit-identical to the runs alone on CPU (tested; see the module docstring).
    """
    _check("gamma", gamma)

    def init_fn(params: optax.Params) -> optax.TraceState:
        return optax.TraceState(trace=jax.tree.map(jnp.zeros_like, params))

    def update_fn(
        updates: optax.Updates, state: optax.TraceState, params: optax.Params | None = None
    ) -> tuple[optax.Updates, optax.TraceState]:
        del params
        new = jax.tree.map(lambda g, t: g + gamma * t, updates, state.trace)
        out = jax.tree.map(lambda m, t: m + gamma * (m - t), new, state.trace)
        return out, optax.TraceState(trace=new)

    return optax.GradientTransformation(init_fn, update_fn)


def adam(
    learning_rate: ScalarOrSchedule,
    b1: Numeric = 0.9,
    b2: Numeric = 0.999,
    eps: Numeric = 1e-8,
    *,
    weight_decay: Numeric | None = None,
    mask: Any = None,
) -> optax.GradientTransformation:
    """Adam (Kingma & Ba, 2015).

    ``m_t = b1 m_{t-1} + (1-b1) g_t``, ``v_t = b2 v_{t-1} + (1-b2) g_t^2``,
    ``m^_t = m_t / (1 - b1^t)``, ``v^_t = v_t / (1 - b2^t)``,
    ``u_t = -eta_t * m^_t / (sqrt(v^_t) + eps)``: the update of ``optax.adam`` and of
    ``torch.optim.Adam`` (without its coupled ``weight_decay``). Implemented as
    ``optax.chain(scale_by_adam(b1, b2, eps), optax.scale_by_learning_rate(learning_rate))``,
    equal to ``optax.adam`` up to float32 rounding (see :func:`scale_by_adam`). With
    ``weight_decay`` it is exactly :func:`adamw`.
    """
    _check_learning_rate(learning_rate)
    _check_adam(b1, b2, eps)
    if weight_decay is not None:
        return _decayed(scale_by_adam(b1, b2, eps), learning_rate, weight_decay, mask)
    return optax.chain(scale_by_adam(b1, b2, eps), optax.scale_by_learning_rate(learning_rate))


def adamw(
    learning_rate: ScalarOrSchedule,
    b1: Numeric = 0.9,
    b2: Numeric = 0.999,
    eps: Numeric = 1e-8,
    weight_decay: Numeric = 1e-4,
    mask: Any = None,
) -> optax.GradientTransformation:
    """AdamW: Adam with decoupled weight decay (Loshchilov & Hutter, 2019).

    ``u_t = -eta_t * (m^_t / (sqrt(v^_t) + eps) + weight_decay * theta_t)`` with ``m^, v^`` as in
    :func:`adam`. The decay is multiplied by the learning rate, as in ``optax.adamw`` and
    ``torch.optim.AdamW`` (whose default ``weight_decay`` is 1e-2; optax's and ours is 1e-4).
    ``mask`` (a pytree of bools or a callable ``params -> pytree of bools``) selects the leaves
    that decay, e.g. to skip biases. ``update`` needs ``params``. Implemented as
    ``optax.chain(scale_by_adam(...), optax.add_decayed_weights(weight_decay, mask),
    optax.scale_by_learning_rate(learning_rate))``, the chain of ``optax.adamw``.
    """
    _check_learning_rate(learning_rate)
    _check_adam(b1, b2, eps)
    return _decayed(scale_by_adam(b1, b2, eps), learning_rate, weight_decay, mask)


def scale_by_inverse_global_norm(eps: Numeric = NORMALIZED_SGD_EPS) -> optax.GradientTransformation:
    """Rescale the whole update pytree to unit global norm: ``u = g * (1 / (||g|| + eps))``.

    ``||g|| = sqrt(sum over all leaves of sum(g^2))``. The formula of
    ``optax.normalize_by_update_norm(scale_factor=1.0, eps=eps)``, written as a multiplication by
    an explicit reciprocal instead of a division by the broadcast norm (see the module docstring).
    """
    _check("eps", eps)

    def update_fn(
        updates: optax.Updates, state: optax.EmptyState, params: optax.Params | None = None
    ) -> tuple[optax.Updates, optax.EmptyState]:
        del params
        inv = 1 / (jnum.global_norm(updates) + eps)
        return jax.tree.map(lambda t: t * inv.astype(t.dtype), updates), state

    return optax.GradientTransformation(optax.init_empty_state, update_fn)


def normalized_sgd(
    learning_rate: ScalarOrSchedule,
    eps: Numeric = NORMALIZED_SGD_EPS,
    *,
    weight_decay: Numeric | None = None,
    mask: Any = None,
) -> optax.GradientTransformation:
    """Normalized gradient descent: a step of fixed length ``eta`` along the gradient direction.

    ``u_t = -eta_t * g_t / (||g_t|| + eps)`` where ``||g||`` is the GLOBAL L2 norm over every leaf
    of the gradient pytree (one norm for the whole model, not one per layer). ``eps`` (default
    1e-8) only guards ``g = 0`` (the step is then exactly 0); for ``||g|| >> eps`` its effect is
    below float32 resolution. Implemented as
    ``optax.chain(scale_by_inverse_global_norm(eps), optax.scale_by_learning_rate(eta))``.
    ``weight_decay`` / ``mask``: decoupled weight decay as in :func:`sgd` (the decay term is not
    normalized).
    """
    _check_learning_rate(learning_rate)
    _check("eps", eps)
    if weight_decay is not None:
        return _decayed(scale_by_inverse_global_norm(eps), learning_rate, weight_decay, mask)
    return optax.chain(
        scale_by_inverse_global_norm(eps), optax.scale_by_learning_rate(learning_rate)
    )


def clip_by_global_norm(max_norm: Numeric) -> optax.GradientTransformation:
    """Gradient clipping by global norm (the guide's threshold ``theta``; Pascanu et al., 2013).

    ``g <- g * s`` with ``s = 1`` if ``||g|| < max_norm`` else ``s = max_norm / ||g||``, where
    ``||g||`` is the global L2 norm over the whole pytree: the direction is kept, only the length
    is capped at ``max_norm``; smaller gradients pass unchanged (bit for bit, ``g * 1``). The rule
    of ``optax.clip_by_global_norm`` (agreement to float32 rounding tested), written as one
    multiplication by a per-step scalar, which is vmap-invariant (optax divides every
    leaf by the norm, a division that XLA turns into a reciprocal multiply in some programs only).
    Put it first in a :func:`chain`.
    """
    _check("clip_norm", max_norm, "max_norm")

    def update_fn(
        updates: optax.Updates, state: optax.EmptyState, params: optax.Params | None = None
    ) -> tuple[optax.Updates, optax.EmptyState]:
        del params
        g_norm = jnum.global_norm(updates)
        scale = jnp.where(g_norm < max_norm, jnp.ones_like(g_norm), max_norm / g_norm)
        return jax.tree.map(lambda t: t * scale.astype(t.dtype), updates), state

    return optax.GradientTransformation(optax.init_empty_state, update_fn)


def chain(*transforms: optax.GradientTransformation) -> optax.GradientTransformation:
    """Compose transformations left to right: ``u = t_n(... t_2(t_1(g)))`` (``optax.chain``).

    Example: ``chain(clip_by_global_norm(1.0), momentum(0.1, 0.9))`` clips, then applies momentum.
    """
    for i, t in enumerate(transforms):
        if not (hasattr(t, "init") and hasattr(t, "update")):
            raise TypeError(
                f"chain: argument {i} must be an optax.GradientTransformation, got {type(t).__name__}"
            )
    return optax.chain(*transforms)


# --------------------------------------------------------------------------------------------
# schedules (count -> value). Their numeric parameters may be traced arrays.
# --------------------------------------------------------------------------------------------


def constant(value: Numeric) -> optax.Schedule:
    """Constant schedule: ``eta_t = value`` (``optax.constant_schedule``)."""
    _check("learning_rate", value, "value")
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
    _check("learning_rate", init_value, "init_value")
    _check("decay_rate", decay_rate)
    steps = _check_static_int("transition_steps", transition_steps, minimum=1)
    staircase = bool(staircase)

    def schedule(count: jax.typing.ArrayLike) -> jax.Array:
        count = jnp.asarray(count)
        p = count // steps if staircase else count / steps
        return init_value * jnp.power(decay_rate, p)

    return schedule


def per_epoch_decay(
    init_value: Numeric, decay_rate: Numeric = 0.98, *, steps_per_epoch: int
) -> optax.Schedule:
    """The guide's "multiply the learning rate by 0.98 after every epoch".

    ``eta_t = init_value * decay_rate ** (t // steps_per_epoch)`` for the update number ``t``
    (0-based): a staircase :func:`exponential_decay` with one transition per epoch.
    """
    steps = _check_static_int("steps_per_epoch", steps_per_epoch, minimum=1)
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
    _check("learning_rate", init_value, "init_value")
    if (boundaries_and_scales is None) == (every_epochs is None):
        raise ValueError(
            "step_decay: give exactly one of boundaries_and_scales or every_epochs, "
            f"got boundaries_and_scales={boundaries_and_scales!r}, every_epochs={every_epochs!r}"
        )
    if boundaries_and_scales is not None:
        for step, scale in boundaries_and_scales.items():
            _check_static_int("boundaries_and_scales key", step, minimum=0)
            _check("learning_rate", scale, "boundaries_and_scales value")
        return optax.piecewise_constant_schedule(init_value, dict(boundaries_and_scales))
    every = _check_static_int("every_epochs", every_epochs, minimum=1)
    spe = _check_static_int("steps_per_epoch", steps_per_epoch, minimum=1)
    _check("decay_rate", factor, "factor")
    return exponential_decay(init_value, factor, every * spe, staircase=True)


def cosine_decay(init_value: Numeric, decay_steps: int, alpha: Numeric = 0.0) -> optax.Schedule:
    """Cosine decay (Loshchilov & Hutter, 2017, without restarts).

    ``eta_t = init_value * ((1 - alpha) * 0.5 * (1 + cos(pi * min(t, T) / T)) + alpha)`` with
    ``T = decay_steps``: from ``init_value`` down to ``alpha * init_value``, then constant.
    Wraps ``optax.cosine_decay_schedule`` (``init_value`` and ``alpha`` may be traced).
    """
    _check("learning_rate", init_value, "init_value")
    _check("alpha", alpha)
    steps = _check_static_int("decay_steps", decay_steps, minimum=1)
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
    _check("learning_rate", peak_value, "peak_value")
    _check("learning_rate", init_value, "init_value")
    _check("learning_rate", end_value, "end_value")
    w = _check_static_int("warmup_steps", warmup_steps, minimum=0)
    total = _check_static_int("decay_steps", decay_steps, minimum=1)
    if total <= w:
        raise ValueError(
            f"decay_steps must be > warmup_steps (it includes the warm-up), got "
            f"decay_steps={total}, warmup_steps={w}"
        )
    unit_cosine = optax.cosine_decay_schedule(1.0, total - w)

    def decay(count: jax.typing.ArrayLike) -> jax.Array:
        return end_value + (peak_value - end_value) * unit_cosine(count)

    warm = optax.linear_schedule(init_value, peak_value, w)
    return optax.join_schedules([warm, decay], [w])


# --------------------------------------------------------------------------------------------
# builder: static spec + numeric hyperparameters injected as arrays
# --------------------------------------------------------------------------------------------

OPTIMIZERS: dict[str, Callable[..., optax.GradientTransformation]] = {
    "sgd": sgd,
    "momentum": momentum,
    "nesterov": nesterov,
    "adagrad": adagrad,
    "rmsprop": rmsprop,
    "adam": adam,
    "adamw": adamw,
    "normalized_sgd": normalized_sgd,
}
"""The named optimizers of :func:`build`: name -> public factory. Their hyperparameters (beyond
``learning_rate``) are the parameters with float defaults, read from the signature."""

SCHEDULES: dict[str, tuple[str, ...]] = {
    "constant": (),
    "per_epoch_decay": ("decay_rate",),
    "step": ("decay_rate",),
    "cosine": ("alpha",),
    "warmup_cosine": ("alpha",),
}
"""Schedule names known to :func:`build` and the hyperparameters each one adds."""

_DEFAULT_LR: dict[str, float] = {
    "sgd": 0.1,
    "momentum": 0.1,
    "nesterov": 0.1,
    "adagrad": 0.01,
    "rmsprop": 1e-3,
    "adam": 1e-3,
    "adamw": 1e-3,
    "normalized_sgd": 0.1,
}
_DEFAULT_DECAY_RATE: dict[str, float] = {"per_epoch_decay": 0.98, "step": 0.1}

Factory = Callable[..., optax.GradientTransformation]


@dataclasses.dataclass(frozen=True)
class OptimizerSpec:
    """The static (structural) part of an optimizer; numbers go in the hparams dict of :func:`build`.

    Attributes:
      name: one of :data:`OPTIMIZERS` (``"sgd"``, ``"momentum"``, ``"nesterov"``, ``"adagrad"``,
        ``"rmsprop"``, ``"adam"``, ``"adamw"``, ``"normalized_sgd"``), or any optax-style optimizer
        factory: a callable with a ``learning_rate`` parameter that returns a
        ``GradientTransformation`` (``optax.lion``, ``optax.adafactor``, your own). Its parameters
        with float defaults become hyperparameters; the others keep their defaults.
      schedule: one of :data:`SCHEDULES`: ``"constant"``; ``"per_epoch_decay"``
        (``lr * decay_rate ** (t // steps_per_epoch)``); ``"step"``
        (``lr * decay_rate ** (t // (decay_every_epochs * steps_per_epoch))``); ``"cosine"``
        (from ``lr`` to ``alpha * lr`` over ``total_steps``); ``"warmup_cosine"`` (linear from 0 to
        ``lr`` over ``warmup_steps``, then cosine to ``alpha * lr`` at ``total_steps``).
      clip: chain ``clip_by_global_norm(clip_norm)`` first.
      weight_decay: pass ``weight_decay`` to a factory whose ``weight_decay`` is off by default
        (every named optimizer but ``"adamw"``): decoupled weight decay
        ``u = -eta_t * (d_t + weight_decay * theta)`` where ``d_t`` is the optimizer's direction
        (so ``"adam"`` with ``weight_decay=True`` is exactly AdamW, ``"momentum"`` is SGDW).
      steps_per_epoch: updates per epoch (``"per_epoch_decay"`` and ``"step"``).
      total_steps: schedule length for ``"cosine"`` / ``"warmup_cosine"`` (includes the warm-up).
      warmup_steps: warm-up length for ``"warmup_cosine"``.
      decay_every_epochs: epochs between drops for ``"step"``.
      weight_decay_mask: optional mask (pytree of bools or callable ``params -> pytree``) of the
        leaves that decay, passed as the factory's ``mask`` when weight decay is on. Use a callable
        (hashable) when the spec is a static argument of ``jax.jit``.
    """

    name: str | Factory
    schedule: str = "constant"
    clip: bool = False
    weight_decay: bool = False
    steps_per_epoch: int = 1
    total_steps: int = 0
    warmup_steps: int = 0
    decay_every_epochs: int = 1
    weight_decay_mask: Any = None

    def __post_init__(self) -> None:
        _validate_spec(self)


def _factory(spec: OptimizerSpec) -> Factory:
    return OPTIMIZERS[spec.name] if isinstance(spec.name, str) else spec.name


def _label(spec: OptimizerSpec) -> str:
    """``'adam'`` for a named optimizer, ``'optax.lion'`` / ``'module.fn'`` for a factory."""
    if isinstance(spec.name, str):
        return repr(spec.name)
    mod = getattr(spec.name, "__module__", "") or ""
    mod = "optax" if mod.startswith("optax") else mod
    return f"{mod}.{getattr(spec.name, '__qualname__', type(spec.name).__name__)}".lstrip(".")


def _signature_params(factory: Any) -> dict[str, inspect.Parameter]:
    """The named parameters of ``factory``; TypeError / ValueError when it is not an optimizer factory."""
    allowed = sorted(OPTIMIZERS)
    if isinstance(factory, type) or not callable(factory):
        raise TypeError(
            f"optimizer name must be one of {allowed} or an optax optimizer factory (a function with "
            f"a learning_rate parameter, e.g. optax.lion), got {factory!r}"
        )
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError) as e:
        raise TypeError(f"optimizer factory {factory!r} has no inspectable signature: {e}") from e
    if "learning_rate" not in params:
        raise ValueError(
            f"optimizer factory {factory!r} has no learning_rate parameter; give one of {allowed} or "
            "an optax optimizer factory such as optax.lion or optax.adafactor"
        )
    kinds = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    return {n: p for n, p in params.items() if p.kind not in kinds}


def _is_float_default(value: Any) -> bool:
    return isinstance(value, (float, np.floating)) and not isinstance(value, (bool, np.bool_))


def _optimizer_defaults(spec: OptimizerSpec) -> dict[str, float | None]:
    """``{name: default}`` of the factory's hyperparameters: ``learning_rate`` (default ``None``
    when there is none), then every parameter with a float default, in signature order."""
    params = _signature_params(_factory(spec))
    if isinstance(spec.name, str):
        lr: float | None = _DEFAULT_LR[spec.name]
    else:
        d = params["learning_rate"].default
        lr = float(d) if _is_float_default(d) or (isinstance(d, int) and not isinstance(d, bool)) else None
    out: dict[str, float | None] = {"learning_rate": lr}
    for n, p in params.items():
        if n != "learning_rate" and _is_float_default(p.default):
            out[n] = float(p.default)
    return out


def _check_weight_decay(spec: OptimizerSpec, params: Mapping[str, Any], opt_names: Any) -> None:
    """``weight_decay=True`` needs a ``weight_decay`` parameter that is off by default; a mask needs ``mask``."""
    label = _label(spec)
    if spec.weight_decay and spec.name == "adamw":
        raise ValueError(
            "OptimizerSpec.weight_decay=True with name='adamw' would decay twice; adamw already has "
            "decoupled weight decay (use name='adam', weight_decay=True for the same optimizer)"
        )
    if spec.weight_decay and "weight_decay" in opt_names:
        raise ValueError(
            f"OptimizerSpec.weight_decay=True with {label} would decay twice: its weight_decay "
            "parameter has a default and is already a hyperparameter (set it to 0 to switch it off)"
        )
    if spec.weight_decay and "weight_decay" not in params:
        raise ValueError(
            f"OptimizerSpec.weight_decay=True needs a factory with a weight_decay parameter; {label} "
            "has none (chain optax.add_decayed_weights in your own factory instead)"
        )
    decays = spec.weight_decay or "weight_decay" in opt_names
    if spec.weight_decay_mask is not None and decays and "mask" not in params:
        raise ValueError(f"OptimizerSpec.weight_decay_mask needs a factory with a mask parameter; {label} has none")


def _validate_spec(spec: OptimizerSpec) -> None:
    if not isinstance(spec, OptimizerSpec):
        raise TypeError(f"spec must be an OptimizerSpec, got {type(spec).__name__}")
    if isinstance(spec.name, str) and spec.name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer name {spec.name!r}; allowed: {sorted(OPTIMIZERS)} or an optax factory")
    if spec.schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {spec.schedule!r}; allowed: {sorted(SCHEDULES)}")
    for flag in ("clip", "weight_decay"):
        if not isinstance(getattr(spec, flag), (bool, np.bool_)):
            raise TypeError(f"OptimizerSpec.{flag} must be a bool, got {getattr(spec, flag)!r}")
    opt_names = _optimizer_defaults(spec)
    _check_weight_decay(spec, _signature_params(_factory(spec)), opt_names)
    clashes = sorted(set(opt_names) & (set(SCHEDULES[spec.schedule]) | ({"clip_norm"} if spec.clip else set())))
    if clashes:
        raise ValueError(
            f"{_label(spec)} has parameters {clashes} that the schedule {spec.schedule!r} / clipping also "
            "use as hyperparameters; choose another schedule or wrap the factory to rename them"
        )
    _check_static_int("steps_per_epoch", spec.steps_per_epoch, minimum=1)
    _check_static_int("decay_every_epochs", spec.decay_every_epochs, minimum=1)
    _check_static_int("warmup_steps", spec.warmup_steps, minimum=0)
    _check_static_int("total_steps", spec.total_steps, minimum=0)
    if spec.schedule in ("cosine", "warmup_cosine") and spec.total_steps < 1:
        raise ValueError(f"schedule {spec.schedule!r} needs total_steps >= 1, got {spec.total_steps}")
    if spec.schedule == "warmup_cosine" and spec.total_steps <= spec.warmup_steps:
        raise ValueError(
            "schedule 'warmup_cosine' needs total_steps > warmup_steps (total includes the warm-up), "
            f"got total_steps={spec.total_steps}, warmup_steps={spec.warmup_steps}"
        )


def hparam_names(spec: OptimizerSpec) -> tuple[str, ...]:
    """The hyperparameter keys :func:`build` expects for ``spec``, in a fixed order.

    ``"learning_rate"``, the factory's parameters with float defaults (signature order), then the
    schedule's keys (:data:`SCHEDULES`), then ``"clip_norm"`` if ``spec.clip`` and
    ``"weight_decay"`` if ``spec.weight_decay``.
    """
    _validate_spec(spec)
    names = list(_optimizer_defaults(spec)) + list(SCHEDULES[spec.schedule])
    if spec.clip:
        names.append("clip_norm")
    if spec.weight_decay:
        names.append("weight_decay")
    return tuple(names)


def default_hparams(spec: OptimizerSpec, *, strict: bool = True) -> dict[str, float]:
    """Default values (Python floats) for every key of :func:`hparam_names` (``strict=False``: for every key
    that has one; the caller supplies the rest).

    learning_rate: 0.1 (sgd, momentum, nesterov, normalized_sgd), 0.01 (adagrad), 1e-3 (rmsprop,
    adam, adamw), the signature's default for a factory; the optimizer's other hyperparameters:
    the defaults of its signature (gamma 0.9; b1 0.9; b2 0.999; eps 1e-8, 1e-7 adagrad; decay 0.9;
    initial_accumulator_value 0.1; adamw's weight_decay 1e-4); decay_rate 0.98 (per_epoch_decay)
    or 0.1 (step); alpha, clip_norm and ``weight_decay=True``'s weight_decay from
    :data:`jtricks.hparams.REGISTRY` (0.0, 1.0, 1e-4).

    Raises:
      ValueError: the factory has no default learning rate (``optax.lion``, ``optax.adafactor``):
        give ``learning_rate`` in the hyperparameters.
    """
    opt = _optimizer_defaults(spec)
    out: dict[str, float] = {}
    for k in hparam_names(spec):
        if k in opt:
            v = opt[k]
        elif k == "decay_rate":
            v = _DEFAULT_DECAY_RATE[spec.schedule]
        else:
            v = jhp.REGISTRY[k].default
        if v is None:
            if not strict:
                continue
            raise ValueError(f"{_label(spec)} has no default {k}; give {k!r} in the hyperparameters")
        out[k] = v
    return out


def _check_finite(name: str, value: Any) -> None:
    """A concrete value of a hyperparameter outside the registry must be finite."""
    if isinstance(value, (bool, np.bool_, str, bytes)):
        raise TypeError(f"hyperparameter {name!r} must be a number or an array, got {value!r}")
    concrete = _is_python_number(value) or (
        isinstance(value, (jax.Array, np.ndarray)) and not isinstance(value, jax.core.Tracer)
    )
    if concrete and not np.all(np.isfinite(np.asarray(value, np.float64))):
        raise ValueError(f"hyperparameter {name!r} must be finite, got {value!r}")


def _check_hparam_values(spec: OptimizerSpec, hp: Mapping[str, Any]) -> None:
    """Range checks (:data:`jtricks.hparams.REGISTRY`) of concrete values; tracers pass through."""
    for k, v in hp.items():
        if callable(v) or isinstance(v, (str, bytes)):
            raise TypeError(f"hyperparameter {k!r} must be a number or an array, got {v!r}")
        if k in jhp.REGISTRY:
            jhp.check(k, v)
        else:
            _check_finite(k, v)


def _check_hparam_keys(spec: OptimizerSpec, hparams: Mapping[str, Any]) -> tuple[str, ...]:
    names = hparam_names(spec)
    if not isinstance(hparams, Mapping):
        raise TypeError(f"hparams must be a mapping of name -> value, got {type(hparams).__name__}")
    for k in hparams:
        if k not in names:
            raise ValueError(
                f"unknown hyperparameter {k!r} for {_label(spec)} with schedule {spec.schedule!r} "
                f"(clip={spec.clip}, weight_decay={spec.weight_decay}); allowed keys: {list(names)}"
            )
    for k in names:
        if k not in hparams:
            raise ValueError(
                f"missing hyperparameter {k!r} for {_label(spec)} with schedule {spec.schedule!r}; "
                f"required keys: {list(names)} (start from default_hparams(spec))"
            )
    return names


def _schedule_from(spec: OptimizerSpec, hp: Mapping[str, Any]) -> ScalarOrSchedule:
    """The learning rate of ``spec`` as a value or a function of the update count, from ``hp``."""
    lr = hp["learning_rate"]
    if spec.schedule == "constant":
        return lr
    if spec.schedule == "per_epoch_decay":
        return exponential_decay(lr, hp["decay_rate"], spec.steps_per_epoch, staircase=True)
    if spec.schedule == "step":
        steps = spec.decay_every_epochs * spec.steps_per_epoch
        return exponential_decay(lr, hp["decay_rate"], steps, staircase=True)
    if spec.schedule == "cosine":
        return cosine_decay(lr, spec.total_steps, alpha=hp["alpha"])
    # warmup_cosine
    return warmup_cosine(
        lr, spec.warmup_steps, spec.total_steps, init_value=0.0, end_value=hp["alpha"] * lr
    )


def build_schedule(spec: OptimizerSpec, hparams: Mapping[str, Any]) -> optax.Schedule:
    """The learning-rate schedule ``count -> eta_count`` that :func:`build` uses.

    ``hparams`` may be the full hyperparameter dict or ``opt_state.hyperparams`` of a built
    optimizer (e.g. to log the current learning rate: ``build_schedule(spec,
    state.hyperparams)(step)``). Only the keys the schedule needs are read.
    """
    _validate_spec(spec)
    needed = ("learning_rate",) + SCHEDULES[spec.schedule]
    for k in needed:
        if k not in hparams:
            raise ValueError(f"missing hyperparameter {k!r} for schedule {spec.schedule!r}")
    sched = _schedule_from(spec, {k: hparams[k] for k in needed})
    if callable(sched):
        return sched
    return lambda count: sched



def _make_factory(spec: OptimizerSpec) -> Factory:
    """``hparams -> chain([clip_by_global_norm(clip_norm)], FACTORY(learning_rate=schedule, **numeric))``."""
    names = hparam_names(spec)
    fn = _factory(spec)
    opt_keys = [k for k in _optimizer_defaults(spec) if k != "learning_rate"]
    decays = spec.weight_decay or "weight_decay" in opt_keys
    mask = {"mask": spec.weight_decay_mask} if decays and spec.weight_decay_mask is not None else {}

    def factory(**hp: Any) -> optax.GradientTransformation:
        kwargs = {k: hp[k] for k in opt_keys}
        if spec.weight_decay:
            kwargs["weight_decay"] = hp["weight_decay"]
        tx = fn(learning_rate=_schedule_from(spec, hp), **kwargs, **mask)
        if not (hasattr(tx, "init") and hasattr(tx, "update")):
            raise TypeError(f"optimizer factory {_label(spec)} must return an optax GradientTransformation, got {tx!r}")
        if spec.clip:
            return optax.chain(clip_by_global_norm(hp["clip_norm"]), tx)
        return tx

    # inject_hyperparams reads the factory's signature to find the hyperparameters.
    factory.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY) for n in names]
    )
    factory.__name__ = f"jtricks_{getattr(fn, '__name__', 'optimizer')}_{spec.schedule}"
    return factory


def build(
    spec: OptimizerSpec, hparams: Mapping[str, jax.typing.ArrayLike]
) -> optax.GradientTransformationExtraArgs:
    """Build the optimizer of ``spec`` with its numeric hyperparameters injected as arrays.

    The result is ``optax.inject_hyperparams(factory)(**hparams)`` where ``factory`` is::

        chain([clip_by_global_norm(clip_norm)],          if spec.clip
              FACTORY(learning_rate=schedule(count),     schedule from spec.schedule and the hparams
                      **numeric_args,                    the factory's float-default parameters
                      [weight_decay=..., mask=...]))     if spec.weight_decay (or the factory decays)

    ``FACTORY`` is the public optimizer of the name (:func:`sgd`, :func:`momentum`, ...,
    :func:`adamw`, :func:`normalized_sgd`) or the optax factory given as ``spec.name``
    (``optax.lion``, ...). Every value in ``hparams`` (see :func:`hparam_names` /
    :func:`default_hparams`) is stored as an array in ``opt_state.hyperparams`` and read back at each
    update, including the schedule's own parameters (base ``learning_rate``, ``decay_rate``,
    ``alpha``): the schedule is rebuilt from them inside the update as a function of its own step
    count. So ``jax.vmap`` over a dict of stacked hyperparameters runs a population in one program,
    and a new value never recompiles. Changing ``opt_state.hyperparams[k]`` between steps changes
    the optimizer from then on.

    Population = vmap: on CPU, ``jax.vmap`` over stacked hyperparameters gives members that are
    bit-identical to runs with each value alone (passed as a 0-d float32 array) for sgd, momentum,
    nesterov, adam / adamw and ``optax.lion`` with any schedule and clipping (tested); see
    ``docs/optimizers.md`` for the others. A gradient computed by a reduction or a matmul inside the
    same program can itself differ by an ulp under vmap; that is outside the optimizer.

    Args:
      spec: the static structure.
      hparams: exactly the keys of ``hparam_names(spec)``; values are Python numbers (stored in the
        parameters' dtype), 0-d arrays or tracers. Numbers and concrete arrays are validated against
        :data:`jtricks.hparams.REGISTRY` (other names: finite); tracers are not.

    Returns:
      An ``optax.GradientTransformationExtraArgs``; its ``update`` needs ``params`` when weight
      decay is on.

    Raises:
      ValueError: unknown key, missing key, or a concrete value out of range (the message names the
        key and the allowed keys / range).
      TypeError: a value that is not a number or an array; a factory that does not return an optax
        ``GradientTransformation``.
    """
    _validate_spec(spec)
    _check_hparam_keys(spec, hparams)
    _check_hparam_values(spec, hparams)
    values: dict[str, Any] = {}
    for k in hparam_names(spec):
        v = hparams[k]
        # Python / numpy numbers become Python floats: inject_hyperparams stores them in the
        # parameters' dtype. Arrays and tracers are stored as given.
        values[k] = float(v) if _is_python_number(v) else v
    factory = _make_factory(spec)
    if not isinstance(spec.name, str):
        factory(**values)  # a foreign factory's errors (and its return type) surface before any tracing
    return optax.inject_hyperparams(factory)(**values)
