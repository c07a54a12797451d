"""An equinox model as a jtricks Model: the (init, apply) pair wrapped with ``adapters.from_fns``,
and jtricks' weight penalties on equinox parameters."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jtricks import adapters, regularize

pytestmark = pytest.mark.slow  # reference comparisons of whole models: left out of `-m "not slow"`

# --- the example (copied into docs/adapters.md) -----------------------------------------------


class DropoutMLP(eqx.Module):
    """One example in, logits out: Linear -> ReLU -> Dropout -> Linear."""

    hidden: eqx.nn.Linear
    drop: eqx.nn.Dropout
    out: eqx.nn.Linear

    def __init__(self, in_size: int, width: int, num_classes: int, rate: float, *, key: jax.Array):
        k1, k2 = jax.random.split(key)
        self.hidden = eqx.nn.Linear(in_size, width, key=k1)
        self.drop = eqx.nn.Dropout(rate)
        self.out = eqx.nn.Linear(width, num_classes, key=k2)

    def __call__(self, x: jax.Array, *, key: jax.Array | None, inference: bool) -> jax.Array:
        return self.out(self.drop(jax.nn.relu(self.hidden(x)), key=key, inference=inference))


def equinox_model(in_size: int = 6, width: int = 16, num_classes: int = 3, rate: float = 0.5):
    """``(init, apply)`` for :class:`DropoutMLP`: params are the module's arrays (``eqx.partition``),
    the static rest is fixed once; apply vmaps the per-example module over the batch with one dropout
    key per example."""
    make = lambda key: DropoutMLP(in_size, width, num_classes, rate, key=key)  # noqa: E731
    _, static = eqx.partition(make(jax.random.PRNGKey(0)), eqx.is_array)

    def init(key, input_shape):
        params, _ = eqx.partition(make(key), eqx.is_array)
        return params, {}

    def apply(params, state, x, *, key=None, train):
        module = eqx.combine(params, static)
        keys = jax.random.split(key, x.shape[0]) if train else None
        return jax.vmap(lambda xi, ki: module(xi, key=ki, inference=not train))(x, keys), state

    return adapters.from_fns(init, apply, name="eqx_mlp")


# --- tests -------------------------------------------------------------------------------------

KEY, DROP_KEY = jax.random.PRNGKey(0), jax.random.PRNGKey(1)
X = jax.random.normal(jax.random.PRNGKey(2), (8, 6))


def test_equinox_model_matches_the_module_and_key_drives_dropout():
    model = equinox_model()
    params, state = model.init(KEY, (6,))
    module = DropoutMLP(6, 16, 3, 0.5, key=KEY)
    np.testing.assert_array_equal(
        model.apply(params, state, X, train=False)[0], jax.vmap(lambda xi: module(xi, key=None, inference=True))(X)
    )
    keys = jax.random.split(DROP_KEY, 8)
    out = model.apply(params, state, X, key=DROP_KEY, train=True)[0]
    np.testing.assert_array_equal(out, jax.vmap(lambda xi, k: module(xi, key=k, inference=False))(X, keys))
    assert not np.array_equal(out, model.apply(params, state, X, train=False)[0])
    assert not np.array_equal(out, model.apply(params, state, X, key=jax.random.PRNGKey(9), train=True)[0])


def test_equinox_population_matches_members():
    model = equinox_model()
    keys = jax.random.split(KEY, 3)
    params, state = jax.vmap(lambda k: model.init(k, (6,)))(keys)
    out, _ = jax.jit(jax.vmap(lambda p, s, k: model.apply(p, s, X, key=k, train=True)))(params, state, keys)
    for i in range(3):
        member = jax.tree.map(lambda a: a[i], params)
        np.testing.assert_allclose(out[i], model.apply(member, {}, X, key=keys[i], train=True)[0], rtol=1e-6, atol=1e-6)


def test_weight_penalties_and_optax_on_equinox_params():
    params, _ = equinox_model().init(KEY, (6,))
    mask = regularize.decay_mask(params)  # an equinox Module of bools: a mask, not a function
    kernels = [params.hidden.weight, params.out.weight]
    expected = 0.5 * sum(float(jnp.sum(jnp.square(w))) for w in kernels)
    np.testing.assert_allclose(regularize.l2_penalty(params, mask), expected, rtol=1e-6)
    np.testing.assert_allclose(
        regularize.l1_penalty(params, mask), sum(float(jnp.sum(jnp.abs(w))) for w in kernels), rtol=1e-6
    )
    np.testing.assert_allclose(regularize.l2_penalty(params, regularize.decay_mask), expected, rtol=1e-6)  # a function
    opt = optax.adamw(1e-3, mask=mask)
    updates, _ = opt.update(jax.tree.map(jnp.ones_like, params), opt.init(params), params)
    assert jax.tree.structure(updates) == jax.tree.structure(params)
