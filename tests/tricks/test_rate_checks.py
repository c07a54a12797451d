"""Concrete array-valued rates are checked like Python numbers; traced ones pass unchecked."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jtricks import dropout as jdropout
from jtricks import optim as joptim

KEY = jax.random.PRNGKey(0)
X = jnp.ones((4, 8))


@pytest.mark.parametrize("rate", [jnp.array(-0.1), jnp.array(1.0), np.float32(1.5), jnp.array(jnp.nan)])
def test_dropout_rejects_a_concrete_array_rate_outside_0_1(rate):
    with pytest.raises(ValueError, match=r"`rate` must lie in \[0, 1\), got"):
        jdropout.dropout(KEY, X, rate)
    with pytest.raises(ValueError, match=r"`rate` must lie in \[0, 1\), got"):
        jdropout.dropout(KEY, X, rate, train=False)


def test_dropout_traced_rate_is_unchecked_as_documented():
    f = jax.jit(jdropout.dropout)
    np.testing.assert_array_equal(f(KEY, X, jnp.float32(-0.1)), X)  # clipped to 0: every unit kept, unscaled
    np.testing.assert_array_equal(f(KEY, X, jnp.float32(1.0)), np.zeros((4, 8)))
    # a valid concrete array rate gives the traced result exactly
    np.testing.assert_array_equal(jdropout.dropout(KEY, X, jnp.float32(0.25)), f(KEY, X, jnp.float32(0.25)))


@pytest.mark.parametrize("factory", [joptim.sgd, joptim.adam, joptim.momentum])
def test_optimizer_rejects_a_concrete_array_learning_rate(factory):
    with pytest.raises(
        ValueError, match=r"learning_rate must lie in \[0, inf\), got an array holding -0.10000000149011612"
    ):
        factory(jnp.array(-0.1))
    with pytest.raises(ValueError, match=r"learning_rate must lie in \[0, inf\), got an array holding inf"):
        factory(np.array([0.1, np.inf]))
    factory(jnp.array(0.1))  # a valid one is accepted


def test_optimizer_array_hyperparameters_checked_and_traced_ones_pass():
    with pytest.raises(ValueError, match=r"b1 must lie in \[0, 1\), got an array holding 1.0"):
        joptim.adam(0.1, b1=jnp.array(1.0))

    def step(lr):
        tx = joptim.sgd(lr)  # traced: no check, the update is -lr * g
        return tx.update({"w": jnp.ones(2)}, tx.init({"w": jnp.ones(2)}))[0]["w"]

    np.testing.assert_array_equal(jax.jit(step)(jnp.float32(-0.5)), np.array([0.5, 0.5], np.float32))
