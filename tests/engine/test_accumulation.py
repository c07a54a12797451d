"""Gradient accumulation (``Experiment.accumulate = k``, ``optax.MultiSteps``): k micro-batches of B/k make the
large-batch update, the schedule counts applied updates, population members stay their standalone runs."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from support.experiments import small_digits_mlp

from jtricks import experiment as jexp
from jtricks import models as jmodels
from jtricks import optim as joptim
from jtricks import pbt, prepare, runner
from jtricks import train as jtrain
from jtricks.keys import seed_key

pytestmark = pytest.mark.slow  # whole runs and populations: left out of `-m "not slow"`


def small_exp(**kw) -> jexp.Experiment:
    """The shared small digits MLP with SGD at 0.2 for 2 epochs; ``kw`` replace any field."""
    base = dict(name="acc", description="digits MLP, SGD", optimizer="sgd", hparams={"learning_rate": 0.2}, epochs=2)
    return small_digits_mlp(**{**base, **kw})


@pytest.fixture(scope="module")
def digits():
    return prepare.prepare_data(small_exp()).device


def _config(k: int, *, averaging=None, optimizer: str = "sgd") -> jtrain.TrainConfig:
    spec = joptim.OptimizerSpec(optimizer, schedule="cosine", total_steps=20, steps_per_epoch=10, accumulate=k)
    return jtrain.TrainConfig(
        model=jmodels.mlp((32,), 10), optimizer=spec, epochs=2, batch_size=64, eval_batch_size=128, averaging=averaging
    )


def _leaves(tree) -> list[np.ndarray]:
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(tree)]


def test_k_micro_batches_make_the_large_batch_sgd_step(digits) -> None:
    big, acc = _config(1, averaging="ema"), _config(4, averaging="ema")
    hp = jtrain.validate_hparams(big, {"learning_rate": 0.5})
    s_big = jtrain.init_state(big, seed_key(0), hp, (8, 8, 1))
    s_acc = jtrain.init_state(acc, seed_key(0), hp, (8, 8, 1))
    batch = jtrain.epoch_indices(big, s_big, 640)[0]
    micro = jtrain.epoch_indices(acc, s_acc, 640)
    assert micro.shape == (40, 16) and jtrain.micro_batch(acc) == 16
    np.testing.assert_array_equal(micro[:4].reshape(-1), batch)  # the large batch, cut in 4, in order
    after_big, _ = jax.jit(jtrain.make_train_step(big))(s_big, digits.x_train, digits.y_train, batch)
    step = jax.jit(jtrain.make_train_step(acc))
    s = s_acc
    for j in range(4):
        s, _ = step(s, digits.x_train, digits.y_train, micro[j])
        if j < 3:  # accumulating: neither the parameters nor their average move
            for a, b in zip(_leaves((s.params, s.averaging)), _leaves((s_acc.params, s_acc.averaging))):
                np.testing.assert_array_equal(a, b)
    moved = max(float(np.abs(a - b).max()) for a, b in zip(_leaves(after_big.params), _leaves(s_big.params)))
    assert moved > 1e-2
    # the mean of 4 micro-batch means (a running mean) vs one mean of 64: float32 rounding, ~3e-8 measured
    for a, b in zip(_leaves((s.params, s.averaging)), _leaves((after_big.params, after_big.averaging))):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert int(s.step) == 4 and int(s.opt_state.inner_opt_state.count) == int(after_big.opt_state.count) == 1


def test_the_schedule_counts_applied_updates(digits) -> None:
    acc = _config(4)
    hp = jtrain.as_arrays(jtrain.validate_hparams(acc, {"learning_rate": 0.5, "alpha": 0.0}))
    state, history = jax.jit(jtrain.make_train(acc, digits))(seed_key(1), hp)
    assert int(state.step) == 2 * 40 and int(state.opt_state.inner_opt_state.count) == 2 * 10
    schedule = joptim.build_schedule(acc.optimizer, hp)
    np.testing.assert_allclose(history["lr"], [schedule(10), schedule(20)], rtol=0, atol=0)
    assert float(history["lr"][-1]) == pytest.approx(0.0, abs=1e-7)  # the cosine reached its end in 20 updates


def test_an_accumulated_run_is_the_large_batch_run_within_rounding() -> None:
    exp = small_exp(schedule="per_epoch_decay", hparams={"learning_rate": 0.2, "decay_rate": 0.5})
    big = runner.run(exp, progress=False, plot=False)
    acc = runner.run(dataclasses.replace(exp, accumulate=4), progress=False, plot=False)
    rows = lambda res, metric: res.history("baseline", metric)  # noqa: E731
    np.testing.assert_array_equal(rows(acc, "lr"), rows(big, "lr"))  # 0.1, then 0.05: per applied update
    np.testing.assert_allclose(rows(acc, "lr")[0], [0.1, 0.05], rtol=1e-6)
    for metric in ("val_loss", "test_loss", "train_loss"):
        np.testing.assert_allclose(rows(acc, metric), rows(big, metric), rtol=1e-4)


def test_population_members_equal_standalone_runs_with_accumulation(digits) -> None:
    config = _config(2, averaging="ema", optimizer="momentum")
    train = jtrain.make_train(config, digits)
    lrs = [0.05, 0.2, 0.1]
    hps = [jtrain.validate_hparams(config, {"learning_rate": lr}) for lr in lrs]
    stacked = {k: jnp.asarray(np.array([h[k] for h in hps], np.float32)) for k in hps[0]}
    keys = jnp.stack([seed_key(s) for s in range(3)])
    pop_state, pop_hist = jax.jit(jax.vmap(train))(keys, stacked)
    for i in range(3):
        st, hist = jax.jit(train)(seed_key(i), jtrain.as_arrays(hps[i]))
        member = jax.tree_util.tree_map(lambda x, i=i: x[i], (pop_state.params, pop_hist))
        for a, b in zip(_leaves((st.params, hist)), _leaves(member)):
            np.testing.assert_array_equal(a, b)


def test_population_based_training_sets_the_accumulated_optimizer_s_hyperparameters(digits) -> None:
    config = _config(2)
    hps = [jtrain.validate_hparams(config, {"learning_rate": lr}) for lr in (0.1, 0.2)]
    stacked = {k: jnp.asarray(np.array([h[k] for h in hps], np.float32)) for k in hps[0]}
    state = jax.vmap(lambda k, h: jtrain.init_state(config, k, h, (8, 8, 1)))(
        jnp.stack([seed_key(0), seed_key(1)]), stacked
    )
    new = pbt.apply_copies(state, np.array([0, 1]), {"learning_rate": np.array([0.7], np.float32)})
    np.testing.assert_allclose(new.opt_state.inner_opt_state.hyperparams["learning_rate"], [0.7, 0.2])
    np.testing.assert_allclose(new.hparams["learning_rate"], [0.7, 0.2])


@pytest.mark.parametrize(
    "kw, fragment",
    [
        ({"accumulate": 3}, "'accumulate'=3 must divide 'batch_size'=64"),
        ({"accumulate": 0}, "'accumulate' must be a positive int"),
        ({"accumulate": 2.0}, "'accumulate' must be a positive int"),
    ],
)
def test_accumulate_is_checked_before_anything_loads(kw, fragment: str) -> None:
    with pytest.raises(ValueError) as e:
        jexp.validate(small_exp(**kw))
    assert fragment in str(e.value), str(e.value)
