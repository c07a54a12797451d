"""Parameter averaging: an exponential moving average (EMA) and stochastic weight averaging (SWA).

* EMA (:func:`ema_init`, :func:`ema_update`, :func:`ema_params`; Polyak averaging with exponential
  weights, Adam-style debiasing and TF-style warm-up)::

      d_t   = min(decay, (1 + t) / (10 + t))  if warmup  else  decay
      ema_t = d_t * ema_{t-1} + (1 - d_t) * params_t,          ema_0 = 0

  returned debiased as ``ema_t / (1 - prod_{s<=t} d_s)`` (``debias=True``) or, in the TF
  convention, started at the initial parameters (``debias=False``).
* SWA (:func:`swa_init`, :func:`swa_update`, :func:`swa_params`; Izmailov et al., 2018): the uniform
  average of the snapshots taken when ``step >= start`` and ``(step - start) % every == 0``::

      avg <- avg + (params - avg) * (1 / (n + 1)),   n <- n + 1

Both states are pytrees updated by ``jnp.where`` selects, so they run under ``jit`` / ``scan`` /
``vmap`` with traced hyperparameters. Averaged weights need new batch-norm statistics:
:func:`jtricks.regularize.reestimate_batch_norm`.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jtricks.regularize._base import PyTree, check_int, check_same_structure, check_scalar_range, float_dtype

__all__ = [
    "EmaState",
    "ema_init",
    "ema_update",
    "ema_params",
    "SwaState",
    "swa_init",
    "swa_update",
    "swa_params",
]


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
    check_scalar_range(decay, "decay", 0.0, 1.0, True, "0 <= decay < 1")
    check_same_structure(state.average, params, "state.average", "params", "ema_update", True)
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
        lambda a, p: (a + weight.astype(float_dtype(a)) * (jnp.asarray(p) - a)).astype(jnp.result_type(a)),
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
    check_int(start, "start", 0)
    check_int(every, "every", 1)
    check_same_structure(state.average, params, "state.average", "params", "swa_update", True)
    step = jnp.asarray(step, jnp.int32)
    start = jnp.asarray(start, jnp.int32)
    before = step < start
    take = jnp.logical_not(before) & ((step - start) % jnp.asarray(every, jnp.int32) == 0)
    inv = 1.0 / (state.count.astype(jnp.float32) + 1.0)

    def leaf(a: jax.Array, p: jax.Array) -> jax.Array:
        p = jnp.asarray(p)
        new = (a + (p - a) * inv.astype(float_dtype(a))).astype(jnp.result_type(a))
        return jnp.where(before, p.astype(jnp.result_type(a)), jnp.where(take, new, a))

    average = jax.tree_util.tree_map(leaf, state.average, params)
    count = jnp.where(before, 0, state.count + take.astype(jnp.int32)).astype(jnp.int32)
    return SwaState(average=average, count=count)


def swa_params(state: SwaState) -> PyTree:
    """The SWA-averaged parameters (the current parameters before ``start``)."""
    return state.average
