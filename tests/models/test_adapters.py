"""jtricks.adapters: flax Linen and NNX modules and user (init, apply) pairs as jtricks Models."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jtricks import adapters, models

pytestmark = pytest.mark.slow  # reference comparisons of whole models: left out of `-m "not slow"`

KEY = jax.random.PRNGKey(0)
DROP_KEY = jax.random.PRNGKey(1)
X = jax.random.normal(jax.random.PRNGKey(2), (8, 6))
Y = jnp.arange(8) % 3


def _ce(logits: jax.Array) -> jax.Array:
    return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), Y[:, None], axis=-1))


def _tree_equal(a, b) -> None:
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(u, v)


def _population_matches_members(model: models.Model, tol: float = 1e-6) -> None:
    """jit(vmap(apply)) over 3 members equals 3 separate applies to ``tol`` (outputs and new state)."""
    keys = jax.random.split(KEY, 3)
    params, state = jax.vmap(lambda k: model.init(k, (6,)))(keys)
    xs = jnp.stack([X, 2.0 * X, -X])
    run = jax.jit(jax.vmap(lambda p, s, x, k: model.apply(p, s, x, key=k, train=True)))
    out, new_state = run(params, state, xs, keys)
    for i in range(3):
        member = jax.tree.map(lambda a: a[i], (params, state))
        o, s = model.apply(*member, xs[i], key=keys[i], train=True)
        np.testing.assert_allclose(out[i], o, rtol=tol, atol=tol)
        for u, v in zip(jax.tree.leaves(new_state), jax.tree.leaves(s)):
            np.testing.assert_allclose(u[i], v, rtol=tol, atol=tol)


# --------------------------------------------------------------------------------------------
# Linen
# --------------------------------------------------------------------------------------------


class LinenNet(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool, hparams=None):
        x = nn.Dense(16)(x)
        x = nn.BatchNorm(use_running_average=not train, momentum=0.9)(x)
        x = nn.Dropout(0.5, deterministic=not train)(nn.relu(x))
        scale = 1.0 if not hparams else hparams.get("out_scale", 1.0)
        return scale * nn.Dense(3)(x)


class LinenDeterministic(nn.Module):
    @nn.compact
    def __call__(self, x, deterministic: bool):
        return nn.Dense(3)(nn.Dropout(0.5, deterministic=deterministic)(nn.Dense(16)(x)))


def test_linen_matches_flax_apply_exactly():
    module = LinenNet()
    model = adapters.from_linen(module)
    assert (model.name, model.batch_invariant) == ("LinenNet", False)
    params, state = model.init(KEY, (6,))
    ref_vars = module.init({"params": KEY}, jnp.zeros((1, 6)), train=False)
    _tree_equal(params, ref_vars["params"])
    _tree_equal(state, {"batch_stats": ref_vars["batch_stats"]})

    out, same = model.apply(params, state, X, train=False)
    np.testing.assert_array_equal(out, module.apply(ref_vars, X, train=False))
    assert same is state
    out_t, new_state = model.apply(params, state, X, key=DROP_KEY, train=True)
    ref_out, ref_upd = module.apply(ref_vars, X, train=True, rngs={"dropout": DROP_KEY}, mutable=["batch_stats"])
    np.testing.assert_array_equal(out_t, ref_out)
    _tree_equal(new_state, dict(ref_upd))
    assert not np.array_equal(out_t, out)  # dropout and batch statistics in training
    assert not np.array_equal(
        new_state["batch_stats"]["BatchNorm_0"]["mean"], state["batch_stats"]["BatchNorm_0"]["mean"]
    )

    grad = jax.grad(lambda p: _ce(model.apply(p, state, X, key=DROP_KEY, train=True)[0]))(params)
    ref_grad = jax.grad(
        lambda p: _ce(
            module.apply({**ref_vars, "params": p}, X, train=True, rngs={"dropout": DROP_KEY}, mutable=["batch_stats"])[
                0
            ]
        )
    )(ref_vars["params"])
    _tree_equal(grad, ref_grad)


def test_linen_key_determines_dropout_and_hparams_reach_the_module():
    model = adapters.from_linen(LinenNet)  # a factory works too
    params, state = model.init(KEY, (6,))
    a = model.apply(params, state, X, key=DROP_KEY, train=True)[0]
    np.testing.assert_array_equal(a, model.apply(params, state, X, key=DROP_KEY, train=True)[0])
    assert not np.array_equal(a, model.apply(params, state, X, key=jax.random.PRNGKey(7), train=True)[0])
    grid = jnp.array([1.0, 2.0], jnp.float32)
    scaled = jax.jit(jax.vmap(lambda s: model.apply(params, state, X, train=False, hparams={"out_scale": s})[0]))(grid)
    np.testing.assert_allclose(scaled[1], 2.0 * scaled[0], rtol=1e-6)


def test_linen_deterministic_flag_is_inverted():
    module = LinenDeterministic()
    model = adapters.from_linen(module, train_kwarg="deterministic", name="det")
    params, state = model.init(KEY, (6,))
    assert state == {} and model.name == "det"
    ref_vars = module.init(KEY, jnp.zeros((1, 6)), deterministic=True)
    np.testing.assert_array_equal(
        model.apply(params, state, X, train=False)[0], module.apply(ref_vars, X, deterministic=True)
    )
    np.testing.assert_array_equal(
        model.apply(params, state, X, key=DROP_KEY, train=True)[0],
        module.apply(ref_vars, X, deterministic=False, rngs={"dropout": DROP_KEY}),
    )


def test_linen_population_matches_members():
    _population_matches_members(adapters.from_linen(LinenNet()))


def test_linen_bad_arguments():
    with pytest.raises(TypeError, match="'train'"):
        adapters.from_linen(LinenDeterministic())
    with pytest.raises(TypeError, match="flax.linen.Module"):
        adapters.from_linen(lambda: 3)
    model = adapters.from_linen(LinenNet())
    params, state = model.init(KEY, (6,))
    with pytest.raises(TypeError, match="train"):
        model.apply(params, state, X, train=jnp.array(True))


# --------------------------------------------------------------------------------------------
# NNX
# --------------------------------------------------------------------------------------------


class NNXNet(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.dense = nnx.Linear(6, 16, rngs=rngs)
        self.bn = nnx.BatchNorm(16, momentum=0.9, rngs=rngs)
        self.drop = nnx.Dropout(0.5, rngs=rngs)
        self.out = nnx.Linear(16, 3, rngs=rngs)

    def __call__(self, x):
        return self.out(self.drop(nnx.relu(self.bn(self.dense(x)))))


def test_nnx_matches_the_module_exactly():
    model = adapters.from_nnx(NNXNet)
    assert (model.name, model.batch_invariant) == ("NNXNet", False)
    params, state = model.init(KEY, (6,))
    ref = NNXNet(nnx.Rngs(KEY))
    _tree_equal(params, nnx.to_pure_dict(nnx.state(ref, nnx.Param)))
    _tree_equal(state, nnx.to_pure_dict(nnx.state(ref, nnx.BatchStat)))

    out, same = model.apply(params, state, X, train=False)
    ref.eval()
    np.testing.assert_array_equal(out, ref(X))
    assert same is state
    out_t, new_state = model.apply(params, state, X, key=DROP_KEY, train=True)
    ref.train()
    nnx.reseed(ref, default=jax.random.wrap_key_data(DROP_KEY))
    np.testing.assert_array_equal(out_t, ref(X))
    _tree_equal(new_state, nnx.to_pure_dict(nnx.state(ref, nnx.BatchStat)))
    assert not np.array_equal(out_t, out)
    assert not np.array_equal(new_state["bn"]["mean"], state["bn"]["mean"])


def test_nnx_gradients_equal_nnx_grad():
    model = adapters.from_nnx(NNXNet)
    params, state = model.init(KEY, (6,))
    grad = jax.grad(lambda p: _ce(model.apply(p, state, X, train=False)[0]))(params)
    ref = NNXNet(nnx.Rngs(KEY))
    ref.eval()
    ref_grad = nnx.grad(lambda m: _ce(m(X)))(ref)
    _tree_equal(grad, nnx.to_pure_dict(ref_grad))


def test_nnx_key_determines_dropout_and_population_matches_members():
    model = adapters.from_nnx(NNXNet)
    params, state = model.init(KEY, (6,))
    a = model.apply(params, state, X, key=DROP_KEY, train=True)[0]
    np.testing.assert_array_equal(a, model.apply(params, state, X, key=DROP_KEY, train=True)[0])
    assert not np.array_equal(a, model.apply(params, state, X, key=jax.random.PRNGKey(7), train=True)[0])
    _population_matches_members(model)


def test_nnx_hparams_and_bad_arguments():
    class Scaled(nnx.Module):
        def __init__(self, rngs):
            self.dense = nnx.Linear(6, 3, rngs=rngs)

        def __call__(self, x, hparams):
            return hparams.get("out_scale", 1.0) * self.dense(x)

    model = adapters.from_nnx(lambda rngs: Scaled(rngs), name="scaled")
    params, state = model.init(KEY, (6,))
    assert state == {} and model.name == "scaled"
    one = model.apply(params, state, X, train=False)[0]
    np.testing.assert_allclose(
        model.apply(params, state, X, train=False, hparams={"out_scale": jnp.float32(3.0)})[0], 3.0 * one, rtol=1e-6
    )
    with pytest.raises(TypeError, match="factory"):
        adapters.from_nnx(NNXNet(nnx.Rngs(0)))
    with pytest.raises(TypeError, match="nnx.Module"):
        adapters.from_nnx(lambda rngs: 3)


# --------------------------------------------------------------------------------------------
# any (init, apply) pair
# --------------------------------------------------------------------------------------------


def test_from_fns_wraps_and_checks_signatures():
    def init(key, input_shape):
        return {"w": jax.random.normal(key, (input_shape[0], 3))}, {}

    def apply(params, state, x, *, key=None, train):
        return x @ params["w"], state

    model = adapters.from_fns(init, apply, name="linear")
    assert (model.name, model.batch_invariant, model.config["adapter"]) == ("linear", False, "fns")
    params, state = model.init(KEY, (6,), hparams={"ignored": 1.0})
    out, _ = model.apply(params, state, X, key=None, train=True, hparams={"ignored": 1.0})
    np.testing.assert_array_equal(out, X @ params["w"])

    def apply_hp(params, state, x, *, key=None, train, hparams=None):
        return hparams["s"] * (x @ params["w"]), state

    np.testing.assert_allclose(
        adapters.from_fns(init, apply_hp).apply(params, state, X, train=False, hparams={"s": 2.0})[0],
        2.0 * out,
        rtol=1e-6,
    )
    with pytest.raises(TypeError, match="'train'"):
        adapters.from_fns(init, lambda params, state, x, *, key=None: x)
    with pytest.raises(TypeError, match="init"):
        adapters.from_fns(lambda key: key, apply)
    with pytest.raises(TypeError, match="apply"):
        adapters.from_fns(init, lambda params, state, *, key, train: params)
    with pytest.raises(TypeError, match="callables"):
        adapters.from_fns(init, None)
