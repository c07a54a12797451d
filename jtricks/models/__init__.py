"""Models as pairs of pure functions ``(init, apply)`` whose trick choices are arguments.

A :class:`Model` is a small frozen container of two pure functions and a description::

    params, state = model.init(key, input_shape)                 # input_shape per example, e.g. (28, 28, 1)
    logits, state = model.apply(params, state, x, key=key, train=True, hparams=None)

* ``params`` are nested dicts with readable layer names (``"dense_0"``, ``"conv_1"``,
  ``"stage2_block0"`` ...). Indices are zero-padded to a common width when a model has 10 or more
  layers of a kind (``"dense_00"`` ... ``"dense_19"``), so sorted keys (the order of a dict that
  went through ``jax.jit``) are depth order. A layer holds ``{"kernel", "bias"}`` (the flax names), or
  ``{"v", "g", "bias"}`` with weight normalization (``kernel = weight_norm(v, g)``). A batch-norm
  layer after layer ``L`` is ``"L_bn"`` (``{"scale", "bias"}``), a layer norm ``"L_ln"``.
* ``state`` holds the batch-norm running statistics (``state["L_bn"] = {"mean", "var"}``, mirroring
  the params' nesting), and is ``{}`` for a model without batch norm.
* ``apply(..., train=True)`` uses dropout and batch statistics and returns the updated running
  statistics; ``train=False`` (evaluation) turns dropout off, uses the running statistics and returns
  ``state`` unchanged.
* ``hparams`` is an optional mapping of hyperparameters that may be traced arrays, so one compiled
  model serves a ``jax.vmap`` over a grid: ``hparams["dropout_rate"]`` overrides the model's static
  ``dropout_rate``; ``init(key, shape, hparams={"init_scale": s})`` multiplies every kernel
  initializer's samples by ``s``. Other keys are ignored (the whole run's hparams may be passed).
* Dropout key of dropout site ``i`` (counted from the input): ``jax.random.fold_in(key, i)``.
  Parameter key of layer ``i``: ``jax.random.fold_in(key, i)`` (layers counted in creation order), so
  adding a layer at the end never changes the earlier layers' initial weights.
* ``apply(..., capture=True)`` returns ``(logits, new_state, activations)`` with
  ``activations[layer] = {"pre": ..., "post": ...}`` (the input and the output of the nonlinearity)
  for every hidden layer: what :mod:`jtricks.diagnostics` needs to show vanishing / exploding signals.

Every model is built only from :mod:`jtricks.init`, :mod:`jtricks.norm`, :mod:`jtricks.dropout`,
``jax.lax`` and ``jax.numpy``, so its pieces drop into flax or equinox models unchanged.

Example::

    import jax, jax.numpy as jnp
    from jtricks import models

    model = models.cnn(dropout_rate=0.5)                       # the guide's dropout-notebook CNN
    params, state = model.init(jax.random.key(0), (28, 28, 1))
    print(models.summary(model, params))                       # ... 34,826 params
    x = jnp.zeros((8, 28, 28, 1))
    logits, state = model.apply(params, state, x, key=jax.random.key(1), train=True)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from jtricks.models._cnn import cnn, cnn1d
from jtricks.models._inception import INCEPTION_BLOCKS, inception  # noqa: F401

# The type aliases and INCEPTION_BLOCKS are re-exported too (noqa: F401) but, as before the split, not in __all__.
from jtricks.models._layers import (
    ACTIVATIONS,
    NORMS,
    Array,  # noqa: F401
    Model,
    Params,  # noqa: F401
    PRNGKey,  # noqa: F401
    State,  # noqa: F401
    max_pool_2x2,
    max_pool_3x3_same,
)
from jtricks.models._mlp import mlp
from jtricks.models._resnet import resnet

__all__ = [
    "Model",
    "CONVOLUTIONAL",
    "ACTIVATIONS",
    "NORMS",
    "mlp",
    "cnn",
    "cnn1d",
    "resnet",
    "inception",
    "max_pool_2x2",
    "max_pool_3x3_same",
    "count_params",
    "summary",
    "names",
    "register_model",
    "unregister_model",
    "factory",
    "get",
]

#: The registered families built from convolutions (the engine runs their population steps member by member on
#: the CPU, where XLA's vmapped convolutions are slow: docs/performance.md).
CONVOLUTIONAL: frozenset[str] = frozenset({"cnn", "cnn1d", "resnet", "inception"})

# The public functions keep ``jtricks.models`` as their module, as before the split: a factory given as an
# experiment's ``model`` is still described (arm names, manifests) as ``jtricks.models.cnn``, and pickles by
# that path.
for _fn in (mlp, cnn, cnn1d, resnet, inception, max_pool_2x2, max_pool_3x3_same):
    _fn.__module__ = __name__
del _fn

# --------------------------------------------------------------------------------------------
# utilities and registry
# --------------------------------------------------------------------------------------------


def count_params(params: Any) -> int:
    """Number of scalars in a params pytree: ``sum(leaf.size for leaf in leaves(params))``."""
    return int(sum(int(np.prod(np.shape(leaf))) for leaf in jax.tree_util.tree_leaves(params)))


def summary(model: Model, params: Any) -> str:
    """One line: ``name(k=v, ...): N params`` (the config in order, the count with thousands separators)."""
    cfg = ", ".join(f"{k}={v!r}" for k, v in model.config.items())
    return f"{model.name}({cfg}): {count_params(params):,} params"


_REGISTRY: dict[str, Callable[..., Model]] = {
    "mlp": mlp,
    "cnn": cnn,
    "resnet": resnet,
    "inception": inception,
    "cnn1d": cnn1d,
}


def register_model(name: str, factory: Callable[..., Model], *, overwrite: bool = False) -> None:
    """Make ``factory`` (``factory(**kwargs) -> Model``, e.g. wrapping :mod:`jtricks.adapters`) available as
    ``model=name`` in experiments, in :func:`get` and in ``jtricks run --set model=name``.

    Raises:
      ValueError: ``name`` is taken (pass ``overwrite=True`` to replace a user entry; the built-in
        architectures cannot be replaced).
      TypeError: ``factory`` is not callable.
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"`name` must be a non-empty str, got {name!r}")
    if not callable(factory):
        raise TypeError(f"`factory` must be callable (factory(**kwargs) -> Model), got {type(factory).__name__}")
    builtin = {"mlp", "cnn", "resnet", "inception", "cnn1d"}
    if name in _REGISTRY and (name in builtin or not overwrite):
        raise ValueError(f"model {name!r} is already registered" + ("" if name in builtin else "; pass overwrite=True"))
    _REGISTRY[name] = factory


def unregister_model(name: str) -> None:
    """Remove a model registered with :func:`register_model` (built-in architectures stay).

    Raises:
      ValueError: ``name`` is built in or not registered.
    """
    if name in {"mlp", "cnn", "resnet", "inception", "cnn1d"} or name not in _REGISTRY:
        raise ValueError(f"{name!r} is not a user-registered model; registered: {sorted(_REGISTRY)}")
    del _REGISTRY[name]


def names() -> tuple[str, ...]:
    """The architecture names that :func:`get` accepts."""
    return tuple(_REGISTRY)


def get(name: str, **kw: Any) -> Model:
    """Build the architecture called ``name`` with keyword arguments ``kw``: ``get("cnn", dropout_rate=0.5)``.

    ``get(model.name, **model.config)`` rebuilds ``model`` (the config is the constructor's arguments).

    Raises:
      ValueError: if ``name`` is unknown (the message lists the known names), or an argument is invalid.
    """
    return factory(name)(**kw)


def factory(name: str) -> Callable[..., Model]:
    """The constructor registered as ``name`` (built-in or :func:`register_model`).

    Raises:
      ValueError: if ``name`` is unknown (the message lists the known names).
    """
    if not isinstance(name, str) or name not in _REGISTRY:
        raise ValueError(
            f"unknown model name {name!r}; known names: {', '.join(names())} "
            "(register your own with jtricks.models.register_model)"
        )
    return _REGISTRY[name]
