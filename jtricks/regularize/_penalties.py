"""Weight penalties: the L2 and L1 penalties of the masked weights and the usual weight-decay mask.

* :func:`l2_penalty`: ``0.5 * sum_{masked w} ||w||_2^2`` (its gradient is ``w``: weight decay);
* :func:`l1_penalty`: ``sum_{masked w} ||w||_1`` (its subgradient is ``sign(w)``: sparsity);
* :func:`decay_mask`: ``ndim(w) >= 2`` (kernels yes, biases and norm scales no).

Each leaf's sum is a :func:`jtricks._core.numerics.pairwise_sum` in at least float32, so the
penalty of a population member is bit for bit the penalty of the run alone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jtricks._core import numerics as jnum
from jtricks.regularize._base import PyTree, check_same_structure, float_dtype

__all__ = [
    "decay_mask",
    "l2_penalty",
    "l1_penalty",
]


def decay_mask(params: PyTree) -> PyTree:
    """The usual weight-decay mask: ``True`` for kernels (``ndim >= 2``), ``False`` otherwise.

    Biases and normalization scales / shifts (``ndim <= 1``) are not decayed: penalizing them
    does not reduce capacity in a useful way and, for norm scales, fights the normalization.
    Returns a pytree of Python bools with the structure of ``params`` (usable as the ``mask`` of
    :func:`l2_penalty`, :func:`l1_penalty` and of ``optax.add_decayed_weights`` / ``optax.adamw``).
    """
    return jax.tree_util.tree_map(lambda x: bool(jnp.ndim(x) >= 2), params)


def _is_mask_function(params: PyTree, mask: Any) -> bool:
    """A mask is a function ``params -> mask`` if it is callable and not itself a mask: a callable pytree
    with the structure of ``params`` (e.g. an equinox Module of bools from :func:`decay_mask`) is a mask."""
    if not callable(mask):
        return False
    treedef = jax.tree_util.tree_structure(mask)
    return jax.tree_util.treedef_is_leaf(treedef) or treedef != jax.tree_util.tree_structure(params)


def _resolve_mask(params: PyTree, mask: Any, fn: str) -> PyTree:
    if mask is None:
        return jax.tree_util.tree_map(lambda _: True, params)
    if _is_mask_function(params, mask):
        mask = mask(params)
    check_same_structure(params, mask, "params", "mask", fn, shapes=False)
    return mask


def _masked_sum(params: PyTree, mask: Any, fn: str, term: Callable[[jax.Array], jax.Array]) -> jax.Array:
    mask = _resolve_mask(params, mask, fn)
    total = jnp.zeros((), jnp.float32)
    for w, m in zip(jax.tree_util.tree_leaves(params), jax.tree_util.tree_leaves(mask)):
        if isinstance(m, (bool, np.bool_)):
            if not m:
                continue  # statically excluded
            w = jnp.asarray(w)
            total = total + jnum.pairwise_sum(term(w.astype(float_dtype(w))))
        else:  # an array mask: a (traced) scalar switch or an elementwise mask
            w = jnp.asarray(w)
            total = total + jnum.pairwise_sum(jnp.where(m, term(w.astype(float_dtype(w))), 0.0))
    return total


def l2_penalty(params: PyTree, mask: PyTree | Callable[[PyTree], PyTree] | None = None) -> jax.Array:
    """L2 penalty ``0.5 * sum_{masked w} ||w||_2^2`` (sum of squares of every masked entry).

    The factor ``1/2`` makes ``d/dw = w``, so adding ``lambda * l2_penalty(params, mask)`` to the
    loss adds ``lambda * w`` to the gradient: with plain SGD this is exactly weight decay
    ``w <- w - eta * (g + lambda * w)`` (what ``optax.add_decayed_weights(lambda, mask)`` does
    directly; with Adam the two differ, see ``optax.adamw``, Loshchilov & Hutter, 2019).
    The caller multiplies by the coefficient ``lambda``.

    Args:
      params: a pytree of arrays.
      mask: ``None`` (every leaf, the optax convention), a pytree of bools with the structure of
        ``params`` (e.g. :func:`decay_mask`), or a callable ``params -> mask`` (a callable pytree with the
        structure of ``params``, such as an equinox Module of bools, is a mask, not a function). A mask
        leaf may be a Python bool (static), a scalar bool array or an elementwise bool array.

    Returns:
      A float32 (or wider) scalar.

    Raises:
      ValueError: if ``mask`` does not have the structure of ``params``.
    """
    return 0.5 * _masked_sum(params, mask, "l2_penalty", jnp.square)


def l1_penalty(params: PyTree, mask: PyTree | Callable[[PyTree], PyTree] | None = None) -> jax.Array:
    """L1 penalty ``sum_{masked w} ||w||_1`` (sum of absolute values of every masked entry).

    Its (sub)gradient is ``sign(w)``; it drives small weights to exactly zero (sparsity, Tibshirani
    1996). ``mask`` as in :func:`l2_penalty`; the caller multiplies by the coefficient.

    Raises:
      ValueError: if ``mask`` does not have the structure of ``params``.
    """
    return _masked_sum(params, mask, "l1_penalty", jnp.abs)
