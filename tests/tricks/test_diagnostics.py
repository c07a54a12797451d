"""Tests for jtricks.diagnostics: per-layer norms and statistics vs numpy, flags, jit, a deep tanh MLP."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jtricks import diagnostics as jdiag


def _tree() -> dict:
    k = jax.random.split(jax.random.key(0), 4)
    return {
        "dense_0": {"kernel": jax.random.normal(k[0], (4, 3)), "bias": jax.random.normal(k[1], (3,))},
        "dense_1": {"kernel": 0.1 * jax.random.normal(k[2], (3, 2)), "bias": jnp.array([1.0, -2.0])},
        "blocks": [{"w": jax.random.normal(k[3], (2, 2))}, {"w": jnp.full((2,), 3.0)}],
    }


def _np(x) -> np.ndarray:
    return np.asarray(x, np.float64)


def test_layer_names_are_slash_joined_paths() -> None:
    t = _tree()
    assert jdiag.layer_names(t) == [
        "blocks/0/w",
        "blocks/1/w",
        "dense_0/bias",
        "dense_0/kernel",
        "dense_1/bias",
        "dense_1/kernel",
    ]
    assert jdiag.layer_names(jnp.zeros(3)) == ["(root)"]
    with pytest.raises(ValueError, match="collide"):
        jdiag.layer_names({"a/b": jnp.zeros(1), "a": {"b": jnp.zeros(1)}})


def test_per_layer_norms_leaf_and_layer_grouping_against_numpy() -> None:
    t = _tree()
    leaf = jdiag.per_layer_norms(t)
    assert list(leaf) == jdiag.layer_names(t)
    np.testing.assert_allclose(leaf["dense_0/kernel"], np.linalg.norm(_np(t["dense_0"]["kernel"])), rtol=1e-6)
    np.testing.assert_allclose(leaf["blocks/1/w"], math.sqrt(18.0), rtol=1e-6)
    layer = jdiag.per_layer_norms(t, group="layer")
    assert list(layer) == ["blocks", "dense_0", "dense_1"]
    for name in layer:
        sub = jax.tree.leaves(t[name])
        np.testing.assert_allclose(layer[name], math.sqrt(sum((_np(x) ** 2).sum() for x in sub)), rtol=1e-6)
    every = math.sqrt(sum((_np(x) ** 2).sum() for x in jax.tree.leaves(t)))
    np.testing.assert_allclose(jdiag.global_norm(t), every, rtol=1e-6)
    reference = optax.tree.norm(t) if hasattr(optax, "tree") else optax.global_norm(t)
    np.testing.assert_allclose(jdiag.global_norm(t), reference, rtol=1e-6)
    with pytest.raises(ValueError, match="group"):
        jdiag.per_layer_norms(t, group="module")


def test_norms_neither_underflow_nor_overflow() -> None:
    x = np.array([3e-25, -4e-25, 1e-26], np.float32)
    y = np.array([3e25, 4e25], np.float32)
    t = {"tiny": jnp.asarray(x), "huge": jnp.asarray(y)}
    n = jdiag.per_layer_norms(t)
    np.testing.assert_allclose(n["tiny"], np.linalg.norm(_np(x)), rtol=1e-5)
    np.testing.assert_allclose(n["huge"], np.linalg.norm(_np(y)), rtol=1e-5)
    np.testing.assert_allclose(jdiag.global_norm(t), np.linalg.norm(np.concatenate([_np(x), _np(y)])), rtol=1e-5)
    s = jdiag.gradient_stats({"tiny": jnp.asarray(x)})["tiny"]
    np.testing.assert_allclose(s["std"], _np(x).std(), rtol=1e-4)
    assert float(jdiag.global_norm({"z": jnp.zeros(3)})) == 0.0


def test_gradient_and_param_stats_against_numpy() -> None:
    t = _tree()
    t["dense_1"]["bias"] = jnp.array([jnp.nan, -2.0])
    for fn in (jdiag.gradient_stats, jdiag.param_stats):
        stats = fn(t)
        assert list(stats) == ["blocks", "dense_0", "dense_1", "(global)"]
        for name in ("blocks", "dense_0"):
            flat = np.concatenate([_np(x).ravel() for x in jax.tree.leaves(t[name])])
            row = stats[name]
            np.testing.assert_allclose(row["norm"], np.linalg.norm(flat), rtol=1e-6)
            np.testing.assert_allclose(row["rms"], np.sqrt(np.mean(flat**2)), rtol=1e-6)
            np.testing.assert_allclose(row["mean"], flat.mean(), rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(row["std"], flat.std(), rtol=1e-5)
            np.testing.assert_allclose(row["max_abs"], np.abs(flat).max(), rtol=1e-6)
            assert int(row["nonfinite"]) == 0
        assert int(stats["dense_1"]["nonfinite"]) == 1 and int(stats["(global)"]["nonfinite"]) == 1
        assert math.isnan(float(stats["dense_1"]["norm"])) and math.isnan(float(stats["(global)"]["norm"]))
    leaf_stats = jdiag.param_stats(_tree(), group="leaf")
    assert list(leaf_stats)[:-1] == jdiag.layer_names(_tree())
    np.testing.assert_allclose(leaf_stats["(global)"]["norm"], jdiag.global_norm(_tree()), rtol=1e-6)


def test_stats_are_jittable_and_vmappable() -> None:
    t = _tree()
    eager = jdiag.gradient_stats(t)
    jitted = jax.jit(jdiag.gradient_stats)(t)
    for a, b in zip(jax.tree.leaves(eager), jax.tree.leaves(jitted)):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    stacked = jax.tree.map(lambda x: jnp.stack([x, 2 * x]), t)
    pop = jax.jit(jax.vmap(jdiag.per_layer_norms))(stacked)
    for name, v in jdiag.per_layer_norms(t).items():
        np.testing.assert_allclose(pop[name], [v, 2 * v], rtol=1e-6)
    acts = {"h": jnp.ones((4, 3))}
    np.testing.assert_allclose(jax.jit(jdiag.activation_stats)(acts)["h"]["mean"], 1.0)


def test_update_ratios_against_numpy() -> None:
    params = _tree()
    updates = jax.tree.map(lambda x: -1e-3 * x + 1e-4, params)
    ratios = jdiag.update_ratios(updates, params)
    for name in ("blocks", "dense_0", "dense_1"):
        u = np.concatenate([_np(x).ravel() for x in jax.tree.leaves(updates[name])])
        p = np.concatenate([_np(x).ravel() for x in jax.tree.leaves(params[name])])
        np.testing.assert_allclose(ratios[name], np.linalg.norm(u) / (np.linalg.norm(p) + 1e-12), rtol=1e-5)
    zero = jdiag.update_ratios({"w": jnp.ones(2)}, {"w": jnp.zeros(2)}, eps=1e-3)
    np.testing.assert_allclose(zero["w"], math.sqrt(2) / 1e-3, rtol=1e-6)
    with pytest.raises(ValueError, match="structure"):
        jdiag.update_ratios({"w": jnp.ones(2)}, {"v": jnp.ones(2)})
    with pytest.raises(ValueError, match="eps"):
        jdiag.update_ratios(params, params, eps=-1.0)


def test_activation_stats_against_numpy() -> None:
    pre = np.array(jax.random.normal(jax.random.key(4), (8, 5, 6)))
    pre[..., 2] = -np.abs(pre[..., 2])  # unit 2 is a dead ReLU
    relu = np.maximum(pre, 0.0)
    tanh = np.tanh(3 * pre)
    stats = jdiag.activation_stats({"relu": jnp.asarray(relu), "tanh": jnp.asarray(tanh)})
    for name, a in (("relu", relu), ("tanh", tanh)):
        row = stats[name]
        a64 = _np(a)
        np.testing.assert_allclose(row["mean"], a64.mean(), rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(row["std"], a64.std(), rtol=1e-5)
        np.testing.assert_allclose(row["frac_zero"], (a64 == 0).mean(), rtol=1e-6)
        np.testing.assert_allclose(row["frac_dead"], (a64 == 0).reshape(-1, 6).all(0).mean(), rtol=1e-6)
        np.testing.assert_allclose(row["max_abs"], np.abs(a64).max(), rtol=1e-6)
    assert float(stats["relu"]["frac_dead"]) == pytest.approx(1 / 6)
    assert float(stats["tanh"]["frac_dead"]) == 0.0
    with pytest.raises(TypeError, match="mapping"):
        jdiag.activation_stats([jnp.ones(3)])


def test_flags_including_nan_and_inf() -> None:
    norms = {
        "a": 1.0,
        "b": 1e-9,
        "c": 1e5,
        "d": float("nan"),
        "e": float("inf"),
        "f": jnp.float32(-np.inf),
        "g": 0.0,
    }
    expected = {
        "a": "ok",
        "b": "vanishing",
        "c": "exploding",
        "d": "exploding",
        "e": "exploding",
        "f": "exploding",
        "g": "vanishing",
    }
    assert jdiag.flag_layers(norms) == expected
    codes = jax.jit(jdiag.flag_codes)(norms)
    assert {k: jdiag.FLAG_NAMES[int(v)] for k, v in codes.items()} == expected
    # stat rows (the output of gradient_stats) are read through their "norm"
    assert jdiag.flag_layers({"x": {"norm": 2.0, "max_abs": 1e9}}, vanishing=3.0, exploding=10.0) == {"x": "vanishing"}
    # batched norms (a population) with traced thresholds
    batched = {"x": jnp.array([1e-9, 1.0, 1e9])}
    out = jax.jit(jax.vmap(lambda n, lo: jdiag.flag_codes(n, vanishing=lo, exploding=1e4), in_axes=(0, 0)))(
        batched, jnp.array([1e-10, 2.0, 1e-7])
    )
    assert [int(c) for c in out["x"]] == [jdiag.FLAG_OK, jdiag.FLAG_VANISHING, jdiag.FLAG_EXPLODING]
    with pytest.raises(ValueError, match="scalar"):
        jdiag.flag_layers(batched)
    with pytest.raises(ValueError, match="vanishing"):
        jdiag.flag_layers(norms, vanishing=1.0, exploding=0.5)
    with pytest.raises(ValueError, match="exploding"):
        jdiag.flag_codes(norms, exploding=-1.0)


def test_format_table() -> None:
    stats = jdiag.gradient_stats({"dense_0": {"kernel": jnp.full((2, 2), 0.5)}, "dense_1": {"kernel": jnp.ones(3)}})
    table = jdiag.format_table(stats)
    lines = table.splitlines()
    assert lines[0].split() == ["name", "norm", "rms", "mean", "std", "max_abs", "nonfinite"]
    assert set(lines[1]) <= {"-", " "}
    assert len(lines) == 2 + 3
    assert lines[2].split() == ["dense_0", "1", "0.5", "0.5", "0", "0.5", "0"]
    assert lines[3].split()[:2] == ["dense_1", f"{math.sqrt(3):.4g}"]
    assert lines[4].split()[0] == jdiag.GLOBAL_ROW
    # jit returns sorted dicts; the table restores the column order and puts "(global)" last
    jitted = jdiag.format_table(
        jax.jit(jdiag.gradient_stats)(
            {"dense_0": {"kernel": jnp.full((2, 2), 0.5)}, "dense_1": {"kernel": jnp.ones(3)}}
        )
    )
    assert jitted == table
    flat = jdiag.format_table(jdiag.flag_layers({"a": 1.0, "b": 1e-9}))
    assert [line.split() for line in flat.splitlines()] == [
        ["name", "value"],
        ["-" * 4, "-" * 9],
        ["a", "ok"],
        ["b", "vanishing"],
    ]
    assert len({len(line) for line in flat.splitlines()}) == 1  # values right-aligned in fixed width
    assert jdiag.format_table({"x": 1.23456789}, precision=3).splitlines()[2].split() == ["x", "1.23"]
    with pytest.raises(ValueError, match="scalar"):
        jdiag.format_table({"x": jnp.ones(2)})


# ------------------------------------------------------------------------------------------ deep tanh MLP

DEPTH, WIDTH = 20, 32


def _mlp(key: jax.Array, std: float) -> dict:
    keys = jax.random.split(key, DEPTH)
    return {
        f"dense_{i:02d}": {"kernel": std * jax.random.normal(keys[i], (WIDTH, WIDTH)), "bias": jnp.zeros(WIDTH)}
        for i in range(DEPTH)
    }


def _loss(params: dict, x: jax.Array) -> jax.Array:
    h = x
    for i in range(DEPTH):
        layer = params[f"dense_{i:02d}"]
        h = jnp.tanh(h @ layer["kernel"] + layer["bias"])
    return jnp.mean(jnp.sum(h, axis=-1))  # a linear read-out: the output gradient is O(1)


def test_deep_tanh_mlp_exploding_vs_vanishing_gradients() -> None:
    """N(0,1) weights (chaotic, saturated tanh) explode towards the input; std 0.1 weights vanish."""
    x = jax.random.normal(jax.random.key(1), (16, WIDTH))
    grad = jax.jit(jax.grad(_loss))
    big = jdiag.per_layer_norms(grad(_mlp(jax.random.key(0), 1.0), x), group="layer")
    small = jdiag.per_layer_norms(grad(_mlp(jax.random.key(0), 0.1), x), group="layer")
    first, last = "dense_00", f"dense_{DEPTH - 1:02d}"
    assert float(big[first]) / float(small[first]) > 1e3
    assert float(big[first]) / float(big[last]) > 1e2  # grows towards the input: exploding
    assert float(small[first]) / float(small[last]) < 1e-2  # shrinks towards the input: vanishing
    assert jdiag.flag_layers(big, vanishing=1e-3, exploding=1e3)[first] == "exploding"
    assert jdiag.flag_layers(small, vanishing=1e-3, exploding=1e3)[first] == "vanishing"
    assert jdiag.flag_layers(big, vanishing=1e-3, exploding=1e3)[last] == "ok"
    assert jdiag.flag_layers(small, vanishing=1e-3, exploding=1e3)[last] == "ok"
