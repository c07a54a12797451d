"""The training step's bookkeeping against hand computations: divergence epoch, the explosion rule's first
objective, the loss' hyperparameters, per-layer gradient norms and the keyword-only options.

One tiny MLP (8 → 16 → 3) on random data, single steps of ``train.make_train_step`` (no engine around it).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jtricks import losses as jlosses
from jtricks import models as jmodels
from jtricks import optim as joptim
from jtricks import train as jtrain

RNG = np.random.default_rng(0)
X = jnp.asarray(RNG.normal(size=(32, 8)).astype(np.float32))
Y = jnp.asarray(RNG.integers(0, 3, 32).astype(np.int32))
IDX = jnp.arange(16, dtype=jnp.int32)


def _setup(loss: str = "cross_entropy", **kw):
    config = jtrain.TrainConfig(
        model=jmodels.mlp((16,), 3), optimizer=joptim.OptimizerSpec("sgd"), epochs=1, batch_size=16, loss=loss, **kw
    )
    hp = jtrain.as_arrays(jtrain.validate_hparams(config, {"learning_rate": 0.1}))
    state = jtrain.init_state(config, jax.random.key(0), hp, (8,))
    return config, jax.jit(jtrain.make_train_step(config)), state


def test_first_objective_is_the_first_steps_and_stays():
    """``first_objective = |objective|`` of step 0, then unchanged."""
    _, step, s0 = _setup()
    s1, m1 = step(s0, X, Y, IDX)
    assert float(s0.first_objective) == 0.0 and int(s0.step) == 0
    assert float(s1.first_objective) == abs(float(m1["objective"]))
    s2, m2 = step(s1, X, Y, IDX)
    assert float(m2["objective"]) != float(m1["objective"])
    assert float(s2.first_objective) == float(s1.first_objective)


def _assert_same(a, b) -> None:
    raw = lambda t: t._replace(key=jax.random.key_data(t.key))  # noqa: E731
    for u, v in zip(jax.tree_util.tree_leaves(raw(a)), jax.tree_util.tree_leaves(raw(b)), strict=True):
        np.testing.assert_array_equal(np.asarray(u), np.asarray(v))


def test_diverged_epoch_is_the_current_epoch_plus_one_and_the_guard_restores_the_epoch_start():
    """A non-finite step in epoch e (0-based) records ``diverged_epoch = e + 1``; later steps keep that epoch;
    ``guard_epoch`` returns the epoch's start state with the divergence epoch, and a live member's end state."""
    config, step, s0 = _setup()
    s0 = s0._replace(epoch=jnp.asarray(3, s0.epoch.dtype))
    good, _ = step(s0, X, Y, IDX)
    bad_x = X.at[0, 0].set(jnp.nan)
    s1, _ = step(good, bad_x, Y, IDX)
    assert int(s1.diverged_epoch) == 4
    assert not np.isfinite(np.asarray(s1.params["dense_0"]["kernel"])).all()
    s2, _ = step(s1._replace(epoch=jnp.asarray(5, s0.epoch.dtype)), X, Y, IDX)
    assert int(s2.diverged_epoch) == 4
    guarded = jtrain.guard_epoch(config, s0, s1)
    assert int(guarded.diverged_epoch) == 4 and int(guarded.step) == int(s0.step)
    _assert_same(guarded._replace(diverged_epoch=s0.diverged_epoch), s0)
    _assert_same(jtrain.guard_epoch(config, s0, good), good)


def test_an_early_stopped_member_does_not_train():
    """With early stopping on, a member whose ``should_stop`` is set keeps its state through a step."""
    _, step, s0 = _setup(early_stopping=True)
    stopped = s0._replace(early=s0.early.replace(should_stop=jnp.asarray(True)))
    s1, m = step(stopped, X, Y, IDX)
    assert np.isfinite(float(m["loss"]))
    _assert_same(s1, stopped)
    live, _ = step(s0, X, Y, IDX)
    assert int(live.step) == 1


def test_explosion_rule_uses_the_first_objective():
    """With ``divergence_factor = f``: a step whose objective exceeds ``f · first_objective`` diverges."""
    _, step, s0 = _setup(divergence_factor=2.0)
    s1, m1 = step(s0, X, Y, IDX)
    assert int(s1.diverged_epoch) == -1
    s_low = s1._replace(first_objective=jnp.asarray(float(m1["objective"]) / 10, jnp.float32))
    s2, _ = step(s_low, X, Y, IDX)
    assert int(s2.diverged_epoch) == 1


def test_loss_hyperparameters_reach_the_loss():
    """Label smoothing ``s`` from the hyperparameters: the objective equals optax's smoothed cross-entropy."""
    config, step, s0 = _setup(loss="smoothed_cross_entropy")
    hp = dict(s0.hparams)
    names = config.loss_hparam_names()
    assert names, "the smoothed loss declares its smoothing hyperparameter"
    hp[names[0]] = jnp.asarray(0.3, jnp.float32)
    s0 = s0._replace(hparams=hp)
    _, m = step(s0, X, Y, IDX)
    logits, _ = config.model.apply(s0.params, s0.model_state, X[IDX], key=None, train=True, hparams=None)
    labels = optax.smooth_labels(jax.nn.one_hot(Y[IDX], 3), 0.3)
    ref = optax.softmax_cross_entropy(logits, labels).mean()
    np.testing.assert_allclose(float(m["loss"]), float(ref), rtol=1e-5)
    assert jlosses.get("smoothed_cross_entropy") is config.loss


def test_per_layer_gradient_norms_only_with_diagnostics():
    _, step, s0 = _setup()
    _, m = step(s0, X, Y, IDX)
    assert not any(k.startswith("grad_norm/") for k in m)
    config, step_d, s0 = _setup(diagnostics=True)
    _, md = step_d(s0, X, Y, IDX)
    layers = sorted(k for k in md if k.startswith("grad_norm/"))
    assert len(layers) == 2
    grads = jax.grad(
        lambda p: jtrain.loss_fn(config, p, s0.model_state, X[IDX], Y[IDX], key=None, hparams=s0.hparams)[0]
    )(s0.params)
    expected = sorted(float(optax.tree.norm(g)) for g in grads.values())
    np.testing.assert_allclose(sorted(float(md[k]) for k in layers), expected, rtol=1e-5)


def test_loss_fn_options_are_keyword_only():
    config, _, s0 = _setup()
    with pytest.raises(TypeError):
        jtrain.loss_fn(config, s0.params, s0.model_state, X, Y, None, s0.hparams)  # type: ignore[misc]


def test_evaluation_loss_reads_the_loss_hyperparameters():
    """``chunk_totals``: the masked sum of the smoothed cross-entropy with the member's smoothing."""
    config, _, s0 = _setup(loss="smoothed_cross_entropy")
    name = config.loss_hparam_names()[0]
    hp = {**s0.hparams, name: jnp.asarray(0.3, jnp.float32)}
    mask = jnp.arange(32) < 20
    totals = jtrain.chunk_totals(config, s0.params, s0.model_state, s0.one, hp, X, Y, mask)
    logits, _ = config.model.apply(s0.params, s0.model_state, X, key=None, train=False, hparams=None)
    per = optax.softmax_cross_entropy(logits, optax.smooth_labels(jax.nn.one_hot(Y, 3), 0.3))
    np.testing.assert_allclose(float(totals["loss"][0]), float(per[:20].sum()), rtol=1e-5)


def test_epoch_metrics_average_the_per_layer_gradient_norms():
    """``finish_epoch``: every ``grad_norm/<layer>`` of the steps becomes its epoch mean."""
    config, _, s0 = _setup(diagnostics=True)
    steps = {
        "loss": jnp.asarray([1.0, 3.0]),
        "grad_norm": jnp.asarray([2.0, 4.0]),
        "grad_norm/dense_0": jnp.asarray([1.0, 2.0]),
    }
    steps.update({m: jnp.asarray([0.5, 0.5]) for m in config.metric_names()})
    state, out = jtrain.finish_epoch(config, s0, steps, {})
    assert float(out["grad_norm/dense_0"]) == 1.5 and float(out["train_loss"]) == 2.0 and float(out["grad_norm"]) == 3.0
    assert int(state.epoch) == int(s0.epoch) + 1


def test_train_eval_is_the_final_params_accuracy_on_a_fixed_training_sample_in_eval_mode():
    """``train_eval_acc`` = accuracy of the epoch's params in eval mode (dropout off) on the sample that
    ``device_data(train_eval=n)`` draws (n rows of the training set, padded and masked like val/test)."""
    x, y = np.asarray(X), np.asarray(Y)
    d = jtrain.device_data(x, y, x[:10], y[:10], x[:12], y[:12], eval_batch_size=8, train_eval=20)
    fit = np.asarray(d.x_train_eval)[np.asarray(d.train_eval_mask)]
    assert fit.shape == (20, 8) and all((x == row).all(axis=1).any() for row in fit)
    assert d.x_train_eval.shape[0] % 8 == 0
    config = jtrain.TrainConfig(
        model=jmodels.mlp((16,), 3, dropout_rate=0.5),
        optimizer=joptim.OptimizerSpec("sgd"),
        epochs=2,
        batch_size=16,
        dropout=True,
        train_eval=20,
        eval_batch_size=8,
    )
    hp = jtrain.validate_hparams(config, {"learning_rate": 0.1, "dropout_rate": 0.5})
    state, hist = jax.jit(jtrain.make_train(config, d))(jax.random.key(0), hp)
    logits, _ = config.model.apply(
        state.params, state.model_state, jnp.asarray(fit), key=None, train=False, hparams=None
    )
    labels = np.asarray(d.y_train_eval)[np.asarray(d.train_eval_mask)]
    expected = float((np.asarray(logits).argmax(-1) == labels).mean())
    np.testing.assert_allclose(float(hist["train_eval_acc"][-1]), expected, rtol=1e-6)
    assert "train_eval_loss" in hist and "avg_train_eval_acc" not in hist
    with pytest.raises(ValueError, match="train_eval"):
        jtrain.TrainConfig(model=config.model, optimizer=config.optimizer, epochs=1, batch_size=16, train_eval=-1)
    with pytest.raises(ValueError, match="`train_eval` must be an int >= 0"):
        jtrain.device_data(x, y, x[:10], y[:10], x[:12], y[:12], eval_batch_size=8, train_eval=-5)
