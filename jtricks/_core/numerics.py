"""Reductions whose rounding ``jax.vmap`` cannot change.

A population member must be *bit-for-bit* the run it would be alone. Elementwise
arithmetic and the matrix products we use survive ``vmap`` unchanged, but XLA CPU vectorizes a
reduction (``jnp.sum``, ``jnp.mean``, the transpose of a broadcast in autodiff) differently depending on
the shape of the *kept* axes, and ``vmap`` adds one: measured with jax 0.10.2, ``x.sum(0)`` of a
``(64, 32)`` array differs in the last bit from the same sum inside a population of 1, 2, 4 or 8
members, while ``(64, 64)`` agrees. One ulp then grows into a different training run.

The cure here is a reduction with a *fixed association*: pairwise (tree) summation built only from
slices and elementwise adds::

    pairwise_sum([x0 … x_{n-1}]) = pairwise_sum([x0 + x_{h}, x1 + x_{h+1}, …])   (h = ⌈n/2⌉, zero-padded)

Every output element is the same sequence of IEEE additions whatever the surrounding batch axes, and
its autodiff transpose (pads and broadcasts) is exact too. Pairwise summation is also more accurate
than a sequential sum (error O(ε log n) instead of O(ε n)). Cost: ⌈log₂ n⌉ fused elementwise passes.

Also here: :func:`bias_add` and :func:`scale_shift` with custom VJPs whose parameter gradients (sums
over the batch) use :func:`pairwise_sum`, and :func:`softmax_cross_entropy`, :func:`mean`,
:func:`global_norm` built on it.

Two elementary functions are written here too, because XLA CPU's own versions are not a function of
their input alone:

* :func:`exp`: XLA CPU evaluates ``jnp.exp`` with one polynomial in the vectorized body of a loop and
  another in its remainder, so an element's result depends on its position in the array (measured: 1 ulp
  on 16 of ~1,800 probes; the array length changes with the population size). :func:`exp` is built from
  IEEE-exact operations (multiply, add, floor, bit shifts), so every position, shape and x86-64 CPU with
  FMA gives the same bits;
* :func:`rsqrt`: ``jax.lax.rsqrt`` (and ``a / jnp.sqrt(b)``, which XLA rewrites into it) uses the CPU's
  approximate reciprocal square root refined by a Newton step, whose last bit differs between CPU
  vendors and instruction sets. :func:`rsqrt` is ``1 / sqrt(x)`` with both operations IEEE-exact.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

__all__ = [
    "pairwise_sum",
    "mean",
    "sum_all",
    "global_norm",
    "bias_add",
    "scale_shift",
    "log_softmax",
    "softmax_cross_entropy",
    "exp",
    "rsqrt",
]


def _axes(ndim: int, axis: int | Sequence[int] | None) -> tuple[int, ...]:
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    return tuple(sorted(a % ndim for a in axes))


def pairwise_sum(x: jax.Array, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> jax.Array:
    """Sum over ``axis`` by pairwise halving: ``s(x) = s(x[:h] + x[h:])`` (zero-padded to even length).

    Same value as ``jnp.sum`` up to rounding, but the rounding is a function of the data alone, never of
    the shapes of other axes (so ``vmap`` / population size cannot change it).
    """
    x = jnp.asarray(x)
    axes = _axes(x.ndim, axis)
    kept = [a for a in range(x.ndim) if a not in axes]
    out_shape = (
        tuple(1 if a in axes else x.shape[a] for a in range(x.ndim)) if keepdims else tuple(x.shape[a] for a in kept)
    )
    if not axes:
        return x
    y = jnp.transpose(x, axes + tuple(kept))
    n = 1
    for a in axes:
        n *= x.shape[a]
    y = y.reshape((n,) + tuple(x.shape[a] for a in kept))
    if n == 0:
        return jnp.zeros(out_shape, x.dtype)
    while n > 1:
        if n % 2:
            y = jnp.concatenate([y, jnp.zeros_like(y[:1])], axis=0)
            n += 1
        h = n // 2
        y = y[:h] + y[h:]
        n = h
    return y[0].reshape(out_shape)


def mean(x: jax.Array, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> jax.Array:
    """``pairwise_sum(x, axis) · (1/n)`` (multiplication by an explicit reciprocal, see the module doc)."""
    x = jnp.asarray(x)
    axes = _axes(x.ndim, axis)
    n = 1
    for a in axes:
        n *= x.shape[a]
    return pairwise_sum(x, axes, keepdims) * jnp.asarray(1.0 / max(n, 1), x.dtype)


def sum_all(tree: Any) -> jax.Array:
    """Sum of every element of every leaf: pairwise within a leaf, leaves added in tree order."""
    leaves = jax.tree_util.tree_leaves(tree)
    total = jnp.zeros((), jnp.float32)
    for leaf in leaves:
        total = total + pairwise_sum(leaf).astype(jnp.float32)
    return total


def global_norm(tree: Any) -> jax.Array:
    """``‖g‖ = sqrt(Σ_leaves Σ_i g_i²)`` with vmap-stable sums (same as ``optax.tree.norm`` up to rounding)."""
    return jnp.sqrt(sum_all(jax.tree_util.tree_map(lambda g: jnp.square(g.astype(jnp.float32)), tree)))


@jax.custom_vjp
def bias_add(x: jax.Array, b: jax.Array) -> jax.Array:
    """``x + b`` (``b`` broadcast over every axis but the last); ``∂L/∂b = Σ_batch ∂L/∂y`` summed pairwise."""
    return x + b


def _bias_add_fwd(x: jax.Array, b: jax.Array) -> tuple[jax.Array, None]:
    return x + b, None


def _bias_add_bwd(_: None, g: jax.Array) -> tuple[jax.Array, jax.Array]:
    return g, pairwise_sum(g, tuple(range(g.ndim - 1)))


bias_add.defvjp(_bias_add_fwd, _bias_add_bwd)


@jax.custom_vjp
def scale_shift(x: jax.Array, scale: jax.Array, shift: jax.Array) -> jax.Array:
    """``x · scale + shift`` over the last axis (normalization layers); parameter gradients summed pairwise."""
    return x * scale + shift


def _scale_shift_fwd(x: jax.Array, scale: jax.Array, shift: jax.Array) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
    return x * scale + shift, (x, scale)


def _scale_shift_bwd(res: tuple[jax.Array, jax.Array], g: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    x, scale = res
    batch_axes = tuple(range(g.ndim - 1))
    return g * scale, pairwise_sum(g * x, batch_axes), pairwise_sum(g, batch_axes)


scale_shift.defvjp(_scale_shift_fwd, _scale_shift_bwd)


# Cephes ``expf``: e^x = 2^n · e^r with n = ⌊x·log₂e + ½⌋, r = x − n·ln2 (ln2 split in two for an exact
# product), e^r ≈ 1 + r + r²·P(r) with a degree-5 minimax P on [−ln2/2, ln2/2].
_EXP_P = (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1)
_LN2_HI, _LN2_LO, _LOG2E = 0.693359375, -2.12194440e-4, 1.44269504088896341
_EXP_MAX, _EXP_MIN = 88.72283905206835, -103.972084


def _pow2(n: jax.Array) -> jax.Array:
    """``2^n`` for an int32 ``n`` in [-126, 127], built from its exponent bits (exact)."""
    return jax.lax.bitcast_convert_type((n + 127) << 23, jnp.float32)


def _exp_value(x: jax.Array) -> jax.Array:
    dt = x.dtype
    if dt == jnp.float64:  # (float64 runs: reference computations; the polynomial is a float32 one)
        return jnp.exp(x)
    xf = x.astype(jnp.float32)
    c = lambda v: jnp.asarray(v, jnp.float32)  # noqa: E731
    n = jnp.clip(jnp.floor(xf * c(_LOG2E) + c(0.5)), -150.0, 128.0)
    r = (xf - n * c(_LN2_HI)) - n * c(_LN2_LO)
    p = c(_EXP_P[0])
    for coef in _EXP_P[1:]:
        p = p * r + c(coef)
    y = p * (r * r) + r + c(1.0)
    k = n.astype(jnp.int32)
    half = k // 2  # two exact scalings, so that results in the subnormal range are reached too
    y = y * _pow2(jnp.clip(half, -126, 127)) * _pow2(jnp.clip(k - half, -126, 127))
    y = jnp.where(xf > c(_EXP_MAX), c(jnp.inf), jnp.where(xf < c(_EXP_MIN), c(0.0), y))
    return jnp.where(jnp.isnan(xf), xf, y).astype(dt)


@jax.custom_jvp
def exp(x: jax.Array) -> jax.Array:
    """``e^x`` computed the same way at every position of every array, on every x86-64 CPU with FMA.

    Cephes' ``expf``: ``n = ⌊x·log₂e + ½⌋``, ``r = x − n·ln2`` (Cody–Waite, ln2 in two parts),
    ``e^x = 2^n · (1 + r + r²·P₅(r))``, the scaling by ``2^n`` done on the exponent bits. Every operation
    is IEEE-exact (or fused multiply-add), so the result is a function of ``x`` alone. Accuracy: at most
    1 ulp in float32's normal range (``jnp.exp`` on XLA CPU: up to 5), within one subnormal step below it;
    overflow gives ``inf``, NaN stays NaN. ``d/dx e^x = e^x`` reuses the result. Evaluated in float32
    (half-precision inputs are widened, the result rounded back); float64 inputs use ``jnp.exp``.
    """
    return _exp_value(jnp.asarray(x))


@exp.defjvp
def _exp_jvp(primals: tuple[jax.Array], tangents: tuple[jax.Array]) -> tuple[jax.Array, jax.Array]:
    (x,), (t,) = primals, tangents
    y = exp(x)
    return y, y * t


@jax.custom_jvp
def rsqrt(x: jax.Array) -> jax.Array:
    """``1 / √x`` as two IEEE-exact operations (a square root, then a division).

    XLA rewrites ``1 / sqrt(x)`` into its ``rsqrt``, which refines the CPU's approximate reciprocal square
    root and so differs in the last bit between CPU vendors; an optimization barrier between the two
    operations keeps them exact. ``d/dx x^(-1/2) = −½ · x^(-3/2) = −½ · y³``.
    """
    x = jnp.asarray(x)
    return jnp.asarray(1.0, x.dtype) / jax.lax.optimization_barrier(jnp.sqrt(x))


@rsqrt.defjvp
def _rsqrt_jvp(primals: tuple[jax.Array], tangents: tuple[jax.Array]) -> tuple[jax.Array, jax.Array]:
    (x,), (t,) = primals, tangents
    y = rsqrt(x)
    return y, jnp.asarray(-0.5, y.dtype) * (y * y * y) * t


def log_softmax(logits: jax.Array) -> jax.Array:
    """``z − max z − log Σ exp(z − max z)`` over the last axis, with a pairwise sum and :func:`exp`."""
    m = jax.lax.stop_gradient(jnp.max(logits, axis=-1, keepdims=True))
    shifted = logits - m
    return shifted - jnp.log(pairwise_sum(exp(shifted), -1, keepdims=True))


def softmax_cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Per-example ``−log softmax(z)_y`` for integer labels (same as optax's, vmap-stable)."""
    logp = log_softmax(logits)
    onehot = jax.nn.one_hot(labels, logits.shape[-1], dtype=logp.dtype)
    # the label's log-probability: a one-hot select (exactly one non-zero term per row, so the sum is exact)
    return -pairwise_sum(logp * onehot, -1)
