"""``--set key=value``: the command line's settings parsed into Python values and applied to an experiment.

A value is a Python literal, a distribution (``loguniform(1e-4,1e-1)``) or a string. A list for a grid-able key
makes the key a grid factor (or replaces its values); for a key whose one value is itself a sequence
(``model.widths``) a flat list is one value and a list of lists sweeps.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
from collections.abc import Mapping, Sequence
from typing import Any

from jtricks import models as jmodels
from jtricks.engine import search as jsearch
from jtricks.engine.experiment import Experiment, setting_kind
from jtricks.engine.grid import apply_overrides

__all__ = ["parse_set", "with_settings"]


def parse_set(items: Sequence[str], exp: Experiment | None = None) -> dict[str, Any]:
    """Parse ``--set key=value`` items; values are Python literals (``0.1``, ``[64, 64]``, ``None``) or strings."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--set expects key=value, got {item!r}")
        key, raw = item.split("=", 1)
        key = key.strip()
        if key in ("grid", "arms", "hparams", "custom_hparams"):
            raise ValueError(f"--set cannot replace {key!r} whole; set its entries instead")
        setting_kind(key, exp or Experiment(name="--set"))
        out[key] = _literal(raw)
    return out


def _literal(raw: str) -> Any:
    """A Python literal, a distribution (``loguniform(1e-4,1e-1)``, :func:`jtricks.search.parse_distribution`),
    else the string; ``[a,b]`` of bare words is a list of literals-or-strings."""
    dist = jsearch.parse_distribution(raw)
    if dist is not None:
        return dist
    try:
        return ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        text = raw.strip()
        if text.startswith("[") and text.endswith("]") and text[1:-1].strip():
            return [_literal(part.strip()) for part in text[1:-1].split(",")]
        return raw


def _sequence_valued(exp: Experiment, key: str) -> bool:
    """Whether one value of ``key`` is itself a sequence (``model.widths=(64, 64)``): a model argument whose
    default or annotation in any registered model is a tuple / sequence, or whose current value or grid values
    are lists; and ``metrics`` / ``eval_metrics`` / ``augment``."""
    if key in ("metrics", "eval_metrics", "augment"):
        return True
    if not key.startswith("model."):
        return False
    arg = key[len("model.") :]
    current = [exp.model_kwargs.get(arg)] + list(exp.grid.get(key, ()))
    if any(isinstance(v, (list, tuple)) for v in current):
        return True
    for name in jmodels.names():
        try:
            param = inspect.signature(jmodels.factory(name)).parameters.get(arg)
        except (TypeError, ValueError):
            continue
        if param is not None and (
            isinstance(param.default, (list, tuple))
            or any(t in str(param.annotation) for t in ("Sequence", "tuple", "list"))
        ):
            return True
    return False


def _sweeps(exp: Experiment, key: str, value: Any) -> bool:
    """Whether ``--set key=value`` gives a factor's values: a list for a grid-able key (a list of lists
    for a sequence-valued one, see :func:`_sequence_valued`)."""
    if not isinstance(value, (list, tuple)):
        return False
    if _sequence_valued(exp, key):
        return len(value) > 0 and all(isinstance(v, (list, tuple)) for v in value)
    return True


def with_settings(exp: Experiment, settings: Mapping[str, Any]) -> Experiment:
    """Apply ``--set`` settings.

    A distribution (``learning_rate=loguniform(1e-4,1e-1)``) makes the key a sampled factor (with
    ``samples=N``). A list for a grid-able key (a numeric hyperparameter, a field, ``model.<arg>``) makes the key a grid
    factor with those values, or replaces the values of an existing factor (``learning_rate=[1e-3,1e-2]``).
    For a key whose one value is a sequence (``model.widths``) a flat list is one value
    (``model.widths=[64,64]``) and a list of lists sweeps (``model.widths=[[64],[64,64]]``). Any other value
    is one value: it replaces an existing factor by a one-value factor, or sets the field / hyperparameter.
    """
    grid = dict(exp.grid)
    rest: dict[str, Any] = {}
    for key, value in settings.items():
        setting_kind(key, exp)
        if jsearch.is_distribution(value):  # a sampled factor (Experiment.samples draws)
            grid[key] = value
        elif _sweeps(exp, key, value):
            if not value:
                raise ValueError(f"--set {key}=[] gives no values; give at least one")
            grid[key] = [tuple(v) if isinstance(v, list) else v for v in value]
        elif key in grid:  # one value (a sequence-valued key's flat list included)
            grid[key] = [tuple(value) if isinstance(value, list) else value]
        else:
            rest[key] = value
    return apply_overrides(dataclasses.replace(exp, grid=grid), rest)
