"""Optimizers, gradient clipping and learning-rate schedules as optax objects.

Every optimizer here is a thin, validated wrapper around optax (``optax.sgd``, ``optax.adam``, ...):
the returned objects are plain ``optax.GradientTransformation`` s and schedules are plain
``count -> value`` callables, so they drop into any optax / flax / equinox training loop.

jtricks adds

* names and conventions of the classic guide (``momentum`` with ``gamma``, ``normalized_sgd``,
  ``per_epoch_decay`` with the guide's x0.98 per epoch),
* validation against the ranges of :data:`jtricks.hparams.REGISTRY`: a hyperparameter given as a
  Python number or a concrete array is checked and a bad one raises ``ValueError`` naming the
  parameter and its range; tracers (inside ``jit`` / ``vmap``) pass through unchecked, so a
  population can ``jax.vmap`` over them,
* schedules whose own parameters (initial value, decay rate, final fraction) may be traced, and
* a builder, :func:`build`, that turns a static :class:`OptimizerSpec` (a named optimizer above or
  any optax optimizer factory such as ``optax.lion``) plus a dict of numeric
  hyperparameters into an optimizer whose hyperparameters live as arrays in the optimizer state
  (``optax.inject_hyperparams``): a grid over learning rates, momenta, decay rates, clip thresholds
  or weight decays is a ``vmap``, never a recompile.

Four transforms are re-expressed instead of re-exported, because the optax versions are not
vmap-invariant on XLA:CPU (a vmapped population member would drift from the run alone by an ulp
per step): :func:`clip_by_global_norm`, :func:`scale_by_adam` (used by :func:`adam` /
:func:`adamw`), :func:`trace_nesterov` (used by :func:`nesterov`) and
:func:`scale_by_inverse_global_norm` (used by :func:`normalized_sgd`). They compute the same
formulas as ``optax.clip_by_global_norm`` / ``optax.scale_by_adam`` / ``optax.trace(nesterov=True)``
/ ``optax.normalize_by_update_norm`` (agreement to float32 rounding is tested) but avoid
(a) divisions by a broadcast scalar, which XLA rewrites into a multiplication by the reciprocal in
some programs and not in others, and (b) sums of two products such as ``(1-b1) g + b1 m``, where
XLA:CPU's always-on FMA contraction may fuse either product depending on how the surrounding
program was fused. See "Population = vmap" in ``docs/optimizers.md``.

Update conventions (``u`` is the update added to the parameters, ``g`` the gradient,
``eta`` the learning rate at the current step): SGD ``u = -eta g``; momentum
``m = gamma m + g, u = -eta m`` (nesterov: ``u = -eta (g + gamma m)``); Adam as Kingma & Ba with
``eps`` outside the square root. These are the ``torch.optim`` conventions (with ``dampening=0``)
and those of optax.

The public face over private modules, one job each: ``_transforms`` (the optimizers and gradient
transforms), ``_schedules`` (the learning-rate schedules), ``_loss_scale`` (float16's dynamic loss
scaling: :func:`loss_scale_update`), ``_build`` (the spec, its hyperparameters and :func:`build`) and
``_base`` (the argument types and checks they share).
Import from ``jtricks.optim``; the private modules may change.
"""

from __future__ import annotations

import types

from jtricks.optim._base import Numeric as Numeric
from jtricks.optim._base import ScalarOrSchedule as ScalarOrSchedule
from jtricks.optim._build import (
    OPTIMIZERS,
    SCHEDULES,
    OptimizerSpec,
    build,
    build_schedule,
    default_hparams,
    hparam_names,
)
from jtricks.optim._build import Factory as Factory
from jtricks.optim._loss_scale import (
    INITIAL_LOSS_SCALE,
    LOSS_SCALE_FACTOR,
    LOSS_SCALE_PERIOD,
    MIN_LOSS_SCALE,
    LossScaleState,
    all_finite,
    loss_scale_exhausted,
    loss_scale_init,
    loss_scale_update,
    scale_loss,
    unscale_grads,
)
from jtricks.optim._schedules import (
    constant,
    cosine_decay,
    exponential_decay,
    per_epoch_decay,
    step_decay,
    warmup_cosine,
)
from jtricks.optim._transforms import NORMALIZED_SGD_EPS as NORMALIZED_SGD_EPS
from jtricks.optim._transforms import ScaleByAdamState as ScaleByAdamState
from jtricks.optim._transforms import (
    adagrad,
    adam,
    adamw,
    chain,
    clip_by_global_norm,
    momentum,
    nesterov,
    normalized_sgd,
    rmsprop,
    scale_by_adam,
    scale_by_inverse_global_norm,
    sgd,
    trace_nesterov,
)

# Also public, as before the split, but not in ``__all__`` (re-exported above as ``X as X``):
# ``NORMALIZED_SGD_EPS``, ``ScaleByAdamState``, ``ScalarOrSchedule``, ``Numeric`` and ``Factory``.
__all__ = [
    "sgd",
    "momentum",
    "nesterov",
    "adagrad",
    "rmsprop",
    "adam",
    "adamw",
    "normalized_sgd",
    "clip_by_global_norm",
    "scale_by_adam",
    "scale_by_inverse_global_norm",
    "trace_nesterov",
    "chain",
    "constant",
    "exponential_decay",
    "per_epoch_decay",
    "step_decay",
    "cosine_decay",
    "warmup_cosine",
    "OptimizerSpec",
    "OPTIMIZERS",
    "SCHEDULES",
    "hparam_names",
    "default_hparams",
    "build_schedule",
    "build",
    "LossScaleState",
    "INITIAL_LOSS_SCALE",
    "LOSS_SCALE_PERIOD",
    "LOSS_SCALE_FACTOR",
    "MIN_LOSS_SCALE",
    "loss_scale_init",
    "scale_loss",
    "unscale_grads",
    "all_finite",
    "loss_scale_update",
    "loss_scale_exhausted",
]


def _name_public_functions() -> None:
    """The public functions report ``jtricks.optim`` as their module, as before the split: error
    messages and results manifests name an optimizer factory by ``module.qualname``."""
    for name in __all__:
        obj = globals()[name]
        if isinstance(obj, types.FunctionType):
            obj.__module__ = __name__


_name_public_functions()
