"""Property tests (hypothesis): shapes, dtypes, rates and pytrees of any structure.

Each property runs on 10 generated cases (derandomized) (few: every new shape compiles), against
numpy in float64: sums and norms to ``rtol=1e-5`` (float32 rounding of sums of a few dozen terms).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from jtricks import dropout as jdropout
from jtricks import numerics, regularize
from jtricks import optim as joptim

SETTINGS = settings(max_examples=10, deadline=None, derandomize=True)
FLOATS = st.floats(-10.0, 10.0, width=32, allow_nan=False)
ARRAYS = hnp.arrays(np.float32, hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=5), elements=FLOATS)
PYTREES = st.recursive(
    ARRAYS,
    lambda children: (
        st.lists(children, min_size=1, max_size=3)
        | st.dictionaries(st.text("abcxyz", min_size=1, max_size=3), children, min_size=1, max_size=3)
        | st.lists(children, min_size=1, max_size=2).map(tuple)
    ),
    max_leaves=5,
)


@st.composite
def array_and_axes(draw):
    x = draw(hnp.arrays(np.float32, hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=7), elements=FLOATS))
    axes = draw(st.lists(st.integers(0, x.ndim - 1), unique=True, max_size=x.ndim))
    return x, tuple(axes) if axes else None, draw(st.booleans())


@SETTINGS
@given(array_and_axes())
def test_pairwise_sum_and_mean_equal_numpy_for_any_shape_and_axes(case) -> None:
    x, axes, keepdims = case
    ref = np.sum(x.astype(np.float64), axis=axes, keepdims=keepdims)
    got = numerics.pairwise_sum(jnp.asarray(x), axes, keepdims=keepdims)
    assert got.shape == ref.shape and got.dtype == jnp.float32
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-4)
    n = x.size if axes is None else int(np.prod([x.shape[a] for a in axes]))
    np.testing.assert_allclose(numerics.mean(jnp.asarray(x), axes, keepdims=keepdims), ref / n, rtol=1e-5, atol=1e-4)


@SETTINGS
@given(
    shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=6),
    rate=st.floats(0.0, 0.95),
    dtype=st.sampled_from([jnp.float32, jnp.bfloat16, jnp.float16]),
    seed=st.integers(0, 2**31 - 1),
)
def test_dropout_keeps_or_zeros_every_unit_and_keeps_the_dtype(shape, rate, dtype, seed) -> None:
    x = jnp.asarray(np.linspace(0.5, 2.0, int(np.prod(shape))).reshape(shape), dtype)
    y = jdropout.dropout(jax.random.key(seed), x, rate)
    assert y.shape == x.shape and y.dtype == x.dtype
    kept = np.asarray(y, np.float64) != 0
    expected = np.asarray(x, np.float64) / (
        1.0 - round(float(np.float32(rate)) * 65536) / 65536
    )  # rate on the 2^-16 grid
    tol = {jnp.float32: 1e-6, jnp.bfloat16: 1e-2, jnp.float16: 2e-3}[dtype]
    np.testing.assert_allclose(np.asarray(y, np.float64)[kept], expected[kept], rtol=tol)


@SETTINGS
@given(PYTREES)
def test_norms_and_penalties_of_any_pytree(tree) -> None:
    leaves = [np.asarray(v, np.float64) for v in jax.tree_util.tree_leaves(tree)]
    squares = sum(float(np.sum(v * v)) for v in leaves)
    np.testing.assert_allclose(numerics.global_norm(tree), np.sqrt(squares), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(regularize.l2_penalty(tree), 0.5 * squares, rtol=1e-5, atol=1e-6)
    kernels = sum(float(np.sum(v * v)) for v in leaves if v.ndim >= 2)
    np.testing.assert_allclose(
        regularize.l2_penalty(tree, regularize.decay_mask(tree)), 0.5 * kernels, rtol=1e-5, atol=1e-6
    )


@SETTINGS
@given(PYTREES, st.floats(0.01, 5.0))
def test_clipping_caps_the_global_norm_of_any_pytree(tree, max_norm) -> None:
    tx = joptim.clip_by_global_norm(max_norm)
    out, _ = tx.update(tree, tx.init(tree))
    assert jax.tree_util.tree_structure(out) == jax.tree_util.tree_structure(tree)
    ref, _ = optax.clip_by_global_norm(max_norm).update(tree, optax.EmptyState())
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), out, ref)
    assert float(numerics.global_norm(out)) <= max_norm * (1 + 1e-5)


@SETTINGS
@given(PYTREES, st.floats(0.0, 0.99))
def test_ema_and_swa_of_any_pytree(tree, decay) -> None:
    other = jax.tree_util.tree_map(lambda v: v + 1.0, tree)
    ema = regularize.ema_update(regularize.ema_update(regularize.ema_init(tree), tree, decay), other, decay)
    # debiased EMA of (p, p + 1): p + (1 - d) / (1 - d^2) = p + 1 / (1 + d)
    jax.tree_util.tree_map(
        lambda a, p: np.testing.assert_allclose(
            a, np.asarray(p, np.float64) + 1.0 / (1.0 + np.float32(decay)), rtol=1e-5, atol=1e-5
        ),
        regularize.ema_params(ema),
        tree,
    )
    swa = regularize.swa_update(regularize.swa_update(regularize.swa_init(tree), tree, 1, start=1), other, 2, start=1)
    jax.tree_util.tree_map(
        lambda a, p: np.testing.assert_allclose(a, np.asarray(p, np.float64) + 0.5, rtol=1e-5, atol=1e-5),
        regularize.swa_params(swa),
        tree,
    )
