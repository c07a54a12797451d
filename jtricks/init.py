"""Weight initializers by exact name, following the ``jax.nn.initializers`` protocol.

Every initializer is a function ``init(key, shape, dtype=jnp.float32) -> Array``, so it drops into
flax (``nn.Dense(kernel_init=...)``), equinox or a hand-written ``(init, apply)`` model unchanged.

Fan convention (the JAX one): a kernel of shape ``(..., n_in, n_out)`` has
``fan_in = receptive_field * n_in`` and ``fan_out = receptive_field * n_out`` with
``receptive_field = prod(shape[:-2])``; a dense ``(n_in, n_out)`` matrix has receptive field 1 and an
HWIO convolution kernel ``(kh, kw, c_in, c_out)`` has receptive field ``kh * kw``.

Every std stated below is the standard deviation of the *samples*. The ``*_normal`` variance-scaling
initializers sample, by default, a normal truncated to two standard deviations and rescaled so that
the samples have the stated std (``jax.nn.initializers.variance_scaling(...,
distribution="truncated_normal")``); pass ``distribution="normal"`` for an untruncated normal with
the same std.

``scale`` (``gain`` for :func:`orthogonal`) multiplies the std of every initializer that has one.
It may be a Python number (validated: finite and ``>= 0``) or a jax array / tracer (not validated),
so a grid can ``jax.vmap`` over an "init scale": the multiplier is applied as
``init(key, shape, dtype) * scale``, and member *i* of the vmap equals the call with scale *i*.

Example::

    import jax
    from jtricks import init

    w = init.get("he_normal")(jax.random.key(0), (784, 256))
    k = init.he_uniform(scale=0.5)(jax.random.key(1), (3, 3, 16, 32))  # HWIO conv kernel
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Literal, Protocol

import jax
import jax.numpy as jnp
import numpy as np

from jtricks._core import checks

__all__ = [
    "Initializer",
    "fans",
    "names",
    "get",
    "standard_normal",
    "uniform",
    "gaussian",
    "lecun_normal",
    "lecun_uniform",
    "glorot_normal",
    "glorot_uniform",
    "xavier_normal",
    "xavier_uniform",
    "he_normal",
    "he_uniform",
    "orthogonal",
    "zeros",
    "ones",
]

Shape = Sequence[int]
Scale = Any  # a Python number or a (possibly traced) scalar jax array
NormalDistribution = Literal["truncated_normal", "normal"]


class Initializer(Protocol):
    """The ``jax.nn.initializers`` protocol: ``init(key, shape, dtype=jnp.float32) -> Array``."""

    def __call__(self, key: jax.Array, shape: Shape, dtype: Any = jnp.float32) -> jax.Array: ...


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def fans(shape: Shape) -> tuple[int, int]:
    """Return ``(fan_in, fan_out)`` of a kernel shape, in the JAX convention.

    For ``shape = (..., n_in, n_out)``: ``fan_in = r * n_in`` and ``fan_out = r * n_out`` with the
    receptive field ``r = prod(shape[:-2])`` (1 for a dense matrix, ``kh * kw`` for an HWIO kernel).
    This is ``jax.nn.initializers.variance_scaling``'s default (``in_axis=-2, out_axis=-1``).

    Raises:
      ValueError: if ``shape`` has fewer than 2 dimensions (a bias has no fan; use ``zeros``).
    """
    shape = _check_shape(shape)
    if len(shape) < 2:
        raise ValueError(
            f"fans: `shape` must have at least 2 dimensions (..., n_in, n_out), got {shape}; "
            "fan-based initializers need a kernel shape (use 'zeros' or 'standard_normal' for biases)"
        )
    receptive = math.prod(shape[:-2])
    return receptive * shape[-2], receptive * shape[-1]


def _check_shape(shape: Any) -> tuple[int, ...]:
    try:
        out = tuple(int(d) for d in shape)
    except TypeError as e:
        raise TypeError(f"`shape` must be a sequence of ints, got {shape!r}") from e
    if any(d < 0 for d in out):
        raise ValueError(f"`shape` must have non-negative dimensions, got {out}")
    return out


def _check_scale(scale: Scale, name: str = "scale") -> Scale:
    """Validate a Python-number multiplier; arrays / tracers pass through unvalidated."""
    if isinstance(scale, (bool, np.bool_)):
        raise TypeError(f"`{name}` must be a number or a scalar array, got {scale!r}")
    if checks.is_python_number(scale):
        if not (math.isfinite(float(scale)) and float(scale) >= 0):
            raise ValueError(f"`{name}` must be a finite number >= 0, got {scale!r}")
        return scale
    if isinstance(scale, (jax.Array, np.ndarray)) or hasattr(scale, "shape"):
        if getattr(scale, "ndim", 0) != 0:
            raise ValueError(f"`{name}` must be a scalar, got an array of shape {scale.shape}")
        return scale
    raise TypeError(f"`{name}` must be a number or a scalar array, got {type(scale).__name__}")


def _check_distribution(distribution: str) -> NormalDistribution:
    if distribution not in ("truncated_normal", "normal"):
        raise ValueError(f"`distribution` must be one of 'truncated_normal', 'normal'; got {distribution!r}")
    return distribution  # type: ignore[return-value]


def _scaled(base: Callable[..., jax.Array], scale: Scale, name: str, kernel: bool = True) -> Initializer:
    """Wrap a ``jax.nn.initializers`` initializer: ``init(key, shape, dtype) * scale``.

    ``kernel=True``: the initializer uses the fans, so ``shape`` must have >= 2 dimensions.
    """

    def init(key: jax.Array, shape: Shape, dtype: Any = jnp.float32) -> jax.Array:
        shape = _check_shape(shape)
        if kernel:
            fans(shape)  # clear error for shapes without fans
        w = base(key, shape, dtype)
        if isinstance(scale, (int, float)) and not isinstance(scale, bool) and scale == 1:
            return w
        # The barrier stops XLA from folding a scalar `scale` into the constants inside `base`
        # ((z * c) * s -> z * (c * s)), a rewrite it does not do for a vmapped (vector) scale:
        # without it, population members could differ from standalone runs in the last bit.
        w = jax.lax.optimization_barrier(w)
        return w * jnp.asarray(scale, dtype=w.dtype)

    init.__name__ = name
    init.__qualname__ = name
    return init


def _fan_based(make: Callable[[int, int], Callable[..., jax.Array]], scale: Scale, name: str) -> Initializer:
    """An initializer whose base distribution depends on ``fans(shape)``."""

    def base(key: jax.Array, shape: Shape, dtype: Any) -> jax.Array:
        fan_in, fan_out = fans(shape)
        return make(fan_in, fan_out)(key, shape, dtype)

    return _scaled(base, scale, name)


# --------------------------------------------------------------------------------------------
# initializers
# --------------------------------------------------------------------------------------------


def standard_normal(scale: Scale = 1.0) -> Initializer:
    """Standard normal ``W ~ N(0, 1)`` (times ``scale``): std ``scale``, independent of the fans.

    The "bad baseline" of the classic guide: in a deep network the activations' variance grows
    by ``n_in`` per layer (explodes) with saturating or unbounded units. Wraps
    ``jax.nn.initializers.normal(1.0)`` (an untruncated normal).
    """
    scale = _check_scale(scale)
    return _scaled(jax.nn.initializers.normal(stddev=1.0), scale, "standard_normal", kernel=False)


def uniform(scale: Scale = 1.0) -> Initializer:
    """Classic "uniform by fan-in": ``W ~ U(-scale/sqrt(fan_in), +scale/sqrt(fan_in))``.

    The samples have std ``scale / sqrt(3 * fan_in)``. This is the old default of many libraries
    (e.g. torch ``nn.Linear``'s bias and LeCun's 1998 recommendation up to the constant). Note that it
    is *not* ``jax.nn.initializers.uniform(s)``, which samples ``U[0, s)``. Implemented as
    ``variance_scaling(1/3, "fan_in", "uniform")``, whose limit is ``sqrt(3 * (1/3) / fan_in)``.
    """
    scale = _check_scale(scale)
    return _scaled(jax.nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform"), scale, "uniform")


def gaussian(scale: Scale = 1.0) -> Initializer:
    """Gaussian with std ``scale / fan_in``: ``W ~ N(0, (scale / fan_in)^2)`` (untruncated).

    The guide's ``N(0, 1/n)`` read with ``1/n`` as the *standard deviation* (jtricks' reading of
    the guide). This is much smaller than LeCun's std ``1/sqrt(fan_in)`` (see
    :func:`lecun_normal`, which is ``N(0, 1/n)`` read with ``1/n`` as the variance), so in deep
    networks it shrinks activations by ``1/sqrt(n_in)`` per layer (vanishing signal).
    """
    scale = _check_scale(scale)

    def make(fan_in: int, fan_out: int) -> Callable[..., jax.Array]:
        def base(key: jax.Array, shape: Shape, dtype: Any) -> jax.Array:
            # jax.nn.initializers.normal(1/fan_in), with a barrier so that XLA cannot fold the
            # constant into the sampler's own sqrt(2) (jit and eager give the same bits).
            z = jax.lax.optimization_barrier(jax.random.normal(key, shape, dtype))
            return z * jnp.asarray(1.0 / fan_in, dtype)

        return base

    return _fan_based(make, scale, "gaussian")


def lecun_normal(scale: Scale = 1.0, distribution: NormalDistribution = "truncated_normal") -> Initializer:
    """LeCun normal (LeCun et al., 1998, "Efficient BackProp"): std ``scale / sqrt(fan_in)``.

    ``variance_scaling(1, "fan_in", distribution)``; the default truncated normal is rescaled so
    the samples have exactly this std. Keeps the forward variance constant for linear / SELU units.
    """
    scale = _check_scale(scale)
    dist = _check_distribution(distribution)
    return _scaled(jax.nn.initializers.variance_scaling(1.0, "fan_in", dist), scale, "lecun_normal")


def lecun_uniform(scale: Scale = 1.0) -> Initializer:
    """LeCun uniform: ``U(-sqrt(3/fan_in), +sqrt(3/fan_in))`` times ``scale``; std ``scale/sqrt(fan_in)``.

    ``variance_scaling(1, "fan_in", "uniform")``.
    """
    scale = _check_scale(scale)
    return _scaled(jax.nn.initializers.variance_scaling(1.0, "fan_in", "uniform"), scale, "lecun_uniform")


def glorot_normal(scale: Scale = 1.0, distribution: NormalDistribution = "truncated_normal") -> Initializer:
    """Glorot / Xavier normal (Glorot & Bengio, 2010): std ``scale * sqrt(2 / (fan_in + fan_out))``.

    ``variance_scaling(1, "fan_avg", distribution)``; the default truncated normal is rescaled so the
    samples have exactly this std. Keeps forward and backward variance for tanh / linear units.
    """
    scale = _check_scale(scale)
    dist = _check_distribution(distribution)
    return _scaled(jax.nn.initializers.variance_scaling(1.0, "fan_avg", dist), scale, "glorot_normal")


def glorot_uniform(scale: Scale = 1.0) -> Initializer:
    """Glorot / Xavier uniform: ``U(-a, a)``, ``a = scale * sqrt(6 / (fan_in + fan_out))``.

    Std ``scale * sqrt(2 / (fan_in + fan_out))``; ``variance_scaling(1, "fan_avg", "uniform")``.
    """
    scale = _check_scale(scale)
    return _scaled(jax.nn.initializers.variance_scaling(1.0, "fan_avg", "uniform"), scale, "glorot_uniform")


def xavier_normal(scale: Scale = 1.0, distribution: NormalDistribution = "truncated_normal") -> Initializer:
    """Alias of :func:`glorot_normal`: std ``scale * sqrt(2 / (fan_in + fan_out))``."""
    return glorot_normal(scale, distribution)


def xavier_uniform(scale: Scale = 1.0) -> Initializer:
    """Alias of :func:`glorot_uniform`: ``U(-a, a)``, ``a = scale * sqrt(6 / (fan_in + fan_out))``."""
    return glorot_uniform(scale)


def he_normal(scale: Scale = 1.0, distribution: NormalDistribution = "truncated_normal") -> Initializer:
    """He / Kaiming normal (He et al., 2015): std ``scale * sqrt(2 / fan_in)``.

    ``variance_scaling(2, "fan_in", distribution)``; the default truncated normal is rescaled so the
    samples have exactly this std. Keeps the forward variance constant for ReLU units.
    """
    scale = _check_scale(scale)
    dist = _check_distribution(distribution)
    return _scaled(jax.nn.initializers.variance_scaling(2.0, "fan_in", dist), scale, "he_normal")


def he_uniform(scale: Scale = 1.0) -> Initializer:
    """He / Kaiming uniform: ``U(-a, a)``, ``a = scale * sqrt(6 / fan_in)``; std ``scale*sqrt(2/fan_in)``.

    ``variance_scaling(2, "fan_in", "uniform")``.
    """
    scale = _check_scale(scale)
    return _scaled(jax.nn.initializers.variance_scaling(2.0, "fan_in", "uniform"), scale, "he_uniform")


def orthogonal(gain: Scale = 1.0, scale: Scale = 1.0) -> Initializer:
    """Orthogonal (Saxe et al., 2014): ``W = gain * scale * Q``, ``Q`` a random orthogonal matrix.

    The kernel is viewed as a ``(prod(shape[:-1]), shape[-1])`` matrix (``column_axis=-1``, so an
    HWIO kernel is ``(kh*kw*c_in, c_out)``) whose columns (if it is tall) or rows (if it is wide)
    are orthonormal, so ``W^T W = gain^2 I`` for tall kernels. Wraps
    ``jax.nn.initializers.orthogonal()``. ``gain`` (torch's name) and ``scale`` (every other
    initializer's name) are the same kind of multiplier and multiply each other.
    """
    gain = _check_scale(gain, "gain")
    scale = _check_scale(scale)
    if checks.is_python_number(gain) and checks.is_python_number(scale):
        mult: Scale = float(gain) * float(scale)
    else:
        mult = jnp.asarray(gain) * jnp.asarray(scale)
    return _scaled(jax.nn.initializers.orthogonal(), mult, "orthogonal")


def zeros() -> Initializer:
    """All zeros, ``W = 0`` (``jax.nn.initializers.zeros``): the usual bias initializer."""
    return _scaled(jax.nn.initializers.zeros, 1.0, "zeros", kernel=False)


def ones(scale: Scale = 1.0) -> Initializer:
    """All ``scale``, ``W = scale * 1`` (``jax.nn.initializers.ones``): e.g. a normalization scale."""
    scale = _check_scale(scale)
    return _scaled(jax.nn.initializers.ones, scale, "ones", kernel=False)


# --------------------------------------------------------------------------------------------
# registry
# --------------------------------------------------------------------------------------------

_REGISTRY: dict[str, Callable[..., Initializer]] = {
    "standard_normal": standard_normal,
    "uniform": uniform,
    "gaussian": gaussian,
    "lecun_normal": lecun_normal,
    "lecun_uniform": lecun_uniform,
    "glorot_normal": glorot_normal,
    "glorot_uniform": glorot_uniform,
    "xavier_normal": xavier_normal,
    "xavier_uniform": xavier_uniform,
    "he_normal": he_normal,
    "he_uniform": he_uniform,
    "orthogonal": orthogonal,
    "zeros": zeros,
    "ones": ones,
}


def names() -> tuple[str, ...]:
    """All initializer names that :func:`get` accepts (aliases included), in a fixed order."""
    return tuple(_REGISTRY)


def get(name: str, **kw: Any) -> Initializer:
    """Return the initializer called ``name``, built with the keyword arguments ``kw``.

    ``get(name, **kw)`` is ``<name>(**kw)``, e.g. ``get("he_normal", scale=0.5)`` is
    ``he_normal(scale=0.5)``: an initializer with std ``0.5 * sqrt(2 / fan_in)``. See :func:`names`.

    Raises:
      ValueError: if ``name`` is unknown (the message lists the known names).
      TypeError: if ``name`` is not a string or a keyword is not accepted by that initializer.
    """
    if not isinstance(name, str):
        raise TypeError(f"`name` must be a string, one of {', '.join(names())}; got {name!r}")
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown initializer name {name!r}; known names: {', '.join(names())}") from None
    return factory(**kw)
