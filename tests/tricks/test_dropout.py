"""Tests for jtricks.dropout: statistics, scaling, identities, vmap over rates, validation."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jtricks.dropout import dropout, spatial_dropout, uniform_bits16

KEY = jax.random.key(0)
X = jnp.asarray(np.random.default_rng(0).normal(size=(200, 100)), jnp.float32)  # 20,000 units


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.8])
def test_zero_fraction_and_scaling(rate: float) -> None:
    y = np.asarray(dropout(KEY, X, rate))
    x = np.asarray(X)
    dropped = y == 0
    n = x.size
    # fraction of dropped units ~ Binomial(n, rate) / n: within 5 standard deviations
    assert abs(dropped.mean() - rate) < 5 * math.sqrt(rate * (1 - rate) / n)
    # kept units are exactly x * (1 / q), q = 1 - round(rate · 2^16) / 2^16 (float32, as documented)
    q = (np.float32(65536) - np.float32(round(rate * 65536))) * np.float32(1 / 65536)
    scale = np.float32(1.0) / q
    np.testing.assert_array_equal(y[~dropped], x[~dropped] * scale)
    # inverted dropout preserves the mean over many draws: E[y] = x
    ys = jax.vmap(lambda k: dropout(k, jnp.ones((1000,)), rate))(jax.random.split(KEY, 20))
    assert abs(float(ys.mean()) - 1.0) < 5 * math.sqrt(rate / (1 - rate) / ys.size)


def test_identity_in_eval_mode_or_rate_zero() -> None:
    assert dropout(KEY, X, 0.5, train=False) is X
    assert dropout(KEY, X, 0.0) is X
    assert dropout(KEY, X, 0) is X
    x3 = X.reshape(4, 50, 100)
    assert spatial_dropout(KEY, x3, 0.5, train=False) is x3
    assert spatial_dropout(KEY, x3, 0.0) is x3
    # a traced rate of 0 keeps everything with scale exactly 1
    np.testing.assert_array_equal(jax.jit(dropout)(KEY, X, jnp.float32(0.0)), X)
    np.testing.assert_array_equal(
        jax.jit(spatial_dropout)(KEY, X.reshape(4, 50, 100), jnp.float32(0.0)), X.reshape(4, 50, 100)
    )


def test_deterministic_in_key() -> None:
    a, b = dropout(jax.random.key(7), X, 0.3), dropout(jax.random.key(7), X, 0.3)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, dropout(jax.random.key(8), X, 0.3))


def test_vmap_over_rates_equals_separate_calls() -> None:
    values = [0.0, 0.1, 0.3, 0.5, 0.9]
    rates = jnp.array(values, jnp.float32)

    def f(rate, x):
        # a small network fragment around dropout: scalar multiplies on both sides must not be
        # folded into the dropout scale differently for the population than for a single run
        h = jnp.tanh(x * 0.7) * 3.0
        return dropout(KEY, h, rate) * 1.3

    pop = jax.jit(jax.vmap(f, in_axes=(0, None)))(rates, X)
    pop_eager = jax.vmap(lambda r: dropout(KEY, X, r))(rates)
    for i, r in enumerate(values):
        np.testing.assert_array_equal(pop[i], jax.jit(f)(rates[i], X))  # traced scalar rate
        np.testing.assert_array_equal(pop_eager[i], dropout(KEY, X, r))  # Python rate
        np.testing.assert_array_equal(pop_eager[i], dropout(KEY, X, rates[i]))  # concrete array rate
        if r > 0:  # Python rate as a compile-time constant (rate 0 returns x: no dropout op at all)
            np.testing.assert_array_equal(pop[i], jax.jit(lambda x: f(r, x))(X))


def test_jit_and_grad() -> None:
    y = jax.jit(dropout, static_argnames="train")(KEY, X, 0.25)
    np.testing.assert_array_equal(y, dropout(KEY, X, 0.25))
    # d y / d x is the mask times the scale
    g = jax.grad(lambda x: jnp.sum(dropout(KEY, x, 0.25)))(X)
    expected = np.where(np.asarray(y) != 0, np.float32(1) / np.float32(0.75), 0.0)
    np.testing.assert_array_equal(g, expected)


def test_dtype_preserved() -> None:
    xb = X.astype(jnp.bfloat16)
    y = dropout(KEY, xb, 0.5)
    assert y.dtype == jnp.bfloat16
    kept = np.asarray(y, np.float32) != 0
    np.testing.assert_array_equal(np.asarray(y, np.float32)[kept], 2 * np.asarray(xb, np.float32)[kept])


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5, float("nan")])
def test_invalid_rate_raises(bad: float) -> None:
    with pytest.raises(ValueError, match="rate"):
        dropout(KEY, X, bad)
    with pytest.raises(ValueError, match="rate"):
        dropout(KEY, X, bad, train=False)
    with pytest.raises(ValueError, match="rate"):
        spatial_dropout(KEY, X.reshape(4, 50, 100), bad)


@pytest.mark.parametrize("bad", [-0.1, 1.0, float("nan")])
def test_invalid_concrete_array_rate_raises(bad: float) -> None:
    with pytest.raises(ValueError, match=r"`rate` must lie in \[0, 1\)"):
        dropout(KEY, X, jnp.array(bad))
    with pytest.raises(ValueError, match=r"`rate` must lie in \[0, 1\)"):
        spatial_dropout(KEY, X.reshape(4, 50, 100), jnp.float32(bad), train=False)


def test_traced_rate_is_not_validated() -> None:
    # inside jit the rate's value is unknown: no error; a rate of 1 keeps nothing (scale inf -> 0)
    y = jax.jit(dropout)(KEY, X, jnp.float32(1.0))
    np.testing.assert_array_equal(y, np.zeros_like(X))


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError, match="rate"):
        dropout(KEY, X, jnp.array([0.1, 0.2]))
    with pytest.raises(TypeError, match="rate"):
        dropout(KEY, X, "0.5")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="train"):
        dropout(KEY, X, 0.5, train=jnp.array(True))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="spatial"):
        spatial_dropout(KEY, X, 0.5)  # (N, C): no spatial axis


@pytest.mark.parametrize("shape", [(4, 6, 6, 32), (4, 9, 32)], ids=["NHWC", "NWC"])
def test_spatial_dropout_zeros_whole_channels(shape) -> None:
    rate = 0.5
    x = jnp.asarray(np.random.default_rng(1).normal(size=shape) + 3.0, jnp.float32)  # no exact zeros
    y = np.asarray(spatial_dropout(KEY, x, rate))
    n, c = shape[0], shape[-1]
    spatial = tuple(range(1, len(shape) - 1))
    dropped = (y == 0).all(axis=spatial)  # (N, C)
    kept = (y != 0).all(axis=spatial)
    assert np.all(dropped | kept)  # every (example, channel) map is all-zero or all-kept
    assert abs(dropped.mean() - rate) < 5 * math.sqrt(rate * (1 - rate) / (n * c))
    assert not np.all(dropped == dropped[0])  # masks differ between examples
    scale = np.float32(1) / (np.float32(1) - np.float32(rate))
    np.testing.assert_array_equal(
        y[np.broadcast_to(kept.reshape(n, *[1] * len(spatial), c), shape)],
        np.asarray(x)[np.broadcast_to(kept.reshape(n, *[1] * len(spatial), c), shape)] * scale,
    )
    # vmap over rates equals separate calls
    rates = jnp.array([0.2, 0.6], jnp.float32)
    pop = jax.vmap(lambda r: spatial_dropout(KEY, x, r))(rates)
    for i, r in enumerate([0.2, 0.6]):
        np.testing.assert_array_equal(pop[i], spatial_dropout(KEY, x, r))


def test_deterministic_is_keyword_only() -> None:
    x = jnp.ones((2, 3, 4))
    for fn in (dropout, spatial_dropout):
        with pytest.raises(TypeError):
            fn(KEY, x, 0.5, True)


def test_uniform_bits16_are_uniform_independent_and_vmap_exact() -> None:
    """The 16-bit numbers behind the masks: uniform on [0, 2^16) (chi-square over 64 bins, 1e6 draws),
    the two halves of one Threefry word uncorrelated, and a vmapped draw equal to the standalone draws."""
    n = 1_000_000
    h = np.asarray(uniform_bits16(KEY, (n,)))
    assert h.dtype == np.uint32 and h.max() < 65536
    counts = np.bincount(h >> 10, minlength=64)
    chi2 = float(((counts - n / 64) ** 2 / (n / 64)).sum())
    assert chi2 < 63 + 6 * math.sqrt(2 * 63)  # mean 63, sd sqrt(126): far beyond 6 sd would be a bias
    u = (h.astype(np.float64) + 0.5) / 65536
    half = n // 2
    corr = np.corrcoef(u[:half], u[half:])[0, 1]  # low and high halves of the same words
    assert abs(corr) < 5 / math.sqrt(half)
    keys = jax.random.split(KEY, 3)
    batched = jax.vmap(lambda k: uniform_bits16(k, (7, 5)))(keys)
    for i in range(3):
        np.testing.assert_array_equal(batched[i], uniform_bits16(keys[i], (7, 5)))
    # other key implementations draw through jax.random.bits (same range)
    rbg = np.asarray(uniform_bits16(jax.random.key(0, impl="rbg"), (1000,)))
    assert rbg.max() < 65536 and len(np.unique(rbg)) > 900


def test_the_threshold_keeps_exactly_the_units_with_h_at_least_t() -> None:
    """keep ⇔ h >= round(rate · 2^16): at a traced rate of 0 the units with h = 0 are kept, at 2^-16 exactly
    they are dropped; a traced negative rate is clipped to 0 (every unit kept, unscaled)."""
    ones = jnp.ones((1 << 20,), jnp.float32)
    h = np.asarray(uniform_bits16(KEY, ones.shape))
    zero = h == 0
    assert zero.sum() > 0  # about 16 of 2^20 for this key
    f = jax.jit(dropout)
    np.testing.assert_array_equal(f(KEY, ones, jnp.float32(0.0)), ones)
    np.testing.assert_array_equal(f(KEY, ones, jnp.float32(-0.25)), ones)
    y = np.asarray(f(KEY, ones, jnp.float32(1 / 65536)))
    np.testing.assert_array_equal(y == 0, zero)
    np.testing.assert_array_equal(y[~zero], np.float32(1) / np.float32(65535 / 65536))


def _threefry2x32_numpy(key: np.ndarray, x0: np.ndarray, x1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Threefry-2x32, 20 rounds (Salmon et al., 2011, Random123), written out in numpy: the reference."""

    def rotl(v: np.ndarray, r: int) -> np.ndarray:
        return (v << np.uint32(r)) | (v >> np.uint32(32 - r))

    ks = [np.uint32(key[0]), np.uint32(key[1]), np.uint32(key[0]) ^ np.uint32(key[1]) ^ np.uint32(0x1BD11BDA)]
    rotations = ((13, 15, 26, 6), (17, 29, 16, 24))
    x0, x1 = x0 + ks[0], x1 + ks[1]
    for group in range(5):
        for r in rotations[group % 2]:
            x0 = x0 + x1
            x1 = rotl(x1, r) ^ x0
        x0 = x0 + ks[(group + 1) % 3]
        x1 = x1 + ks[(group + 2) % 3] + np.uint32(group + 1)
    return x0, x1


@pytest.mark.parametrize("n", [1, 2, 7, 12])
def test_uniform_bits16_is_the_documented_function_of_threefry(n: int) -> None:
    """``w = threefry_2x32(key, iota(m))`` with ``m = ⌈n/2⌉`` rounded up to even (the pairs (i, i + m/2)
    hashed), ``h = [w & 0xFFFF, w >> 16][:n]``: against a numpy Threefry-2x32, for typed and raw keys."""
    key = jax.random.key(3)
    m = (n + 1) // 2
    m += m % 2
    counts = np.arange(m, dtype=np.uint32)
    with np.errstate(over="ignore"):
        y0, y1 = _threefry2x32_numpy(np.asarray(jax.random.key_data(key)), counts[: m // 2], counts[m // 2 :])
    w = np.concatenate([y0, y1])
    expected = np.concatenate([w & 0xFFFF, w >> 16])[:n]
    np.testing.assert_array_equal(np.asarray(uniform_bits16(key, (n,))), expected)
    np.testing.assert_array_equal(np.asarray(uniform_bits16(jax.random.PRNGKey(3), (n,))), expected)
