"""jtricks.checks: the shared argument checks and their messages."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from jtricks import checks


def test_predicates():
    for x in (1, 0.5, np.float32(2), np.int64(3)):
        assert checks.is_python_number(x)
    for x in (True, np.bool_(False), "1", None, jnp.ones(())):
        assert not checks.is_python_number(x)
    assert checks.is_python_int(3) and checks.is_python_int(np.int32(3))
    assert not checks.is_python_int(3.0) and not checks.is_python_int(True)
    assert checks.is_array(jnp.ones(3)) and checks.is_array(np.ones(())) and not checks.is_array(2.0)


def test_check_choice_and_bool():
    assert checks.check_choice("a", "mode", ("a", "b")) == "a"
    with pytest.raises(ValueError, match=r"^`mode` must be one of 'a', 'b'; got 'c'$"):
        checks.check_choice("c", "mode", ("a", "b"))
    with pytest.raises(ValueError, match="one of 0, 1; got True"):
        checks.check_choice(True, "flag", (0, 1))
    with pytest.raises(ValueError, match="must be one of"):
        checks.check_choice(["unhashable"], "mode", ("a",))
    assert checks.check_bool(np.bool_(True), "train") is True
    with pytest.raises(TypeError, match=r"^`train` must be a Python bool \(static\), got int$"):
        checks.check_bool(1, "train", hint=" (static)")


def test_check_positive_int_and_int_tuple():
    assert checks.check_positive_int(np.int64(3), "n") == 3
    with pytest.raises(ValueError, match=r"^`n` must be a positive int, got 0$"):
        checks.check_positive_int(0, "n")
    with pytest.raises(ValueError, match="got 2.0"):
        checks.check_positive_int(2.0, "n")
    with pytest.raises(TypeError, match=r"`n` must be a positive int \(static\), got True"):
        checks.check_positive_int(True, "n", hint=" (static)", type_error=TypeError)
    assert checks.check_int_tuple([1, 2], "widths") == (1, 2)
    assert checks.check_int_tuple((), "widths", allow_empty=True) == ()
    for bad in ((), (0,), "12", (1.0,)):
        with pytest.raises(ValueError, match="`widths` must be a"):
            checks.check_int_tuple(bad, "widths")


def test_check_number():
    assert checks.check_number("rate", 0.5, low=0, high=1, high_inclusive=False) == 0.5
    arr = jnp.array([0.1, 2.0])
    assert checks.check_number("rate", arr, low=0, high=1) is arr  # arrays are data: unchecked
    with pytest.raises(ValueError, match=r"^`rate` must satisfy 0 <= rate < 1, got 1$"):
        checks.check_number("rate", 1, low=0, high=1, high_inclusive=False)
    with pytest.raises(ValueError, match=r"satisfy 0 < lr, got 0"):
        checks.check_number("lr", 0, low=0, low_inclusive=False)
    with pytest.raises(ValueError, match="be a finite number, got nan"):
        checks.check_number("x", float("nan"))
    with pytest.raises(ValueError, match=r"^loss 'mse': `x` must be positive, got -1$"):
        checks.check_number("x", -1, low=0, low_inclusive=False, what="be positive", where="loss 'mse'")
    with pytest.raises(TypeError, match="`x` must be a number or an array"):
        checks.check_number("x", True)
    with pytest.raises(TypeError, match="`x` must be a Python number"):
        checks.check_number("x", arr, arrays=False)
    with pytest.raises(TypeError, match="str"):
        checks.check_number("x", "0.1")
