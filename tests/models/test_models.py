"""Tests for jtricks.models: shapes, parameter counts, flax references, BN / dropout semantics,
initializer statistics, determinism, vmapped hyperparameters and short training runs on real data."""

from __future__ import annotations

import math
from functools import partial

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jtricks import data, models
from jtricks import init as jinit

KEY = jax.random.key(0)

# Small variants of every architecture (few, small layers: fast compiles on CPU).
TINY_INCEPTION = ((2, 2, 2, 2, 2, 2), (2, 2, 2, 2, 2, 2))


def small(name: str, **kw):
    """(model, input_shape) of a small variant of architecture ``name``."""
    if name == "mlp":
        return models.mlp([16, 16], **kw), (6, 6, 1)
    if name == "cnn":
        return models.cnn(widths=(4, 8), **kw), (12, 12, 1)
    if name == "resnet":
        return models.resnet(stage_widths=(4, 8), blocks_per_stage=1, **kw), (8, 8, 1)
    if name == "inception":
        return models.inception(stem_width=4, blocks=TINY_INCEPTION, **kw), (8, 8, 1)
    return models.cnn1d(channels=(4, 4, 4), **kw), (40,)


def shapes_of(model, input_shape):
    """Params / state shapes without computing anything (jax.eval_shape)."""
    return jax.eval_shape(lambda k: model.init(k, input_shape), KEY)


def _leaves_equal(a, b) -> bool:
    la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    return jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b) and all(
        np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(la, lb)
    )


# --------------------------------------------------------------------------------------------
# shapes and parameter counts
# --------------------------------------------------------------------------------------------


def test_notebook_cnn_matches_keras_summary():
    """The guide's dropout notebook CNN: Keras' model.summary() reports 34,826 params on 28x28x1."""
    model = models.cnn(dropout_rate=0.5)
    params, state = shapes_of(model, (28, 28, 1))
    assert models.count_params(params) == 34_826
    assert state == {}
    assert params["conv_0"]["kernel"].shape == (3, 3, 1, 32)
    assert params["conv_1"]["kernel"].shape == (3, 3, 32, 64)
    assert params["dense_0"]["kernel"].shape == (5 * 5 * 64, 10)  # 28-2=26 -> 13 -> 11 -> 5 (floor)
    for x_shape in [(3, 28, 28, 1), (3, 28, 28)]:  # (N, H, W) without the channel axis is accepted too
        logits, new_state = jax.eval_shape(
            lambda p, s, x: model.apply(p, s, x, key=KEY, train=True), params, state, jnp.zeros(x_shape)
        )
        assert logits.shape == (3, 10) and new_state == {}


def _conv_block_count(c_in: int, c_out: int, k: int, norm: bool) -> int:
    return k * k * c_in * c_out + (2 * c_out if norm else c_out)


def test_resnet_param_count_formula():
    """ResNet-20 layout counted layer by layer (option-B projections, no conv bias before BN)."""
    widths, blocks = (16, 32, 64), 3
    expected = _conv_block_count(1, 16, 3, True)
    c = 16
    for _si, w in enumerate(widths):
        for _b in range(blocks):
            expected += _conv_block_count(c, w, 3, True) + _conv_block_count(w, w, 3, True)
            if c != w:
                expected += _conv_block_count(c, w, 1, True)
            c = w
    expected += 64 * 10 + 10
    model = models.resnet()
    params, state = shapes_of(model, (28, 28, 1))
    assert models.count_params(params) == expected == 272_186
    assert set(state) == {"stem"} | {f"stage{s}_block{b}" for s in (1, 2, 3) for b in range(3)}
    logits, _ = jax.eval_shape(
        lambda p, s, x: model.apply(p, s, x, train=False), params, state, jnp.ones((2, 28, 28, 1))
    )
    assert logits.shape == (2, 10)
    # the 1x1 projection appears exactly where the shape changes
    assert [k for k in params if "proj" in params[k]] == ["stage2_block0", "stage3_block0"]


def test_inception_param_count_formula_and_concat_channels():
    blocks = models.INCEPTION_BLOCKS
    expected = 3 * 3 * 1 * 32 + 32
    c = 32
    for c1, c3r, c3, c5r, c5, cp in blocks:
        expected += (c * c1 + c1) + (c * c3r + c3r) + (9 * c3r * c3 + c3) + (c * c5r + c5r)
        expected += (25 * c5r * c5 + c5) + (c * cp + cp)
        c = c1 + c3 + c5 + cp
    expected += c * 10 + 10
    model = models.inception()
    params, state = shapes_of(model, (28, 28, 1))
    assert models.count_params(params) == expected
    assert params["dense"]["kernel"].shape == (112, 10)
    logits, _, acts = jax.eval_shape(
        lambda p, s, x: model.apply(p, s, x, train=False, capture=True), params, state, jnp.ones((2, 28, 28, 1))
    )
    assert logits.shape == (2, 10)
    assert acts["inception_0/b3"]["post"].shape == (2, 14, 14, 24)
    assert acts["inception_1/pool_proj"]["post"].shape == (2, 7, 7, 16)


def test_cnn1d_matches_mnist1d_convbase_count():
    """torch ConvBase: Conv1d(1,25,5,s2,p1), Conv1d(25,25,3,s2,p1) x2, Linear(125,10)."""
    expected = (1 * 25 * 5 + 25) + 2 * (25 * 25 * 3 + 25) + (125 * 10 + 10)
    model = models.cnn1d()
    params, _ = shapes_of(model, (40,))
    assert models.count_params(params) == expected == 5_210
    assert params["dense_0"]["kernel"].shape == (125, 10)


def test_mlp_param_count_and_flatten():
    model = models.mlp()  # the Fashion-MNIST benchmark's MLP 256-128-100
    params, _ = shapes_of(model, (28, 28, 1))
    sizes = [784, 256, 128, 100, 10]
    assert models.count_params(params) == sum((a + 1) * b for a, b in zip(sizes, sizes[1:]))
    logits, _ = jax.eval_shape(lambda p, x: model.apply(p, {}, x, train=False), params, jnp.ones((5, 28, 28, 1)))
    assert logits.shape == (5, 10)


def test_norm_variants_param_layout():
    p_bn, s_bn = shapes_of(models.mlp([8], norm="batch"), (4,))
    assert set(p_bn) == {"dense_0", "dense_0_bn", "dense_1"} and set(s_bn) == {"dense_0_bn"}
    assert "bias" not in p_bn["dense_0"] and "bias" in p_bn["dense_1"]  # BN's bias replaces it
    p_ln, s_ln = shapes_of(models.mlp([8], norm="layer"), (4,))
    assert set(p_ln) == {"dense_0", "dense_0_ln", "dense_1"} and s_ln == {}
    p_wn, _ = shapes_of(models.mlp([8], norm="weight"), (4,))
    assert set(p_wn["dense_0"]) == {"v", "g", "bias"} and set(p_wn["dense_1"]) == {"v", "g", "bias"}


def test_weight_norm_starts_at_the_plain_initialization():
    """With the same key, kernel = g * v / ||v|| equals the plain model's kernel at init."""
    p_plain, _ = models.mlp([16]).init(KEY, (12,))
    model = models.mlp([16], norm="weight")
    p_wn, _ = model.init(KEY, (12,))
    w = p_wn["dense_0"]["v"] * (p_wn["dense_0"]["g"] / jnp.linalg.norm(p_wn["dense_0"]["v"], axis=0))
    np.testing.assert_allclose(w, p_plain["dense_0"]["kernel"], rtol=1e-6)
    x = jax.random.normal(jax.random.key(3), (4, 12))
    y_plain, _ = models.mlp([16]).apply(p_plain, {}, x, train=False)
    y_wn, _ = model.apply(p_wn, {}, x, train=False)
    np.testing.assert_allclose(y_wn, y_plain, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------------------------
# forward pass against flax references (same parameters)
# --------------------------------------------------------------------------------------------


class _FlaxNotebookCNN(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = nn.relu(nn.Conv(32, (3, 3), padding="VALID", name="conv_0")(x))
        x = nn.max_pool(x, (2, 2), (2, 2))
        x = nn.relu(nn.Conv(64, (3, 3), padding="VALID", name="conv_1")(x))
        x = nn.max_pool(x, (2, 2), (2, 2))
        return nn.Dense(10, name="dense_0")(x.reshape(x.shape[0], -1))


class _FlaxConvBase(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = x[..., None]
        for i, k in enumerate((5, 3, 3)):
            x = nn.relu(nn.Conv(25, (k,), strides=2, padding=[(1, 1)], name=f"conv_{i}")(x))
        return nn.Dense(10, name="dense_0")(x.reshape(x.shape[0], -1))


class _FlaxMLP(nn.Module):
    widths: tuple[int, ...]

    @nn.compact
    def __call__(self, x):
        x = x.reshape(x.shape[0], -1)
        for i, w in enumerate(self.widths):
            x = jnp.tanh(nn.Dense(w, name=f"dense_{i}")(x))
        return nn.Dense(10, name=f"dense_{len(self.widths)}")(x)


@pytest.mark.parametrize(
    "model,ref,shape",
    [
        (models.cnn(), _FlaxNotebookCNN(), (27, 27, 1)),  # odd size: floor-mode pooling
        (models.cnn1d(), _FlaxConvBase(), (40,)),
        (models.mlp([32, 16], activation="tanh"), _FlaxMLP((32, 16)), (6, 6)),
    ],
    ids=["cnn", "cnn1d", "mlp"],
)
def test_forward_matches_flax_reference(model, ref, shape):
    params, state = model.init(KEY, shape)
    x = jax.random.normal(jax.random.key(1), (4, *shape))
    ours, _ = jax.jit(lambda p, x: model.apply(p, state, x, train=False))(params, x)
    theirs = jax.jit(lambda p, x: ref.apply({"params": p}, x))(params, x)
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)


def test_max_pool_2x2_matches_flax_values_and_grads():
    x = jax.random.normal(jax.random.key(2), (2, 7, 9, 3))  # odd sizes: floor mode drops a row / column
    ref = partial(nn.max_pool, window_shape=(2, 2), strides=(2, 2), padding="VALID")
    np.testing.assert_array_equal(models.max_pool_2x2(x), ref(x))
    g_ours = jax.grad(lambda z: jnp.sum(jnp.sin(models.max_pool_2x2(z))))(x)
    g_ref = jax.grad(lambda z: jnp.sum(jnp.sin(ref(z))))(x)
    np.testing.assert_allclose(g_ours, g_ref, rtol=1e-6, atol=1e-7)


def test_max_pool_3x3_same_matches_flax_values_and_grads():
    x = jax.random.normal(jax.random.key(2), (2, 7, 6, 3))
    ref = partial(nn.max_pool, window_shape=(3, 3), strides=(1, 1), padding="SAME")
    np.testing.assert_array_equal(models.max_pool_3x3_same(x), ref(x))
    g_ours = jax.grad(lambda z: jnp.sum(jnp.sin(models.max_pool_3x3_same(z))))(x)
    g_ref = jax.grad(lambda z: jnp.sum(jnp.sin(ref(z))))(x)
    np.testing.assert_allclose(g_ours, g_ref, rtol=1e-6, atol=1e-7)


# --------------------------------------------------------------------------------------------
# batch norm state and dropout semantics
# --------------------------------------------------------------------------------------------


def test_batch_norm_running_stats_update_in_train_only():
    model = models.mlp([6], norm="batch")
    params, state = model.init(KEY, (5,))
    x = jax.random.normal(jax.random.key(4), (16, 5)) * 3.0 + 1.0
    _, new_state = model.apply(params, state, x, train=True)
    z = np.asarray(x) @ np.asarray(params["dense_0"]["kernel"])  # no bias before BN
    np.testing.assert_allclose(new_state["dense_0_bn"]["mean"], 0.1 * z.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(new_state["dense_0_bn"]["var"], 0.9 + 0.1 * z.var(0), rtol=1e-5, atol=1e-6)
    y1, same = model.apply(params, new_state, x, train=False)
    assert _leaves_equal(same, new_state)
    # eval uses the running statistics: y = (z - mean) / sqrt(var + eps) * 1 + 0 -> relu -> dense_1
    h = np.maximum((z - new_state["dense_0_bn"]["mean"]) / np.sqrt(new_state["dense_0_bn"]["var"] + 1e-5), 0)
    expected = h @ np.asarray(params["dense_1"]["kernel"]) + np.asarray(params["dense_1"]["bias"])
    np.testing.assert_allclose(y1, expected, rtol=1e-4, atol=1e-5)


def test_batch_norm_after_the_activation_against_numpy():
    """``norm_position="after"``: ``norm(relu(x W + b))`` in training (batch statistics, biased variance), the dense
    keeps its bias; the default is the usual ``relu(norm(x W))``; a bad position is named."""
    after = models.mlp([6], norm="batch", norm_position="after")
    params, state = after.init(KEY, (5,))
    assert set(params["dense_0"]) == {"kernel", "bias"}
    params["dense_0"]["bias"] = jnp.linspace(-0.5, 0.5, 6)  # a nonzero bias, so its place matters
    x = jax.random.normal(jax.random.key(4), (16, 5)) * 3.0 + 1.0
    y, new_state = after.apply(params, state, x, train=True)
    a = np.maximum(np.asarray(x) @ np.asarray(params["dense_0"]["kernel"]) + np.asarray(params["dense_0"]["bias"]), 0)
    h = (a - a.mean(0)) / np.sqrt(a.var(0) + 1e-5)
    expected = h @ np.asarray(params["dense_1"]["kernel"]) + np.asarray(params["dense_1"]["bias"])
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(new_state["dense_0_bn"]["mean"], 0.1 * a.mean(0), rtol=1e-5, atol=1e-6)
    before = models.mlp([6], norm="batch")
    assert before.config == models.mlp([6], norm="batch", norm_position="before").config
    assert "norm_position" not in before.config and after.config["norm_position"] == "after"
    with pytest.raises(ValueError, match="norm_position.*'before', 'after'"):
        models.mlp([6], norm="batch", norm_position="middle")


def test_dropout_active_in_train_only():
    model = models.mlp([64, 64], dropout_rate=0.5)
    params, state = model.init(KEY, (10,))
    x = jax.random.normal(jax.random.key(6), (8, 10))
    k1, k2 = jax.random.key(10), jax.random.key(11)
    a, _ = model.apply(params, state, x, key=k1, train=True)
    a_again, _ = model.apply(params, state, x, key=k1, train=True)
    b, _ = model.apply(params, state, x, key=k2, train=True)
    np.testing.assert_array_equal(a, a_again)
    assert not np.allclose(a, b)
    e1, _ = model.apply(params, state, x, key=k1, train=False)
    e2, _ = model.apply(params, state, x, key=k2, train=False)
    e3, _ = model.apply(params, state, x, train=False)  # no key needed in eval
    np.testing.assert_array_equal(e1, e2)
    np.testing.assert_array_equal(e1, e3)
    # raw uint32[2] keys (jax.random.PRNGKey, as jtricks.keys.seed_key makes) work the same
    raw, _ = model.apply(params, state, x, key=jax.random.PRNGKey(10), train=True)
    np.testing.assert_array_equal(raw, a)
    # train mode with rate 0 is the eval computation
    z, _ = model.apply(params, state, x, key=k1, train=True, hparams={"dropout_rate": 0.0})
    np.testing.assert_array_equal(z, e1)
    with pytest.raises(ValueError, match="key"):
        model.apply(params, state, x, train=True)


def test_dropout_site_keys_are_fold_in_of_the_call_key():
    """Site i uses fold_in(key, i): reproduce the MLP's train forward by hand with jtricks.dropout."""
    from jtricks.dropout import dropout

    model = models.mlp([16, 16], dropout_rate=0.3)
    params, _ = model.init(KEY, (5,))
    x = jax.random.normal(jax.random.key(7), (4, 5))
    key = jax.random.key(8)
    h = x
    for i in range(2):
        h = jax.nn.relu(h @ params[f"dense_{i}"]["kernel"] + params[f"dense_{i}"]["bias"])
        h = dropout(jax.random.fold_in(key, i), h, 0.3)
    expected = h @ params["dense_2"]["kernel"] + params["dense_2"]["bias"]
    ours, _ = model.apply(params, {}, x, key=key, train=True)
    np.testing.assert_array_equal(ours, expected)


def test_traced_dropout_rate_under_vmap_equals_separate_calls():
    model, shape = small("mlp")
    params, state = model.init(KEY, shape)
    x = jax.random.normal(jax.random.key(9), (4, *shape))
    key = jax.random.key(12)
    rates = jnp.array([0.0, 0.2, 0.5, 0.8], jnp.float32)

    def f(rate):
        return model.apply(params, state, x, key=key, train=True, hparams={"dropout_rate": rate})[0]

    batched = jax.jit(jax.vmap(f))(rates)
    single = jax.jit(f)
    for i, r in enumerate(rates):
        np.testing.assert_array_equal(batched[i], single(r))
    # a traced rate of 0 is the eval computation (up to XLA's fusion choices)
    no_dropout = jax.jit(lambda: model.apply(params, state, x, train=False)[0])()
    np.testing.assert_allclose(batched[0], no_dropout, rtol=1e-6, atol=1e-6)


# --------------------------------------------------------------------------------------------
# initialization
# --------------------------------------------------------------------------------------------


def _expected_std(name: str, fan_in: int, fan_out: int, rows: int, cols: int) -> float:
    return {
        "standard_normal": 1.0,
        "uniform": 1.0 / math.sqrt(3 * fan_in),
        "gaussian": 1.0 / fan_in,
        "lecun_normal": 1.0 / math.sqrt(fan_in),
        "glorot_normal": math.sqrt(2.0 / (fan_in + fan_out)),
        "glorot_uniform": math.sqrt(2.0 / (fan_in + fan_out)),
        "he_normal": math.sqrt(2.0 / fan_in),
        "he_uniform": math.sqrt(2.0 / fan_in),
        "orthogonal": math.sqrt(min(rows, cols) / (rows * cols)),
    }[name]


INIT_NAMES = [
    "standard_normal",
    "uniform",
    "gaussian",
    "lecun_normal",
    "glorot_normal",
    "glorot_uniform",
    "he_normal",
    "he_uniform",
    "orthogonal",
]


@pytest.mark.parametrize("name", INIT_NAMES)
def test_first_layer_std_for_each_initializer(name):
    # dense: (256, 128), fan_in 256, fan_out 128
    p, _ = models.mlp([128], init=name).init(KEY, (256,))
    w = np.asarray(p["dense_0"]["kernel"], np.float64)
    np.testing.assert_allclose(w.std(), _expected_std(name, 256, 128, 256, 128), rtol=0.02)
    assert abs(w.mean()) < 0.05 * w.std()
    np.testing.assert_array_equal(p["dense_0"]["bias"], 0.0)
    if name not in ("he_normal", "glorot_uniform"):
        return  # the conv wiring is the same for every name; check it with two (fast tests)
    # conv (HWIO): (3, 3, 16, 64), fan_in 144, fan_out 576
    p, _ = models.cnn(widths=(64,), init=name).init(KEY, (6, 6, 16))
    w = np.asarray(p["conv_0"]["kernel"], np.float64)
    np.testing.assert_allclose(w.std(), _expected_std(name, 144, 576, 144, 64), rtol=0.03)
    np.testing.assert_array_equal(p["conv_0"]["bias"], 0.0)


def test_zeros_and_ones_initializers_and_callable_init():
    p, _ = models.mlp([4], init="zeros").init(KEY, (3,))
    np.testing.assert_array_equal(p["dense_0"]["kernel"], 0.0)
    p, _ = models.mlp([4], init="ones").init(KEY, (3,))
    np.testing.assert_array_equal(p["dense_0"]["kernel"], 1.0)
    model = models.mlp([4], init=jinit.he_normal(scale=0.5))
    p, _ = model.init(KEY, (3,))
    assert model.config["init"] == "he_normal"
    ref, _ = models.mlp([4]).init(KEY, (3,))
    np.testing.assert_allclose(p["dense_0"]["kernel"], 0.5 * ref["dense_0"]["kernel"], rtol=1e-6)


def test_init_scale_hparam_scales_kernels_and_vmaps():
    model = models.mlp([16])
    base, _ = model.init(KEY, (8,))
    scaled, _ = model.init(KEY, (8,), {"init_scale": jnp.float32(0.25)})
    np.testing.assert_array_equal(scaled["dense_0"]["kernel"], base["dense_0"]["kernel"] * jnp.float32(0.25))
    np.testing.assert_array_equal(scaled["dense_1"]["bias"], 0.0)
    scales = jnp.array([0.5, 1.0, 2.0], jnp.float32)
    batched, _ = jax.vmap(lambda s: model.init(KEY, (8,), {"init_scale": s}))(scales)
    for i, s in enumerate(scales):
        single, _ = model.init(KEY, (8,), {"init_scale": s})
        assert _leaves_equal(jax.tree_util.tree_map(lambda a: a[i], batched), single)


@pytest.mark.slow
@pytest.mark.parametrize("name", models.names())
def test_same_key_same_params(name):
    model, shape = small(name, norm="batch")
    p1, s1 = model.init(jax.random.key(3), shape)
    p2, s2 = model.init(jax.random.key(3), shape)
    assert _leaves_equal(p1, p2) and _leaves_equal(s1, s2)
    p3, _ = model.init(jax.random.key(4), shape)
    for a, b in zip(jax.tree_util.tree_leaves(p1), jax.tree_util.tree_leaves(p3)):
        if a.ndim >= 2:  # every kernel differs (biases and norm params are constants)
            assert not np.array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.slow
def test_vmapped_init_member_equals_standalone_init():
    model, shape = small("mlp")
    keys = jax.random.split(jax.random.key(5), 3)
    batched, _ = jax.vmap(lambda k: model.init(k, shape))(keys)
    for i in range(3):
        single, _ = model.init(keys[i], shape)
        assert _leaves_equal(jax.tree_util.tree_map(lambda a: a[i], batched), single)


def test_layers_get_independent_keys_by_index():
    """Adding a layer at the end keeps the earlier layers' initial weights (fold_in by layer index)."""
    short, _ = models.mlp([8]).init(KEY, (4,))
    long, _ = models.mlp([8, 8]).init(KEY, (4,))
    np.testing.assert_array_equal(short["dense_0"]["kernel"], long["dense_0"]["kernel"])


# --------------------------------------------------------------------------------------------
# captured activations (diagnostics)
# --------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_capture_returns_pre_and_post_activations_of_deep_mlp():
    depth = 12
    model = models.mlp([16] * depth, activation="tanh", init="standard_normal")
    params, state = model.init(KEY, (16,))
    x = jax.random.normal(jax.random.key(13), (32, 16))
    logits, _, acts = jax.jit(lambda p, x: model.apply(p, state, x, train=False, capture=True))(params, x)
    # 13 dense layers: zero-padded names, so sorted keys (jit returns sorted dicts) are depth order
    names = [f"dense_{i:02d}" for i in range(depth)]
    assert list(params) == names + ["dense_12"] and sorted(acts) == names and list(acts) == names
    np.testing.assert_allclose(acts["dense_00"]["pre"], x @ params["dense_00"]["kernel"], rtol=1e-5, atol=1e-5)
    for name in names:
        np.testing.assert_allclose(acts[name]["post"], jnp.tanh(acts[name]["pre"]), rtol=1e-6, atol=1e-6)
    plain, _ = jax.jit(lambda p, x: model.apply(p, state, x, train=False))(params, x)
    np.testing.assert_array_equal(logits, plain)
    # N(0,1) weights with fan_in 16 saturate tanh: most hidden units sit near +-1 (the guide's warning)
    assert float(jnp.mean(jnp.abs(acts["dense_11"]["post"]) > 0.9)) > 0.5


# --------------------------------------------------------------------------------------------
# registry, summary, config
# --------------------------------------------------------------------------------------------


def test_registry_summary_and_config_roundtrip():
    assert set(models.names()) == {"mlp", "cnn", "resnet", "inception", "cnn1d"}
    model = models.cnn(dropout_rate=0.25, norm="batch", widths=(4, 8))
    params, _ = model.init(KEY, (12, 12, 1))
    line = models.summary(model, params)
    assert line.startswith("cnn(") and "dropout_rate=0.25" in line and "norm='batch'" in line
    assert line.endswith(f"{models.count_params(params):,} params") and "\n" not in line
    rebuilt = models.get(model.name, **model.config)
    assert rebuilt.config == model.config
    assert _leaves_equal(rebuilt.init(KEY, (12, 12, 1)), model.init(KEY, (12, 12, 1)))
    with pytest.raises(ValueError, match="known names: mlp, cnn, resnet, inception, cnn1d"):
        models.get("vgg")


@pytest.mark.parametrize(
    "build,match",
    [
        (lambda: models.mlp([8], activation="swish"), "activation"),
        (lambda: models.mlp([8], norm="group"), "norm"),
        (lambda: models.mlp([8], init="kaiming"), "init"),
        (lambda: models.mlp([8], dropout_rate=1.0), "dropout_rate"),
        (lambda: models.mlp([8], dropout_rate=-0.1), "dropout_rate"),
        (lambda: models.mlp([0]), "widths"),
        (lambda: models.mlp([8], num_classes=0), "num_classes"),
        (lambda: models.cnn(widths=()), "widths"),
        (lambda: models.cnn(padding="FULL"), "padding"),
        (lambda: models.cnn(kernel_size=0), "kernel_size"),
        (lambda: models.cnn1d(kernel_sizes=(5, 3)), "kernel_sizes"),
        (lambda: models.resnet(blocks_per_stage=0), "blocks_per_stage"),
        (lambda: models.inception(blocks=((1, 2, 3),)), "blocks"),
        (lambda: models.cnn().init(KEY, (28,)), "input_shape"),
        (lambda: models.cnn().init(KEY, (4, 4, 1)), "too small"),
        (lambda: models.cnn1d().init(KEY, (2, 2, 2)), "input_shape"),
    ],
)
def test_bad_arguments_raise_value_error(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_bad_call_arguments():
    model = models.mlp([4])
    params, state = model.init(KEY, (6,))
    with pytest.raises(TypeError, match="dropout_rate"):
        models.mlp([4], dropout_rate=jnp.float32(0.1))
    with pytest.raises(TypeError, match="train"):
        model.apply(params, state, jnp.ones((2, 6)), train=jnp.array(True))
    with pytest.raises(TypeError, match="hparams"):
        model.apply(params, state, jnp.ones((2, 6)), train=False, hparams=[0.1])
    with pytest.raises(ValueError, match="expects inputs of 6 features"):
        model.apply(params, state, jnp.ones((2, 7)), train=False)
    with pytest.raises(ValueError, match="rate"):
        model.apply(params, state, jnp.ones((2, 6)), key=KEY, train=True, hparams={"dropout_rate": 1.5})


# --------------------------------------------------------------------------------------------
# short training runs on real data
# --------------------------------------------------------------------------------------------


def _train(model, x, y, *, steps: int, lr: float, batch: int, dropout_key=None):
    """Plain optax.adam on minibatches; returns the eval-mode loss on the training slice before / after."""
    if dropout_key is None:
        dropout_key = jax.random.key(21)
    params, state = model.init(jax.random.key(20), x.shape[1:])
    tx = optax.adam(lr)
    opt_state = tx.init(params)

    def loss(p, s, xb, yb, k):
        logits, ns = model.apply(p, s, xb, key=k, train=True)
        return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean(), ns

    @jax.jit
    def step(p, s, o, xb, yb, k):
        (_, ns), g = jax.value_and_grad(loss, has_aux=True)(p, s, xb, yb, k)
        upd, o = tx.update(g, o, p)
        return optax.apply_updates(p, upd), ns, o

    @jax.jit
    def eval_loss(p, s):
        logits, s_out = model.apply(p, s, x, train=False)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), s_out

    before, _ = eval_loss(params, state)
    state0, n = state, x.shape[0]
    for t in range(steps):
        i = (t * batch) % (n - batch + 1)
        params, state, opt_state = step(
            params, state, opt_state, x[i : i + batch], y[i : i + batch], jax.random.fold_in(dropout_key, t)
        )
    after, state_out = eval_loss(params, state)
    # batch norm: train mode moved every running statistic; eval mode returned the state unchanged
    assert jax.tree_util.tree_structure(state) == jax.tree_util.tree_structure(state0)
    for old, new in zip(jax.tree_util.tree_leaves(state0), jax.tree_util.tree_leaves(state)):
        assert not np.array_equal(np.asarray(old), np.asarray(new))
    assert _leaves_equal(state_out, state)
    return float(before), float(after)


@pytest.fixture(scope="module")
def digits16():
    ds = data.digits()
    x = jnp.asarray(ds.x_train[:256], jnp.float32) / 16.0
    x = jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)  # 8x8 -> 16x16 (nearest), so two 2x2 pools fit
    return x, jnp.asarray(ds.y_train[:256])


@pytest.mark.slow
@pytest.mark.parametrize(
    "model",
    [
        models.mlp([64], dropout_rate=0.2),
        models.cnn(widths=(8, 16), dropout_rate=0.25),
        models.resnet(stage_widths=(8, 16), blocks_per_stage=1),  # batch norm
        models.inception(stem_width=8, blocks=((4, 4, 8, 2, 4, 4), (8, 8, 8, 2, 4, 4))),
    ],
    ids=["mlp", "cnn", "resnet-bn", "inception"],
)
def test_training_on_digits_lowers_the_loss(model, digits16):
    """A few dozen jitted adam steps lower the loss (and move the BN statistics, checked in _train)."""
    x, y = digits16
    before, after = _train(model, x, y, steps=30, lr=1e-2, batch=64)
    assert after < 0.75 * before, (before, after)


@pytest.mark.slow
def test_cnn1d_training_on_mnist1d_lowers_the_loss():
    ds = data.mnist1d()
    x, y = jnp.asarray(ds.x_train[:512]), jnp.asarray(ds.y_train[:512])
    before, after = _train(models.cnn1d(dropout_rate=0.1), x, y, steps=40, lr=1e-2, batch=128)
    assert after < 0.8 * before, (before, after)


@pytest.mark.slow
def test_notebook_cnn_training_on_fashion_mnist_lowers_the_loss():
    try:
        ds = data.fashion_mnist()
    except FileNotFoundError as e:
        pytest.skip(f"Fashion-MNIST files not installed (apt-get install dataset-fashion-mnist): {e}")
    x = jnp.asarray(ds.x_train[:256], jnp.float32) / 255.0
    y = jnp.asarray(ds.y_train[:256])
    before, after = _train(models.cnn(dropout_rate=0.5), x, y, steps=20, lr=1e-3, batch=64)
    assert after < 0.7 * before, (before, after)
