"""The optimizers and gradient transforms of :mod:`jtricks.optim`, as optax ``GradientTransformation`` s.

The named optimizers (:func:`sgd`, :func:`momentum`, :func:`nesterov`, :func:`adagrad`,
:func:`rmsprop`, :func:`adam`, :func:`adamw`, :func:`normalized_sgd`), with optional decoupled
weight decay, the transforms re-expressed so that a vmapped population member stays bit-identical
to the run alone (:func:`scale_by_adam`, :func:`trace_nesterov`,
:func:`scale_by_inverse_global_norm`, :func:`clip_by_global_norm`; see the :mod:`jtricks.optim`
docstring), :func:`chain`, and the checks of their arguments.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jtricks._core import numerics as jnum
from jtricks.optim._base import Numeric, ScalarOrSchedule, check

__all__ = [
    "NORMALIZED_SGD_EPS",
    "sgd",
    "momentum",
    "nesterov",
    "adagrad",
    "rmsprop",
    "adam",
    "adamw",
    "normalized_sgd",
    "ScaleByAdamState",
    "scale_by_adam",
    "trace_nesterov",
    "scale_by_inverse_global_norm",
    "clip_by_global_norm",
    "chain",
]

NORMALIZED_SGD_EPS: float = 1e-8
"""Default guard of :func:`normalized_sgd`: the step is ``-eta g / (||g|| + eps)``."""


def _check_learning_rate(learning_rate: Any) -> None:
    """A schedule (callable) passes; a number or an array is range-checked as ``learning_rate``."""
    if callable(learning_rate):
        return
    check("learning_rate", learning_rate)


def _decayed(
    direction: optax.GradientTransformation,
    learning_rate: ScalarOrSchedule,
    weight_decay: Numeric,
    mask: Any,
) -> optax.GradientTransformation:
    """``u = -eta_t (d_t + weight_decay * theta)``:
    ``chain(direction, add_decayed_weights, scale_by_learning_rate)``."""
    check("weight_decay", weight_decay)
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
    check("gamma", gamma)
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
    check("initial_accumulator_value", initial_accumulator_value)
    check("eps", eps)
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
    check("decay", decay)
    check("eps", eps)
    if weight_decay is not None:
        rms = optax.scale_by_stddev if centered else optax.scale_by_rms
        direction = rms(decay=decay, eps=eps, eps_in_sqrt=bool(eps_in_sqrt))
        return _decayed(direction, learning_rate, weight_decay, mask)
    return optax.rmsprop(learning_rate, decay=decay, eps=eps, eps_in_sqrt=bool(eps_in_sqrt), centered=bool(centered))


def _check_adam(b1: Any, b2: Any, eps: Any) -> None:
    check("b1", b1)
    check("b2", b2)
    check("eps", eps)


class ScaleByAdamState(NamedTuple):
    """State of :func:`scale_by_adam`: step count and first / second moment estimates."""

    count: jax.Array  # int32 scalar: number of updates done
    mu: optax.Updates
    nu: optax.Updates


def scale_by_adam(b1: Numeric = 0.9, b2: Numeric = 0.999, eps: Numeric = 1e-8) -> optax.GradientTransformation:
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
    check("gamma", gamma)

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
    check("eps", eps)

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
    check("eps", eps)
    if weight_decay is not None:
        return _decayed(scale_by_inverse_global_norm(eps), learning_rate, weight_decay, mask)
    return optax.chain(scale_by_inverse_global_norm(eps), optax.scale_by_learning_rate(learning_rate))


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
    check("clip_norm", max_norm, "max_norm")

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
            raise TypeError(f"chain: argument {i} must be an optax.GradientTransformation, got {type(t).__name__}")
    return optax.chain(*transforms)
