"""The builder of :mod:`jtricks.optim`: a static :class:`OptimizerSpec` plus numeric hyperparameters
becomes an optimizer whose hyperparameters live as arrays in its state (``optax.inject_hyperparams``).

The named optimizers and schedules (:data:`OPTIMIZERS`, :data:`SCHEDULES`) and their defaults,
the spec and its validation, the hyperparameter keys (:func:`hparam_names`) and their defaults
(:func:`default_hparams`), the learning-rate schedule of a spec (:func:`build_schedule`) and
:func:`build`, which the engine uses: a grid over hyperparameters is a ``vmap``, never a recompile.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Mapping
from typing import Any

import jax
import numpy as np
import optax

from jtricks import hparams as jhparams
from jtricks.optim._base import ScalarOrSchedule, check_static_int, is_python_number
from jtricks.optim._schedules import cosine_decay, exponential_decay, warmup_cosine
from jtricks.optim._transforms import (
    adagrad,
    adam,
    adamw,
    clip_by_global_norm,
    momentum,
    nesterov,
    normalized_sgd,
    rmsprop,
    sgd,
)

__all__ = [
    "OPTIMIZERS",
    "SCHEDULES",
    "Factory",
    "OptimizerSpec",
    "hparam_names",
    "default_hparams",
    "build_schedule",
    "build",
]

OPTIMIZERS: dict[str, Callable[..., optax.GradientTransformation]] = {
    "sgd": sgd,
    "momentum": momentum,
    "nesterov": nesterov,
    "adagrad": adagrad,
    "rmsprop": rmsprop,
    "adam": adam,
    "adamw": adamw,
    "normalized_sgd": normalized_sgd,
}
"""The named optimizers of :func:`build`: name -> public factory. Their hyperparameters (beyond
``learning_rate``) are the parameters with float defaults, read from the signature."""

SCHEDULES: dict[str, tuple[str, ...]] = {
    "constant": (),
    "per_epoch_decay": ("decay_rate",),
    "step": ("decay_rate",),
    "cosine": ("alpha",),
    "warmup_cosine": ("alpha",),
}
"""Schedule names known to :func:`build` and the hyperparameters each one adds."""

_DEFAULT_LR: dict[str, float] = {
    "sgd": 0.1,
    "momentum": 0.1,
    "nesterov": 0.1,
    "adagrad": 0.01,
    "rmsprop": 1e-3,
    "adam": 1e-3,
    "adamw": 1e-3,
    "normalized_sgd": 0.1,
}
_DEFAULT_DECAY_RATE: dict[str, float] = {"per_epoch_decay": 0.98, "step": 0.1}

Factory = Callable[..., optax.GradientTransformation]
"""An optax-style optimizer factory: keyword hyperparameters (``learning_rate``, ...) -> transformation."""


@dataclasses.dataclass(frozen=True)
class OptimizerSpec:
    """The static (structural) part of an optimizer; numbers go in the hparams dict of :func:`build`.

    Attributes:
      name: one of :data:`OPTIMIZERS` (``"sgd"``, ``"momentum"``, ``"nesterov"``, ``"adagrad"``,
        ``"rmsprop"``, ``"adam"``, ``"adamw"``, ``"normalized_sgd"``), or any optax-style optimizer
        factory: a callable with a ``learning_rate`` parameter that returns a
        ``GradientTransformation`` (``optax.lion``, ``optax.adafactor``, your own). Its parameters
        with float defaults become hyperparameters; the others keep their defaults.
      schedule: one of :data:`SCHEDULES`: ``"constant"``; ``"per_epoch_decay"``
        (``lr * decay_rate ** (t // steps_per_epoch)``); ``"step"``
        (``lr * decay_rate ** (t // (decay_every_epochs * steps_per_epoch))``); ``"cosine"``
        (from ``lr`` to ``alpha * lr`` over ``total_steps``); ``"warmup_cosine"`` (linear from 0 to
        ``lr`` over ``warmup_steps``, then cosine to ``alpha * lr`` at ``total_steps``).
      clip: chain ``clip_by_global_norm(clip_norm)`` first.
      weight_decay: pass ``weight_decay`` to a factory whose ``weight_decay`` is off by default
        (every named optimizer but ``"adamw"``): decoupled weight decay
        ``u = -eta_t * (d_t + weight_decay * theta)`` where ``d_t`` is the optimizer's direction
        (so ``"adam"`` with ``weight_decay=True`` is exactly AdamW, ``"momentum"`` is SGDW).
      steps_per_epoch: updates per epoch (``"per_epoch_decay"`` and ``"step"``).
      total_steps: schedule length for ``"cosine"`` / ``"warmup_cosine"`` (includes the warm-up).
      warmup_steps: warm-up length for ``"warmup_cosine"``.
      decay_every_epochs: epochs between drops for ``"step"``.
      weight_decay_mask: optional mask (pytree of bools or callable ``params -> pytree``) of the
        leaves that decay, passed as the factory's ``mask`` when weight decay is on. Use a callable
        (hashable) when the spec is a static argument of ``jax.jit``.
      accumulate: gradient accumulation: ``k`` calls of ``update`` (micro-batches) make one update,
        ``optax.MultiSteps(optimizer, every_k_schedule=k)``: the first ``k - 1`` return zero updates and
        add their gradient to a running mean, the ``k``-th applies the optimizer to the mean of the ``k``
        gradients. The optimizer's own step count (its schedule) counts applied updates, so
        ``steps_per_epoch``, ``total_steps`` and ``warmup_steps`` count updates too. ``1``: off.
    """

    name: str | Factory
    schedule: str = "constant"
    clip: bool = False
    weight_decay: bool = False
    steps_per_epoch: int = 1
    total_steps: int = 0
    warmup_steps: int = 0
    decay_every_epochs: int = 1
    weight_decay_mask: Any = None
    accumulate: int = 1

    def __post_init__(self) -> None:
        _validate_spec(self)


def _factory(spec: OptimizerSpec) -> Factory:
    return OPTIMIZERS[spec.name] if isinstance(spec.name, str) else spec.name


def _label(spec: OptimizerSpec) -> str:
    """``'adam'`` for a named optimizer, ``'optax.lion'`` / ``'module.fn'`` for a factory."""
    if isinstance(spec.name, str):
        return repr(spec.name)
    mod = getattr(spec.name, "__module__", "") or ""
    mod = "optax" if mod.startswith("optax") else mod
    return f"{mod}.{getattr(spec.name, '__qualname__', type(spec.name).__name__)}".lstrip(".")


def _signature_params(factory: Any) -> dict[str, inspect.Parameter]:
    """The named parameters of ``factory``; TypeError / ValueError when it is not an optimizer factory."""
    allowed = sorted(OPTIMIZERS)
    if isinstance(factory, type) or not callable(factory):
        raise TypeError(
            f"optimizer name must be one of {allowed} or an optax optimizer factory (a function with "
            f"a learning_rate parameter, e.g. optax.lion), got {factory!r}"
        )
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError) as e:
        raise TypeError(f"optimizer factory {factory!r} has no inspectable signature: {e}") from e
    if "learning_rate" not in params:
        raise ValueError(
            f"optimizer factory {factory!r} has no learning_rate parameter; give one of {allowed} or "
            "an optax optimizer factory such as optax.lion or optax.adafactor"
        )
    kinds = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    return {n: p for n, p in params.items() if p.kind not in kinds}


def _is_float_default(value: Any) -> bool:
    return isinstance(value, (float, np.floating)) and not isinstance(value, (bool, np.bool_))


def _optimizer_defaults(spec: OptimizerSpec) -> dict[str, float | None]:
    """``{name: default}`` of the factory's hyperparameters: ``learning_rate`` (default ``None``
    when there is none), then every parameter with a float default, in signature order."""
    params = _signature_params(_factory(spec))
    if isinstance(spec.name, str):
        lr: float | None = _DEFAULT_LR[spec.name]
    else:
        d = params["learning_rate"].default
        lr = float(d) if _is_float_default(d) or (isinstance(d, int) and not isinstance(d, bool)) else None
    out: dict[str, float | None] = {"learning_rate": lr}
    for n, p in params.items():
        if n != "learning_rate" and _is_float_default(p.default):
            out[n] = float(p.default)
    return out


def _check_weight_decay(spec: OptimizerSpec, params: Mapping[str, Any], opt_names: Any) -> None:
    """``weight_decay=True`` needs a ``weight_decay`` parameter that is off by default; a mask needs ``mask``."""
    label = _label(spec)
    if spec.weight_decay and spec.name == "adamw":
        raise ValueError(
            "OptimizerSpec.weight_decay=True with name='adamw' would decay twice; adamw already has "
            "decoupled weight decay (use name='adam', weight_decay=True for the same optimizer)"
        )
    if spec.weight_decay and "weight_decay" in opt_names:
        raise ValueError(
            f"OptimizerSpec.weight_decay=True with {label} would decay twice: its weight_decay "
            "parameter has a default and is already a hyperparameter (set it to 0 to switch it off)"
        )
    if spec.weight_decay and "weight_decay" not in params:
        raise ValueError(
            f"OptimizerSpec.weight_decay=True needs a factory with a weight_decay parameter; {label} "
            "has none (chain optax.add_decayed_weights in your own factory instead)"
        )
    decays = spec.weight_decay or "weight_decay" in opt_names
    if spec.weight_decay_mask is not None and decays and "mask" not in params:
        raise ValueError(f"OptimizerSpec.weight_decay_mask needs a factory with a mask parameter; {label} has none")


def _validate_spec(spec: OptimizerSpec) -> None:
    if not isinstance(spec, OptimizerSpec):
        raise TypeError(f"spec must be an OptimizerSpec, got {type(spec).__name__}")
    if isinstance(spec.name, str) and spec.name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer name {spec.name!r}; allowed: {sorted(OPTIMIZERS)} or an optax factory")
    if spec.schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {spec.schedule!r}; allowed: {sorted(SCHEDULES)}")
    for flag in ("clip", "weight_decay"):
        if not isinstance(getattr(spec, flag), (bool, np.bool_)):
            raise TypeError(f"OptimizerSpec.{flag} must be a bool, got {getattr(spec, flag)!r}")
    opt_names = _optimizer_defaults(spec)
    _check_weight_decay(spec, _signature_params(_factory(spec)), opt_names)
    clashes = sorted(set(opt_names) & (set(SCHEDULES[spec.schedule]) | ({"clip_norm"} if spec.clip else set())))
    if clashes:
        raise ValueError(
            f"{_label(spec)} has parameters {clashes} that the schedule {spec.schedule!r} / clipping also "
            "use as hyperparameters; choose another schedule or wrap the factory to rename them"
        )
    check_static_int("steps_per_epoch", spec.steps_per_epoch, minimum=1)
    check_static_int("decay_every_epochs", spec.decay_every_epochs, minimum=1)
    check_static_int("warmup_steps", spec.warmup_steps, minimum=0)
    check_static_int("total_steps", spec.total_steps, minimum=0)
    check_static_int("accumulate", spec.accumulate, minimum=1)
    if spec.schedule in ("cosine", "warmup_cosine") and spec.total_steps < 1:
        raise ValueError(f"schedule {spec.schedule!r} needs total_steps >= 1, got {spec.total_steps}")
    if spec.schedule == "warmup_cosine" and spec.total_steps <= spec.warmup_steps:
        raise ValueError(
            "schedule 'warmup_cosine' needs total_steps > warmup_steps (total includes the warm-up), "
            f"got total_steps={spec.total_steps}, warmup_steps={spec.warmup_steps}"
        )


def hparam_names(spec: OptimizerSpec) -> tuple[str, ...]:
    """The hyperparameter keys :func:`build` expects for ``spec``, in a fixed order.

    ``"learning_rate"``, the factory's parameters with float defaults (signature order), then the
    schedule's keys (:data:`SCHEDULES`), then ``"clip_norm"`` if ``spec.clip`` and
    ``"weight_decay"`` if ``spec.weight_decay``.
    """
    _validate_spec(spec)
    names = list(_optimizer_defaults(spec)) + list(SCHEDULES[spec.schedule])
    if spec.clip:
        names.append("clip_norm")
    if spec.weight_decay:
        names.append("weight_decay")
    return tuple(names)


def default_hparams(spec: OptimizerSpec, *, strict: bool = True) -> dict[str, float]:
    """Default values (Python floats) for every key of :func:`hparam_names` (``strict=False``: for every key
    that has one; the caller supplies the rest).

    learning_rate: 0.1 (sgd, momentum, nesterov, normalized_sgd), 0.01 (adagrad), 1e-3 (rmsprop,
    adam, adamw), the signature's default for a factory; the optimizer's other hyperparameters:
    the defaults of its signature (gamma 0.9; b1 0.9; b2 0.999; eps 1e-8, 1e-7 adagrad; decay 0.9;
    initial_accumulator_value 0.1; adamw's weight_decay 1e-4); decay_rate 0.98 (per_epoch_decay)
    or 0.1 (step); alpha, clip_norm and ``weight_decay=True``'s weight_decay from
    :data:`jtricks.hparams.REGISTRY` (0.0, 1.0, 1e-4).

    Raises:
      ValueError: the factory has no default learning rate (``optax.lion``, ``optax.adafactor``):
        give ``learning_rate`` in the hyperparameters.
    """
    opt = _optimizer_defaults(spec)
    out: dict[str, float] = {}
    for k in hparam_names(spec):
        if k in opt:
            v = opt[k]
        elif k == "decay_rate":
            v = _DEFAULT_DECAY_RATE[spec.schedule]
        else:
            v = jhparams.REGISTRY[k].default
        if v is None:
            if not strict:
                continue
            raise ValueError(f"{_label(spec)} has no default {k}; give {k!r} in the hyperparameters")
        out[k] = v
    return out


def _check_finite(name: str, value: Any) -> None:
    """A concrete value of a hyperparameter outside the registry must be finite."""
    if isinstance(value, (bool, np.bool_, str, bytes)):
        raise TypeError(f"hyperparameter {name!r} must be a number or an array, got {value!r}")
    concrete = is_python_number(value) or (
        isinstance(value, (jax.Array, np.ndarray)) and not isinstance(value, jax.core.Tracer)
    )
    if concrete and not np.all(np.isfinite(np.asarray(value, np.float64))):
        raise ValueError(f"hyperparameter {name!r} must be finite, got {value!r}")


def _check_hparam_values(spec: OptimizerSpec, hp: Mapping[str, Any]) -> None:
    """Range checks (:data:`jtricks.hparams.REGISTRY`) of concrete values; tracers pass through."""
    for k, v in hp.items():
        if callable(v) or isinstance(v, (str, bytes)):
            raise TypeError(f"hyperparameter {k!r} must be a number or an array, got {v!r}")
        if k in jhparams.REGISTRY:
            jhparams.check(k, v)
        else:
            _check_finite(k, v)


def _check_hparam_keys(spec: OptimizerSpec, hparams: Mapping[str, Any]) -> tuple[str, ...]:
    names = hparam_names(spec)
    if not isinstance(hparams, Mapping):
        raise TypeError(f"hparams must be a mapping of name -> value, got {type(hparams).__name__}")
    for k in hparams:
        if k not in names:
            raise ValueError(
                f"unknown hyperparameter {k!r} for {_label(spec)} with schedule {spec.schedule!r} "
                f"(clip={spec.clip}, weight_decay={spec.weight_decay}); allowed keys: {list(names)}"
            )
    for k in names:
        if k not in hparams:
            raise ValueError(
                f"missing hyperparameter {k!r} for {_label(spec)} with schedule {spec.schedule!r}; "
                f"required keys: {list(names)} (start from default_hparams(spec))"
            )
    return names


def _schedule_from(spec: OptimizerSpec, hp: Mapping[str, Any]) -> ScalarOrSchedule:
    """The learning rate of ``spec`` as a value or a function of the update count, from ``hp``."""
    lr = hp["learning_rate"]
    if spec.schedule == "constant":
        return lr
    if spec.schedule == "per_epoch_decay":
        return exponential_decay(lr, hp["decay_rate"], spec.steps_per_epoch, staircase=True)
    if spec.schedule == "step":
        steps = spec.decay_every_epochs * spec.steps_per_epoch
        return exponential_decay(lr, hp["decay_rate"], steps, staircase=True)
    if spec.schedule == "cosine":
        return cosine_decay(lr, spec.total_steps, alpha=hp["alpha"])
    # warmup_cosine
    return warmup_cosine(lr, spec.warmup_steps, spec.total_steps, init_value=0.0, end_value=hp["alpha"] * lr)


def build_schedule(spec: OptimizerSpec, hparams: Mapping[str, Any]) -> optax.Schedule:
    """The learning-rate schedule ``count -> eta_count`` that :func:`build` uses.

    ``hparams`` may be the full hyperparameter dict or ``opt_state.hyperparams`` of a built
    optimizer (e.g. to log the current learning rate: ``build_schedule(spec,
    state.hyperparams)(step)``). Only the keys the schedule needs are read.
    """
    _validate_spec(spec)
    needed = ("learning_rate",) + SCHEDULES[spec.schedule]
    for k in needed:
        if k not in hparams:
            raise ValueError(f"missing hyperparameter {k!r} for schedule {spec.schedule!r}")
    sched = _schedule_from(spec, {k: hparams[k] for k in needed})
    if callable(sched):
        return sched
    return lambda count: sched


def _make_factory(spec: OptimizerSpec) -> Factory:
    """``hparams -> chain([clip_by_global_norm(clip_norm)], FACTORY(learning_rate=schedule, **numeric))``."""
    names = hparam_names(spec)
    fn = _factory(spec)
    opt_keys = [k for k in _optimizer_defaults(spec) if k != "learning_rate"]
    decays = spec.weight_decay or "weight_decay" in opt_keys
    mask = {"mask": spec.weight_decay_mask} if decays and spec.weight_decay_mask is not None else {}

    def factory(**hp: Any) -> optax.GradientTransformation:
        kwargs = {k: hp[k] for k in opt_keys}
        if spec.weight_decay:
            kwargs["weight_decay"] = hp["weight_decay"]
        tx = fn(learning_rate=_schedule_from(spec, hp), **kwargs, **mask)
        if not (hasattr(tx, "init") and hasattr(tx, "update")):
            raise TypeError(f"optimizer factory {_label(spec)} must return an optax GradientTransformation, got {tx!r}")
        if spec.clip:
            return optax.chain(clip_by_global_norm(hp["clip_norm"]), tx)
        return tx

    # inject_hyperparams reads the factory's signature to find the hyperparameters.
    factory.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY) for n in names]
    )
    factory.__name__ = f"jtricks_{getattr(fn, '__name__', 'optimizer')}_{spec.schedule}"
    return factory


def build(spec: OptimizerSpec, hparams: Mapping[str, jax.typing.ArrayLike]) -> optax.GradientTransformation:
    """Build the optimizer of ``spec`` with its numeric hyperparameters injected as arrays.

    The result is ``optax.inject_hyperparams(factory)(**hparams)`` (wrapped in
    ``optax.MultiSteps(·, every_k_schedule=spec.accumulate)`` when ``spec.accumulate > 1``, its state's
    ``inner_opt_state`` holding the hyperparameters) where ``factory`` is::

        chain([clip_by_global_norm(clip_norm)],          if spec.clip
              FACTORY(learning_rate=schedule(count),     schedule from spec.schedule and the hparams
                      **numeric_args,                    the factory's float-default parameters
                      [weight_decay=..., mask=...]))     if spec.weight_decay (or the factory decays)

    ``FACTORY`` is the public optimizer of the name (:func:`sgd`, :func:`momentum`, ...,
    :func:`adamw`, :func:`normalized_sgd`) or the optax factory given as ``spec.name``
    (``optax.lion``, ...). Every value in ``hparams`` (see :func:`hparam_names` /
    :func:`default_hparams`) is stored as an array in ``opt_state.hyperparams`` and read back at each
    update, including the schedule's own parameters (base ``learning_rate``, ``decay_rate``,
    ``alpha``): the schedule is rebuilt from them inside the update as a function of its own step
    count. So ``jax.vmap`` over a dict of stacked hyperparameters runs a population in one program,
    and a new value never recompiles. Changing ``opt_state.hyperparams[k]`` between steps changes
    the optimizer from then on.

    Population = vmap: on CPU, ``jax.vmap`` over stacked hyperparameters gives members that are
    bit-identical to runs with each value alone (passed as a 0-d float32 array) for sgd, momentum,
    nesterov, adam / adamw and ``optax.lion`` with any schedule and clipping (tested); see
    ``docs/optimizers.md`` for the others. A gradient computed by a reduction or a matmul inside the
    same program can itself differ by an ulp under vmap; that is outside the optimizer.

    Args:
      spec: the static structure.
      hparams: exactly the keys of ``hparam_names(spec)``; values are Python numbers (stored in the
        parameters' dtype), 0-d arrays or tracers. Numbers and concrete arrays are validated against
        :data:`jtricks.hparams.REGISTRY` (other names: finite); tracers are not.

    Returns:
      An ``optax.GradientTransformationExtraArgs`` (a ``GradientTransformation`` with accumulation); its
      ``update`` needs ``params`` when weight decay is on.

    Raises:
      ValueError: unknown key, missing key, or a concrete value out of range (the message names the
        key and the allowed keys / range).
      TypeError: a value that is not a number or an array; a factory that does not return an optax
        ``GradientTransformation``.
    """
    _validate_spec(spec)
    _check_hparam_keys(spec, hparams)
    _check_hparam_values(spec, hparams)
    values: dict[str, Any] = {}
    for k in hparam_names(spec):
        v = hparams[k]
        # Python / numpy numbers become Python floats: inject_hyperparams stores them in the
        # parameters' dtype. Arrays and tracers are stored as given.
        values[k] = float(v) if is_python_number(v) else v
    factory = _make_factory(spec)
    if not isinstance(spec.name, str):
        factory(**values)  # a foreign factory's errors (and its return type) surface before any tracing
    tx = optax.inject_hyperparams(factory)(**values)
    if spec.accumulate > 1:
        return optax.MultiSteps(tx, every_k_schedule=spec.accumulate).gradient_transformation()
    return tx
