"""Tests for jtricks.optim's dynamic loss scaler: the standard constants, halving on an overflow, doubling after
``period`` finite steps, the floor, exact unscaling, and clear errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jtricks import optim as O


def test_standard_values() -> None:
    assert (O.INITIAL_LOSS_SCALE, O.LOSS_SCALE_PERIOD, O.LOSS_SCALE_FACTOR, O.MIN_LOSS_SCALE) == (2.0**15, 2000, 2, 1.0)
    s = O.loss_scale_init()
    assert float(s.scale) == 2.0**15 and int(s.good_steps) == 0 and int(s.skipped) == 0
    assert s.scale.dtype == jnp.float32 and s.good_steps.dtype == jnp.int32


def test_an_overflow_halves_the_scale_and_counts_a_skip() -> None:
    s = O.loss_scale_init()._replace(good_steps=jnp.asarray(7, jnp.int32))
    grads = {"w": jnp.asarray([1.0, jnp.inf]), "b": jnp.zeros(2)}
    finite = O.all_finite(grads)
    assert not bool(finite)
    t = O.loss_scale_update(s, finite)
    assert float(t.scale) == 2.0**14 and int(t.good_steps) == 0 and int(t.skipped) == 1
    assert not bool(O.all_finite({"w": jnp.asarray([jnp.nan])}))
    assert bool(O.all_finite({"w": jnp.ones(3), "i": jnp.arange(2)}))


def test_the_scale_doubles_after_period_finite_steps() -> None:
    """The rule run for ``2 · period + 1`` finite steps under ``lax.scan``: doubled at steps period and 2·period."""
    period = 5

    def body(s, _):
        s = O.loss_scale_update(s, jnp.asarray(True), period=period)
        return s, s.scale

    _, scales = jax.lax.scan(body, O.loss_scale_init(8.0), None, length=2 * period + 1)
    expect = [8.0] * (period - 1) + [16.0] * period + [32.0, 32.0]
    np.testing.assert_array_equal(np.asarray(scales), np.asarray(expect, np.float32))
    # the default period: 1999 finite steps keep the scale, the 2000th doubles it
    s = O.loss_scale_init()._replace(good_steps=jnp.asarray(1998, jnp.int32))
    s = O.loss_scale_update(s, jnp.asarray(True))
    assert float(s.scale) == 2.0**15 and int(s.good_steps) == 1999
    s = O.loss_scale_update(s, jnp.asarray(True))
    assert float(s.scale) == 2.0**16 and int(s.good_steps) == 0


def test_an_overflow_resets_the_count_of_good_steps() -> None:
    s = O.loss_scale_init(4.0)
    for finite in (True, True, False, True):
        s = O.loss_scale_update(s, jnp.asarray(finite), period=3)
    assert float(s.scale) == 2.0 and int(s.good_steps) == 1 and int(s.skipped) == 1


def test_the_scale_stops_at_its_minimum_and_is_then_exhausted() -> None:
    s = O.loss_scale_init(2.0)
    bad = jnp.asarray(False)
    assert not bool(O.loss_scale_exhausted(s, bad))
    s = O.loss_scale_update(s, bad)
    assert float(s.scale) == 1.0
    assert bool(O.loss_scale_exhausted(s, bad)) and not bool(O.loss_scale_exhausted(s, jnp.asarray(True)))
    s = O.loss_scale_update(s, bad)
    assert float(s.scale) == 1.0 and int(s.skipped) == 2


def test_scaling_and_unscaling_are_exact() -> None:
    """``unscale(∇(s·L)) == ∇L`` bit for bit for a power-of-two ``s`` (no overflow)."""
    w = jnp.asarray(np.random.default_rng(0).normal(size=(5,)), jnp.float32)
    loss = lambda p: jnp.sum(jnp.sin(p) * p)  # noqa: E731
    s = O.loss_scale_init(2.0**10)
    scaled = jax.grad(lambda p: O.scale_loss(loss(p), s))(w)
    np.testing.assert_array_equal(np.asarray(O.unscale_grads(scaled, s)), np.asarray(jax.grad(loss)(w)))


@pytest.mark.parametrize("bad", [0, -2.0, 3.0, float("inf"), True, "2"])
def test_a_scale_that_is_no_power_of_two_is_refused(bad) -> None:
    with pytest.raises(ValueError, match=r"'initial' must be a positive power of two"):
        O.loss_scale_init(bad)


def test_bad_update_arguments_are_refused() -> None:
    s, ok = O.loss_scale_init(), jnp.asarray(True)
    with pytest.raises(ValueError, match="'period' must be a positive int"):
        O.loss_scale_update(s, ok, period=0)
    with pytest.raises(ValueError, match="'factor' must be a positive power of two"):
        O.loss_scale_update(s, ok, factor=3)
    with pytest.raises(ValueError, match="'factor' must be a power of two >= 2"):
        O.loss_scale_update(s, ok, factor=1)
    with pytest.raises(ValueError, match="'min_scale' must be a positive power of two"):
        O.loss_scale_update(s, ok, min_scale=0.3)
