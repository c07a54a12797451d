"""The registry of every numeric hyperparameter jtricks knows: name, default, allowed range, owner.

One table, :data:`REGISTRY`, holds each range once; :func:`check` validates a value against it
(the optimizers, schedules and the engine call it), :func:`defaults` gives an owner's defaults and
:func:`describe` renders the table for the docs (``docs/hyperparameters.md`` is generated from it).

A value is checked when it is concrete: a Python / numpy number or a concrete jax / numpy array (every
element is checked). A tracer (inside ``jit``, ``vmap``, ``grad``) has no value yet and passes
unchecked, so a population can ``vmap`` over any hyperparameter; check grids before tracing.

Example::

    from jtricks import hparams

    hparams.check("gamma", 0.9)          # fine
    hparams.check("gamma", 1.0)          # ValueError: gamma must lie in [0, 1), got 1.0
    hparams.defaults("engine")           # {'dropout_rate': 0.0, 'init_scale': 1.0, ...}
"""

from __future__ import annotations

import dataclasses
import math
import types
from collections.abc import Mapping
from typing import Any, Literal

import jax
import numpy as np

__all__ = ["HParam", "REGISTRY", "OWNERS", "check", "defaults", "describe"]

Owner = Literal["optimizer", "schedule", "clip", "engine", "loss"]
OWNERS: tuple[str, ...] = ("optimizer", "schedule", "clip", "engine", "loss")


@dataclasses.dataclass(frozen=True)
class HParam:
    """One numeric hyperparameter.

    Attributes:
      name: the key in a hyperparameter dict.
      default: the default value, or ``None`` where it depends on the owner (the learning rate per
        optimizer, ``eps`` from the optimizer's signature, ``decay_rate`` per schedule).
      low, high: the bounds of the allowed interval (``None``: unbounded); values must also be finite.
      low_inclusive, high_inclusive: whether the bounds are allowed.
      owner: what reads it: ``"optimizer"``, ``"schedule"``, ``"clip"``, ``"engine"`` or ``"loss"``.
      doc: one line: what it is, with the formula.
    """

    name: str
    default: float | None
    low: float | None
    high: float | None
    low_inclusive: bool
    high_inclusive: bool
    owner: Owner
    doc: str

    def allowed(self) -> str:
        """The interval as text, e.g. ``"[0, 1)"`` or ``"(0, inf)"``."""
        lo = "(-inf" if self.low is None else ("[" if self.low_inclusive else "(") + f"{self.low:g}"
        hi = "inf)" if self.high is None else f"{self.high:g}" + ("]" if self.high_inclusive else ")")
        return f"{lo}, {hi}"

    def contains(self, v: float) -> bool:
        """True when the finite number ``v`` lies in the allowed interval."""
        ok = math.isfinite(v)
        if self.low is not None:
            ok = ok and (v >= self.low if self.low_inclusive else v > self.low)
        if self.high is not None:
            ok = ok and (v <= self.high if self.high_inclusive else v < self.high)
        return ok


def _hp(name: str, default: float | None, interval: str, owner: Owner, doc: str) -> HParam:
    """An entry from an interval written as text: ``"[0, 1)"``, ``"(0, inf)"``."""
    lo, hi = (t.strip() for t in interval.split(","))
    low = None if lo[1:] == "-inf" else float(lo[1:])
    high = None if hi[:-1] == "inf" else float(hi[:-1])
    return HParam(name, default, low, high, lo[0] == "[", hi[-1] == "]", owner, doc)


_ENTRIES = (
    _hp("learning_rate", None, "[0, inf)", "optimizer", "base (peak) step size `eta`; default per optimizer"),
    _hp("gamma", 0.9, "[0, 1)", "optimizer", "momentum coefficient: `m = gamma m + g`"),
    _hp("b1", 0.9, "[0, 1)", "optimizer", "Adam's first-moment decay: `m = b1 m + (1-b1) g`"),
    _hp("b2", 0.999, "[0, 1)", "optimizer", "Adam's second-moment decay: `v = b2 v + (1-b2) g^2`"),
    _hp("eps", None, "(0, inf)", "optimizer", "denominator guard; default from the optimizer's signature"),
    _hp("decay", 0.9, "[0, 1)", "optimizer", "RMSProp's decay: `v = decay v + (1-decay) g^2`"),
    _hp("initial_accumulator_value", 0.1, "[0, inf)", "optimizer", "AdaGrad's `G_0` in `G = G + g^2`"),
    _hp("weight_decay", 1e-4, "[0, inf)", "optimizer", "decoupled weight decay: `u = -eta (d + weight_decay theta)`"),
    _hp(
        "decay_rate",
        None,
        "(0, 1]",
        "schedule",
        "factor per drop: `eta_t = lr decay_rate^k`; 0.98 per_epoch_decay, 0.1 step",
    ),
    _hp("alpha", 0.0, "[0, 1]", "schedule", "cosine schedules end at `alpha lr`"),
    _hp("clip_norm", 1.0, "(0, inf)", "clip", "global-norm threshold: `g <- g min(1, clip_norm / ‖g‖)`"),
    _hp("dropout_rate", 0.0, "[0, 1)", "engine", "probability of dropping a unit (inverted dropout)"),
    _hp("init_scale", 1.0, "[0, inf)", "engine", "multiplier on the initializer's standard deviation"),
    _hp("l2", 0.0, "[0, inf)", "engine", "L2 penalty `l2 * 0.5 sum ‖W‖^2` over kernels, added to the loss"),
    _hp("patience", 5.0, "[0, inf)", "engine", "early stopping: epochs without improvement before stopping"),
    _hp("min_delta", 0.0, "[0, inf)", "engine", "early stopping: smallest change that counts as an improvement"),
    _hp("ema_decay", 0.99, "[0, 1)", "engine", "EMA of the weights per step: `a = ema_decay a + (1-ema_decay) theta`"),
    _hp("swa_start", 1.0, "[0, inf)", "engine", "SWA: first epoch (1-based) whose end-of-epoch weights are averaged"),
    _hp("flip_rate", 0.5, "[0, 1]", "engine", "augmentation: probability of mirroring an image left-right"),
    _hp("cutout_size", 8.0, "[0, inf)", "engine", "augmentation: side of the zeroed square (rounded down)"),
    _hp("mixup_alpha", 0.2, "[0, inf)", "engine", "augmentation: mixup's `lambda ~ Beta(alpha, alpha)`; 0: off"),
    _hp("label_smoothing", 0.0, "[0, 1]", "loss", "targets `(1-label_smoothing) onehot + label_smoothing / K`"),
)

REGISTRY: Mapping[str, HParam] = types.MappingProxyType({h.name: h for h in _ENTRIES})
"""Every numeric hyperparameter jtricks knows, by name (read-only)."""


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, (bool, np.bool_))


def check(name: str, value: Any, *, label: str | None = None) -> None:
    """Raise ``ValueError`` if a concrete ``value`` lies outside the range of hyperparameter ``name``.

    Python / numpy numbers and concrete arrays (every element) are checked against
    ``REGISTRY[name]``; tracers and callables (schedules) pass unchecked. ``label`` is the name the
    message uses (default ``name``), e.g. a function's own parameter name for the same quantity.

    Raises:
      KeyError: ``name`` is not in :data:`REGISTRY`.
      TypeError: ``value`` is a bool or a string.
      ValueError: a concrete value outside the allowed interval, or not finite.
    """
    spec = REGISTRY[name]
    label = name if label is None else label
    if isinstance(value, (bool, np.bool_, str, bytes)):
        raise TypeError(f"{label} must be a number, an array or a schedule, got {value!r}")
    if _is_number(value):
        if not spec.contains(float(value)):
            raise ValueError(f"{label} must lie in {spec.allowed()}, got {value!r}")
        return
    if isinstance(value, jax.core.Tracer) or not isinstance(value, (jax.Array, np.ndarray)):
        return
    arr = np.asarray(value)
    if arr.dtype == np.bool_:
        raise TypeError(f"{label} must be a number, an array or a schedule, got a boolean array")
    bad = [float(v) for v in arr.reshape(-1).tolist() if not spec.contains(float(v))]
    if bad:
        raise ValueError(f"{label} must lie in {spec.allowed()}, got an array holding {bad[0]!r}")


def defaults(owner: str) -> dict[str, float]:
    """``{name: default}`` of the hyperparameters of ``owner`` that have a fixed default."""
    if owner not in OWNERS:
        raise ValueError(f"unknown owner {owner!r}; allowed: {list(OWNERS)}")
    return {h.name: h.default for h in _ENTRIES if h.owner == owner and h.default is not None}


def describe() -> str:
    """The registry as a markdown table (name, owner, default, allowed values, meaning)."""
    rows = ["| name | owner | default | allowed | meaning |", "|---|---|---|---|---|"]
    for h in _ENTRIES:
        default = f"{h.default:g}" if h.default is not None else f"per {h.owner}"
        rows.append(f"| `{h.name}` | {h.owner} | {default} | `{h.allowed()}` | {h.doc} |")
    return "\n".join(rows) + "\n"
