"""Shared argument checks: the predicates and validators every module uses on its Python arguments.

They run on the host, before anything is traced, and raise ``ValueError`` / ``TypeError`` naming the
parameter and what it may be. Arrays (and tracers) are data that may be vmapped over: the checks that
accept them pass them through unvalidated (their values are not known until run time).
"""

from __future__ import annotations

import difflib
import inspect
import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "is_python_number",
    "is_finite_number",
    "accepts_keyword",
    "is_python_int",
    "is_array",
    "check_choice",
    "check_positive_int",
    "check_int_tuple",
    "check_bool",
    "check_number",
    "close_matches",
    "did_you_mean",
]


def is_python_number(x: Any) -> bool:
    """A real Python or numpy scalar number (``3``, ``0.5``, ``np.float32(1)``), not a bool."""
    return isinstance(x, (numbers.Real, np.number)) and not isinstance(x, (bool, np.bool_))


def is_finite_number(x: Any) -> bool:
    """A finite real Python or numpy scalar number, not a bool (``np.inf``, ``nan``, ``True`` and arrays are not)."""
    return is_python_number(x) and bool(np.isfinite(x))


def accepts_keyword(fn: Any, name: str) -> bool:
    """Whether ``fn`` can be called with the keyword argument ``name`` (it names it, or takes ``**kwargs``);
    ``False`` for a callable without an inspectable signature."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def is_python_int(x: Any) -> bool:
    """A Python or numpy integer, not a bool."""
    return isinstance(x, (numbers.Integral, np.integer)) and not isinstance(x, (bool, np.bool_))


def is_array(x: Any) -> bool:
    """Something with a ``shape``: a jax / numpy array or a tracer."""
    return hasattr(x, "shape") and not isinstance(x, (bool, np.bool_)) and not is_python_number(x)


def check_choice(value: Any, name: str, allowed: Sequence[Any]) -> Any:
    """``value`` if it is one of ``allowed`` (a bool never matches ``0`` / ``1``), else ``ValueError``
    "`name` must be one of 'a', 'b'; got 'c'"."""
    try:
        ok = value in tuple(allowed) and not isinstance(value, (bool, np.bool_))
    except TypeError:  # unhashable or incomparable value
        ok = False
    if not ok:
        shown = ", ".join(repr(a) for a in allowed)
        raise ValueError(f"`{name}` must be one of {shown}; got {value!r}")
    return value


def close_matches(word: Any, candidates: Sequence[Any], n: int = 3) -> list[str]:
    """The (at most ``n``) candidates closest to ``word`` (:func:`difflib.get_close_matches`, cutoff 0.6), best
    first, without duplicates; ``[]`` for a ``word`` that is not a string."""
    if not isinstance(word, str):
        return []
    pool = list(dict.fromkeys(c for c in candidates if isinstance(c, str)))
    return difflib.get_close_matches(word, pool, n=n, cutoff=0.6)


def did_you_mean(word: Any, candidates: Sequence[Any], n: int = 3) -> str:
    """``"; did you mean 'a'?"`` (or ``'a' or 'b'``) with the :func:`close_matches` of ``word``; ``""`` without."""
    found = close_matches(word, candidates, n)
    return f"; did you mean {' or '.join(repr(c) for c in found)}?" if found else ""


def check_positive_int(value: Any, name: str, *, hint: str = "", type_error: type[Exception] = ValueError) -> int:
    """``int(value)`` for an integer ``>= 1``; otherwise "`name` must be a positive int{hint}, got value".

    ``type_error`` is the exception for a value that is not an integer at all (``ValueError`` by default,
    ``TypeError`` where a module reports wrong types as such); a non-positive integer is a ``ValueError``.
    """
    message = f"`{name}` must be a positive int{hint}, got {value!r}"
    if not is_python_int(value):
        raise type_error(message)
    if int(value) < 1:
        raise ValueError(message)
    return int(value)


def check_int_tuple(value: Any, name: str, *, allow_empty: bool = False) -> tuple[int, ...]:
    """A sequence of positive ints as a tuple; ``ValueError`` otherwise (also when empty unless ``allow_empty``)."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise ValueError(f"`{name}` must be a sequence of positive ints, got {value!r}")
    out = tuple(value)
    if not out and not allow_empty:
        raise ValueError(f"`{name}` must be a non-empty sequence of positive ints, got {value!r}")
    for v in out:
        if not is_python_int(v) or v < 1:
            raise ValueError(f"`{name}` must be a sequence of positive ints, got {value!r}")
    return tuple(int(v) for v in out)


def check_bool(value: Any, name: str, *, hint: str = "") -> bool:
    """``bool(value)`` for a Python / numpy bool, else ``TypeError`` "`name` must be a Python bool{hint}"."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"`{name}` must be a Python bool{hint}, got {type(value).__name__}")
    return bool(value)


def _range_text(name: str, low: float | None, high: float | None, low_inclusive: bool, high_inclusive: bool) -> str:
    left = "" if low is None else f"{low:g} {'<=' if low_inclusive else '<'} "
    right = "" if high is None else f" {'<=' if high_inclusive else '<'} {high:g}"
    return f"satisfy {left}{name}{right}" if (left or right) else "be a finite number"


def check_number(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
    arrays: bool = True,
    what: str | None = None,
    where: str | None = None,
) -> Any:
    """Check a numeric argument: a finite Python number in the range, or (with ``arrays``) an array / tracer.

    The range is ``low <= value <= high`` (each bound optional, each end open with ``*_inclusive=False``).
    Messages: "`name` must {what}, got value" where ``what`` defaults to e.g. "satisfy 0 <= name < 1";
    ``where`` (e.g. "loss 'mse'") is prefixed when given. Returns ``value`` unchanged.

    Raises:
      TypeError: a bool, a non-number, or an array when ``arrays`` is False.
      ValueError: a Python number that is not finite or outside the range.
    """
    what = what if what is not None else _range_text(name, low, high, low_inclusive, high_inclusive)
    prefix = f"{where}: " if where else ""
    if isinstance(value, (bool, np.bool_)) or not (is_python_number(value) or (arrays and is_array(value))):
        kind = "a number or an array" if arrays else "a Python number"
        raise TypeError(f"{prefix}`{name}` must be {kind} ({what}), got {type(value).__name__} {value!r}")
    if is_python_number(value):
        v = float(value)
        ok = (
            math.isfinite(v)
            and (low is None or (v >= low if low_inclusive else v > low))
            and (high is None or (v <= high if high_inclusive else v < high))
        )
        if not ok:
            raise ValueError(f"{prefix}`{name}` must {what}, got {value!r}")
    return value
