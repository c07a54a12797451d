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
"""

from __future__ import annotations

from typing import Any, Sequence

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
    out_shape = tuple(1 if a in axes else x.shape[a] for a in range(x.ndim)) if keepdims else tuple(x.shape[a] for a in kept)
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


def log_softmax(logits: jax.Array) -> jax.Array:
    """``z − max z − log Σ exp(z − max z)`` over the last axis, with a pairwise sum."""
    m = jax.lax.stop_gradient(jnp.max(logits, axis=-1, keepdims=True))
    shifted = logits - m
    return shifted - jnp.log(pairwise_sum(jnp.exp(shifted), -1, keepdims=True))


def softmax_cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Per-example ``−log softmax(z)_y`` for integer labels (same as optax's, vmap-stable)."""
    logp = log_softmax(logits)
    onehot = jax.nn.one_hot(labels, logits.shape[-1], dtype=logp.dtype)
    # the label's log-probability: a one-hot select (exactly one non-zero term per row, so the sum is exact)
    return -pairwise_sum(logp * onehot, -1)
