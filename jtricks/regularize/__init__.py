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

The public face over private modules, one job each, whose docstrings give the formulas:
``_penalties`` (the L2 / L1 penalties and the weight-decay mask), ``_early_stopping``,
``_averaging`` (EMA and SWA), ``_batch_norm`` (batch-norm re-estimation), ``_ensembles`` and
``_base`` (the argument types and checks they share). Import from ``jtricks.regularize``; the
private modules may change.
"""

from __future__ import annotations

import types

from jtricks.regularize._averaging import (
    EmaState,
    SwaState,
    ema_init,
    ema_params,
    ema_update,
    swa_init,
    swa_params,
    swa_update,
)
from jtricks.regularize._base import PyTree as PyTree
from jtricks.regularize._base import Scalar as Scalar
from jtricks.regularize._batch_norm import reestimate_batch_norm
from jtricks.regularize._early_stopping import EarlyStoppingState, early_stopping_init, early_stopping_update
from jtricks.regularize._ensembles import ensemble_accuracy, ensemble_logits, ensemble_predict
from jtricks.regularize._penalties import decay_mask, l1_penalty, l2_penalty

# Also public, as before the split, but not in ``__all__`` (re-exported above as ``X as X``): the
# type aliases ``PyTree`` and ``Scalar``.
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


def _name_public_functions() -> None:
    """The public functions report ``jtricks.regularize`` as their module, as before the split: error
    messages and results manifests name a callable by ``module.qualname``."""
    for name in __all__:
        obj = globals()[name]
        if isinstance(obj, types.FunctionType):
            obj.__module__ = __name__


_name_public_functions()
