"""jtricks pieces inside flax (Linen and NNX) and jtricks models with plain optax optimizers.

Each test checks the result against flax's own layer (``nn.BatchNorm`` / ``nn.Dropout``,
``nnx.BatchNorm`` / ``nnx.Dropout``) or against the optimizer's formula, so the examples in
docs/models.md ("Interoperability") are known to run and to be right.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from jtricks import data, models
from jtricks import dropout as jdropout
from jtricks import init as jinit
from jtricks import norm as jnorm

pytestmark = pytest.mark.slow  # reference comparisons of whole models: left out of `-m "not slow"`

# --------------------------------------------------------------------------------------------
# initializers in flax layers
# --------------------------------------------------------------------------------------------


def test_linen_dense_and_conv_accept_jtricks_initializers():
    dense = nn.Dense(256, kernel_init=jinit.get("he_normal"))
    variables = dense.init(jax.random.key(0), jnp.ones((1, 1024)))
    w = np.asarray(variables["params"]["kernel"], np.float64)
    np.testing.assert_allclose(w.std(), math.sqrt(2.0 / 1024), rtol=0.02)
    np.testing.assert_array_equal(variables["params"]["bias"], 0.0)

    conv = nn.Conv(64, (3, 3), kernel_init=jinit.get("glorot_uniform"))
    variables = conv.init(jax.random.key(1), jnp.ones((1, 8, 8, 16)))
    w = np.asarray(variables["params"]["kernel"], np.float64)
    assert w.shape == (3, 3, 16, 64)
    np.testing.assert_allclose(w.std(), math.sqrt(2.0 / (9 * 16 + 9 * 64)), rtol=0.03)


def test_nnx_linear_accepts_jtricks_initializer():
    layer = nnx.Linear(512, 128, kernel_init=jinit.get("lecun_normal"), rngs=nnx.Rngs(params=0))
    w = np.asarray(layer.kernel[...], np.float64)
    np.testing.assert_allclose(w.std(), 1.0 / math.sqrt(512), rtol=0.02)


# --------------------------------------------------------------------------------------------
# batch norm + dropout inside a flax Linen module
# --------------------------------------------------------------------------------------------


class LinenBNDropout(nn.Module):
    """jtricks batch_norm (stats in the "batch_stats" collection) and dropout in a Linen module."""

    rate: float

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        p0, s0 = jnorm.batch_norm_init(x.shape[-1])
        params = {"scale": self.param("scale", lambda _: p0["scale"]), "bias": self.param("bias", lambda _: p0["bias"])}
        mean = self.variable("batch_stats", "mean", lambda: s0["mean"])
        var = self.variable("batch_stats", "var", lambda: s0["var"])
        y, new = jnorm.batch_norm(x, params, {"mean": mean.value, "var": var.value}, train=train)
        if train and not self.is_initializing():
            mean.value, var.value = new["mean"], new["var"]
        key = self.make_rng("dropout") if train else None
        return jdropout.dropout(key, y, self.rate, train=train)


class LinenReference(nn.Module):
    """The same computation with flax's own layers."""

    rate: float

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        y = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5)(x)
        key = self.make_rng("dropout") if train else None
        return nn.Dropout(self.rate)(y, deterministic=not train, rng=key)


def test_linen_module_with_jtricks_batch_norm_and_dropout_matches_flax_layers():
    x = jax.random.normal(jax.random.key(0), (16, 12)) * 2.0 + 0.5
    ours, ref = LinenBNDropout(rate=0.3), LinenReference(rate=0.0)  # the reference: flax's batch norm alone
    v_ours = ours.init(jax.random.key(1), x, train=False)
    v_ref = ref.init(jax.random.key(1), x, train=False)
    assert set(v_ours) == {"params", "batch_stats"}

    rngs = {"dropout": jax.random.key(2)}
    y_ours, upd_ours = jax.jit(lambda v: ours.apply(v, x, train=True, rngs=rngs, mutable=["batch_stats"]))(v_ours)
    y_ref, upd_ref = ref.apply(v_ref, x, train=True, rngs=rngs, mutable=["batch_stats"])
    # jtricks' dropout on flax's batch norm: kept units are y_ref / q (q = 1 - round(0.3·2^16)/2^16), the rest 0
    kept = np.asarray(y_ours) != 0
    assert abs((~kept).mean() - 0.3) < 5 * np.sqrt(0.3 * 0.7 / kept.size)
    q = 1 - round(0.3 * 65536) / 65536
    np.testing.assert_allclose(np.asarray(y_ours)[kept], np.asarray(y_ref)[kept] / q, rtol=1e-5, atol=1e-5)
    stats_ref = upd_ref["batch_stats"]["BatchNorm_0"]
    for name in ("mean", "var"):
        np.testing.assert_allclose(upd_ours["batch_stats"][name], stats_ref[name], rtol=1e-5, atol=1e-6)

    # eval: running statistics, no dropout, nothing mutated
    v_ours = {"params": v_ours["params"], **upd_ours}
    v_ref = {"params": v_ref["params"], **upd_ref}
    e_ours = ours.apply(v_ours, x, train=False)
    e_ref = ref.apply(v_ref, x, train=False)
    np.testing.assert_allclose(e_ours, e_ref, rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------------------------
# batch norm + dropout inside a flax NNX module
# --------------------------------------------------------------------------------------------


class NNXBlock(nnx.Module):
    """Linear (jtricks init) -> jtricks batch_norm (nnx.BatchStat) -> relu -> jtricks dropout (rngs)."""

    def __init__(self, din: int, dout: int, rate: float, *, rngs: nnx.Rngs):
        self.linear = nnx.Linear(din, dout, kernel_init=jinit.get("he_normal"), rngs=rngs)
        p, s = jnorm.batch_norm_init(dout)
        self.scale, self.bias = nnx.Param(p["scale"]), nnx.Param(p["bias"])
        self.mean, self.var = nnx.BatchStat(s["mean"]), nnx.BatchStat(s["var"])
        self.rate = rate
        self.rngs = rngs
        # the attribute names that model.train() / model.eval() set
        self.use_running_average = False
        self.deterministic = False

    def __call__(self, x: jax.Array) -> jax.Array:
        h = self.linear(x)
        y, new = jnorm.batch_norm(
            h,
            {"scale": self.scale[...], "bias": self.bias[...]},
            {"mean": self.mean[...], "var": self.var[...]},
            train=not self.use_running_average,
        )
        if not self.use_running_average:
            self.mean[...], self.var[...] = new["mean"], new["var"]
        key = None if self.deterministic else self.rngs.dropout()
        return jdropout.dropout(key, jax.nn.relu(y), self.rate, train=not self.deterministic)


class NNXReference(nnx.Module):
    def __init__(self, din: int, dout: int, rate: float, *, rngs: nnx.Rngs):
        self.linear = nnx.Linear(din, dout, kernel_init=jinit.get("he_normal"), rngs=rngs)
        self.bn = nnx.BatchNorm(dout, momentum=0.9, epsilon=1e-5, rngs=rngs)
        self.drop = nnx.Dropout(rate)

    def __call__(self, x: jax.Array, key: jax.Array | None) -> jax.Array:
        return self.drop(jax.nn.relu(self.bn(self.linear(x))), rngs=key)


def test_nnx_module_with_jtricks_batch_norm_and_dropout_matches_nnx_layers():
    x = jax.random.normal(jax.random.key(0), (16, 8))
    ours = NNXBlock(8, 12, 0.25, rngs=nnx.Rngs(params=0, dropout=1))
    ref = NNXReference(8, 12, 0.0, rngs=nnx.Rngs(params=0))  # flax's layers up to the dropout
    np.testing.assert_array_equal(ours.linear.kernel[...], ref.linear.kernel[...])
    key = nnx.Rngs(dropout=1).dropout()  # the first key our module's stream will give
    y_ours, y_ref = ours(x), jdropout.dropout(key, ref(x, None), 0.25)
    np.testing.assert_array_equal(np.asarray(y_ours) == 0, np.asarray(y_ref) == 0)
    np.testing.assert_allclose(y_ours, y_ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ours.mean[...], ref.bn.mean[...], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ours.var[...], ref.bn.var[...], rtol=1e-5, atol=1e-6)
    # the stream advances: a second call draws a new mask
    assert not np.array_equal(np.asarray(ours(x)) == 0, np.asarray(y_ours) == 0)

    ours.eval()
    ref.eval()
    mean_before = np.asarray(ours.mean[...])
    e1, e2 = ours(x), ours(x)
    np.testing.assert_array_equal(e1, e2)  # no dropout, running statistics
    np.testing.assert_array_equal(ours.mean[...], mean_before)  # not updated in eval


def test_nnx_module_trains_under_nnx_jit_with_optax():
    ds = data.digits()
    x = jnp.asarray(ds.x_train[:256].reshape(256, -1), jnp.float32) / 16.0
    y = jnp.asarray(ds.y_train[:256])

    class Net(nnx.Module):
        def __init__(self, rngs: nnx.Rngs):
            self.block = NNXBlock(64, 64, 0.2, rngs=rngs)
            self.out = nnx.Linear(64, 10, kernel_init=jinit.get("glorot_normal"), rngs=rngs)

        def __call__(self, x):
            return self.out(self.block(x))

    model = Net(nnx.Rngs(params=0, dropout=1))
    optimizer = nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)

    def loss_fn(m, xb, yb):
        return optax.softmax_cross_entropy_with_integer_labels(m(xb), yb).mean()

    @nnx.jit
    def train_step(m, opt, xb, yb):
        loss, grads = nnx.value_and_grad(loss_fn)(m, xb, yb)
        opt.update(m, grads)
        return loss

    model.eval()
    before = float(loss_fn(model, x, y))
    model.train()
    stats0 = np.asarray(model.block.mean[...])
    for t in range(30):
        i = (t * 64) % 192
        train_step(model, optimizer, x[i : i + 64], y[i : i + 64])
    assert not np.array_equal(np.asarray(model.block.mean[...]), stats0)  # BatchStat updated through nnx.jit
    model.eval()
    after = float(loss_fn(model, x, y))
    assert after < 0.5 * before, (before, after)


class LinenWrapper(nn.Module):
    """A whole jtricks model as a Linen module: params in "params", BN statistics in "batch_stats"."""

    model: models.Model
    input_shape: tuple[int, ...]

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        params = self.param("model", lambda k: self.model.init(k, self.input_shape)[0])
        # the state (BN running statistics) does not depend on the key
        state = self.variable("batch_stats", "model", lambda: self.model.init(jax.random.key(0), self.input_shape)[1])
        key = self.make_rng("dropout") if train else None
        logits, new_state = self.model.apply(params, state.value, x, key=key, train=train)
        if train and not self.is_initializing():
            state.value = new_state
        return logits


def test_jtricks_model_inside_a_linen_module():
    model = models.cnn(widths=(4, 8), norm="batch", dropout_rate=0.2)
    module = LinenWrapper(model, (12, 12, 1))
    x = jax.random.normal(jax.random.key(0), (6, 12, 12, 1))
    variables = module.init(jax.random.key(1), x, train=False)
    params, state = model.init(jax.random.key(0), (12, 12, 1))
    assert jax.tree_util.tree_structure(variables["params"]["model"]) == jax.tree_util.tree_structure(params)
    ours, upd = jax.jit(
        lambda v: module.apply(v, x, train=True, rngs={"dropout": jax.random.key(2)}, mutable=["batch_stats"])
    )(variables)
    direct, direct_state = jax.jit(lambda p, s, k: model.apply(p, s, x, key=k, train=True))(
        variables["params"]["model"], variables["batch_stats"]["model"], _linen_dropout_key(jax.random.key(2))
    )
    np.testing.assert_allclose(ours, direct, rtol=1e-6, atol=1e-6)
    for a, b in zip(jax.tree_util.tree_leaves(upd["batch_stats"]["model"]), jax.tree_util.tree_leaves(direct_state)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def _linen_dropout_key(root: jax.Array) -> jax.Array:
    """The key a top-level Linen module's first ``make_rng("dropout")`` returns for ``rngs={"dropout": root}``."""

    class Probe(nn.Module):
        @nn.compact
        def __call__(self):
            return jax.random.key_data(self.make_rng("dropout"))

    return jax.random.wrap_key_data(Probe().apply({}, rngs={"dropout": root}))


# --------------------------------------------------------------------------------------------
# jtricks models with plain optax optimizers
# --------------------------------------------------------------------------------------------


def test_jtricks_model_params_take_an_optax_sgd_step_exactly():
    model = models.mlp([16], norm="batch")
    params, state = model.init(jax.random.key(0), (6,))
    x = jax.random.normal(jax.random.key(1), (8, 6))
    y = jnp.arange(8) % 10

    def loss(p):
        logits, _ = model.apply(p, state, x, train=True)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    grads = jax.jit(jax.grad(loss))(params)
    tx = optax.sgd(0.1)
    updates, _ = tx.update(grads, tx.init(params), params)
    new = optax.apply_updates(params, updates)
    expected = jax.tree_util.tree_map(lambda p, g: p - 0.1 * g, params, grads)
    for a, b in zip(jax.tree_util.tree_leaves(new), jax.tree_util.tree_leaves(expected)):
        np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-8)


def test_jtricks_model_trains_with_an_optax_chain_and_masked_weight_decay():
    ds = data.mnist1d()
    x, y = jnp.asarray(ds.x_train[:512]), jnp.asarray(ds.y_train[:512])
    model = models.cnn1d(norm="batch", dropout_rate=0.1)
    params, state = model.init(jax.random.key(0), ds.input_shape)
    kernels_only = lambda p: jax.tree_util.tree_map(lambda a: a.ndim >= 2, p)  # noqa: E731
    tx = optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(1e-2, weight_decay=1e-4, mask=kernels_only))
    opt_state = tx.init(params)

    @jax.jit
    def step(params, state, opt_state, xb, yb, key):
        def loss(p):
            logits, new_state = model.apply(p, state, xb, key=key, train=True)
            return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean(), new_state

        (_, state), grads = jax.value_and_grad(loss, has_aux=True)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), state, opt_state

    @jax.jit
    def accuracy(p, s):
        logits, _ = model.apply(p, s, x, train=False)
        return jnp.mean(jnp.argmax(logits, -1) == y)

    acc0 = float(accuracy(params, state))
    for t in range(40):
        i = (t * 128) % 512
        params, state, opt_state = step(
            params, state, opt_state, x[i : i + 128], y[i : i + 128], jax.random.fold_in(jax.random.key(1), t)
        )
    assert float(accuracy(params, state)) > acc0 + 0.2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(pytest.main([__file__, "-q"]))
