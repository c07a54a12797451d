"""Tests for jtricks.augment: each function against a numpy reference built from the same random draws, exact
properties (identities, the pixels cutout zeroes), statistics with fixed keys, vmap = separate calls, checks."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jtricks import augment

KEY = jax.random.key(0)


def images(n: int = 6, h: int = 7, w: int = 5, c: int = 3) -> jax.Array:
    return jnp.asarray(np.random.default_rng(0).normal(size=(n, h, w, c)).astype(np.float32))


# ----------------------------------------------------------------------------------------- crop
@pytest.mark.parametrize("padding", [1, 2, 4])
def test_random_crop_matches_numpy_reference(padding: int) -> None:
    x = images()
    y = np.asarray(augment.random_crop(KEY, x, padding=padding))
    offsets = np.asarray(jax.random.randint(KEY, (x.shape[0], 2), 0, 2 * padding + 1))  # the documented draws
    padded = np.pad(np.asarray(x), ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    ref = np.stack([padded[i, a : a + x.shape[1], b : b + x.shape[2]] for i, (a, b) in enumerate(offsets)])
    np.testing.assert_array_equal(y, ref)
    assert len({tuple(o) for o in offsets}) > 1  # the examples got different shifts


def test_random_crop_with_padding_zero_is_the_identity() -> None:
    x = images()
    np.testing.assert_array_equal(augment.random_crop(KEY, x, padding=0), x)


def test_random_crop_offsets_cover_every_shift() -> None:
    x = jnp.zeros((4000, 3, 3, 1)).at[:, 1, 1, 0].set(1.0)  # one bright centre pixel per image
    y = np.asarray(augment.random_crop(KEY, x, padding=1))[..., 0]
    # the pixel lands at (2 - a, 2 - b) for offsets a, b in {0, 1, 2}: each of the 9 places 1/9 of the time
    counts = y.reshape(len(y), 9).sum(0) / len(y)
    np.testing.assert_allclose(counts, np.full(9, 1 / 9), atol=0.02)  # 1/9 ± 0.02: ~4 standard errors at n=4000


# ----------------------------------------------------------------------------------------- flip
@pytest.mark.parametrize("rate", [0.0, 0.3, 0.5, 1.0])
def test_horizontal_flip_matches_numpy_reference(rate: float) -> None:
    x = images(n=32)
    y = np.asarray(augment.horizontal_flip(KEY, x, rate=rate))
    flip = np.asarray(jax.random.uniform(KEY, (32,))) < np.float32(rate)
    ref = np.where(flip[:, None, None, None], np.asarray(x)[:, :, ::-1], np.asarray(x))
    np.testing.assert_array_equal(y, ref)
    if rate == 0.0:
        np.testing.assert_array_equal(y, x)
    if rate == 1.0:
        np.testing.assert_array_equal(y, np.asarray(x)[:, :, ::-1])


def test_flipping_twice_with_the_same_key_is_the_identity() -> None:
    x = images(n=32)
    np.testing.assert_array_equal(augment.horizontal_flip(KEY, augment.horizontal_flip(KEY, x)), x)


def test_flip_rate_statistics() -> None:
    n, rate = 20000, 0.3
    x = jnp.broadcast_to(jnp.array([0.0, 1.0]).reshape(1, 1, 2, 1), (n, 1, 2, 1))
    flipped = np.asarray(augment.horizontal_flip(jax.random.key(7), x, rate=rate))[:, 0, 0, 0] == 1.0
    # standard error sqrt(0.3 · 0.7 / 20000) = 0.0032; tolerance 0.015 (~4.6 standard errors)
    assert abs(flipped.mean() - rate) < 0.015


# --------------------------------------------------------------------------------------- cutout
@pytest.mark.parametrize("size", [1, 2, 3, 4, 8])
def test_cutout_zeroes_exactly_the_clipped_square(size: int) -> None:
    n, h, w = 200, 7, 5
    x = jnp.ones((n, h, w, 2))
    y = np.asarray(augment.cutout(KEY, x, size=size))
    centres = np.asarray(jax.random.randint(KEY, (n, 2), 0, jnp.array([h, w], jnp.int32)))
    ref = np.ones((n, h, w, 2), np.float32)
    for i, (c, d) in enumerate(centres):
        r0, c0 = c - size // 2, d - size // 2
        ref[i, max(r0, 0) : max(r0 + size, 0), max(c0, 0) : max(c0 + size, 0)] = 0.0
        area = (min(r0 + size, h) - max(r0, 0)) * (min(c0 + size, w) - max(c0, 0))
        assert int((y[i, ..., 0] == 0).sum()) == area  # size x size, clipped at the borders
    np.testing.assert_array_equal(y, ref)
    if size > 1:
        assert (y[..., 0] == 0).sum(axis=(1, 2)).min() < size * size  # some squares were clipped


def test_cutout_size_zero_is_the_identity_and_keeps_other_pixels() -> None:
    x = images()
    np.testing.assert_array_equal(augment.cutout(KEY, x, size=0), x)
    y = np.asarray(augment.cutout(KEY, x, size=3))
    kept = y != 0
    np.testing.assert_array_equal(y[kept], np.asarray(x)[kept])


# ---------------------------------------------------------------------------------------- mixup
def test_mixup_matches_numpy_reference_with_its_draws() -> None:
    x = images(n=8)
    y = jax.nn.one_hot(jnp.arange(8) % 3, 3)
    xm, ym = augment.mixup(KEY, x, y, alpha=0.4)
    k_lam, k_perm = jax.random.split(KEY)  # the documented draws
    lam = np.float32(jax.random.beta(k_lam, 0.4, 0.4))
    perm = np.asarray(jax.random.permutation(k_perm, 8))
    assert 0.0 < lam < 1.0 and not np.array_equal(perm, np.arange(8))
    np.testing.assert_allclose(xm, lam * np.asarray(x) + (1 - lam) * np.asarray(x)[perm], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(ym, lam * np.asarray(y) + (1 - lam) * np.asarray(y)[perm], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(np.asarray(ym).sum(1), 1.0, rtol=1e-6)
    lam2, perm2 = augment.mixup_draw(KEY, 8, alpha=0.4)
    assert np.float32(lam2) == lam and np.array_equal(perm2, perm)


def test_mix_with_a_fixed_lambda() -> None:
    a, b = np.float32([1.0, 2.0, -3.0]), np.float32([5.0, 0.0, 1.0])
    # b + λ (a - b): XLA may fuse the multiply-add (one rounding less than numpy), so within an ulp
    np.testing.assert_allclose(augment.mix(jnp.float32(0.25), a, b), [4.0, 0.5, 0.0], rtol=1e-7, atol=1e-7)
    np.testing.assert_array_equal(augment.mix(jnp.float32(0.5), a, b), [3.0, 1.0, -1.0])  # exact here
    np.testing.assert_array_equal(augment.mix(1.0, a, b), a)
    np.testing.assert_array_equal(augment.mix(0.0, a, b), b)


def test_mixup_alpha_zero_is_off_and_the_small_alpha_limit_picks_real_examples() -> None:
    x = images(n=8)
    y = jax.nn.one_hot(jnp.arange(8) % 3, 3)
    xm, ym = augment.mixup(KEY, x, y, alpha=0.0)
    np.testing.assert_array_equal(xm, x)
    np.testing.assert_array_equal(ym, y)
    # alpha -> 0: Beta(alpha, alpha) -> a fair coin on {0, 1}: every example is (nearly) x_n or x_perm(n).
    # P(min(λ, 1 - λ) > 1e-3) = 1 - 1e-3^alpha ≈ 0.7% at alpha = 1e-3
    lams = np.asarray(jax.vmap(lambda k: augment.mixup_draw(k, 8, alpha=1e-3)[0])(jax.random.split(KEY, 400)))
    assert (np.minimum(lams, 1 - lams) < 1e-3).mean() > 0.97
    assert 0.4 < (lams > 0.5).mean() < 0.6  # a fair coin: 400 draws, 4 standard errors = 0.1


def test_mixup_lambda_statistics() -> None:
    alpha = 0.4
    lams = np.asarray(jax.vmap(lambda k: augment.mixup_draw(k, 4, alpha=alpha)[0])(jax.random.split(KEY, 4000)))
    # Beta(a, a): mean 1/2, variance 1 / (4 (2a + 1)) = 0.139; standard error of the mean 0.0059
    assert abs(lams.mean() - 0.5) < 0.025
    assert abs(lams.var() - 1 / (4 * (2 * alpha + 1))) < 0.015
    assert lams.min() >= 0.0 and lams.max() <= 1.0


# ------------------------------------------------------------------------------ jit / vmap / keys
def test_vmapped_hyperparameters_equal_separate_calls_bitwise() -> None:
    x = images(n=8)
    y = jax.nn.one_hot(jnp.arange(8) % 3, 3)

    def all_four(key, rate, size, alpha):
        k = jax.random.split(key, 4)
        z = augment.random_crop(k[0], x, padding=2)
        z = augment.horizontal_flip(k[1], z, rate=rate)
        z = augment.cutout(k[2], z, size=size)
        return augment.mixup(k[3], z, y, alpha=alpha)

    keys = jax.random.split(KEY, 5)
    rates, sizes, alphas = (
        jnp.array(v, jnp.float32) for v in ([0, 0.3, 0.5, 1, 0.5], [0, 1, 2, 3, 8], [0, 0.2, 1, 2, 0.4])
    )
    pop = jax.jit(jax.vmap(all_four))(keys, rates, sizes, alphas)
    for i in range(5):
        alone = jax.jit(all_four)(keys[i], rates[i], sizes[i], alphas[i])
        for p, a in zip(pop, alone):
            np.testing.assert_array_equal(p[i], a)


def test_step_keys_are_one_stream_per_augmentation() -> None:
    root = jax.random.PRNGKey(3)
    keys = augment.step_keys(root, jnp.int32(5))
    assert list(keys) == list(augment.AUGMENTATIONS)
    assert len({tuple(np.asarray(k).tolist()) for k in keys.values()}) == 4  # raw uint32[2] keys
    only_flip = augment.step_keys(root, jnp.int32(5), ("flip",))
    np.testing.assert_array_equal(only_flip["flip"], keys["flip"])  # the others being on or off changes nothing
    assert not np.array_equal(augment.step_keys(root, jnp.int32(6))["flip"], keys["flip"])


# --------------------------------------------------------------------------------------- checks
@pytest.mark.parametrize(
    "call, fragment",
    [
        (lambda x: augment.random_crop(KEY, x, padding=-1), "`padding` must be a Python int >= 0"),
        (lambda x: augment.random_crop(KEY, x, padding=1.5), "`padding` must be a Python int >= 0"),
        (lambda x: augment.horizontal_flip(KEY, x, rate=1.5), "`rate` must lie in [0, 1]"),
        (lambda x: augment.horizontal_flip(KEY, x, rate=jnp.array([0.1, 0.2])), "`rate` must be a scalar"),
        (lambda x: augment.cutout(KEY, x, size=-2), "`size` must lie in [0, inf)"),
        (lambda x: augment.mixup(KEY, x, jnp.eye(6), alpha=-0.1), "`alpha` must lie in [0, inf)"),
        (lambda x: augment.mixup(KEY, x, jnp.eye(5), alpha=0.2), "same leading batch size"),
        (lambda x: augment.cutout(KEY, x[0], size=2), "must be a batch of NHWC images (N, H, W, C)"),
    ],
)
def test_invalid_arguments_are_one_line_errors(call, fragment: str) -> None:
    with pytest.raises(ValueError) as e:
        call(images())
    assert fragment in str(e.value) and "\n" not in str(e.value)
