"""Inverted dropout with an explicit key and a rate that may be a traced array.

Dropout (Hinton et al., 2012; Srivastava et al., 2014) zeroes each unit with probability ``rate``
during training. The *inverted* form used here scales the kept units by ``1 / (1 - rate)`` at
training time, so the expected activation is unchanged and evaluation is the identity. The masks come
from 16-bit uniform numbers, four per Threefry hash (:func:`uniform_bits16`), so ``rate`` acts rounded to
a multiple of ``2^-16``.

``rate`` may be a Python number or a concrete jax array (both validated, ``0 <= rate < 1``) or a
tracer (not validated: its value is unknown while tracing), so a grid over dropout rates is a
``jax.vmap``. ``train=False`` (evaluation) returns the input, the same flag as in
:mod:`jtricks.norm` and :mod:`jtricks.models`. The scale is the explicit reciprocal
``1 / q`` (``q`` the keep probability) computed once, a Python ``rate`` goes through the same float32 arithmetic as a
traced one, and the scale is applied through the mask-shaped multiplier ``where(keep, scale, 0)``
(XLA folds scalar multiplications into neighbouring ones for a single run but not for a vmapped
rate), so member *i* of a population vmapped over rates equals the standalone call with rate *i*
bit for bit. (A Python ``rate == 0`` returns ``x`` without any dropout op; pass an array rate for
bit-identity with a population that contains rate 0.)

Example::

    import jax, jax.numpy as jnp
    from jtricks.dropout import dropout

    x = jnp.ones((4, 8))
    y = dropout(jax.random.key(0), x, 0.5)                   # entries are 0 or 2
    ys = jax.vmap(dropout, in_axes=(None, None, 0))(jax.random.key(0), x, jnp.array([0.0, 0.2, 0.5]))
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import jax
import jax.extend.random
import jax.numpy as jnp
import numpy as np

__all__ = ["MASK_BITS", "dropout", "spatial_dropout", "uniform_bits16"]

Rate = Any  # a Python number or a (possibly traced) scalar jax array


def _is_python_number(x: Any) -> bool:
    return isinstance(x, (numbers.Real, np.number)) and not isinstance(x, (bool, np.bool_))


def _check_rate(rate: Rate) -> bool:
    """Validate ``rate``; return True when it is a concrete Python zero (the identity).

    Python numbers and concrete (not traced) arrays must lie in ``[0, 1)``; a traced rate (inside
    ``jit`` / ``vmap`` / ``grad``) cannot be read and is not checked.
    """
    if isinstance(rate, (bool, np.bool_)):
        raise TypeError(f"`rate` must be a number in [0, 1) or a scalar array, got {rate!r}")
    if _is_python_number(rate):
        r = float(rate)
        if not (math.isfinite(r) and 0.0 <= r < 1.0):
            raise ValueError(f"`rate` must lie in [0, 1), got {rate!r}")
        return r == 0.0
    if not hasattr(rate, "shape"):
        raise TypeError(f"`rate` must be a number in [0, 1) or a scalar array, got {type(rate).__name__}")
    if jnp.ndim(rate) != 0:
        raise ValueError(f"`rate` must be a scalar, got an array of shape {jnp.shape(rate)}")
    if not isinstance(rate, jax.core.Tracer):
        r = float(np.asarray(rate))
        if not (math.isfinite(r) and 0.0 <= r < 1.0):
            raise ValueError(f"`rate` must lie in [0, 1), got an array holding {r!r}")
    return False


def _check_train(train: Any) -> bool:
    if not isinstance(train, (bool, np.bool_)):
        raise TypeError(
            f"`train` must be a Python bool (it selects the computation, so it is static), got {type(train).__name__}"
        )
    return bool(train)


MASK_BITS = 16
"""Random bits per mask element: a drop probability is a multiple of ``2**-16``."""

_LEVELS = 1 << MASK_BITS


def uniform_bits16(key: jax.Array, shape: Sequence[int]) -> jax.Array:
    """``prod(shape)`` independent uniform 16-bit integers (as ``uint32``), four per Threefry-2x32 hash.

    ``jax.random.bits(key, shape, jnp.uint16)`` spends one 64-bit hash per element; here the hash's 64
    output bits are cut into four 16-bit numbers: ``w = threefry_2x32(key, iota(m))`` with ``m = ⌈n/2⌉``
    rounded up to even (``threefry_2x32`` hashes the pairs ``(i, i + m/2)``) and ``h = [w & 0xFFFF, w >> 16][:n]``,
    a quarter of the hashing (the dominant cost of dropout on a CPU).
    A function of the key and the shape alone, so a vmapped member draws exactly what a standalone call
    draws. Keys of other implementations than Threefry fall back to ``jax.random.bits``.
    """
    shape = tuple(int(d) for d in shape)
    n = math.prod(shape)
    if str(jax.random.key_impl(key)) != "threefry2x32":  # (a raw uint32 key has the default implementation)
        return jax.random.bits(key, shape, jnp.uint16).astype(jnp.uint32)
    words = (n + 1) // 2
    w = jax.extend.random.threefry_2x32(jax.random.key_data(key), jax.lax.iota(jnp.uint32, words + words % 2))
    halves = jnp.concatenate([w & jnp.uint32(0xFFFF), w >> jnp.uint32(16)])
    return halves[:n].reshape(shape)


def _dropout(key: jax.Array, x: jax.Array, rate: Rate, mask_shape: Sequence[int]) -> jax.Array:
    # Keep probability and scale in at least float32, the same ops for Python and traced rates.
    cdt = jnp.promote_types(x.dtype, jnp.float32)
    # the drop threshold t = round(rate · 2^16) in [0, 2^16]; P(keep) = 1 - t / 2^16 exactly
    t = jnp.clip(jnp.round(jnp.asarray(rate, cdt) * _LEVELS), 0, _LEVELS)
    keep_prob = (_LEVELS - t) * jnp.asarray(1.0 / _LEVELS, cdt)
    scale = 1.0 / keep_prob
    keep = uniform_bits16(key, mask_shape) >= t.astype(jnp.uint32)
    # Multiply by the mask-shaped array m = keep * scale rather than by the scalar `scale`: XLA
    # folds chains of scalar multiplications ((a * c1) * s -> a * (c1 * s)) but not a vmapped
    # (vector) `scale`, so a scalar multiply here would let population members differ from
    # standalone runs in the last bit. The outer `where` makes dropped units exactly 0 (even inf).
    m = jnp.where(keep, scale, jnp.zeros((), cdt))
    y = (x * m).astype(x.dtype)
    return jnp.where(keep, y, jnp.zeros((), x.dtype))


def dropout(key: jax.Array, x: jax.Array, rate: Rate, *, train: bool = True) -> jax.Array:
    """Inverted dropout: ``y = m * x / q``, ``m ~ Bernoulli(q)`` per element, ``q = 1 - t / 2^16``.

    The drop probability is ``rate`` rounded to a multiple of ``2^-16``: ``t = round(rate · 2^16)``
    (off by at most ``7.6e-6``; exact for rates such as 0.5 or 0.25). Element ``e`` is kept when its
    16-bit uniform number ``h_e`` (:func:`uniform_bits16`, four per Threefry hash) satisfies
    ``h_e >= t``, so ``P(keep) = q`` exactly, and kept elements are scaled by the explicit reciprocal
    ``1 / q``; dropped elements are 0. ``E[y] = x``. With ``train=False`` (evaluation) or a Python
    ``rate == 0`` the input is returned unchanged; a traced ``rate`` of 0 gives exactly ``x`` as well
    (all kept, scale 1). ``train`` is the flag of :mod:`jtricks.norm` and :mod:`jtricks.models`
    (flax's ``deterministic`` is ``not train``).

    Args:
      key: PRNG key (use a dedicated stream, e.g. ``jtricks.keys.key_for(root, "dropout")``).
      x: input of any shape; floating dtypes compute the scale in at least float32.
      rate: drop probability in ``[0, 1)``: a Python number or a scalar array. Numbers and concrete
        arrays are validated; a traced rate (inside ``jit`` / ``vmap``) is not: it is clipped to
        ``[0, 1]`` (a traced rate < 0 keeps every unit unscaled, a traced rate >= 1 drops every unit).
      train: Python bool; ``False`` (evaluation) returns ``x``.

    Raises:
      ValueError: if a Python or concrete-array ``rate`` is outside ``[0, 1)`` or an array ``rate``
        is not a scalar.
      TypeError: if ``train`` is not a Python bool or ``rate`` is not a number / array.
    """
    if not _check_train(train):
        _check_rate(rate)
        return x
    if _check_rate(rate):
        return x
    x = jnp.asarray(x)
    return _dropout(key, x, rate, x.shape)


def spatial_dropout(key: jax.Array, x: jax.Array, rate: Rate, *, train: bool = True) -> jax.Array:
    """Channel-wise (spatial) inverted dropout for channels-last maps ``(N, ..., C)``.

    One mask ``m[n, c] ~ Bernoulli(1 - rate)`` per example and channel, broadcast over the spatial
    axes (Tompson et al., 2015, "SpatialDropout"; ``torch.nn.Dropout2d`` for NCHW):
    ``y[n, ..., c] = m[n, c] * x[n, ..., c] / q`` (``q`` as in :func:`dropout`). Whole feature maps are dropped,
    which is what decorrelates strongly correlated neighbouring activations of a conv layer.
    Works for NWC (1-D conv) and NHWC (2-D conv) and any channels-last map with at least one
    spatial axis. ``rate`` and ``train`` behave as in :func:`dropout`.

    Raises:
      ValueError: if ``x`` has fewer than 3 dimensions, or ``rate`` is invalid as in :func:`dropout`.
    """
    if not _check_train(train):
        _check_rate(rate)
        return x
    if jnp.ndim(x) < 3:
        raise ValueError(
            f"spatial_dropout: `x` must be a channels-last map (N, ..., C) with at least one spatial "
            f"axis (NWC or NHWC), got shape {jnp.shape(x)}; use dropout() for (N, C) inputs"
        )
    if _check_rate(rate):
        return x
    x = jnp.asarray(x)
    mask_shape = (x.shape[0],) + (1,) * (x.ndim - 2) + (x.shape[-1],)
    return _dropout(key, x, rate, mask_shape)
