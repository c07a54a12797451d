"""Random, key-driven example order: the train/validation split and on-device shuffled mini-batches.

* :func:`train_val_split` -- ``p = permutation(key, N)``; validation ``= p[:n_val]``, training ``= p[n_val:]``.
* :func:`num_batches` -- mini-batches per epoch with drop-remainder: ``K = floor(N / B)``.
* :func:`epoch_batches` -- one epoch of shuffled mini-batch indices as a device array,
  ``permutation(key, N)[:B·K].reshape(K, B)``, so an epoch runs as one ``lax.scan`` over device-resident data
  (``x[idx[i]]``) with no host round trip, and it vmaps over keys (one data order per population member).

Both are deterministic functions of the key (use a named key stream, e.g. ``"data"``).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jtricks._core import checks
from jtricks.data._dataset import Array

__all__ = ["train_val_split", "num_batches", "epoch_batches"]


def _check_positive_int(name: str, v: Any) -> int:
    return checks.check_positive_int(v, name, hint=" (it fixes array shapes, so it is static)", type_error=TypeError)


def train_val_split(
    key: jax.Array, x: Array, y: Array, *, val_fraction: float | None = None, n_val: int | None = None
) -> tuple[Array, Array, Array, Array]:
    """Random train/validation split by key: ``p = permutation(key, N)``; val ``= p[:n_val]``.

    Give exactly one of ``val_fraction`` (``n_val = round(val_fraction · N)``, at least 1) or
    ``n_val``. The permutation is ``jax.random.permutation(key, N)``, so the split is a
    deterministic function of the key (use a named key stream, e.g. ``"data"``). numpy inputs are
    indexed on the host and stay numpy; jax inputs (or a traced key, e.g. under ``jax.vmap`` over
    keys) give jax arrays.

    Returns:
      ``(x_train, y_train, x_val, y_val)``.
    """
    n = int(np.shape(x)[0]) if np.ndim(x) else 0
    if np.ndim(y) < 1 or int(np.shape(y)[0]) != n:
        raise ValueError(f"`x` and `y` must have the same number of examples, got {np.shape(x)} and {np.shape(y)}")
    if n < 2:
        raise ValueError(f"need at least 2 examples to split, got {n}")
    if (val_fraction is None) == (n_val is None):
        raise ValueError("give exactly one of `val_fraction` or `n_val`")
    if val_fraction is not None:
        if not checks.is_python_number(val_fraction) or not 0.0 < float(val_fraction) < 1.0:
            raise ValueError(f"`val_fraction` must satisfy 0 < val_fraction < 1, got {val_fraction!r}")
        k = min(max(int(round(float(val_fraction) * n)), 1), n - 1)
    else:
        if not checks.is_python_int(n_val):
            raise TypeError(f"`n_val` must be a Python int, got {type(n_val).__name__}")
        k = int(n_val)
        if not 1 <= k <= n - 1:
            raise ValueError(f"`n_val` must satisfy 1 <= n_val <= {n - 1}, got {n_val}")
    perm = jax.random.permutation(key, n)
    if isinstance(x, jax.Array) or isinstance(y, jax.Array) or isinstance(perm, jax.core.Tracer):
        x, y = jnp.asarray(x), jnp.asarray(y)
    else:
        perm = np.asarray(perm)
    val, tr = perm[:k], perm[k:]
    return x[tr], y[tr], x[val], y[val]


def num_batches(num_examples: int, batch_size: int) -> int:
    """Mini-batches per epoch with drop-remainder: ``floor(num_examples / batch_size)``."""
    num_examples = _check_positive_int("num_examples", num_examples)
    batch_size = _check_positive_int("batch_size", batch_size)
    if batch_size > num_examples:
        raise ValueError(f"`batch_size` ({batch_size}) must be <= `num_examples` ({num_examples})")
    return num_examples // batch_size


def epoch_batches(key: jax.Array, num_examples: int, batch_size: int) -> jax.Array:
    """One epoch of shuffled mini-batch indices: ``permutation(key, N)[:B·K].reshape(K, B)``.

    ``K = floor(N / B)`` batches of ``B`` indices each (int32). Drop-remainder: the last
    ``N mod B`` entries of this epoch's permutation are left out; a new key each epoch gives a new
    permutation, so every example is still seen (each is left out with probability
    ``(N mod B) / N`` per epoch), and every batch has the same static shape, so an epoch is one
    ``lax.scan`` over ``idx`` with ``x[idx[i]]`` gathered from device-resident arrays (no host
    round trip). Under ``jax.vmap`` over keys each member gets its own order, equal to the
    separate call with its key.

    ``num_examples`` and ``batch_size`` are static Python ints (they fix the shape).
    """
    k = num_batches(num_examples, batch_size)
    perm = jax.random.permutation(key, int(num_examples))
    return perm[: k * int(batch_size)].reshape(k, int(batch_size)).astype(jnp.int32)
