"""Ensembles: the logits of every member of stacked parameters and their combined prediction.

:func:`ensemble_logits` is ``jax.vmap`` of the model over the members' stacked parameters;
:func:`ensemble_predict` combines the ``M`` members' logits ``z_m`` into log-probabilities, by the
mean of the probabilities (default; Dietterich, 2000; Lakshminarayanan et al., 2017) or of the
logits::

    "mean_probs":   log p = logsumexp_m log_softmax(z_m) - log M
    "mean_logits":  log p = log_softmax((1/M) sum_m z_m)

and :func:`ensemble_accuracy` is ``mean(argmax ensemble_predict(z) == labels)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jtricks.regularize._base import PyTree, float_dtype

__all__ = [
    "ensemble_logits",
    "ensemble_predict",
    "ensemble_accuracy",
]

_ENSEMBLE_METHODS = ("mean_probs", "mean_logits")


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
    z = z.astype(float_dtype(z))
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
