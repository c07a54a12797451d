"""The precision setting at the step level: validation, ``--set``, the casts of bfloat16, float16's loss scaling
(a skipped step leaves the member as it was and is no divergence; an exhausted scale is one)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from support.experiments import small_digits_mlp

from jtricks import models as jmodels
from jtricks import optim as joptim
from jtricks import train as jtrain
from jtricks.engine import configure, experiment, grid, settings, validation

RNG = np.random.default_rng(0)
X = jnp.asarray(RNG.normal(size=(32, 8)).astype(np.float32))
Y = jnp.asarray(RNG.integers(0, 3, 32).astype(np.int32))
IDX = jnp.arange(16, dtype=jnp.int32)


def _setup(precision: str, norm: str | None = None, optimizer: str = "adam"):
    config = jtrain.TrainConfig(
        model=jmodels.mlp((16,), 3, norm=norm),
        optimizer=joptim.OptimizerSpec(optimizer),
        epochs=1,
        batch_size=16,
        precision=precision,
    )
    hp = jtrain.as_arrays(jtrain.validate_hparams(config, {"learning_rate": 0.01}))
    state = jtrain.init_state(config, jax.random.key(0), hp, (8,))
    return config, jax.jit(jtrain.make_train_step(config)), state


def _leaves(tree) -> list[np.ndarray]:
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(tree)]


def _assert_same(a, b) -> None:
    for u, v in zip(_leaves(a), _leaves(b), strict=True):
        np.testing.assert_array_equal(u, v)


def test_a_bad_precision_is_refused_naming_the_choices() -> None:
    with pytest.raises(ValueError, match=r"'precision' must be one of \['float32', 'bfloat16', 'float16'\], got 'fp8'"):
        jtrain.TrainConfig(model=jmodels.mlp((4,), 3), optimizer=joptim.OptimizerSpec("sgd"), epochs=1, batch_size=4,
                           precision="fp8")  # fmt: skip
    with pytest.raises(ValueError, match=r"'precision' must be one of .*got 'float64'$"):
        validation.validate(small_digits_mlp(precision="float64"))
    with pytest.raises(ValueError, match=r"'precision' must be one of .*got 'half' \(arm 'precision=half'\)"):
        validation.validate(small_digits_mlp(grid={"precision": ["float32", "half"]}))


def test_precision_is_a_setting_and_a_static_factor() -> None:
    exp = small_digits_mlp()
    assert exp.precision == "float32"
    bf = settings.with_settings(exp, settings.parse_set(["precision=bfloat16"], exp))
    assert bf.precision == "bfloat16"
    assert grid.static_signature(bf) != grid.static_signature(exp)
    arms = validation.validate(small_digits_mlp(grid={"precision": ["float32", "float16"]}))
    assert [a.experiment.precision for a in arms] == ["float32", "float16"]
    assert len({grid.static_signature(a.experiment) for a in arms}) == 2
    cfg16 = configure.build_config(arms[1].experiment, jmodels.mlp((4,), 10), 640)
    assert cfg16.precision == "float16"
    assert "skipped_steps" in configure.produced_metrics(cfg16)
    assert "skipped_steps" not in configure.produced_metrics(configure.build_config(exp, jmodels.mlp((4,), 10), 640))
    # the fingerprint names a precision other than the default (older folders and checkpoints keep theirs)
    assert "precision" not in experiment.fingerprint_fields(exp)
    assert experiment.fingerprint_fields(bf)["precision"] == "bfloat16"


def test_float32_traces_no_cast_and_bfloat16_computes_in_bfloat16() -> None:
    config32, _, s32 = _setup("float32")
    text32 = str(jax.make_jaxpr(jtrain.make_train_step(config32))(s32, X, Y, IDX))
    assert "bf16" not in text32 and "f16" not in text32
    config, step, s0 = _setup("bfloat16", norm="batch")
    text = str(jax.make_jaxpr(jtrain.make_train_step(config))(s0, X, Y, IDX))
    assert "bf16[16,16]" in text  # the hidden layer's activations
    s1, m = step(s0, X, Y, IDX)
    # master weights, optimizer state and batch-norm statistics stay float32; the metrics are float32
    for tree in (s1.params, s1.opt_state, s1.model_state, m):
        assert {x.dtype for x in jax.tree_util.tree_leaves(tree) if jnp.issubdtype(x.dtype, jnp.floating)} == {
            jnp.dtype(jnp.float32)
        }
    assert s1.loss_scale is None
    assert not np.array_equal(_leaves(s1.params)[0], _leaves(s0.params)[0])


def test_bfloat16_gradients_are_close_to_float32() -> None:
    """One SGD step from the same state: each layer's update ``-lr · g`` agrees with float32's to bfloat16's
    precision (within 3% of the layer's largest update component; bfloat16 keeps 8 significant bits)."""
    _, step32, s0 = _setup("float32", optimizer="sgd")
    _, step16, _ = _setup("bfloat16", optimizer="sgd")
    a, ma = step32(s0, X, Y, IDX)
    b, mb = step16(s0, X, Y, IDX)
    assert abs(float(ma["loss"]) - float(mb["loss"])) < 1e-2
    assert abs(float(ma["grad_norm"]) - float(mb["grad_norm"])) < 2e-2 * float(ma["grad_norm"])
    for w0, u, v in zip(_leaves(s0.params), _leaves(a.params), _leaves(b.params), strict=True):
        d32, d16 = u - w0, v - w0
        np.testing.assert_allclose(d16, d32, atol=3e-2 * np.abs(d32).max(), rtol=0)
        assert not np.array_equal(d16, d32)  # bfloat16 really computed something else


def test_float16_skips_an_overflowing_step_and_halves_the_scale() -> None:
    """A scale of 2^100 overflows float16's backward pass: params, optimizer and model state unchanged, the scale
    halved, the skip counted, no divergence; the next step at a sane scale trains."""
    config, step, s0 = _setup("float16", norm="batch")
    assert float(s0.loss_scale.scale) == 2.0**15
    huge = s0._replace(loss_scale=s0.loss_scale._replace(scale=jnp.float32(2.0**100)))
    s1, m1 = step(huge, X, Y, IDX)
    assert float(m1["skipped"]) == 1.0 and not np.isfinite(float(m1["grad_norm"]))
    _assert_same((s1.params, s1.opt_state, s1.model_state), (huge.params, huge.opt_state, huge.model_state))
    assert float(s1.loss_scale.scale) == 2.0**99 and int(s1.loss_scale.skipped) == 1
    assert int(s1.diverged_epoch) == -1 and int(s1.step) == 1
    assert float(s1.first_objective) == 0.0  # a skipped step is not the reference of the explosion rule
    sane = s1._replace(loss_scale=s1.loss_scale._replace(scale=jnp.float32(2.0**10)))
    s2, m2 = step(sane, X, Y, IDX)
    assert float(m2["skipped"]) == 0.0 and np.isfinite(float(m2["grad_norm"]))
    assert not np.array_equal(_leaves(s2.params)[0], _leaves(s1.params)[0])
    assert int(s2.loss_scale.good_steps) == 1 and float(s2.first_objective) == abs(float(m2["objective"]))


def test_float16_diverges_when_the_scale_is_exhausted() -> None:
    """Inputs beyond float16's range give non-finite outputs at any scale: at the minimum scale that is a divergence."""
    _, step, s0 = _setup("float16")
    big = X * 1e6
    s1, m1 = step(s0, big, Y, IDX)
    assert float(m1["skipped"]) == 1.0 and int(s1.diverged_epoch) == -1
    floor = s0._replace(loss_scale=s0.loss_scale._replace(scale=jnp.float32(1.0)))
    s2, _ = step(floor, big, Y, IDX)
    assert int(s2.diverged_epoch) == 1
    _assert_same(s2.params, floor.params)


def test_float16_epoch_metrics_average_the_applied_steps_and_count_the_skipped() -> None:
    config, _, s0 = _setup("float16")
    sm = {
        "loss": jnp.asarray([1.0, 100.0, 3.0]),
        "acc": jnp.asarray([0.5, 0.0, 0.7]),
        "grad_norm": jnp.asarray([2.0, jnp.inf, 4.0]),
        "skipped": jnp.asarray([0.0, 1.0, 0.0]),
    }
    _, out = jtrain.finish_epoch(config, s0, sm, {})
    assert float(out["train_loss"]) == 2.0 and float(out["grad_norm"]) == 3.0
    np.testing.assert_allclose(float(out["train_acc"]), 0.6, rtol=1e-6)
    assert float(out["skipped_steps"]) == 1.0
    _, none = jtrain.finish_epoch(config, s0, {**sm, "skipped": jnp.ones(3)}, {})
    assert np.isnan(float(none["train_loss"])) and float(none["skipped_steps"]) == 3.0
