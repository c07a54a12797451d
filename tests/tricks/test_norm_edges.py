"""Edge cases of jtricks.norm: the ``eps`` guards, the defaults, keyword-only arguments and the error
messages (numpy references; exact where the value is exact)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from jtricks import norm


def test_eps_guards_constant_inputs_and_zero_columns() -> None:
    """Zero variance / an all-zero kernel column give finite outputs: ``eps`` is added, never subtracted."""
    x = jnp.full((2, 3, 4), 2.5)
    p = {"scale": jnp.full((4,), 3.0), "bias": jnp.arange(4.0)}
    np.testing.assert_array_equal(norm.layer_norm(x, p), jnp.broadcast_to(p["bias"], x.shape))
    np.testing.assert_array_equal(norm.group_norm(x, p, num_groups=2), jnp.broadcast_to(p["bias"], x.shape))
    y, _ = norm.batch_norm(x, p, {"mean": jnp.zeros(4), "var": jnp.ones(4)}, train=True)
    np.testing.assert_array_equal(y, jnp.broadcast_to(p["bias"], x.shape))
    np.testing.assert_array_equal(norm.rms_norm(jnp.zeros((2, 4)), {"scale": jnp.ones(4)}), 0.0)
    v = jnp.zeros((3, 2)).at[:, 0].set(1.0)  # column 1 is all zeros
    w = norm.weight_norm(v, jnp.array([2.0, 5.0]))
    np.testing.assert_allclose(w[:, 0], 2.0 / np.sqrt(3.0), rtol=1e-6)
    np.testing.assert_array_equal(w[:, 1], 0.0)


def test_default_eps_values() -> None:
    """Defaults: batch / layer / group norm ``eps=1e-5``, RMS norm ``1e-6`` (tiny variances show them)."""
    x = np.random.default_rng(0).normal(size=(8, 4)).astype(np.float32) * 3e-3
    xc = x - x.mean(0)
    p = {"scale": jnp.ones(4), "bias": jnp.zeros(4)}
    ref = xc / np.sqrt((xc**2).mean(0) + 1e-5)
    y, _ = norm.batch_norm(jnp.asarray(x), p, {"mean": jnp.zeros(4), "var": jnp.ones(4)}, train=True)
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-6)
    xr = x - x.mean(-1, keepdims=True)
    np.testing.assert_allclose(
        norm.layer_norm(jnp.asarray(x), p), xr / np.sqrt((xr**2).mean(-1, keepdims=True) + 1e-5), rtol=1e-4, atol=1e-6
    )
    ref_rms = x / np.sqrt((x**2).mean(-1, keepdims=True) + 1e-6)
    np.testing.assert_allclose(norm.rms_norm(jnp.asarray(x), {"scale": jnp.ones(4)}), ref_rms, rtol=1e-4, atol=1e-6)


def test_group_norm_default_groups_is_32() -> None:
    x = jnp.asarray(np.random.default_rng(1).normal(size=(2, 3, 64)), jnp.float32)
    p = norm.group_norm_init(64)[0]
    np.testing.assert_array_equal(norm.group_norm(x, p), norm.group_norm(x, p, num_groups=32))
    with pytest.raises(ValueError, match="num_groups"):
        norm.group_norm(jnp.zeros((2, 3, 48)), norm.group_norm_init(48)[0])  # 32 does not divide 48


def test_options_are_keyword_only() -> None:
    x, p = jnp.ones((2, 4)), {"scale": jnp.ones(4), "bias": jnp.zeros(4)}
    s = {"mean": jnp.zeros(4), "var": jnp.ones(4)}
    for call in (
        lambda: norm.layer_norm(x, p, 1e-3),
        lambda: norm.rms_norm(x, p, 1e-3),
        lambda: norm.weight_norm(jnp.ones((3, 2)), jnp.ones(2), 1e-3),
        lambda: norm.batch_norm(x, p, s, True),
        lambda: norm.group_norm(x, p, 2),
    ):
        with pytest.raises(TypeError):
            call()


def test_errors_name_the_problem() -> None:
    with pytest.raises(ValueError, match="num_groups"):
        norm.group_norm(jnp.ones((2, 4)), norm.group_norm_init(4)[0], num_groups=0)
    for bad in (2.0, True):  # a float or a bool is not a group count, even when it would divide C
        with pytest.raises(TypeError, match="num_groups"):
            norm.group_norm(jnp.ones((2, 4)), norm.group_norm_init(4)[0], num_groups=bad)
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        norm.group_norm(jnp.ones((4,)), norm.group_norm_init(4)[0], num_groups=1)
    with pytest.raises(ValueError, match="must be a kernel"):
        norm.weight_norm(jnp.ones((4,)), jnp.ones((4,)))
    with pytest.raises(
        ValueError, match=r"v.shape \(3, 4, 5\) has 5 output units but g.shape is \(2,\); expected g.shape == \(5,\)"
    ):
        norm.weight_norm(jnp.ones((3, 4, 5)), jnp.ones((2,)))
