"""Gradients: every custom VJP against finite differences, the normalization layers against flax.

``jax.test_util.check_grads`` compares reverse-mode derivatives with central finite differences; it runs
in float64 (``jax.enable_x64``) so that the default tolerance of that check (about 1e-5 relative for
float64) is meaningful. The normalization layers' gradients (input and parameters) are compared with
``flax.linen``'s layers with the same parameters at ``rtol=1e-4, atol=1e-5`` (float32).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from jtricks import norm, numerics


def _x64(seed: int, shape: tuple[int, ...]) -> jax.Array:
    return jax.random.normal(jax.random.key(seed), shape, jnp.float64)


CUSTOM_VJPS: dict[str, tuple[Callable[..., jax.Array], Callable[[], tuple[jax.Array, ...]]]] = {
    "bias_add": (numerics.bias_add, lambda: (_x64(0, (3, 4, 5)), _x64(1, (5,)))),
    "scale_shift": (numerics.scale_shift, lambda: (_x64(0, (6, 5)), _x64(1, (5,)), _x64(2, (5,)))),
    "pairwise_sum_all": (numerics.pairwise_sum, lambda: (_x64(0, (7, 3)),)),
    "pairwise_sum_axis0": (lambda x: numerics.pairwise_sum(x, 0), lambda: (_x64(0, (5, 3, 2)),)),
    "pairwise_sum_axes": (lambda x: numerics.pairwise_sum(x, (0, 2), keepdims=True), lambda: (_x64(0, (3, 4, 5)),)),
    "mean": (lambda x: numerics.mean(x, (1,)), lambda: (_x64(0, (4, 9)),)),
    "global_norm": (lambda a, b: numerics.global_norm({"a": a, "b": [b]}), lambda: (_x64(0, (3, 3)), _x64(1, (4,)))),
    "log_softmax": (numerics.log_softmax, lambda: (_x64(0, (4, 6)),)),
    "softmax_cross_entropy": (
        lambda z: numerics.softmax_cross_entropy(z, jnp.array([0, 3, 5, 1])),
        lambda: (_x64(0, (4, 6)),),
    ),
}


@pytest.mark.parametrize("name", list(CUSTOM_VJPS))
def test_custom_vjps_and_pairwise_reductions_against_finite_differences(name: str) -> None:
    fn, make_args = CUSTOM_VJPS[name]
    with jax.enable_x64(True):
        args = make_args()
        assert all(a.dtype == jnp.float64 for a in args)
        check_grads(jax.jit(fn), args, order=1, modes=("rev",))


def test_custom_vjp_gradients_equal_plain_autodiff_in_float32() -> None:
    """The pairwise parameter gradients are the batch sums autodiff of ``x + b`` / ``x * s + t`` gives."""
    x, g = jax.random.normal(jax.random.key(0), (2, 7, 5)), jax.random.normal(jax.random.key(1), (2, 7, 5))
    b, s = jax.random.normal(jax.random.key(2), (5,)), jax.random.normal(jax.random.key(3), (5,))
    ours = jax.vjp(numerics.bias_add, x, b)[1](g)
    ref = jax.vjp(lambda x, b: x + b, x, b)[1](g)
    jax.tree_util.tree_map(lambda a, r: np.testing.assert_allclose(a, r, rtol=1e-5, atol=1e-6), ours, ref)
    ours = jax.vjp(numerics.scale_shift, x, s, b)[1](g)
    ref = jax.vjp(lambda x, s, b: x * s + b, x, s, b)[1](g)
    jax.tree_util.tree_map(lambda a, r: np.testing.assert_allclose(a, r, rtol=1e-5, atol=1e-5), ours, ref)


def _batch_norm(x, p):
    return norm.batch_norm(x, p, {"mean": jnp.zeros(x.shape[-1]), "var": jnp.ones(x.shape[-1])}, train=True)[0]


NORMS: dict[str, tuple[Callable[..., jax.Array], nn.Module, tuple[int, ...]]] = {
    "batch_norm": (
        _batch_norm,
        nn.BatchNorm(use_running_average=False, epsilon=1e-5, use_fast_variance=False),
        (6, 3, 3, 4),
    ),
    "layer_norm": (lambda x, p: norm.layer_norm(x, p), nn.LayerNorm(epsilon=1e-5, use_fast_variance=False), (5, 3, 8)),
    "rms_norm": (lambda x, p: norm.rms_norm(x, p), nn.RMSNorm(epsilon=1e-6), (5, 8)),
    "group_norm": (
        lambda x, p: norm.group_norm(x, p, num_groups=2),
        nn.GroupNorm(num_groups=2, epsilon=1e-5, use_fast_variance=False),
        (3, 4, 4, 6),
    ),
}


@pytest.mark.parametrize("name", list(NORMS))
def test_normalization_gradients_match_flax(name: str) -> None:
    fn, layer, shape = NORMS[name]
    x = 1.5 + 2.0 * jax.random.normal(jax.random.key(0), shape)
    variables = layer.init(jax.random.key(1), x)
    params: dict[str, Any] = jax.tree_util.tree_map(
        lambda p: p + 0.3 * jax.random.normal(jax.random.key(2), p.shape), dict(variables["params"])
    )
    w = jax.random.normal(jax.random.key(3), shape)  # a loss whose gradient is not symmetric in x

    def ours(x, p):
        return jnp.sum(w * jnp.sin(fn(x, p)))

    def theirs(x, p):
        y = (
            layer.apply({**variables, "params": p}, x, mutable=["batch_stats"])[0]
            if name == "batch_norm"
            else layer.apply({"params": p}, x)
        )
        return jnp.sum(w * jnp.sin(y))

    v_o, g_o = jax.jit(jax.value_and_grad(ours, argnums=(0, 1)))(x, params)
    v_r, g_r = jax.jit(jax.value_and_grad(theirs, argnums=(0, 1)))(x, params)
    np.testing.assert_allclose(v_o, v_r, rtol=1e-4, atol=1e-4)
    assert jax.tree_util.tree_structure(g_o) == jax.tree_util.tree_structure(g_r)
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5), g_o, g_r)
