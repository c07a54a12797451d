"""Batch-norm re-estimation: recompute the running statistics of batch norm for averaged weights.

Averaged weights (EMA, SWA) do not match the statistics accumulated along the training trajectory
(Izmailov et al., 2018; ``torch.optim.swa_utils.update_bn``). :func:`reestimate_batch_norm` returns,
for every batch-norm layer, the equal-weight average over ``K`` batches of its batch statistics::

    mean = (1/K) sum_k mean_k,      var = (1/K) sum_k var_k

each read from a train-mode pass with the layer's statistics set to zero, where the update
``new = momentum * old + (1 - momentum) * batch`` leaves ``batch = new * (1 / (1 - momentum))``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jtricks.regularize._base import PyTree, check_scalar_range, float_dtype

__all__ = [
    "reestimate_batch_norm",
]


def _is_bn_entry(node: Any) -> bool:
    return isinstance(node, Mapping) and set(node.keys()) == {"mean", "var"}


_BnStats = list[dict[str, jax.Array]]


def _bn_entries(model_state: PyTree) -> tuple[list[Any], Any, list[int]]:
    """``(leaves, treedef, bn_idx)``: ``model_state`` flattened down to its batch-norm ``{"mean", "var"}``
    dicts, which are ``leaves[i]`` for ``i`` in ``bn_idx``.

    Raises:
      ValueError: ``model_state`` has no batch-norm entries.
    """
    leaves, treedef = jax.tree_util.tree_flatten(model_state, is_leaf=_is_bn_entry)
    bn_idx = [i for i, leaf in enumerate(leaves) if _is_bn_entry(leaf)]
    if not bn_idx:
        raise ValueError(
            "reestimate_batch_norm: `model_state` has no batch-norm entries (dicts with exactly the keys "
            "{'mean', 'var'}, as made by jtricks.norm.batch_norm_init)"
        )
    return leaves, treedef, bn_idx


def _zeroed_bn_state(leaves: list[Any], treedef: Any, bn_idx: list[int]) -> PyTree:
    """The state with every batch-norm ``{"mean", "var"}`` set to zeros (other entries unchanged)."""
    zeroed = list(leaves)
    for i in bn_idx:
        zeroed[i] = {k: jnp.zeros_like(v) for k, v in leaves[i].items()}
    return jax.tree_util.tree_unflatten(treedef, zeroed)


def _zero_bn_sums(leaves: list[Any], bn_idx: list[int]) -> _BnStats:
    """Zero accumulators ``[{"mean", "var"}]``, one per batch-norm entry, in at least float32."""
    return [
        {name: jnp.zeros(jnp.shape(leaves[i][name]), float_dtype(leaves[i][name])) for name in ("mean", "var")}
        for i in bn_idx
    ]


def _add_bn_statistics(acc: _BnStats, stats: _BnStats) -> _BnStats:
    return jax.tree_util.tree_map(jnp.add, acc, stats)


def _scan_bn_statistics(
    batch_stats: Callable[[Any, jax.Array], _BnStats],
    zero_sums: _BnStats,
    batches: jax.Array | np.ndarray,
    key: jax.Array,
) -> tuple[_BnStats, int]:
    """``(sum_k batch_stats(batches[k], fold_in(key, k)), K)`` as one ``jax.lax.scan`` over the leading axis.

    Raises:
      ValueError: ``batches`` has no leading axis or ``K = 0``.
    """
    num = int(jnp.shape(batches)[0]) if jnp.ndim(batches) >= 1 else 0
    if num == 0:
        raise ValueError("reestimate_batch_norm: `batches` is empty (need an array of shape (K, batch, ...), K >= 1)")

    def body(acc: _BnStats, xs: tuple[Any, jax.Array]) -> tuple[Any, None]:
        x, i = xs
        return _add_bn_statistics(acc, batch_stats(x, jax.random.fold_in(key, i))), None

    sums, _ = jax.lax.scan(body, zero_sums, (jnp.asarray(batches), jnp.arange(num)))
    return sums, num


def _loop_bn_statistics(
    batch_stats: Callable[[Any, jax.Array], _BnStats], zero_sums: _BnStats, batches: Iterable[Any], key: jax.Array
) -> tuple[_BnStats, int]:
    """``(sum_k batch_stats(x_k, fold_in(key, k)), K)`` by a host loop over an iterable, one jitted step a batch.

    Raises:
      ValueError: ``batches`` is empty.
    """
    step = jax.jit(lambda acc, x, k: _add_bn_statistics(acc, batch_stats(x, k)))
    sums, num = zero_sums, 0
    for x in batches:
        sums = step(sums, x, jax.random.fold_in(key, num))
        num += 1
    if num == 0:
        raise ValueError("reestimate_batch_norm: `batches` is empty")
    return sums, num


def _with_bn_averages(leaves: list[Any], treedef: Any, bn_idx: list[int], sums: _BnStats, num: int) -> PyTree:
    """The state with batch-norm entry ``bn_idx[j]`` replaced by ``sums[j] * (1 / num)`` in its own dtypes."""
    scale = 1.0 / num
    out = list(leaves)
    for j, i in enumerate(bn_idx):
        out[i] = {name: (sums[j][name] * scale).astype(jnp.result_type(leaves[i][name])) for name in ("mean", "var")}
    return jax.tree_util.tree_unflatten(treedef, out)


def reestimate_batch_norm(
    apply_fn: Callable[..., tuple[Any, PyTree]],
    params: PyTree,
    model_state: PyTree,
    batches: jax.Array | np.ndarray | Iterable[Any],
    *,
    key: jax.Array,
    momentum: float | jax.Array = 0.9,
) -> PyTree:
    """Recompute batch-norm running statistics for (averaged) parameters.

    Averaged weights (:func:`swa_update`, :func:`ema_update`) do not match the running statistics
    accumulated along the training trajectory, so those must be recomputed (Izmailov et al., 2018;
    ``torch.optim.swa_utils.update_bn``). For every batch-norm layer this returns the exact
    equal-weight average over the ``K`` batches of its batch statistics::

        mean = (1/K) sum_k mean_k,      var = (1/K) sum_k var_k

    (``mean`` is the mean of the features over all batches when the batches have equal size;
    ``var`` is the average within-batch variance, the biased one with :func:`jtricks.norm.batch_norm`).

    Model interface: ``apply_fn(params, state, x, *, key, train) -> (out, new_state)``, where
    ``state`` is a pytree whose batch-norm entries are dicts with exactly the keys ``{"mean", "var"}``
    (as made by :func:`jtricks.norm.batch_norm_init`) updated in train mode as
    ``new = momentum * old + (1 - momentum) * batch`` (:func:`jtricks.norm.batch_norm`).

    Method (independent of the old statistics): each batch runs in train mode with every batch-norm
    entry set to zero, so ``new = (1 - momentum) * batch`` and ``batch = new * (1 / (1 - momentum))``
    to within an ulp or two. ``momentum`` must therefore be the one the model's batch-norm layers use
    (default ``0.9``, that of :func:`jtricks.norm.batch_norm`); a Python value is validated
    (``0 <= momentum < 1``). Train mode also enables dropout etc.; batch ``k`` gets the key
    ``fold_in(key, k)``. Entries of ``model_state`` other than batch-norm dicts are returned unchanged.

    Args:
      apply_fn: the model's apply function (see above).
      params: the (averaged) parameters.
      model_state: the model state whose batch-norm entries are replaced.
      batches: either one array of shape ``(K, batch, ...)`` (scanned with ``jax.lax.scan``; the
        whole function is then jittable), or an iterable of input batches (a Python loop, each
        step jitted).
      key: PRNG key for the train-mode forward passes.
      momentum: the batch-norm momentum of the model.

    Returns:
      ``model_state`` with every batch-norm ``{"mean", "var"}`` replaced by the re-estimated one.

    Raises:
      ValueError: ``model_state`` has no batch-norm entries, ``batches`` is empty, a Python
        ``momentum`` is outside ``[0, 1)``, or ``apply_fn`` returns a state of another structure.
    """
    check_scalar_range(momentum, "momentum", 0.0, 1.0, True, "0 <= momentum < 1")
    leaves, treedef, bn_idx = _bn_entries(model_state)
    zero_state = _zeroed_bn_state(leaves, treedef, bn_idx)
    inv = 1.0 / (1.0 - jnp.asarray(momentum, jnp.float32))

    def batch_stats(x: Any, k: jax.Array) -> _BnStats:
        _, new_state = apply_fn(params, zero_state, x, key=k, train=True)
        try:
            new_leaves = treedef.flatten_up_to(new_state)
        except (ValueError, TypeError) as e:
            raise ValueError(
                "reestimate_batch_norm: `apply_fn` returned a state whose structure differs from `model_state`"
            ) from e
        return [
            {name: new_leaves[i][name].astype(float_dtype(new_leaves[i][name])) * inv for name in ("mean", "var")}
            for i in bn_idx
        ]

    zero_sums = _zero_bn_sums(leaves, bn_idx)
    if isinstance(batches, (jax.Array, np.ndarray)):
        sums, num = _scan_bn_statistics(batch_stats, zero_sums, batches, key)
    else:
        sums, num = _loop_bn_statistics(batch_stats, zero_sums, batches, key)
    return _with_bn_averages(leaves, treedef, bn_idx, sums, num)
