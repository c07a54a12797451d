"""Tests for jtricks.init: sample statistics against the formulas, fans, registry, scale handling."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jtricks import init

DENSE = (256, 128)
CONV = (3, 3, 16, 32)  # HWIO: receptive field 9, fan_in 144, fan_out 288
KEY = jax.random.key(0)


def expected_std(name: str, shape: tuple[int, ...]) -> float:
    """The std of the samples as stated by the formulas, from hand-computed fans."""
    r = math.prod(shape[:-2])
    fi, fo = r * shape[-2], r * shape[-1]
    return {
        "standard_normal": 1.0,
        "uniform": 1.0 / math.sqrt(3 * fi),  # U(-1/sqrt(fi), 1/sqrt(fi))
        "gaussian": 1.0 / fi,
        "lecun_normal": 1.0 / math.sqrt(fi),
        "lecun_uniform": 1.0 / math.sqrt(fi),
        "glorot_normal": math.sqrt(2.0 / (fi + fo)),
        "glorot_uniform": math.sqrt(2.0 / (fi + fo)),
        "xavier_normal": math.sqrt(2.0 / (fi + fo)),
        "xavier_uniform": math.sqrt(2.0 / (fi + fo)),
        "he_normal": math.sqrt(2.0 / fi),
        "he_uniform": math.sqrt(2.0 / fi),
        # orthonormal columns of the (prod(shape[:-1]), n_out) view: sum of squares = min(rows, cols)
        "orthogonal": math.sqrt(min(math.prod(shape[:-1]), shape[-1]) / math.prod(shape)),
        "zeros": 0.0,
        "ones": 0.0,
    }[name]


def test_names_cover_every_documented_initializer() -> None:
    required = {
        "standard_normal",
        "uniform",
        "gaussian",
        "lecun_normal",
        "lecun_uniform",
        "glorot_normal",
        "glorot_uniform",
        "xavier_normal",
        "xavier_uniform",
        "he_normal",
        "he_uniform",
        "orthogonal",
        "zeros",
        "ones",
    }
    assert set(init.names()) == required
    assert isinstance(init.names(), tuple)
    for name in init.names():  # one factory function per name
        assert callable(getattr(init, name))


@pytest.mark.parametrize("shape", [DENSE, CONV], ids=["dense", "conv_hwio"])
@pytest.mark.parametrize("name", init.names())
def test_sample_std_and_mean_match_formula(name: str, shape: tuple[int, ...]) -> None:
    w = np.asarray(init.get(name)(KEY, shape), dtype=np.float64)
    assert w.shape == shape and w.dtype == np.float64
    n = w.size
    if name == "zeros":
        np.testing.assert_array_equal(w, 0.0)
        return
    if name == "ones":
        np.testing.assert_array_equal(w, 1.0)
        return
    std = expected_std(name, shape)
    # Sample std of n i.i.d. draws has relative standard error <= ~1/sqrt(2n) (normal; less for
    # uniform / truncated normal): allow 5 of them. Sample mean: 5 standard errors std/sqrt(n).
    np.testing.assert_allclose(w.std(), std, rtol=5 / math.sqrt(2 * n))
    assert abs(w.mean()) < 5 * std / math.sqrt(n)


@pytest.mark.parametrize(
    "name, jax_init",
    [
        ("lecun_normal", jax.nn.initializers.lecun_normal()),
        ("lecun_uniform", jax.nn.initializers.lecun_uniform()),
        ("glorot_normal", jax.nn.initializers.glorot_normal()),
        ("glorot_uniform", jax.nn.initializers.glorot_uniform()),
        ("he_normal", jax.nn.initializers.he_normal()),
        ("he_uniform", jax.nn.initializers.he_uniform()),
        ("orthogonal", jax.nn.initializers.orthogonal()),
        ("standard_normal", jax.nn.initializers.normal(1.0)),
    ],
)
def test_wraps_jax_initializers_exactly(name: str, jax_init) -> None:
    for shape in (DENSE, CONV):
        np.testing.assert_array_equal(init.get(name)(KEY, shape), jax_init(KEY, shape, jnp.float32))


@pytest.mark.parametrize(
    "name, limit",
    [
        ("uniform", lambda fi, fo: 1 / math.sqrt(fi)),
        ("lecun_uniform", lambda fi, fo: math.sqrt(3 / fi)),
        ("glorot_uniform", lambda fi, fo: math.sqrt(6 / (fi + fo))),
        ("he_uniform", lambda fi, fo: math.sqrt(6 / fi)),
    ],
)
def test_uniform_bounds(name: str, limit) -> None:
    for shape in (DENSE, CONV):
        a = limit(*init.fans(shape))
        w = np.asarray(init.get(name)(KEY, shape))
        assert np.abs(w).max() <= a * (1 + 1e-6)
        assert np.abs(w).max() > 0.98 * a  # the support is actually used up to the limit
        assert w.min() < -0.98 * a


def test_normal_distribution_option() -> None:
    w = np.asarray(init.he_normal(distribution="normal")(KEY, DENSE))
    np.testing.assert_allclose(w.std(), math.sqrt(2 / 256), rtol=5 / math.sqrt(2 * w.size))
    # untruncated: some samples beyond 2 std; the truncated default has none
    assert np.abs(w).max() > 3 * math.sqrt(2 / 256)
    wt = np.asarray(init.he_normal()(KEY, DENSE))
    assert np.abs(wt).max() <= 2 * math.sqrt(2 / 256) / 0.87962566103423978 * (1 + 1e-6)
    with pytest.raises(ValueError, match="distribution"):
        init.he_normal(distribution="cauchy")


@pytest.mark.parametrize("name", init.names())
def test_deterministic_in_key(name: str) -> None:
    f = init.get(name)
    a, b = f(jax.random.key(3), CONV), f(jax.random.key(3), CONV)
    np.testing.assert_array_equal(a, b)
    if name not in ("zeros", "ones"):
        assert not np.array_equal(a, f(jax.random.key(4), CONV))


def test_fans() -> None:
    assert init.fans((256, 128)) == (256, 128)
    assert init.fans((3, 3, 16, 32)) == (144, 288)
    assert init.fans((5, 7, 2)) == (35, 10)  # NWC-style 1-D conv kernel (W, I, O)
    assert init.fans((2, 3, 4, 5, 6)) == (24 * 5, 24 * 6)
    with pytest.raises(ValueError, match="shape"):
        init.fans((10,))
    with pytest.raises(ValueError, match="shape"):
        init.get("he_normal")(KEY, (10,))


def test_unknown_name_lists_known_names() -> None:
    with pytest.raises(ValueError) as e:
        init.get("kaiming_magic")
    msg = str(e.value)
    assert "kaiming_magic" in msg
    for name in init.names():
        assert name in msg
    with pytest.raises(TypeError, match="name"):
        init.get(3)  # type: ignore[arg-type]


@pytest.mark.parametrize("shape", [DENSE, CONV, (64, 64)], ids=["tall", "conv", "square"])
def test_orthogonal_is_orthonormal(shape: tuple[int, ...]) -> None:
    w = np.asarray(init.orthogonal()(KEY, shape), dtype=np.float64).reshape(-1, shape[-1])
    np.testing.assert_allclose(w.T @ w, np.eye(shape[-1]), atol=1e-5)
    w2 = np.asarray(init.get("orthogonal", gain=2.0)(KEY, shape), dtype=np.float64).reshape(-1, shape[-1])
    np.testing.assert_allclose(w2.T @ w2, 4 * np.eye(shape[-1]), atol=4e-5)


def test_orthogonal_wide_has_orthonormal_rows() -> None:
    w = np.asarray(init.orthogonal()(KEY, (32, 96)), dtype=np.float64)
    np.testing.assert_allclose(w @ w.T, np.eye(32), atol=1e-5)


@pytest.mark.parametrize(
    "name", ["standard_normal", "uniform", "gaussian", "lecun_normal", "glorot_uniform", "he_normal", "ones"]
)
def test_scale_multiplies_samples(name: str) -> None:
    base = np.asarray(init.get(name)(KEY, CONV))
    scaled = np.asarray(init.get(name, scale=0.5)(KEY, CONV))
    np.testing.assert_array_equal(scaled, base * np.float32(0.5))


def test_traced_scale_vmap_equals_separate_calls() -> None:
    """A population vmapped over init scales equals standalone calls bit for bit."""
    values = [0.3, 1.0, 3.0]
    scales = jnp.array(values, jnp.float32)
    for name in ("he_normal", "gaussian", "orthogonal"):
        kw = "gain" if name == "orthogonal" else "scale"

        def f(s):
            return init.get(name, **{kw: s})(KEY, CONV)

        pop = jax.jit(jax.vmap(f))(scales)
        for i, s in enumerate(values):
            alone = init.get(name, **{kw: s})
            np.testing.assert_array_equal(pop[i], alone(KEY, CONV))  # eager, Python scale
            np.testing.assert_array_equal(pop[i], jax.jit(f)(scales[i]))  # jit, traced scalar
            if s == 3.0 and name != "orthogonal":  # jit with the Python scale as a constant
                np.testing.assert_array_equal(pop[i], jax.jit(lambda k: alone(k, CONV))(KEY))


def test_jit_and_dtype() -> None:
    f = init.he_uniform(scale=2.0)
    w = jax.jit(f, static_argnums=(1, 2))(KEY, CONV, jnp.bfloat16)
    assert w.dtype == jnp.bfloat16
    # a traced float32 scale must not promote a bfloat16 kernel
    w2 = jax.jit(lambda s: init.he_uniform(scale=s)(KEY, CONV, jnp.bfloat16))(jnp.float32(2.0))
    assert w2.dtype == jnp.bfloat16
    np.testing.assert_array_equal(np.asarray(w, np.float32), np.asarray(w2, np.float32))
    assert init.get("zeros")(KEY, (3,)).dtype == jnp.float32  # default dtype, works for biases


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf")])
def test_invalid_python_scale_raises(bad: float) -> None:
    with pytest.raises(ValueError, match="scale"):
        init.he_normal(scale=bad)
    with pytest.raises(ValueError, match="gain"):
        init.orthogonal(gain=bad)
    with pytest.raises(ValueError, match="scale"):
        init.he_normal(scale=jnp.ones(3))
    with pytest.raises(TypeError):
        init.get("zeros", scale=2.0)


# ---------------------------------------------------------------- scale handling at the edges (mutation-found)
def test_orthogonal_gain_and_scale_multiply() -> None:
    """``W = gain · scale · Q``: with gain 2 and scale 3, ``WᵀW = 36 I`` (Python numbers and arrays alike)."""
    for gain, scale in ((2.0, 3.0), (jnp.asarray(2.0), jnp.asarray(3.0))):
        w = init.orthogonal(gain=gain, scale=scale)(KEY, (8, 4))
        np.testing.assert_allclose(np.asarray(w.T @ w), 36.0 * np.eye(4), atol=1e-4)


def test_zero_scale_gives_zeros_and_empty_shapes_are_allowed() -> None:
    """``scale = 0`` is allowed and zeroes the samples; a dimension of size 0 is a valid (empty) shape."""
    assert not np.any(np.asarray(init.he_normal(scale=0)(KEY, DENSE)))
    assert not np.any(np.asarray(init.he_normal(scale=0.0)(KEY, DENSE)))
    assert init.zeros()(KEY, (0, 3)).shape == (0, 3)
    assert init.ones(2.0)(KEY, (0,)).shape == (0,)
    with pytest.raises(ValueError, match="non-negative dimensions"):
        init.zeros()(KEY, (-1, 3))


def test_fan_free_initializers_take_any_rank() -> None:
    """standard_normal, zeros and ones use no fans: 1-D (bias) shapes work; fan-based ones refuse them."""
    assert init.standard_normal()(KEY, (5,)).shape == (5,)
    np.testing.assert_array_equal(np.asarray(init.ones(3.0)(KEY, (5,))), np.full(5, 3.0, np.float32))
    with pytest.raises(ValueError):
        init.he_normal()(KEY, (5,))


class _DuckScalar:
    """A scalar that only has ``shape`` (no ``ndim``) and converts to an array."""

    shape = ()

    def __array__(self, dtype=None, copy=None):
        return np.asarray(2.0, dtype=dtype)


@pytest.mark.parametrize(
    "scale", [np.float32(2.0), np.asarray(2.0), _DuckScalar()], ids=["np_scalar", "0d_array", "duck"]
)
def test_array_like_scalar_scales(scale) -> None:
    """numpy scalars, 0-d arrays and objects with a ``shape`` of ``()`` scale like the number 2."""
    np.testing.assert_array_equal(
        np.asarray(init.he_normal(scale=scale)(KEY, DENSE)), np.asarray(init.he_normal(scale=2.0)(KEY, DENSE))
    )


def test_non_numeric_scale_is_a_type_error() -> None:
    for bad in ("2", None, [2.0]):
        with pytest.raises(TypeError, match="`scale` must be a number or a scalar array"):
            init.he_normal(scale=bad)
