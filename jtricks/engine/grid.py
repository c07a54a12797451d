"""An experiment's grid: its arms (``arms`` x the product of ``grid``, named ``k1=v1,k2=v2``), the overrides each arm
applies, and what groups arms into one compiled program (the static signature) or one prepared data set (the data
key).

Which traced pieces a group's program carries is decided here once (:func:`traced_hparams`): a dropout rate or an
initialization scale is traced (a vmapped hyperparameter) in the program of a group when any of its arms sets it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from jtricks import models as jmodels
from jtricks.engine import search as jsearch
from jtricks.engine.experiment import SETTINGS, SWITCHED_BY_COEFFICIENT, Arm, Experiment, describe_object, setting_kind

__all__ = [
    "apply_overrides",
    "value_text",
    "arm_name",
    "expand",
    "static_signature",
    "data_key",
    "traced_hparams",
    "TRACED_MODEL_HPARAMS",
]

#: Model hyperparameters that are traced only when an arm sets them (otherwise the program has no such input).
TRACED_MODEL_HPARAMS: tuple[str, ...] = ("dropout_rate", "init_scale")


def apply_overrides(exp: Experiment, overrides: Mapping[str, Any]) -> Experiment:
    """Return ``exp`` with ``overrides`` applied (fields, ``model.<kwarg>`` and numeric hyperparameters)."""
    fields: dict[str, Any] = {}
    model_kwargs = dict(exp.model_kwargs)
    hparams = dict(exp.hparams)
    for key, value in overrides.items():
        if key == "name":
            continue
        kind = setting_kind(key, exp)
        if key in SWITCHED_BY_COEFFICIENT and isinstance(value, bool):
            fields[key] = value  # `l2=True` / `weight_decay=False`: the on/off field
        elif kind == "model":
            model_kwargs[key[len("model.") :]] = value
        elif kind == "numeric":
            hparams[key] = value
            if key in SWITCHED_BY_COEFFICIENT:
                fields[key] = True  # giving a coefficient switches the penalty / decay on
        else:
            fields[key] = value
    return dataclasses.replace(exp, model_kwargs=model_kwargs, hparams=hparams, **fields)


def value_text(v: Any) -> str:
    if isinstance(v, jmodels.Model):
        return describe_object(v)
    if isinstance(v, float):
        return format(v, "g")
    if isinstance(v, (list, tuple)):
        return "x".join(value_text(x) for x in v)
    if isinstance(v, (str, int, type(None))):
        return str(v)
    return describe_object(v)


def arm_name(factors: Mapping[str, Any]) -> str:
    """``"k1=v1,k2=v2"`` (``"baseline"`` for an empty set of factors)."""
    if not factors:
        return "baseline"
    return ",".join(f"{k.removeprefix('model.')}={value_text(v)}" for k, v in factors.items())


def expand(exp: Experiment) -> list[Arm]:
    """All arms of ``exp``: explicit ``arms`` × the Cartesian product of ``grid``, in declaration order."""
    for key, values in exp.grid.items():
        kind = setting_kind(key, exp)
        if jsearch.is_distribution(values):
            if not isinstance(values, jsearch.Choice) and kind != "numeric":
                raise ValueError(
                    f"grid[{key!r}] = {values}: loguniform / uniform apply to numeric hyperparameters; "
                    "use choice([...]) or a list for other settings"
                )
        elif isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or len(values) == 0:
            raise ValueError(
                f"grid[{key!r}] must be a non-empty list of values or a distribution "
                f"(loguniform, uniform, choice), got {values!r}"
            )
    base_arms: list[Mapping[str, Any]] = list(exp.arms) or [{}]
    combos = jsearch.grid_combos(exp.grid, exp.samples, exp.sample_seed)
    arms: list[Arm] = []
    for base in base_arms:
        for grid_factors in combos:
            overrides = {**{k: v for k, v in base.items() if k != "name"}, **grid_factors}
            label = ([str(base["name"])] if "name" in base else []) + ([arm_name(grid_factors)] if grid_factors else [])
            resolved = apply_overrides(exp, overrides)
            arms.append(Arm(",".join(label) or arm_name(overrides), overrides, resolved, dict(resolved.hparams)))
    names = [a.name for a in arms]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"arm names must be unique, duplicated: {dupes}; give explicit arms a 'name'")
    return arms


def _signature_value(v: Any) -> str:
    """``repr`` of a literal; objects (data sets, models, callables) by identity, so two objects never merge."""
    if isinstance(v, (str, int, float, bool, type(None))):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "(" + ",".join(_signature_value(x) for x in v) + ")"
    if isinstance(v, Mapping):
        return (
            "{"
            + ",".join(f"{k!r}:{_signature_value(x)}" for k, x in sorted(v.items(), key=lambda kv: str(kv[0])))
            + "}"
        )
    return f"{describe_object(v)}@{id(v):x}"


def static_signature(exp: Experiment) -> tuple:
    """What makes two arms share one compiled program: every field whose role is not ``"run"``."""
    return tuple((k, _signature_value(getattr(exp, k))) for k, m in SETTINGS.items() if m["role"] != "run")


def data_key(exp: Experiment) -> tuple:
    """What makes two arms share one prepared data set: the fields whose role is ``"data"``."""
    return tuple((k, _signature_value(getattr(exp, k))) for k, m in SETTINGS.items() if m["role"] == "data")


def traced_hparams(hparams: Iterable[Mapping[str, Any]]) -> frozenset[str]:
    """Which of :data:`TRACED_MODEL_HPARAMS` a program traces: those that any of the arms' ``hparams`` sets.

    The one rule behind the configuration of a group of arms (:func:`jtricks.engine.build.build`), of one
    experiment (:func:`jtricks.engine.configure.build_config`'s default) and of a saved member
    (:mod:`jtricks.engine.saved`).
    """
    sets = [frozenset(h) for h in hparams]
    return frozenset(k for k in TRACED_MODEL_HPARAMS if any(k in h for h in sets))
