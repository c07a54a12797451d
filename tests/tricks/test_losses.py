"""jtricks.losses: each loss against an independent reference, vmap stability, and the target checks."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jtricks import losses, numerics

KEY = jax.random.key(0)
B, K = 16, 5


def _logits_labels(k: int = K) -> tuple[jax.Array, jax.Array]:
    kz, ky = jax.random.split(KEY)
    return 3.0 * jax.random.normal(kz, (B, k)), jax.random.randint(ky, (B,), 0, k)


def test_cross_entropy_is_numerics_bit_for_bit_and_matches_optax():
    z, y = _logits_labels()
    ce = losses.get("cross_entropy")
    out = ce.fn(z, y, {})
    assert out.shape == (B,)
    np.testing.assert_array_equal(out, numerics.softmax_cross_entropy(z, y))
    np.testing.assert_allclose(out, optax.softmax_cross_entropy_with_integer_labels(z, y), rtol=1e-6, atol=1e-6)
    assert ce.targets == "class" and ce.hparams == {}


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.3])
def test_smoothed_cross_entropy_matches_optax_smooth_labels(eps):
    z, y = _logits_labels()
    out = losses.get("smoothed_cross_entropy").fn(z, y, {"label_smoothing": jnp.float32(eps)})
    ref = optax.softmax_cross_entropy(z, optax.smooth_labels(jax.nn.one_hot(y, K), eps))
    np.testing.assert_allclose(out, ref, rtol=1e-6, atol=1e-6)
    if eps == 0.0:  # the smoothed target is then exactly the one-hot
        np.testing.assert_array_equal(out, losses.cross_entropy(z, y))


def test_smoothed_cross_entropy_default_and_traced_grid():
    z, y = _logits_labels()
    sce = losses.get("smoothed_cross_entropy")
    assert sce.hparams == {"label_smoothing": 0.1}
    np.testing.assert_array_equal(sce.fn(z, y, {}), sce.fn(z, y, {"label_smoothing": 0.1}))
    grid = jnp.array([0.0, 0.1, 0.2], jnp.float32)
    batched = jax.jit(jax.vmap(lambda e: sce.fn(z, y, {"label_smoothing": e})))(grid)
    for i, e in enumerate([0.0, 0.1, 0.2]):
        np.testing.assert_allclose(batched[i], sce.fn(z, y, {"label_smoothing": jnp.float32(e)}), rtol=1e-6)


@pytest.mark.parametrize("shape", [(B,), (B, 1), (B, 3)])
def test_binary_cross_entropy_matches_optax(shape):
    kz, ky = jax.random.split(KEY)
    z = 4.0 * jax.random.normal(kz, shape)
    y = jax.random.bernoulli(ky, 0.5, shape).astype(jnp.float32)
    out = losses.get("binary_cross_entropy").fn(z, y, {})
    ref = optax.sigmoid_binary_cross_entropy(z, y).reshape(B, -1).mean(-1)
    assert out.shape == (B,)
    np.testing.assert_allclose(out, ref, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(("out_shape", "y_shape"), [((B,), (B,)), ((B, 1), (B,)), ((B,), (B, 1)), ((B, 3), (B, 3))])
def test_mse_matches_numpy(out_shape, y_shape):
    kz, ky = jax.random.split(KEY)
    o = jax.random.normal(kz, out_shape)
    y = jax.random.normal(ky, y_shape)
    out = losses.get("mse").fn(o, y, {})
    on, yn = np.asarray(o, np.float64).reshape(B, -1), np.asarray(y, np.float64).reshape(B, -1)
    np.testing.assert_allclose(out, ((on - yn) ** 2).mean(-1), rtol=1e-6)


@pytest.mark.parametrize("name", list(losses.LOSSES))
def test_vmapped_population_is_bit_identical_to_members(name):
    """Loss values and gradients inside a jit(vmap) over 3 members equal each member alone, bit for bit."""
    kz, ky = jax.random.split(KEY)
    z = jax.random.normal(kz, (3, B, K))
    spec = losses.get(name)
    if spec.targets == "class":
        y = jax.random.randint(ky, (3, B), 0, K)
    elif spec.targets == "binary":
        y = jax.random.bernoulli(ky, 0.5, (3, B, K)).astype(jnp.float32)
    else:
        y = jax.random.normal(ky, (3, B, K))

    def f(z1, y1):
        return jax.value_and_grad(lambda zz: numerics.mean(spec.fn(zz, y1, {"label_smoothing": jnp.float32(0.1)})))(z1)

    pop = jax.jit(jax.vmap(f))(z, y)
    for i in range(3):
        alone = jax.jit(f)(z[i], y[i])
        np.testing.assert_array_equal(pop[0][i], alone[0])
        np.testing.assert_array_equal(pop[1][i], alone[1])


def test_get_and_user_losses():
    assert losses.get("mse") is losses.LOSSES["mse"]
    with pytest.raises(ValueError, match="'cross_entropy'"):
        losses.get("crossentropy")
    with pytest.raises(TypeError, match="loss"):
        losses.get(3)

    def huber(o, y, hp):
        d = jnp.abs(o - y)
        return jnp.where(d < hp["delta"], 0.5 * d**2, hp["delta"] * (d - 0.5 * hp["delta"]))

    h = losses.loss(huber, hparams={"delta": 1.0})
    assert (h.name, h.targets, h.hparams) == ("huber", "real", {"delta": 1.0})
    np.testing.assert_allclose(h.fn(jnp.array([0.0, 3.0]), jnp.zeros(2), {"delta": 1.0}), [0.0, 2.5])
    two = losses.get(lambda o, y: jnp.abs(o - y))  # a two-argument callable reads no hyperparameters
    assert two.name == "<lambda>" and two.targets == "real"
    np.testing.assert_allclose(two.fn(jnp.array([1.0, -2.0]), jnp.zeros(2), {}), [1.0, 2.0])
    assert losses.loss(huber, name="h", targets="class").targets == "class"
    with pytest.raises(ValueError, match="targets"):
        losses.loss(huber, targets="regression")
    with pytest.raises(TypeError, match="4 positional"):
        losses.loss(lambda a, b, c, d: a)
    with pytest.raises(ValueError, match="hparams"):
        losses.loss(huber, hparams={"delta": "big"})


def test_check_hparams_label_smoothing_range():
    sce = losses.get("smoothed_cross_entropy")
    losses.check_hparams(sce, {"label_smoothing": 0.0})
    losses.check_hparams(sce, {"label_smoothing": jnp.array([0.1, 0.2])})  # arrays are data: not checked
    for bad in (1.0, -0.1, float("nan")):
        with pytest.raises(ValueError, match=r"label_smoothing.*0 <= label_smoothing < 1"):
            losses.check_hparams(sce, {"label_smoothing": bad})
    with pytest.raises(TypeError, match="label_smoothing"):
        losses.check_hparams(sce, {"label_smoothing": True})


# --------------------------------------------------------------------------------------------
# target checks, on host numpy, before anything compiles
# --------------------------------------------------------------------------------------------

CE, BCE, MSE = (losses.get(n) for n in ("cross_entropy", "binary_cross_entropy", "mse"))


def test_good_targets_pass_and_are_prepared():
    losses.check_targets(CE, np.array([0, 1, 4]), num_outputs=5, split="train")
    losses.check_targets(CE, np.array([0.0, 3.0]), num_outputs=5, split="train")  # integral floats are labels
    losses.check_targets(BCE, np.array([0, 1, 1]), num_outputs=1, split="train")
    losses.check_targets(BCE, np.array([[0.0], [1.0]]), num_outputs=1, split="val")
    losses.check_targets(MSE, np.array([0.83, -1.2]), num_outputs=1, split="test")
    losses.check_targets(MSE, np.array([3, 5]), num_outputs=1, split="test")  # integer targets: allowed
    losses.check_targets(MSE, np.zeros((4, 3)), num_outputs=3, split="test")
    losses.check_targets(CE, np.array([7]), num_outputs=None, split="train")
    assert losses.prepare_targets(CE, np.array([0.0, 3.0])).dtype == np.int32
    prepared = losses.prepare_targets(MSE, np.array([3, 5]))
    assert prepared.dtype == np.float32 and prepared.tolist() == [3.0, 5.0]


@pytest.mark.parametrize(
    ("loss", "y", "num_outputs", "match"),
    [
        (
            CE,
            np.array([0.83, 0.2]),
            2,
            r"train targets for loss 'cross_entropy'.*integers, got 0\.83.*regression targets\? use loss='mse'",
        ),
        (CE, np.array([0, 1, 2, 3, 4]), 2, r"train targets.*\[0, 2\).*num_outputs=2; got max label 4"),
        (CE, np.array([-1, 0]), 2, r"train targets.*>= 0, got min label -1"),
        (CE, np.eye(3), 3, r"shape \(B,\).*one-hot targets\? pass y\.argmax\(-1\)"),
        (CE, np.array([0.0, np.nan]), 2, r"finite, got 1 NaN/inf"),
        (CE, np.array(["a", "b"]), 2, r"dtype <U1"),
        (CE, np.zeros((0,), np.int32), 2, r"at least one example"),
        (
            BCE,
            np.array([0, 2]),
            1,
            r"train targets for loss 'binary_cross_entropy': .*0 or 1, got 2; class labels\? use loss='cross_entropy'",
        ),
        (BCE, np.array([0.0, 0.5]), 1, r"0 or 1, got 0\.5"),
        (
            BCE,
            np.array([0, 1]),
            3,
            r"1 value\(s\) per example but the model has num_outputs=3; expected shape \(2, 3\)",
        ),
        (
            MSE,
            np.zeros((4, 2)),
            1,
            r"'mse'.*2 value\(s\) per example.*num_outputs=1; expected shape \(4,\) or \(4, 1\)",
        ),
        (MSE, np.zeros((4,)), 3, r"num_outputs=3"),
    ],
)
def test_bad_targets_raise_naming_split_and_loss(loss, y, num_outputs, match):
    with pytest.raises(ValueError, match=match):
        losses.check_targets(loss, y, num_outputs=num_outputs, split="train")
