"""The argument conventions that the modules of :mod:`jtricks.regularize` share.

* The type aliases of their arguments: ``PyTree`` (any pytree of arrays) and ``Scalar`` (a Python
  number or a, possibly traced, scalar jax array).
* The checks of hyperparameters given as Python numbers (``ValueError`` / ``TypeError`` naming the
  parameter): :func:`check_int` (``value >= minimum``) and :func:`check_scalar_range`
  (``lo <= value <= hi`` or ``lo <= value < hi``). Jax arrays and tracers pass through unvalidated,
  so a grid over them is a ``jax.vmap``.
* :func:`check_same_structure`: two pytrees (parameters and a mask, a state's average and new
  parameters) have the same tree structure and, optionally, the same leaf shapes.
* :func:`float_dtype`, the dtype every sum and average is computed in: at least float32,
  ``float_dtype(x) = promote_types(result_type(x), float32)``.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jtricks._core import checks

__all__ = [
    "PyTree",
    "Scalar",
    "check_int",
    "check_scalar_range",
    "check_same_structure",
    "float_dtype",
]

PyTree = Any
Scalar = Any  # a Python number or a (possibly traced) scalar jax array


def check_int(value: Any, name: str, minimum: int) -> None:
    """Validate a Python int ``>= minimum``; arrays / tracers pass through."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"`{name}` must be an int >= {minimum} or an integer array, got {value!r}")
    if checks.is_python_int(value):
        if int(value) < minimum:
            raise ValueError(f"`{name}` must be an int >= {minimum}, got {value!r}")
        return
    if checks.is_python_number(value):
        raise TypeError(f"`{name}` must be an int >= {minimum} or an integer array, got {value!r}")
    if not hasattr(value, "shape"):
        raise TypeError(f"`{name}` must be an int >= {minimum} or an integer array, got {type(value).__name__}")


def check_scalar_range(value: Any, name: str, lo: float, hi: float, hi_open: bool, what: str) -> None:
    """Validate a Python number in ``[lo, hi]`` (or ``[lo, hi)``); arrays / tracers pass through."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"`{name}` must be a number ({what}) or a scalar array, got {value!r}")
    if checks.is_python_number(value):
        v = float(value)
        ok = math.isfinite(v) and lo <= v and (v < hi if hi_open else v <= hi)
        if not ok:
            raise ValueError(f"`{name}` must satisfy {what}, got {value!r}")
        return
    if not hasattr(value, "shape"):
        raise TypeError(f"`{name}` must be a number ({what}) or a scalar array, got {type(value).__name__}")


def check_same_structure(a: PyTree, b: PyTree, name_a: str, name_b: str, fn: str, shapes: bool) -> None:
    """``ValueError`` (prefixed ``fn``) unless ``b`` has the tree structure of ``a`` and, with ``shapes``,
    the same shape at every leaf."""
    ta, tb = jax.tree_util.tree_structure(a), jax.tree_util.tree_structure(b)
    if ta != tb:
        raise ValueError(f"{fn}: `{name_b}` must have the same tree structure as `{name_a}`; got {tb} vs {ta}")
    if shapes:
        for (path, x), y in zip(jax.tree_util.tree_leaves_with_path(a), jax.tree_util.tree_leaves(b)):
            if jnp.shape(x) != jnp.shape(y):
                raise ValueError(
                    f"{fn}: leaf {jax.tree_util.keystr(path)} has shape {tuple(jnp.shape(y))} in `{name_b}` "
                    f"but {tuple(jnp.shape(x))} in `{name_a}`"
                )


def float_dtype(x: Any) -> Any:
    """The dtype sums and averages of ``x`` are computed in: ``promote_types(result_type(x), float32)``."""
    return jnp.promote_types(jnp.result_type(x), jnp.float32)
