"""Regularization and model averaging as pure, jittable, vmappable functions.

* Weight penalties: :func:`l2_penalty` (``0.5 * sum ||w||^2``), :func:`l1_penalty`, and
  :func:`decay_mask` (kernels yes, biases and norm scales no).
* Early stopping as a pure state machine (:func:`early_stopping_init`, :func:`early_stopping_update`)
  that runs under ``jax.jit``, ``jax.lax.scan`` and ``jax.vmap`` (flax's
  ``flax.training.early_stopping.EarlyStopping`` branches in Python and cannot). ``patience`` and
  ``min_delta`` may be traced, so each member of a population stops at its own epoch and keeps its
  own best parameters.
* Parameter averaging: an exponential moving average (:func:`ema_init`, :func:`ema_update`,
  :func:`ema_params`, Adam-style debiasing and TF-style warm-up) and stochastic weight averaging
  (:func:`swa_init`, :func:`swa_update`, :func:`swa_params`, Izmailov et al., 2018), plus
  :func:`reestimate_batch_norm` to recompute batch-norm statistics for averaged weights.
* Ensembles: :func:`ensemble_logits` (``vmap`` over stacked parameters), :func:`ensemble_predict`
  and :func:`ensemble_accuracy`.

Hyperparameters given as Python numbers are validated (``ValueError`` / ``TypeError`` naming the
parameter); jax arrays and tracers pass through unvalidated so a grid over them is a ``jax.vmap``.

Example::

    import jax, jax.numpy as jnp
    from jtricks import regularize as reg

    params = {"dense": {"kernel": jnp.ones((3, 2)), "bias": jnp.ones((2,))}}
    penalty = reg.l2_penalty(params, reg.decay_mask(params))          # 0.5 * 6 = 3.0 (bias excluded)
    es = reg.early_stopping_init(params, mode="min")
    es = reg.early_stopping_update(es, 0.5, params, 0, patience=3)    # improvement at epoch 0
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jtricks._core import checks
from jtricks._core import numerics as jnum

__all__ = [
    "decay_mask",
    "l2_penalty",
    "l1_penalty",
    "EarlyStoppingState",
    "early_stopping_init",
    "early_stopping_update",
    "EmaState",
    "ema_init",
    "ema_update",
    "ema_params",
    "SwaState",
    "swa_init",
    "swa_update",
    "swa_params",
    "reestimate_batch_norm",
    "ensemble_logits",
    "ensemble_predict",
    "ensemble_accuracy",
]

PyTree = Any
Scalar = Any  # a Python number or a (possibly traced) scalar jax array

_MODES = ("min", "max")
_ENSEMBLE_METHODS = ("mean_probs", "mean_logits")


# --------------------------------------------------------------------------------------------
# validation helpers
# --------------------------------------------------------------------------------------------


def _check_mode(mode: Any) -> str:
    if not isinstance(mode, str) or mode not in _MODES:
        raise ValueError(f"`mode` must be one of {_MODES!r}, got {mode!r}")
    return mode


def _check_int(value: Any, name: str, minimum: int) -> None:
    """Validate a Python int ``>= minimum``; arrays / tracers pass through."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"`{name}` must be an int >= {minimum} or an integer array, got {value!r}")
    if checks.is_python_int(value):
        if int(value) < minimum:
            raise ValueError(f"`{name}` must be an int >= {minimum}, got {value!r}")
        return
    if checks.is_python_number(value):
        raise TypeError(f"`{name}` must be an int >= {minimum} or an integer array, got {value!r}")
    if not hasattr(value, "shape"):
        raise TypeError(f"`{name}` must be an int >= {minimum} or an integer array, got {type(value).__name__}")


def _check_scalar_range(value: Any, name: str, lo: float, hi: float, hi_open: bool, what: str) -> None:
    """Validate a Python number in ``[lo, hi]`` (or ``[lo, hi)``); arrays / tracers pass through."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"`{name}` must be a number ({what}) or a scalar array, got {value!r}")
    if checks.is_python_number(value):
        v = float(value)
        ok = math.isfinite(v) and lo <= v and (v < hi if hi_open else v <= hi)
        if not ok:
            raise ValueError(f"`{name}` must satisfy {what}, got {value!r}")
        return
    if not hasattr(value, "shape"):
        raise TypeError(f"`{name}` must be a number ({what}) or a scalar array, got {type(value).__name__}")


def _check_same_structure(a: PyTree, b: PyTree, name_a: str, name_b: str, fn: str, shapes: bool) -> None:
    ta, tb = jax.tree_util.tree_structure(a), jax.tree_util.tree_structure(b)
    if ta != tb:
        raise ValueError(f"{fn}: `{name_b}` must have the same tree structure as `{name_a}`; got {tb} vs {ta}")
    if shapes:
        for (path, x), y in zip(jax.tree_util.tree_leaves_with_path(a), jax.tree_util.tree_leaves(b)):
            if jnp.shape(x) != jnp.shape(y):
                raise ValueError(
                    f"{fn}: leaf {jax.tree_util.keystr(path)} has shape {tuple(jnp.shape(y))} in `{name_b}` "
                    f"but {tuple(jnp.shape(x))} in `{name_a}`"
                )


def _float_dtype(x: Any) -> Any:
    return jnp.promote_types(jnp.result_type(x), jnp.float32)


# --------------------------------------------------------------------------------------------
# weight penalties
# --------------------------------------------------------------------------------------------


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
    _check_same_structure(params, mask, "params", "mask", fn, shapes=False)
    return mask


def _masked_sum(params: PyTree, mask: Any, fn: str, term: Callable[[jax.Array], jax.Array]) -> jax.Array:
    mask = _resolve_mask(params, mask, fn)
    total = jnp.zeros((), jnp.float32)
    for w, m in zip(jax.tree_util.tree_leaves(params), jax.tree_util.tree_leaves(mask)):
        if isinstance(m, (bool, np.bool_)):
            if not m:
                continue  # statically excluded
            w = jnp.asarray(w)
            total = total + jnum.pairwise_sum(term(w.astype(_float_dtype(w))))
        else:  # an array mask: a (traced) scalar switch or an elementwise mask
            w = jnp.asarray(w)
            total = total + jnum.pairwise_sum(jnp.where(m, term(w.astype(_float_dtype(w))), 0.0))
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


# --------------------------------------------------------------------------------------------
# early stopping
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class EarlyStoppingState:
    """State of the jittable early-stopping rule (a pytree; ``mode`` is static metadata).

    Attributes:
      best_metric: best metric seen so far (``+inf`` for ``"min"`` / ``-inf`` for ``"max"`` before
        the first improvement), float32.
      best_epoch: epoch of ``best_metric`` (``-1`` before the first improvement), int32.
      best_params: the parameters passed at ``best_epoch`` (the initial ones before).
      patience_count: consecutive updates without improvement, int32.
      should_stop: bool scalar; once ``True`` it stays ``True`` and the state freezes.
      stop_epoch: the epoch at which ``should_stop`` became ``True``, ``-1`` while running.
      mode: ``"min"`` or ``"max"`` (static: part of the tree structure, not a leaf).
    """

    best_metric: jax.Array
    best_epoch: jax.Array
    best_params: PyTree
    patience_count: jax.Array
    should_stop: jax.Array
    stop_epoch: jax.Array
    mode: str = "min"

    def replace(self, **changes: Any) -> EarlyStoppingState:
        """A copy with ``changes`` applied (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)


jax.tree_util.register_dataclass(
    EarlyStoppingState,
    data_fields=["best_metric", "best_epoch", "best_params", "patience_count", "should_stop", "stop_epoch"],
    meta_fields=["mode"],
)


def early_stopping_init(params: PyTree, *, mode: str = "min") -> EarlyStoppingState:
    """Initial :class:`EarlyStoppingState`: no best yet, counter 0, not stopped.

    ``best_metric = +inf`` (``mode="min"``, e.g. a validation loss) or ``-inf`` (``mode="max"``,
    e.g. an accuracy); ``best_params = params``; ``best_epoch = stop_epoch = -1``.
    Works under ``jax.vmap`` over a stacked ``params`` (one state per population member).

    Raises:
      ValueError: if ``mode`` is not ``"min"`` or ``"max"``.
    """
    mode = _check_mode(mode)
    return EarlyStoppingState(
        best_metric=jnp.asarray(math.inf if mode == "min" else -math.inf, jnp.float32),
        best_epoch=jnp.asarray(-1, jnp.int32),
        best_params=params,
        patience_count=jnp.asarray(0, jnp.int32),
        should_stop=jnp.asarray(False),
        stop_epoch=jnp.asarray(-1, jnp.int32),
        mode=mode,
    )


def _check_early_stopping_args(state: EarlyStoppingState, params: PyTree, patience: Any, min_delta: Any,
                               mode: Any) -> None:
    """Validate :func:`early_stopping_update`'s ``mode``, Python ``patience`` / ``min_delta`` and ``params``."""
    if mode is not None:
        mode = _check_mode(mode)
        if mode != state.mode:
            raise ValueError(
                f"`mode`={mode!r} differs from the state's mode {state.mode!r} (given to early_stopping_init)"
            )
    _check_int(patience, "patience", 0)
    _check_scalar_range(min_delta, "min_delta", 0.0, math.inf, True, "min_delta >= 0")
    _check_same_structure(state.best_params, params, "state.best_params", "params", "early_stopping_update", True)


def early_stopping_update(
    state: EarlyStoppingState,
    metric: Scalar,
    params: PyTree,
    epoch: int | jax.Array,
    *,
    patience: int | jax.Array,
    min_delta: float | jax.Array = 0.0,
    mode: str | None = None,
) -> EarlyStoppingState:
    """One step of early stopping (Prechelt, 1998; the Keras ``EarlyStopping`` rule), branch-free.

    ``improved = metric < best - min_delta`` (``mode="min"``) or ``metric > best + min_delta``
    (``mode="max"``); a NaN metric never improves. Then, while not stopped:

    * improved: ``best, best_epoch, best_params <- metric, epoch, params`` and ``count <- 0``;
    * otherwise: ``count <- count + 1`` and ``should_stop <- count >= patience`` (so training stops
      after ``patience`` consecutive epochs without improvement; ``patience = 0`` stops at the first
      one). ``stop_epoch`` records the epoch.

    Once ``should_stop`` is ``True`` nothing changes any more, so a stopped member of a
    ``vmap``-ed population freezes while the others go on. Everything is ``jnp.where`` selects: it
    runs under ``jit`` / ``scan`` / ``vmap``, and ``patience`` / ``min_delta`` may be traced.

    Note: flax's ``EarlyStopping(patience=p)`` stops one epoch later (after ``p + 1`` epochs
    without improvement); this one with ``patience=p`` equals flax's with ``patience=p - 1``.

    Args:
      state: from :func:`early_stopping_init` (or a previous update).
      metric: scalar metric of this epoch.
      params: this epoch's parameters (same structure and shapes as ``state.best_params``).
      epoch: this epoch's index (int or int array).
      patience: Python int ``>= 0`` (validated) or an integer array.
      min_delta: Python number ``>= 0`` (validated) or a scalar array.
      mode: ``None`` (use ``state.mode``) or ``"min"`` / ``"max"``, which must equal ``state.mode``.

    Returns:
      The new state.

    Raises:
      ValueError / TypeError: bad ``mode``, a negative or non-int Python ``patience``, a negative
        Python ``min_delta``, or ``params`` whose structure / shapes differ from ``best_params``.
    """
    _check_early_stopping_args(state, params, patience, min_delta, mode)

    dt = state.best_metric.dtype
    metric = jnp.asarray(metric, dt)
    if jnp.ndim(metric) != 0:
        raise ValueError(f"`metric` must be a scalar, got shape {jnp.shape(metric)}")
    delta = jnp.asarray(min_delta, dt)
    epoch = jnp.asarray(epoch, jnp.int32)

    running = jnp.logical_not(state.should_stop)
    if state.mode == "min":
        better = metric < state.best_metric - delta
    else:
        better = metric > state.best_metric + delta
    improved = jnp.logical_and(running, better)  # False for NaN metrics (comparisons are False)
    count = jnp.where(improved, 0, state.patience_count + 1).astype(jnp.int32)
    stop_now = running & jnp.logical_not(improved) & (count >= patience)
    return EarlyStoppingState(
        best_metric=jnp.where(improved, metric, state.best_metric),
        best_epoch=jnp.where(improved, epoch, state.best_epoch),
        best_params=jax.tree_util.tree_map(
            lambda p, b: jnp.where(improved, p, b).astype(jnp.result_type(b)), params, state.best_params
        ),
        patience_count=jnp.where(running, count, state.patience_count),
        should_stop=state.should_stop | stop_now,
        stop_epoch=jnp.where(stop_now, epoch, state.stop_epoch),
        mode=state.mode,
    )


# --------------------------------------------------------------------------------------------
# exponential moving average of parameters
# --------------------------------------------------------------------------------------------


class EmaState(NamedTuple):
    """State of :func:`ema_update`.

    Attributes:
      average: the (debiased) average of the parameters, structure and dtypes of ``params``.
      count: number of updates so far, int32.
      decay_product: ``prod_s decay_s`` over the updates so far (``decay^count`` without warm-up), float32.
    """

    average: PyTree
    count: jax.Array
    decay_product: jax.Array


def ema_init(params: PyTree) -> EmaState:
    """Initial :class:`EmaState`: ``average = params``, ``count = 0``, ``decay_product = 1``."""
    return EmaState(
        average=params,
        count=jnp.zeros((), jnp.int32),
        decay_product=jnp.ones((), jnp.float32),
    )


def ema_update(
    state: EmaState,
    params: PyTree,
    decay: float | jax.Array,
    *,
    debias: bool = True,
    warmup: bool = False,
) -> EmaState:
    """Exponential moving average of the parameters (Polyak averaging with exponential weights).

    With ``t = state.count`` (the number of earlier updates)::

        d_t   = min(decay, (1 + t) / (10 + t))  if warmup  else  decay
        ema_t = d_t * ema_{t-1} + (1 - d_t) * params_t,          ema_0 = 0

    ``warmup`` is TF's ``tf.train.ExponentialMovingAverage(num_updates=t)`` rule: small decays at
    first so the average forgets the early, poor parameters quickly.

    * ``debias=True`` (default): the average returned is Adam-style bias-corrected,
      ``ema_t / (1 - prod_{s<=t} d_s)`` (``= ema_t / (1 - decay^t)`` without warm-up, the value
      ``optax.ema(decay, debias=True)`` returns). It is stored directly, updated as
      ``avg <- avg + w_t * (params - avg)`` with ``w_t = (1 - d_t) / (1 - prod_{s<=t} d_s)``
      (``w_1 = 1``: the first update copies the parameters); before any update it is the
      parameters given to :func:`ema_init`.
    * ``debias=False``: the TF convention: the average starts at the initial parameters and
      ``avg <- d_t * avg + (1 - d_t) * params``.

    Pass the same ``debias`` / ``warmup`` on every call. ``decay`` may be a Python number
    (validated, ``0 <= decay < 1``) or a traced scalar.

    Raises:
      ValueError: a Python ``decay`` outside ``[0, 1)``, or ``params`` whose structure / shapes
        differ from the average.
    """
    _check_scalar_range(decay, "decay", 0.0, 1.0, True, "0 <= decay < 1")
    _check_same_structure(state.average, params, "state.average", "params", "ema_update", True)
    d = jnp.asarray(decay, jnp.float32)
    if warmup:
        t = state.count.astype(jnp.float32)
        d = jnp.minimum(d, (1.0 + t) / (10.0 + t))
    one_minus_d = 1.0 - d
    product = state.decay_product * d
    if debias:
        weight = one_minus_d * (1.0 / (1.0 - product))
    else:
        weight = one_minus_d
    average = jax.tree_util.tree_map(
        lambda a, p: (a + weight.astype(_float_dtype(a)) * (jnp.asarray(p) - a)).astype(jnp.result_type(a)),
        state.average,
        params,
    )
    return EmaState(average=average, count=state.count + 1, decay_product=product)


def ema_params(state: EmaState) -> PyTree:
    """The averaged parameters of an :class:`EmaState` (debiased if updated with ``debias=True``)."""
    return state.average


# --------------------------------------------------------------------------------------------
# stochastic weight averaging
# --------------------------------------------------------------------------------------------


class SwaState(NamedTuple):
    """State of :func:`swa_update`.

    Attributes:
      average: the running uniform average (the current parameters before ``start``).
      count: number of parameter snapshots in the average, int32.
    """

    average: PyTree
    count: jax.Array


def swa_init(params: PyTree) -> SwaState:
    """Initial :class:`SwaState`: ``average = params``, ``count = 0``."""
    return SwaState(average=params, count=jnp.zeros((), jnp.int32))


def swa_update(
    state: SwaState,
    params: PyTree,
    step: int | jax.Array,
    *,
    start: int | jax.Array,
    every: int | jax.Array = 1,
) -> SwaState:
    """Stochastic weight averaging (Izmailov et al., 2018): a uniform running average of snapshots.

    A snapshot is taken when ``step >= start`` and ``(step - start) % every == 0``::

        avg <- avg + (params - avg) * (1 / (n + 1)),   n <- n + 1

    so after ``n`` snapshots ``avg = (1/n) sum_i params_i`` (``torch.optim.swa_utils.AveragedModel``'s
    default average). Before ``start`` the average tracks the current parameters (``avg = params``,
    ``n = 0``); between snapshots it is unchanged. ``step``, ``start`` and ``every`` may be traced
    (a population can start averaging at different steps). Python ``start`` must be an int ``>= 0``
    and ``every`` an int ``>= 1``. After averaging, recompute batch-norm statistics with
    :func:`reestimate_batch_norm`.

    Raises:
      ValueError / TypeError: bad Python ``start`` / ``every``, or ``params`` whose structure /
        shapes differ from the average.
    """
    _check_int(start, "start", 0)
    _check_int(every, "every", 1)
    _check_same_structure(state.average, params, "state.average", "params", "swa_update", True)
    step = jnp.asarray(step, jnp.int32)
    start = jnp.asarray(start, jnp.int32)
    before = step < start
    take = jnp.logical_not(before) & ((step - start) % jnp.asarray(every, jnp.int32) == 0)
    inv = 1.0 / (state.count.astype(jnp.float32) + 1.0)

    def leaf(a: jax.Array, p: jax.Array) -> jax.Array:
        p = jnp.asarray(p)
        new = (a + (p - a) * inv.astype(_float_dtype(a))).astype(jnp.result_type(a))
        return jnp.where(before, p.astype(jnp.result_type(a)), jnp.where(take, new, a))

    average = jax.tree_util.tree_map(leaf, state.average, params)
    count = jnp.where(before, 0, state.count + take.astype(jnp.int32)).astype(jnp.int32)
    return SwaState(average=average, count=count)


def swa_params(state: SwaState) -> PyTree:
    """The SWA-averaged parameters (the current parameters before ``start``)."""
    return state.average


# --------------------------------------------------------------------------------------------
# batch-norm re-estimation
# --------------------------------------------------------------------------------------------


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
        {name: jnp.zeros(jnp.shape(leaves[i][name]), _float_dtype(leaves[i][name])) for name in ("mean", "var")}
        for i in bn_idx
    ]


def _add_bn_statistics(acc: _BnStats, stats: _BnStats) -> _BnStats:
    return jax.tree_util.tree_map(jnp.add, acc, stats)


def _scan_bn_statistics(batch_stats: Callable[[Any, jax.Array], _BnStats], zero_sums: _BnStats,
                        batches: jax.Array | np.ndarray, key: jax.Array) -> tuple[_BnStats, int]:
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


def _loop_bn_statistics(batch_stats: Callable[[Any, jax.Array], _BnStats], zero_sums: _BnStats,
                        batches: Iterable[Any], key: jax.Array) -> tuple[_BnStats, int]:
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
        out[i] = {
            name: (sums[j][name] * scale).astype(jnp.result_type(leaves[i][name])) for name in ("mean", "var")
        }
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
    _check_scalar_range(momentum, "momentum", 0.0, 1.0, True, "0 <= momentum < 1")
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
            {name: new_leaves[i][name].astype(_float_dtype(new_leaves[i][name])) * inv for name in ("mean", "var")}
            for i in bn_idx
        ]

    zero_sums = _zero_bn_sums(leaves, bn_idx)
    if isinstance(batches, (jax.Array, np.ndarray)):
        sums, num = _scan_bn_statistics(batch_stats, zero_sums, batches, key)
    else:
        sums, num = _loop_bn_statistics(batch_stats, zero_sums, batches, key)
    return _with_bn_averages(leaves, treedef, bn_idx, sums, num)


# --------------------------------------------------------------------------------------------
# ensembles
# --------------------------------------------------------------------------------------------


def ensemble_logits(
    apply_fn: Callable[..., jax.Array],
    stacked_params: PyTree,
    x: Any,
    *args: Any,
    **kwargs: Any,
) -> jax.Array:
    """Logits of every ensemble member: ``jax.vmap`` of ``apply_fn(p, x, *args, **kwargs)`` over ``p``.

    ``stacked_params`` is a pytree whose leaves all have the ensemble size ``M`` as leading axis
    (e.g. the final parameters of a ``vmap``-ed population, or ``jax.tree.map(lambda *l:
    jnp.stack(l), *members)``). ``x`` and ``args`` are shared by all members. For a model with state
    stack ``(params, state)`` and adapt the function, e.g.
    ``lambda ps, x: apply(ps[0], ps[1], x, key=k, train=False)[0]``.

    Returns:
      An array of shape ``(M, ...)`` (``(M, batch, classes)`` for a classifier).

    Raises:
      ValueError: if the leaves of ``stacked_params`` do not share a leading axis.
    """
    leaves = jax.tree_util.tree_leaves(stacked_params)
    if not leaves:
        raise ValueError("ensemble_logits: `stacked_params` has no array leaves")
    sizes = {jnp.shape(leaf)[0] if jnp.ndim(leaf) >= 1 else None for leaf in leaves}
    if len(sizes) != 1 or None in sizes:
        raise ValueError(
            "ensemble_logits: every leaf of `stacked_params` must have the ensemble size as leading axis; "
            f"got leading sizes {sorted(str(s) for s in sizes)}"
        )
    return jax.vmap(lambda p: apply_fn(p, x, *args, **kwargs))(stacked_params)


def _check_method(method: Any) -> str:
    if not isinstance(method, str) or method not in _ENSEMBLE_METHODS:
        raise ValueError(f"`method` must be one of {_ENSEMBLE_METHODS!r}, got {method!r}")
    return method


def ensemble_predict(logits_stack: jax.Array, method: str = "mean_probs") -> jax.Array:
    """Combine member logits ``(M, ..., C)`` into the ensemble's log-probabilities ``(..., C)``.

    * ``"mean_probs"`` (default; Dietterich, 2000; Lakshminarayanan et al., 2017): average the
      members' softmax probabilities, ``p = (1/M) sum_m softmax(z_m)``, returned as ``log p``
      (computed stably as ``logsumexp_m log_softmax(z_m) - log M``).
    * ``"mean_logits"``: average the logits (geometric mean of the probabilities, renormalized),
      ``log_softmax((1/M) sum_m z_m)``.

    The result is a log-probability vector: ``argmax`` gives the prediction, ``exp`` the
    probabilities, and it can be fed to any softmax cross-entropy as logits.

    Raises:
      ValueError: unknown ``method`` or ``logits_stack`` with fewer than 2 dimensions.
    """
    method = _check_method(method)
    z = jnp.asarray(logits_stack)
    if z.ndim < 2:
        raise ValueError(f"`logits_stack` must have shape (members, ..., classes), got shape {z.shape}")
    z = z.astype(_float_dtype(z))
    if method == "mean_probs":
        return jax.nn.logsumexp(jax.nn.log_softmax(z, axis=-1), axis=0) - math.log(z.shape[0])
    return jax.nn.log_softmax(jnp.mean(z, axis=0), axis=-1)


def ensemble_accuracy(logits_stack: jax.Array, labels: jax.Array, method: str = "mean_probs") -> jax.Array:
    """Accuracy of the ensemble prediction: ``mean(argmax ensemble_predict(logits) == labels)``.

    ``labels`` are integer classes of shape ``logits_stack.shape[1:-1]`` or one-hot / probability
    vectors of shape ``logits_stack.shape[1:]`` (their argmax is the class).

    Raises:
      ValueError: unknown ``method`` or ``labels`` of a shape matching neither form.
    """
    pred = ensemble_predict(logits_stack, method)
    labels = jnp.asarray(labels)
    if labels.shape == pred.shape:
        labels = jnp.argmax(labels, axis=-1)
    elif labels.shape != pred.shape[:-1]:
        raise ValueError(
            f"`labels` must have shape {pred.shape[:-1]} (class indices) or {pred.shape} (one-hot) for "
            f"logits_stack of shape {jnp.shape(logits_stack)}, got {labels.shape}"
        )
    return jnp.mean((jnp.argmax(pred, axis=-1) == labels).astype(jnp.float32))
