"""Normalization layers as pure functions with explicit parameters and state.

* :func:`batch_norm` (Ioffe & Szegedy, 2015) with running statistics in an explicit ``state`` dict,
  and cross-replica statistics through ``axis_name`` (``jax.lax.pmean``), so one function serves a
  single run, a ``jax.vmap``-ed population of runs and data parallelism over devices.
* :func:`layer_norm` (Ba et al., 2016), :func:`rms_norm` (Zhang & Sennrich, 2019) and
  :func:`group_norm` (Wu & He, 2018).
* :func:`weight_norm` (Salimans & Kingma, 2016): ``w = g * v / ||v||``.

Every ``*_init`` returns ``(params, state)``, plain dicts of arrays (pytrees; ``state`` is ``{}``
for the norms that keep no statistics), so they combine with any optimizer and any model library. Statistics are
computed in at least float32 (``promote_types(x.dtype, float32)``) and the output has ``x``'s dtype.

Example::

    import jax, jax.numpy as jnp
    from jtricks import norm

    params, state = norm.batch_norm_init(16)
    x = jax.random.normal(jax.random.key(0), (8, 5, 5, 16))            # NHWC
    y, state = norm.batch_norm(x, params, state, train=True)          # batch stats, update state
    y_eval, _ = norm.batch_norm(x, params, state, train=False)        # running stats
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp

from jtricks._core import checks
from jtricks._core import numerics as jnum

__all__ = [
    "batch_norm_init",
    "batch_norm",
    "layer_norm_init",
    "layer_norm",
    "rms_norm_init",
    "rms_norm",
    "group_norm_init",
    "group_norm",
    "weight_norm_init",
    "weight_norm",
]

Params = dict[str, jax.Array]
State = dict[str, jax.Array]


# --------------------------------------------------------------------------------------------
# validation helpers
# --------------------------------------------------------------------------------------------


def _check_num_features(num_features: Any) -> int:
    return checks.check_positive_int(num_features, "num_features", type_error=TypeError)


def _check_eps(eps: Any) -> None:
    if checks.is_python_number(eps) and not (math.isfinite(float(eps)) and float(eps) >= 0):
        raise ValueError(f"`eps` must be a finite number >= 0, got {eps!r}")


def _check_momentum(momentum: Any) -> None:
    if checks.is_python_number(momentum) and not (0.0 <= float(momentum) <= 1.0):
        raise ValueError(f"`momentum` must be in [0, 1], got {momentum!r}")


def _check_bool(value: Any, name: str) -> bool:
    return checks.check_bool(value, name, hint=" (it selects the computation, so it is static)")


def _check_features(fn: str, x: jax.Array, **arrays: jax.Array) -> None:
    """Every array in ``arrays`` must have shape ``(x.shape[-1],)``."""
    if jnp.ndim(x) < 1:
        raise ValueError(f"{fn}: `x` must have at least 1 dimension (..., features), got shape {jnp.shape(x)}")
    c = jnp.shape(x)[-1]
    for name, a in arrays.items():
        if jnp.shape(a) != (c,):
            raise ValueError(
                f"{fn}: x.shape {tuple(jnp.shape(x))} has {c} features (last axis) but {name}.shape is "
                f"{tuple(jnp.shape(a))}; expected {name}.shape == ({c},)"
            )


def _stats_dtype(x: jax.Array) -> Any:
    return jnp.promote_types(jnp.result_type(x), jnp.float32)


# --------------------------------------------------------------------------------------------
# batch norm
# --------------------------------------------------------------------------------------------


def batch_norm_init(num_features: int, dtype: Any = jnp.float32) -> tuple[Params, State]:
    """Parameters and state of :func:`batch_norm` for ``num_features`` channels.

    Returns ``(params, state)`` with ``params = {"scale": ones, "bias": zeros}`` (``gamma`` and
    ``beta``) and ``state = {"mean": zeros, "var": ones}`` (the running statistics), each of shape
    ``(num_features,)``.
    """
    n = _check_num_features(num_features)
    params = {"scale": jnp.ones((n,), dtype), "bias": jnp.zeros((n,), dtype)}
    state = {"mean": jnp.zeros((n,), dtype), "var": jnp.ones((n,), dtype)}
    return params, state


def _batch_statistics(xc: jax.Array, axis_name: str | None) -> tuple[jax.Array, jax.Array]:
    """Per-feature ``mu = mean(x)`` and biased ``sigma^2 = mean((x - mu)^2)`` over every axis but the last,
    each averaged over the mapped axis ``axis_name`` (``jax.lax.pmean``) when one is given."""
    axes = tuple(range(xc.ndim - 1))
    # pairwise (fixed-association) means: a vmapped population cannot change their rounding
    mean = jnum.mean(xc, axes)
    if axis_name is not None:
        mean = jax.lax.pmean(mean, axis_name)
    var = jnum.mean(jnp.square(xc - mean), axes)
    if axis_name is not None:
        var = jax.lax.pmean(var, axis_name)
    return mean, var


def _running_statistics(state: State, mean: jax.Array, var: jax.Array, momentum: float | jax.Array, cdt: Any) -> State:
    """``new = momentum * old + (1 - momentum) * batch`` for ``"mean"`` and ``"var"`` (computed in ``cdt``,
    stored in the state's dtypes), without gradient."""
    m = jnp.asarray(momentum, cdt)
    one_minus_m = 1.0 - m
    new_state = {
        "mean": (m * state["mean"].astype(cdt) + one_minus_m * mean).astype(state["mean"].dtype),
        "var": (m * state["var"].astype(cdt) + one_minus_m * var).astype(state["var"].dtype),
    }
    return jax.lax.stop_gradient(new_state)


def batch_norm(
    x: jax.Array,
    params: Params,
    state: State,
    *,
    train: bool,
    momentum: float | jax.Array = 0.9,
    eps: float | jax.Array = 1e-5,
    axis_name: str | None = None,
) -> tuple[jax.Array, State]:
    """Batch normalization (Ioffe & Szegedy, 2015) over every axis but the last (the features).

    With ``mu``, ``sigma^2`` the per-feature mean and *biased* variance over all axes but the last
    (batch and spatial axes, e.g. N, H, W of an NHWC map)::

        y = (x - mu) / sqrt(sigma^2 + eps) * scale + bias

    * ``train=True``: ``mu``, ``sigma^2`` are the batch statistics (gradients flow through them);
      the running statistics are updated as ``new = momentum * old + (1 - momentum) * batch``,
      using the *biased* batch variance for ``var`` (the flax ``nn.BatchNorm`` convention; torch
      uses the unbiased one). The new state carries no gradient (``jax.lax.stop_gradient``).
    * ``train=False``: ``mu``, ``sigma^2`` are ``state["mean"]``, ``state["var"]`` and ``state`` is
      returned unchanged.

    ``axis_name``: the name of a mapped axis (``jax.vmap(..., axis_name=...)``, ``jax.pmap``,
    ``shard_map``) over which the batch is split. The statistics are averaged over it with
    ``jax.lax.pmean`` (first the mean, then the mean of squared deviations from it), so with
    equally sized shards they equal the statistics of the concatenated batch. Leave it ``None`` for
    a ``vmap``-ed *population* of independent runs (each member normalizes its own batch).

    ``momentum`` and ``eps`` may be Python numbers (validated: ``0 <= momentum <= 1``,
    ``eps >= 0``) or traced scalars (not validated). Statistics are computed in at least float32.

    Args:
      x: input of shape ``(..., C)``.
      params: ``{"scale": (C,), "bias": (C,)}`` from :func:`batch_norm_init`.
      state: ``{"mean": (C,), "var": (C,)}`` from :func:`batch_norm_init`.
      train: Python bool, batch statistics (``True``) or running statistics (``False``).
      momentum: running-average decay.
      eps: added to the variance.
      axis_name: named mapped axis to average the batch statistics over, or ``None``.

    Returns:
      ``(y, new_state)``, ``y`` with the shape and dtype of ``x``.

    Raises:
      ValueError: if ``x.shape[-1]`` differs from the feature count of ``params`` / ``state``, or a
        Python ``momentum`` / ``eps`` is out of range.
    """
    train = _check_bool(train, "train")
    _check_features(
        "batch_norm",
        x,
        **{
            'params["scale"]': params["scale"],
            'params["bias"]': params["bias"],
            'state["mean"]': state["mean"],
            'state["var"]': state["var"],
        },
    )
    _check_momentum(momentum)
    _check_eps(eps)

    x = jnp.asarray(x)
    cdt = _stats_dtype(x)
    xc = x.astype(cdt)
    if train:
        mean, var = _batch_statistics(xc, axis_name)
        new_state = _running_statistics(state, mean, var, momentum, cdt)
    else:
        mean = state["mean"].astype(cdt)
        var = state["var"].astype(cdt)
        new_state = state
    xhat = (xc - mean) * jnum.rsqrt(var + jnp.asarray(eps, cdt))
    y = jnum.scale_shift(xhat, params["scale"].astype(cdt), params["bias"].astype(cdt))
    return y.astype(x.dtype), new_state


# --------------------------------------------------------------------------------------------
# layer norm, RMS norm, group norm
# --------------------------------------------------------------------------------------------


def layer_norm_init(num_features: int, dtype: Any = jnp.float32) -> tuple[Params, State]:
    """``(params, state)`` of :func:`layer_norm`: ``({"scale": ones(C), "bias": zeros(C)}, {})``.

    The state is empty (layer norm keeps no statistics); the pair has the shape of every ``*_init``.
    """
    n = _check_num_features(num_features)
    return {"scale": jnp.ones((n,), dtype), "bias": jnp.zeros((n,), dtype)}, {}


def layer_norm(x: jax.Array, params: Params, *, eps: float | jax.Array = 1e-5) -> jax.Array:
    """Layer normalization (Ba et al., 2016) over the last axis, per example.

    ``y = (x - mean(x)) / sqrt(var(x) + eps) * scale + bias`` with the mean and biased variance
    over the last axis (the ``flax.linen.LayerNorm`` / ``torch.nn.LayerNorm(C)`` convention; note
    flax's default ``epsilon`` is ``1e-6``, torch's and this one's ``1e-5``). No state, same in
    training and evaluation.

    Raises:
      ValueError: if ``params`` do not have shape ``(x.shape[-1],)`` or a Python ``eps < 0``.
    """
    _check_features("layer_norm", x, **{'params["scale"]': params["scale"], 'params["bias"]': params["bias"]})
    _check_eps(eps)
    x = jnp.asarray(x)
    cdt = _stats_dtype(x)
    xc = x.astype(cdt)
    mean = jnum.mean(xc, -1, keepdims=True)
    var = jnum.mean(jnp.square(xc - mean), -1, keepdims=True)
    xhat = (xc - mean) * jnum.rsqrt(var + jnp.asarray(eps, cdt))
    return jnum.scale_shift(xhat, params["scale"].astype(cdt), params["bias"].astype(cdt)).astype(x.dtype)


def rms_norm_init(num_features: int, dtype: Any = jnp.float32) -> tuple[Params, State]:
    """``(params, state)`` of :func:`rms_norm`: ``({"scale": ones(C)}, {})`` (no state)."""
    n = _check_num_features(num_features)
    return {"scale": jnp.ones((n,), dtype)}, {}


def rms_norm(x: jax.Array, params: Params, *, eps: float | jax.Array = 1e-6) -> jax.Array:
    """RMS normalization (Zhang & Sennrich, 2019) over the last axis.

    ``y = x / sqrt(mean(x^2) + eps) * scale`` (no centering, no bias; the ``flax.linen.RMSNorm``
    convention, whose default ``epsilon`` is also ``1e-6``).

    Raises:
      ValueError: if ``params["scale"]`` does not have shape ``(x.shape[-1],)`` or a Python ``eps < 0``.
    """
    _check_features("rms_norm", x, **{'params["scale"]': params["scale"]})
    _check_eps(eps)
    x = jnp.asarray(x)
    cdt = _stats_dtype(x)
    xc = x.astype(cdt)
    ms = jnp.mean(jnp.square(xc), axis=-1, keepdims=True)
    return (xc * (jnum.rsqrt(ms + jnp.asarray(eps, cdt)) * params["scale"].astype(cdt))).astype(x.dtype)


def group_norm_init(num_features: int, dtype: Any = jnp.float32) -> tuple[Params, State]:
    """``(params, state)`` of :func:`group_norm`: ``({"scale": ones(C), "bias": zeros(C)}, {})`` (no state)."""
    return layer_norm_init(num_features, dtype)


def group_norm(x: jax.Array, params: Params, *, num_groups: int = 32, eps: float | jax.Array = 1e-5) -> jax.Array:
    """Group normalization (Wu & He, 2018) for ``x`` of shape ``(N, ..., C)``.

    The ``C`` channels are split into ``num_groups`` contiguous groups; each example's mean and
    biased variance are taken over its spatial axes and the channels of one group, then
    ``y = (x - mean) / sqrt(var + eps) * scale + bias`` per channel (``flax.linen.GroupNorm``
    convention; its default ``epsilon`` is ``1e-6``). ``num_groups = 1`` normalizes each example
    over all its axes; ``num_groups = C`` is instance norm.

    Raises:
      ValueError: if ``x`` has fewer than 2 dimensions, ``num_groups`` does not divide ``C``, or
        ``params`` do not have shape ``(C,)``.
    """
    _check_features("group_norm", x, **{'params["scale"]': params["scale"], 'params["bias"]': params["bias"]})
    _check_eps(eps)
    x = jnp.asarray(x)
    if x.ndim < 2:
        raise ValueError(f"group_norm: `x` must have shape (N, ..., C) with at least 2 dimensions, got {x.shape}")
    c = x.shape[-1]
    if not checks.is_python_int(num_groups):
        raise TypeError(f"`num_groups` must be a positive int dividing C={c}, got {num_groups!r}")
    if num_groups <= 0 or c % num_groups:
        raise ValueError(f"`num_groups` must be a positive int dividing C={c} (x.shape {x.shape}), got {num_groups}")
    cdt = _stats_dtype(x)
    xg = x.astype(cdt).reshape(x.shape[:-1] + (int(num_groups), c // int(num_groups)))
    axes = tuple(range(1, xg.ndim - 2)) + (xg.ndim - 1,)
    mean = jnp.mean(xg, axis=axes, keepdims=True)
    var = jnp.mean(jnp.square(xg - mean), axis=axes, keepdims=True)
    xn = ((xg - mean) * jnum.rsqrt(var + jnp.asarray(eps, cdt))).reshape(x.shape)
    return (xn * params["scale"].astype(cdt) + params["bias"].astype(cdt)).astype(x.dtype)


# --------------------------------------------------------------------------------------------
# weight norm
# --------------------------------------------------------------------------------------------


def _sum_sq_but_last(v: jax.Array) -> jax.Array:
    cdt = _stats_dtype(v)
    return jnp.sum(jnp.square(v.astype(cdt)), axis=tuple(range(v.ndim - 1)))


def weight_norm_init(w: jax.Array) -> tuple[Params, State]:
    """Reparametrize a kernel for :func:`weight_norm`: ``({"v": w, "g": ||w||}, {})`` (no state).

    ``g[j] = sqrt(sum over every axis but the last of w[..., j]^2)`` (one norm per output unit), so
    ``weight_norm(v, g)`` reproduces ``w`` at initialization.

    Raises:
      ValueError: if ``w`` has fewer than 2 dimensions.
    """
    w = jnp.asarray(w)
    if w.ndim < 2:
        raise ValueError(f"weight_norm_init: `w` must be a kernel (..., n_in, n_out), got shape {w.shape}")
    return {"v": w, "g": jnp.sqrt(_sum_sq_but_last(w)).astype(w.dtype)}, {}


def weight_norm(v: jax.Array, g: jax.Array, *, eps: float = 1e-12) -> jax.Array:
    """Weight normalization (Salimans & Kingma, 2016): ``w = g * v / ||v||``.

    The norm is over every axis but the last, one per output unit (``g`` has shape
    ``(v.shape[-1],)``), so ``||w[..., j]|| = g[j]``: ``w = v * (g * rsqrt(sum(v^2) + eps))``.
    ``eps`` (as in flax's ``WeightNorm``) only guards an all-zero column.

    Raises:
      ValueError: if ``v`` has fewer than 2 dimensions or ``g.shape != (v.shape[-1],)``.
    """
    v = jnp.asarray(v)
    if v.ndim < 2:
        raise ValueError(f"weight_norm: `v` must be a kernel (..., n_in, n_out), got shape {v.shape}")
    if jnp.shape(g) != (v.shape[-1],):
        raise ValueError(
            f"weight_norm: v.shape {v.shape} has {v.shape[-1]} output units but g.shape is "
            f"{tuple(jnp.shape(g))}; expected g.shape == ({v.shape[-1]},)"
        )
    _check_eps(eps)
    cdt = _stats_dtype(v)
    mul = jnp.asarray(g, cdt) * jnum.rsqrt(_sum_sq_but_last(v) + jnp.asarray(eps, cdt))
    return (v.astype(cdt) * mul).astype(v.dtype)
