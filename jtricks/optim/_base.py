"""The argument conventions that the transforms, schedules and builder of :mod:`jtricks.optim` share.

The type aliases of their numeric arguments and the checks of those arguments: hyperparameters are
range-checked against :data:`jtricks.hparams.REGISTRY` when they are Python numbers or concrete
arrays (tracers inside ``jit`` / ``vmap`` and callables pass through), structural arguments are
static Python integers.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
import optax

from jtricks import hparams as jhparams

__all__ = [
    "ScalarOrSchedule",
    "Numeric",
    "is_python_number",
    "check",
    "check_static_int",
]

ScalarOrSchedule = float | jax.Array | optax.Schedule
Numeric = float | jax.Array


def is_python_number(x: Any) -> bool:
    """True for Python / numpy scalars (which are validated); False for arrays, tracers, callables."""
    if isinstance(x, (bool, np.bool_)):
        return False
    return isinstance(x, (int, float, np.integer, np.floating))


def check(name: str, value: Any, label: str | None = None) -> None:
    """Range check of ``value`` as hyperparameter ``name`` of :data:`jtricks.hparams.REGISTRY`.

    Python numbers and concrete arrays are checked (``ValueError`` naming ``label`` or ``name`` and
    the allowed interval); booleans and strings raise ``TypeError``; tracers and callables
    (schedules) pass through so that they can be traced / vmapped.
    """
    jhparams.check(name, value, label=label)


def check_static_int(name: str, value: Any, *, minimum: int) -> int:
    """A static (Python) integer >= minimum; returns it as ``int``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be a Python int (a static value), got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)
