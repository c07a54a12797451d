"""Data augmentation of image batches with an explicit key: random crops, horizontal flips, cutout, mixup.

Every function takes a PRNG key and a batch of NHWC images ``x`` of shape ``(N, H, W, C)`` and draws what it
needs for every example at once, so it is a pure function of ``(key, x)`` that works under ``jit`` and ``vmap``
(a population of members, each with its own key and hyperparameters, is one ``jax.vmap``)::

    random_crop(key, x, padding=p)      y_n = pad(x_n, p)[a_n : a_n + H, b_n : b_n + W],   a_n, b_n ~ U{0, ..., 2p}
    horizontal_flip(key, x, rate=r)     y_n = x_n[:, ::-1] if u_n < r else x_n,           u_n ~ U[0, 1)
    cutout(key, x, size=s)              y_n[i, j] = 0 for i in [c_n - ⌊s/2⌋, c_n - ⌊s/2⌋ + s),
                                        j in [d_n - ⌊s/2⌋, d_n - ⌊s/2⌋ + s) (clipped at the borders),
                                        c_n ~ U{0, ..., H-1}, d_n ~ U{0, ..., W-1}
    mixup(key, x, y, alpha=a)           x' = λ x + (1 - λ) x[π],  y' = λ y + (1 - λ) y[π]  (as x[π] + λ (x - x[π])),
                                        λ ~ Beta(a, a), π a uniform permutation of the batch

``padding`` changes shapes and is a Python int; ``rate``, ``size`` and ``alpha`` may be Python numbers,
concrete arrays (validated against :data:`jtricks.hparams.REGISTRY`: ``flip_rate``, ``cutout_size``,
``mixup_alpha``) or tracers (not validated), so a grid over flip rates, cutout sizes or mixup's ``alpha``
is a ``jax.vmap``. Every result is a function of the key and the shapes alone, so a vmapped member draws
exactly what a standalone call draws; the operations are exact data movement (crop, flip, cutout) or
elementwise arithmetic (mixup), so a member's result is bit for bit its standalone result.

The engine (``Experiment(augment=("crop", "flip"), ...)``) applies them inside the compiled training step,
per member and per step, in the order of :data:`AUGMENTATIONS`, with keys from the member's own
``"augment"`` stream (:func:`step_keys`): switching augmentation on leaves a seed's initial weights, data
order and dropout masks unchanged.

Example::

    import jax, jax.numpy as jnp
    from jtricks import augment

    x = jnp.ones((8, 32, 32, 3))
    k1, k2 = jax.random.split(jax.random.key(0))
    x = augment.horizontal_flip(k2, augment.random_crop(k1, x, padding=4))
    xm, ym = augment.mixup(jax.random.key(1), x, jax.nn.one_hot(jnp.arange(8) % 10, 10), alpha=0.2)
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jtricks import hparams as jhparams
from jtricks._core import checks
from jtricks._core.keys import key_for

__all__ = [
    "AUGMENTATIONS",
    "IMAGE_AUGMENTATIONS",
    "random_crop",
    "horizontal_flip",
    "cutout",
    "mixup",
    "mixup_draw",
    "mix",
    "step_keys",
]

#: The augmentations the engine knows, in the order it applies them (an index is also each one's key stream).
AUGMENTATIONS: tuple[str, ...] = ("crop", "flip", "cutout", "mixup")

#: The augmentations that need NHWC images (mixup mixes any inputs).
IMAGE_AUGMENTATIONS: frozenset[str] = frozenset({"crop", "flip", "cutout"})

Number = Any  # a Python number or a (possibly traced) scalar array


def _check_images(x: Any, fn: str) -> jax.Array:
    x = jnp.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"{fn}: `x` must be a batch of NHWC images (N, H, W, C), got shape {tuple(x.shape)}")
    return x


def _check_scalar(name: str, value: Number, label: str) -> None:
    if checks.is_array(value) and jnp.ndim(value) != 0:
        raise ValueError(f"`{label}` must be a scalar, got an array of shape {jnp.shape(value)}")
    jhparams.check(name, value, label=f"`{label}`")


def random_crop(key: jax.Array, x: jax.Array, *, padding: int) -> jax.Array:
    """Random crops: pad each image with ``padding`` zeros on every side, then cut it back to ``H x W``.

    ``y_n = pad(x_n, p)[a_n : a_n + H, b_n : b_n + W]`` with offsets ``(a_n, b_n) =
    jax.random.randint(key, (N, 2), 0, 2p + 1)``: every example its own shift of ``a_n - p`` rows and
    ``b_n - p`` columns, the uncovered border zero. ``padding=0`` returns ``x`` (no draw).

    Args:
      key: PRNG key.
      x: ``(N, H, W, C)`` images.
      padding: a Python int ``>= 0`` (static: the padded shape depends on it).

    Raises:
      ValueError: ``x`` is not 4-d, or ``padding`` is not an int ``>= 0``.
    """
    x = _check_images(x, "random_crop")
    if not checks.is_python_int(padding) or padding < 0:
        raise ValueError(f"`padding` must be a Python int >= 0 (it sets the padded shape), got {padding!r}")
    p = int(padding)
    if p == 0:
        return x
    n, h, w, c = x.shape
    offsets = jax.random.randint(key, (n, 2), 0, 2 * p + 1)
    padded = jnp.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
    crop = lambda img, o: jax.lax.dynamic_slice(img, (o[0], o[1], 0), (h, w, c))  # noqa: E731
    return jax.vmap(crop)(padded, offsets)


def horizontal_flip(key: jax.Array, x: jax.Array, *, rate: Number = 0.5) -> jax.Array:
    """Mirror each image left-right with probability ``rate``.

    ``y_n = x_n[:, ::-1] if u_n < rate else x_n`` with ``u = jax.random.uniform(key, (N,))``, so
    ``P(flip) = rate`` (0: never, 1: always). Flipping twice with the same key is the identity.

    Args:
      key: PRNG key.
      x: ``(N, H, W, C)`` images.
      rate: the flip probability in ``[0, 1]``: a number, a concrete array (validated) or a tracer.

    Raises:
      ValueError: ``x`` is not 4-d, or a concrete ``rate`` lies outside ``[0, 1]``.
    """
    x = _check_images(x, "horizontal_flip")
    _check_scalar("flip_rate", rate, "rate")
    flip = jax.random.uniform(key, (x.shape[0],)) < jnp.asarray(rate, jnp.float32)
    return jnp.where(flip[:, None, None, None], x[:, :, ::-1, :], x)


def cutout(key: jax.Array, x: jax.Array, *, size: Number) -> jax.Array:
    """Cutout (DeVries & Taylor, 2017): zero one ``size x size`` square per image, centred anywhere in it.

    Centres ``(c_n, d_n)``: ``jax.random.randint(key, (N, 2), 0, (H, W))``; the square is rows
    ``[c_n - ⌊s/2⌋, c_n - ⌊s/2⌋ + s)`` and columns ``[d_n - ⌊s/2⌋, d_n - ⌊s/2⌋ + s)`` clipped at the borders
    (a square near an edge covers fewer than ``s²`` pixels), all channels. ``s = ⌊size⌋``; ``size=0``
    zeroes nothing.

    Args:
      key: PRNG key.
      x: ``(N, H, W, C)`` images.
      size: the side of the square, ``>= 0``: a number, a concrete array (validated) or a tracer (rounded
        down to an integer).

    Raises:
      ValueError: ``x`` is not 4-d, or a concrete ``size`` is negative or not finite.
    """
    x = _check_images(x, "cutout")
    _check_scalar("cutout_size", size, "size")
    n, h, w, _ = x.shape
    centres = jax.random.randint(key, (n, 2), 0, jnp.array([h, w], jnp.int32))
    s = jnp.floor(jnp.asarray(size, jnp.float32)).astype(jnp.int32)
    start = centres - s // 2  # (N, 2)
    rows, cols = jnp.arange(h, dtype=jnp.int32), jnp.arange(w, dtype=jnp.int32)
    in_rows = (rows[None, :] >= start[:, :1]) & (rows[None, :] < start[:, :1] + s)  # (N, H)
    in_cols = (cols[None, :] >= start[:, 1:]) & (cols[None, :] < start[:, 1:] + s)  # (N, W)
    hole = in_rows[:, :, None, None] & in_cols[:, None, :, None]
    return jnp.where(hole, jnp.zeros((), x.dtype), x)


def mixup_draw(key: jax.Array, n: int, *, alpha: Number) -> tuple[jax.Array, jax.Array]:
    """Mixup's random draws for a batch of ``n``: ``(λ, π)``.

    ``k_λ, k_π = jax.random.split(key)``; ``λ = jax.random.beta(k_λ, alpha, alpha)`` (float32) when
    ``alpha > 0``, else ``λ = 1`` (mixup off); ``π = jax.random.permutation(k_π, n)``. As ``alpha → 0``
    Beta(alpha, alpha) tends to a fair coin on ``{0, 1}``: each mixed example is a real example (``x_n``
    or ``x_π(n)``, with its own label), which is training without mixup; ``alpha = 0`` is that limit.

    Raises:
      ValueError: a concrete ``alpha`` is negative or not finite; ``n`` is not a positive int.
    """
    _check_scalar("mixup_alpha", alpha, "alpha")
    n = checks.check_positive_int(n, "n")
    k_lam, k_perm = jax.random.split(key)
    a = jnp.asarray(alpha, jnp.float32)
    on = a > 0
    lam = jax.random.beta(k_lam, jnp.where(on, a, 1.0), jnp.where(on, a, 1.0))
    return jnp.where(on, lam, jnp.float32(1.0)), jax.random.permutation(k_perm, n)


def mix(lam: jax.Array, a: jax.Array, b: jax.Array) -> jax.Array:
    """``λ a + (1 - λ) b``, computed as ``b + λ (a - b)`` (``a`` itself where ``λ = 1``), in at least float32.

    One product, so the only fused multiply-add XLA can form is the same in every program: a vmapped member
    rounds exactly as its standalone run (with two products which one gets fused depends on the fusion).
    """
    dt = jnp.promote_types(jnp.asarray(a).dtype, jnp.float32)
    lam, a, b = jnp.asarray(lam, dt), jnp.asarray(a, dt), jnp.asarray(b, dt)
    return jnp.where(lam == 1, a, b + lam * (a - b))


def mixup(key: jax.Array, x: jax.Array, y_onehot: jax.Array, *, alpha: Number) -> tuple[jax.Array, jax.Array]:
    """Mixup (Zhang et al., 2018): convex combinations of the batch with a permutation of itself.

    ``x' = λ x + (1 - λ) x[π]``, ``y' = λ y + (1 - λ) y[π]`` with ``(λ, π) = mixup_draw(key, N, alpha=alpha)``:
    one ``λ ~ Beta(alpha, alpha)`` per batch and a uniform permutation ``π`` (``alpha = 0``: ``λ = 1``,
    ``x`` and ``y`` returned as float arrays). For a loss linear in the target distribution (cross-entropy,
    label smoothing) training on ``(x', y')`` is training on ``x'`` with ``λ ℓ(f(x'), y) + (1 - λ) ℓ(f(x'), y[π])``,
    which is how the engine mixes integer labels.

    Args:
      key: PRNG key.
      x: inputs with a leading batch axis (images or not).
      y_onehot: targets ``(N, K)`` (one-hot or soft labels).
      alpha: Beta's parameter ``>= 0``: a number, a concrete array (validated) or a tracer.

    Raises:
      ValueError: ``x`` and ``y_onehot`` disagree on the batch size, or a concrete ``alpha`` is invalid.
    """
    x, y = jnp.asarray(x), jnp.asarray(y_onehot)
    if x.ndim == 0 or y.ndim == 0 or x.shape[0] != y.shape[0]:
        raise ValueError(
            f"mixup: `x` {tuple(x.shape)} and `y_onehot` {tuple(y.shape)} need the same leading batch size"
        )
    lam, perm = mixup_draw(key, int(x.shape[0]), alpha=alpha)
    return mix(lam, x, x[perm]), mix(lam, y, y[perm])


def step_keys(root: jax.Array, step: jax.Array, names: tuple[str, ...] = AUGMENTATIONS) -> dict[str, jax.Array]:
    """The keys of one training step: ``fold_in(fold_in(key_for(root, "augment"), step), i)`` for augmentation
    ``i`` of :data:`AUGMENTATIONS`, so each augmentation has its own draws whichever others are on."""
    base = jax.random.fold_in(key_for(root, "augment"), step)
    return {name: jax.random.fold_in(base, AUGMENTATIONS.index(name)) for name in names}
