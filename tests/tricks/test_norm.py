"""Tests for jtricks.norm against numpy references and flax.linen layers."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jtricks import norm

# float32 computations vs float64 numpy references
ATOL = 2e-5
RTOL = 2e-5

# jitted once per shape: one compilation instead of one per primitive (keeps the file fast)
bn = jax.jit(norm.batch_norm, static_argnames=("train", "axis_name"))


def _normal(seed: int, shape: tuple[int, ...], loc: float = 0.0, scale: float = 1.0) -> jax.Array:
    """Fixed-seed test data from numpy (no per-shape PRNG compilations)."""
    return jnp.asarray(np.random.default_rng(seed).normal(loc, scale, shape), jnp.float32)


def _random_bn(seed: int, shape: tuple[int, ...]):
    """Input with a non-zero mean and non-unit scale, non-trivial params and running state."""
    c = shape[-1]
    rng = np.random.default_rng(seed)

    def f32(a):
        return jnp.asarray(a, jnp.float32)

    x = f32(rng.normal(2.0, 3.0, shape))
    params = {"scale": f32(rng.normal(1.0, 0.5, c)), "bias": f32(rng.normal(0.0, 1.0, c))}
    state = {"mean": f32(rng.normal(0.0, 1.0, c)), "var": f32(rng.uniform(0.5, 2.0, c))}
    return x, params, state


def _np_batch_norm(x, params, state, *, train, momentum, eps):
    """float64 numpy reference: stats over all axes but the last, biased variance."""
    x = np.asarray(x, np.float64)
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    s = {k: np.asarray(v, np.float64) for k, v in state.items()}
    axes = tuple(range(x.ndim - 1))
    if train:
        mean, var = x.mean(axis=axes), x.var(axis=axes)  # ddof=0: biased
        new = {"mean": momentum * s["mean"] + (1 - momentum) * mean, "var": momentum * s["var"] + (1 - momentum) * var}
    else:
        mean, var, new = s["mean"], s["var"], s
    y = (x - mean) / np.sqrt(var + eps) * p["scale"] + p["bias"]
    return y, new


def test_batch_norm_init() -> None:
    params, state = norm.batch_norm_init(7)
    assert set(params) == {"scale", "bias"} and set(state) == {"mean", "var"}
    np.testing.assert_array_equal(params["scale"], np.ones(7))
    np.testing.assert_array_equal(params["bias"], np.zeros(7))
    np.testing.assert_array_equal(state["mean"], np.zeros(7))
    np.testing.assert_array_equal(state["var"], np.ones(7))
    assert norm.batch_norm_init(3, jnp.bfloat16)[0]["scale"].dtype == jnp.bfloat16
    with pytest.raises(ValueError, match="num_features"):
        norm.batch_norm_init(0)


@pytest.mark.parametrize("shape", [(6, 4, 4, 5), (16, 6)], ids=["NHWC", "NC"])
@pytest.mark.parametrize("momentum, eps", [(0.9, 1e-5), (0.5, 1e-2)])
def test_batch_norm_train_and_eval_vs_numpy(shape, momentum, eps) -> None:
    x, params, state = _random_bn(1, shape)
    y, new = bn(x, params, state, train=True, momentum=momentum, eps=eps)
    y_ref, new_ref = _np_batch_norm(x, params, state, train=True, momentum=momentum, eps=eps)
    np.testing.assert_allclose(y, y_ref, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(new["mean"], new_ref["mean"], rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(new["var"], new_ref["var"], rtol=RTOL, atol=ATOL)
    # train output has per-feature mean bias and std |scale| (up to eps)
    yy = np.asarray(y, np.float64).reshape(-1, shape[-1])
    np.testing.assert_allclose(yy.mean(0), params["bias"], atol=1e-4)

    y_eval, _ = bn(x, params, new, train=False, momentum=momentum, eps=eps)
    y_eval_ref, _ = _np_batch_norm(x, params, new, train=False, momentum=momentum, eps=eps)
    np.testing.assert_allclose(y_eval, y_eval_ref, rtol=RTOL, atol=ATOL)
    _, same = norm.batch_norm(x, params, new, train=False)
    assert same is new  # eval returns the state unchanged


@pytest.mark.parametrize("shape", [(6, 4, 4, 5), (16, 6)], ids=["NHWC", "NC"])
@pytest.mark.parametrize("train", [True, False])
def test_batch_norm_vs_flax(shape, train) -> None:
    momentum, eps = 0.8, 1e-3
    x, params, state = _random_bn(2, shape)
    layer = nn.BatchNorm(use_running_average=not train, momentum=momentum, epsilon=eps)
    variables = {"params": params, "batch_stats": state}
    y_ref, upd = jax.jit(lambda v, x: layer.apply(v, x, mutable=["batch_stats"]))(variables, x)
    y, new = bn(x, params, state, train=train, momentum=momentum, eps=eps)
    np.testing.assert_allclose(y, y_ref, rtol=RTOL, atol=ATOL)
    for k in ("mean", "var"):
        np.testing.assert_allclose(new[k], upd["batch_stats"][k], rtol=RTOL, atol=ATOL)

    # gradients w.r.t. input and parameters agree with flax's
    def loss_ours(x, params):
        y, _ = norm.batch_norm(x, params, state, train=train, momentum=momentum, eps=eps)
        return jnp.sum(jnp.sin(y))

    def loss_flax(x, params):
        y, _ = layer.apply({"params": params, "batch_stats": state}, x, mutable=["batch_stats"])
        return jnp.sum(jnp.sin(y))

    g = jax.jit(jax.grad(loss_ours, argnums=(0, 1)))(x, params)
    g_ref = jax.jit(jax.grad(loss_flax, argnums=(0, 1)))(x, params)
    for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(g_ref)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_batch_norm_jit_and_stop_gradient() -> None:
    x, params, state = _random_bn(3, (8, 3, 3, 4))
    y, new = bn(x, params, state, train=True)
    y2, new2 = norm.batch_norm(x, params, state, train=True)  # eager
    np.testing.assert_allclose(y, y2, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(new["var"], new2["var"], rtol=1e-6)
    # the running statistics carry no gradient, the output does
    g_state = jax.jit(jax.grad(lambda x: jnp.sum(norm.batch_norm(x, params, state, train=True)[1]["mean"])))(x)
    np.testing.assert_array_equal(g_state, np.zeros_like(x))
    g_y = jax.jit(jax.grad(lambda x: jnp.sum(norm.batch_norm(x, params, state, train=True)[0] ** 3)))(x)
    assert np.all(np.isfinite(g_y)) and np.abs(g_y).max() > 0


def test_batch_norm_axis_name_equals_concatenated_batch() -> None:
    x, params, state = _random_bn(4, (8, 3, 3, 5))
    shards = x.reshape(4, 2, 3, 3, 5)
    y_sh, new_sh = jax.jit(
        jax.vmap(lambda xs: norm.batch_norm(xs, params, state, train=True, axis_name="b"), axis_name="b")
    )(shards)
    y, new = bn(x, params, state, train=True)
    np.testing.assert_allclose(y_sh.reshape(x.shape), y, rtol=1e-5, atol=1e-5)
    for k in ("mean", "var"):
        for i in range(4):  # every shard holds the same, global, statistics
            np.testing.assert_allclose(new_sh[k][i], new[k], rtol=1e-5, atol=1e-6)
    # without axis_name each shard normalizes with its own statistics: different
    y_local, _ = jax.jit(jax.vmap(lambda xs: norm.batch_norm(xs, params, state, train=True)))(shards)
    assert np.abs(np.asarray(y_local).reshape(x.shape) - np.asarray(y)).max() > 1e-2


def test_batch_norm_population_vmap_over_hparams() -> None:
    """A vmapped population over (momentum, eps) matches standalone runs (to 1 ulp: XLA may reorder)."""
    x, params, state = _random_bn(5, (8, 3, 3, 4))
    ms, es = [0.0, 0.5, 0.9, 0.99], [1e-5, 1e-3, 1e-1, 1.0]

    def f(m, e):
        return norm.batch_norm(x, params, state, train=True, momentum=m, eps=e)

    y_pop, s_pop = jax.jit(jax.vmap(f))(jnp.array(ms), jnp.array(es))
    for i, (m, e) in enumerate(zip(ms, es)):
        y, s = jax.jit(lambda: f(m, e))()
        np.testing.assert_allclose(y_pop[i], y, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(s_pop["var"][i], s["var"], rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(s_pop["mean"][i], s["mean"], rtol=1e-6, atol=1e-6)


def test_batch_norm_errors() -> None:
    x, params, state = _random_bn(6, (4, 5))
    with pytest.raises(ValueError) as e:
        norm.batch_norm(jnp.ones((4, 3, 3, 6)), params, state, train=True)
    assert "(4, 3, 3, 6)" in str(e.value) and "(5,)" in str(e.value)
    _, state6 = norm.batch_norm_init(6)
    with pytest.raises(ValueError, match=r"state\[\"mean\"\]"):
        norm.batch_norm(x, params, state6, train=True)
    with pytest.raises(ValueError, match="momentum"):
        norm.batch_norm(x, params, state, train=True, momentum=1.5)
    with pytest.raises(ValueError, match="eps"):
        norm.batch_norm(x, params, state, train=True, eps=-1.0)
    with pytest.raises(TypeError, match="train"):
        norm.batch_norm(x, params, state, train=jnp.array(True))


def test_batch_norm_low_precision_dtype() -> None:
    x, params, state = _random_bn(7, (8, 4))
    y, new = bn(x.astype(jnp.bfloat16), params, state, train=True)
    assert y.dtype == jnp.bfloat16 and new["mean"].dtype == jnp.float32
    y32, _ = bn(x.astype(jnp.bfloat16).astype(jnp.float32), params, state, train=True)
    np.testing.assert_allclose(np.asarray(y, np.float32), y32, rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize("shape", [(6, 10), (2, 3, 4, 8)])
def test_layer_norm_vs_flax_and_numpy(shape) -> None:
    c = shape[-1]
    x = _normal(8, shape, -1.0, 2.0)
    params = {"scale": _normal(81, (c,)), "bias": _normal(82, (c,))}
    y = jax.jit(norm.layer_norm)(x, params)
    y_ref = jax.jit(nn.LayerNorm(epsilon=1e-5).apply)({"params": params}, x)
    np.testing.assert_allclose(y, y_ref, rtol=RTOL, atol=ATOL)
    xn = np.asarray(x, np.float64)
    mu, var = xn.mean(-1, keepdims=True), xn.var(-1, keepdims=True)
    np.testing.assert_allclose(
        y, (xn - mu) / np.sqrt(var + 1e-5) * params["scale"] + params["bias"], rtol=RTOL, atol=ATOL
    )
    p0, s0 = norm.layer_norm_init(c)
    assert s0 == {}
    np.testing.assert_allclose(np.asarray(jax.jit(norm.layer_norm)(x, p0)).std(-1), 1.0, rtol=1e-3)
    with pytest.raises(ValueError, match="features"):
        norm.layer_norm(x, norm.layer_norm_init(c + 1)[0])


def test_rms_norm_vs_flax() -> None:
    x = _normal(9, (5, 3, 12), 0.5)
    params = {"scale": _normal(91, (12,))}
    np.testing.assert_allclose(
        jax.jit(norm.rms_norm)(x, params),
        jax.jit(nn.RMSNorm(epsilon=1e-6).apply)({"params": params}, x),
        rtol=RTOL,
        atol=ATOL,
    )
    p0, s0 = norm.rms_norm_init(12)
    np.testing.assert_array_equal(p0["scale"], np.ones(12))
    assert s0 == {}


@pytest.mark.parametrize("shape, groups", [((4, 5, 5, 8), 2), ((4, 6, 8), 4), ((4, 8), 1)])
def test_group_norm_vs_flax(shape, groups) -> None:
    c = shape[-1]
    x = _normal(10, shape, 1.0, 2.0)
    params = {"scale": _normal(101, (c,)), "bias": _normal(102, (c,))}
    y_ref = jax.jit(nn.GroupNorm(num_groups=groups, epsilon=1e-5).apply)({"params": params}, x)
    y = jax.jit(norm.group_norm, static_argnames="num_groups")(x, params, num_groups=groups)
    np.testing.assert_allclose(y, y_ref, rtol=RTOL, atol=ATOL)
    with pytest.raises(ValueError, match="num_groups"):
        norm.group_norm(x, norm.group_norm_init(c)[0], num_groups=3)


@pytest.mark.parametrize("shape", [(10, 6), (3, 3, 4, 5)], ids=["dense", "conv_hwio"])
def test_weight_norm(shape) -> None:
    w = _normal(11, shape)
    wn, ws = norm.weight_norm_init(w)
    assert ws == {}
    assert set(wn) == {"v", "g"} and wn["g"].shape == (shape[-1],)
    wnorm = jax.jit(norm.weight_norm)
    np.testing.assert_allclose(wnorm(wn["v"], wn["g"]), w, rtol=1e-5, atol=1e-6)
    g = jnp.linspace(0.5, 3.0, shape[-1])
    out = wnorm(w, g)
    col_norms = np.sqrt((np.asarray(out, np.float64) ** 2).reshape(-1, shape[-1]).sum(0))
    np.testing.assert_allclose(col_norms, g, rtol=1e-5)
    wf = np.asarray(w, np.float64).reshape(-1, shape[-1])
    ref = (np.asarray(g) * wf / np.linalg.norm(wf, axis=0)).reshape(shape)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)
    # direction is invariant to the scale of v
    np.testing.assert_allclose(wnorm(3.0 * w, g), out, rtol=1e-5, atol=1e-6)
    # jit + grad: the gradient w.r.t. v is orthogonal to v (per output unit)
    gv = jax.jit(jax.grad(lambda v: jnp.sum(jnp.sin(norm.weight_norm(v, g)))))(w)
    dots = (np.asarray(gv, np.float64) * np.asarray(w, np.float64)).reshape(-1, shape[-1]).sum(0)
    np.testing.assert_allclose(dots, 0.0, atol=1e-4)
    with pytest.raises(ValueError, match="g.shape"):
        norm.weight_norm(w, jnp.ones(shape[-1] + 1))
    with pytest.raises(ValueError, match="kernel"):
        norm.weight_norm_init(jnp.ones(4))
