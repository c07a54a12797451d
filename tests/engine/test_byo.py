"""Bring your own experiment: flax NNX / Linen and equinox models, numpy data, losses, metrics, optax
optimizers and custom hyperparameters through ``Experiment`` + ``runner.run``, and every bad input refused
before anything compiles."""

from __future__ import annotations

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jtricks import adapters, data, experiment, losses, metrics, numerics, programs, runner, train

pytestmark = pytest.mark.slow  # real jtricks runs / processes: left out of `-m "not slow"`

N_IN, N_CLASSES = 12, 3


def _toy(num_classes: int | None = N_CLASSES, seed: int = 0) -> data.Dataset:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(360, N_IN)).astype(np.float32)
    w = rng.normal(size=(N_IN,)).astype(np.float32)
    if num_classes is None:
        y = x @ w + 0.1 * rng.normal(size=360).astype(np.float32)
    else:
        y = np.digitize(x @ w, np.quantile(x @ w, [1 / 3, 2 / 3])).astype(np.int32)
    return data.arrays(x[:300], y[:300], x[300:], y[300:], num_classes=num_classes, name="toy")


CLASSIFICATION = _toy()
REGRESSION = _toy(None)


def _linen_model():
    import flax.linen as nn

    class MLP(nn.Module):
        @nn.compact
        def __call__(self, x, train: bool):
            h = nn.relu(nn.Dense(16)(x))
            h = nn.Dropout(0.2, deterministic=not train)(h)
            return nn.Dense(N_CLASSES)(h)

    return adapters.from_linen(MLP())


def _nnx_model():
    from flax import nnx

    class MLP(nnx.Module):
        def __init__(self, rngs: nnx.Rngs):
            self.hidden = nnx.Linear(N_IN, 16, rngs=rngs)
            self.drop = nnx.Dropout(0.2, rngs=rngs)
            self.out = nnx.Linear(16, N_CLASSES, rngs=rngs)

        def __call__(self, x):
            return self.out(self.drop(nnx.relu(self.hidden(x))))

    return adapters.from_nnx(MLP)


def _equinox_model():
    eqx = pytest.importorskip("equinox")

    build = lambda key: eqx.nn.MLP(N_IN, N_CLASSES, 16, depth=1, key=key)  # noqa: E731
    static = eqx.partition(build(jax.random.key(0)), eqx.is_inexact_array)[1]

    def init(key, input_shape):
        return eqx.partition(build(key), eqx.is_inexact_array)[0], {}

    def apply(params, state, x, *, key=None, train=False):
        return jax.vmap(eqx.combine(params, static))(x), state

    return adapters.from_fns(init, apply, name="eqx_mlp")


def _exp(model, **kw) -> experiment.Experiment:
    base = dict(
        name="byo",
        dataset=CLASSIFICATION,
        preprocess="standardize",
        n_val=60,
        model=model,
        optimizer="adam",
        grid={"learning_rate": [1e-3, 1e-2]},
        epochs=2,
        batch_size=30,
        eval_batch_size=50,
        seeds=2,
    )
    return experiment.Experiment(**{**base, **kw})


def _params_equal(a, b) -> bool:
    la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    return len(la) == len(lb) and all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(la, lb))


@pytest.mark.parametrize("make", [_nnx_model, _linen_model, _equinox_model], ids=["nnx", "linen", "equinox"])
def test_foreign_model_through_the_runner_with_bit_identical_members(make, tmp_path) -> None:
    model = make()
    assert model.batch_invariant is False
    exp = _exp(model, grid={"learning_rate": [1e-2]}, seeds=3)
    whole = runner.run(exp, out_dir=tmp_path / "run", progress=False, plot=True, checkpoint=False)
    alone = runner.run(exp, max_members=1, progress=False, plot=False, checkpoint=False)
    # members of a population of 3 == members of populations of 1, bit for bit (metrics and parameters)
    assert whole.metric_rows == alone.metric_rows
    for k in whole.final_states:
        assert _params_equal(whole.final_states[k], alone.final_states[k])
    accs = [r for r in whole.summary if r["metric"] == "test_acc"]
    assert len(accs) == 1 and all(r["n"] == 3 and r["ci_lo"] <= r["mean"] <= r["ci_hi"] for r in accs)
    assert max(r["mean"] for r in accs) > 0.5  # 3 balanced classes: chance is 1/3
    out = tmp_path / "run"
    assert (out / "curves.png").stat().st_size > 0 and (out / "summary.md").is_file()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["model"] == f"Model({model.name})"
    assert manifest["config"]["dataset"] == "Dataset(toy)" and manifest["data"][0][1]  # description, checksum


def test_regression_with_mse_and_r2() -> None:
    exp = _exp(
        "mlp",
        dataset=REGRESSION,
        model_kwargs={"widths": (16,)},
        loss="mse",
        epochs=4,
        metrics=("test_r2", "test_mse", "train_loss"),
    )
    res = runner.run(exp, progress=False, plot=False, checkpoint=False)
    r2 = {r["arm"]: r["mean"] for r in res.summary if r["metric"] == "test_r2"}
    mse = {r["arm"]: r["mean"] for r in res.summary if r["metric"] == "test_mse"}
    assert set(r2) == {"learning_rate=0.001", "learning_rate=0.01"}
    assert r2["learning_rate=0.01"] > 0.5  # a near-linear target (0.74 after 4 epochs)
    # r2 = 1 - mse / var(y_test): the two metrics agree with numpy on the test targets
    var = float(np.var(REGRESSION.y_test))
    for arm in r2:
        rows = [r for r in res.metric_rows if r["arm"] == arm and r["epoch"] == 4]
        for seed in (0, 1):
            v = {r["metric"]: r["value"] for r in rows if r["seed"] == seed}
            np.testing.assert_allclose(v["test_r2"], 1 - v["test_mse"] / var, rtol=1e-4)
    assert res.directions["test_r2"] is True and res.directions["test_mse"] is False
    assert mse["learning_rate=0.01"] < mse["learning_rate=0.001"]


def test_optax_optimizer_grid_is_one_program() -> None:
    exp = _exp(
        "mlp",
        model_kwargs={"widths": (16,)},
        optimizer=optax.lion,
        grid={"learning_rate": [1e-4, 1e-3], "b1": [0.9, 0.95]},
        epochs=1,
    )
    res = runner.run(exp, progress=False, plot=False, checkpoint=False)
    assert len(res.arms) == 4 and res.compiles == {"group0/init": 1, "group0/epoch": 1}
    alone = runner.run(exp, max_members=1, progress=False, plot=False, checkpoint=False)
    assert res.metric_rows == alone.metric_rows  # lion members are bit-identical to standalone runs


def _weighted_ce(outputs, targets, hparams):
    ce = numerics.softmax_cross_entropy(outputs, targets)
    return ce + hparams["aux_weight"] * numerics.mean(jnp.square(outputs), -1)


def test_custom_hyperparameter_grid_is_data_and_reaches_the_loss() -> None:
    loss = losses.loss(_weighted_ce, targets="class", name="weighted_ce")
    exp = _exp(
        "mlp",
        model_kwargs={"widths": (16,)},
        loss=loss,
        custom_hparams={"aux_weight": 0.0},
        grid={"aux_weight": [0.0, 1.0]},
        epochs=2,
    )
    res = runner.run(exp, progress=False, plot=False, checkpoint=False)
    assert res.compiles == {"group0/init": 1, "group0/epoch": 1}
    plain = runner.run(
        _exp("mlp", model_kwargs={"widths": (16,)}, grid={}, epochs=2), progress=False, plot=False, checkpoint=False
    )
    # aux_weight = 0 is the cross-entropy run: the same rows, equal up to float32 rounding (the two are different
    # programs, which XLA may fuse differently: only members of one program are promised the same bits)
    zero = [dict(r, arm="") for r in res.metric_rows if r["arm"] == "aux_weight=0"]
    ref = [dict(r, arm="") for r in plain.metric_rows]
    assert [{k: v for k, v in r.items() if k != "value"} for r in zero] == [
        {k: v for k, v in r.items() if k != "value"} for r in ref
    ]
    np.testing.assert_allclose([r["value"] for r in zero], [r["value"] for r in ref], rtol=2e-4, atol=2e-5)
    assert res.history("aux_weight=1", "train_loss")[0, -1] != res.history("aux_weight=0", "train_loss")[0, -1]
    # --set can sweep it too
    swept = experiment.with_settings(exp, experiment.parse_set(["aux_weight=[0.1,0.2]"], exp))
    assert [a.name for a in experiment.validate(swept)] == ["aux_weight=0.1", "aux_weight=0.2"]


def _refused_before_compiling(exp: experiment.Experiment, match: str) -> None:
    counter = programs.TraceCounter()
    with pytest.raises((ValueError, TypeError), match=match):
        runner.build(runner.plan(exp), counter)
    assert not counter.counts  # nothing was traced


def test_regression_targets_with_a_classification_loss_are_refused() -> None:
    _refused_before_compiling(_exp("mlp", dataset=REGRESSION), "integer|regression")


def test_labels_outside_the_models_outputs_are_refused() -> None:
    model = experiment.build_model(_exp("mlp", model_kwargs={"widths": (8,), "num_classes": 2}), 2)
    five = data.arrays(
        CLASSIFICATION.x_train, np.arange(300) % 5, CLASSIFICATION.x_test, np.arange(60) % 5, num_classes=5
    )
    _refused_before_compiling(_exp(model, dataset=five), "label|outputs")


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"metrics": ("test_r2",)}, "test_r2"),
        ({"loss": "hinge"}, "loss"),
        ({"eval_metrics": ("f7",)}, "metric"),
        ({"grid": {"aux_weight": [0.1]}}, "custom_hparams"),
        ({"monitor": "val_r2", "early_stopping": True}, "monitor"),
        ({"dataset": "no_such_data"}, "dataset"),
        ({"model": "no_such_model"}, "model"),
    ],
)
def test_bad_settings_are_refused_before_anything_loads(kw, match) -> None:
    with pytest.raises((ValueError, TypeError), match=match):
        runner.plan(_exp("mlp", **kw))


def test_l2_with_an_equinox_model() -> None:
    res = runner.run(
        _exp(_equinox_model(), l2=True, hparams={"l2": 1e-3}, grid={}, epochs=1, seeds=1),
        progress=False,
        plot=False,
        checkpoint=False,
    )
    assert np.isfinite(res.history("baseline", "train_loss")).all()


def test_registered_dataset_and_model_by_name(tmp_path) -> None:
    data.register_dataset("toy_for_tests", lambda seed=0: _toy(seed=seed), overwrite=True)
    from jtricks import models

    models.register_model("linen_for_tests", lambda num_classes=N_CLASSES: _linen_model(), overwrite=True)
    try:
        exp = _exp("linen_for_tests", dataset="toy_for_tests", dataset_kwargs={"seed": 1}, grid={}, epochs=1, seeds=1)
        res = runner.run(exp, progress=False, plot=False, checkpoint=False)
        assert res.summary and np.isfinite(res.summary[0]["mean"])
        with pytest.raises(ValueError, match="not arguments of the 'toy_for_tests' loader"):
            runner.plan(_exp("mlp", dataset="toy_for_tests", dataset_kwargs={"sed": 1}))
        with pytest.raises(ValueError, match="already registered"):
            data.register_dataset("digits", lambda: CLASSIFICATION)
    finally:
        data.unregister_dataset("toy_for_tests")
        models.unregister_model("linen_for_tests")
    assert "toy_for_tests" not in data.names() and "linen_for_tests" not in models.names()
    with pytest.raises(ValueError, match="not a user-registered"):
        models.unregister_model("mlp")


def test_custom_metric_direction_drives_the_summary() -> None:
    err = metrics.metric(lambda o, y: (jnp.argmax(o, -1) != y).astype(jnp.float32), name="err", higher_is_better=False)
    exp = _exp(
        "mlp", model_kwargs={"widths": (16,)}, eval_metrics=("acc", err), metrics=("test_err", "test_acc"), epochs=2
    )
    res = runner.run(exp, progress=False, plot=False, checkpoint=False)
    rows = {(r["metric"], r["arm"]): r for r in res.summary}
    for arm in ("learning_rate=0.001", "learning_rate=0.01"):
        np.testing.assert_allclose(rows[("test_err", arm)]["mean"], 1 - rows[("test_acc", arm)]["mean"], atol=1e-6)
    assert res.directions["test_err"] is False and res.directions["val_err"] is False
    acc_verdict = rows[("test_acc", "learning_rate=0.01")]["verdict"]
    err_verdict = rows[("test_err", "learning_rate=0.01")]["verdict"]
    assert acc_verdict == err_verdict  # "better" accuracy is "better" (lower) error


def test_custom_metric_is_an_early_stopping_monitor_with_its_own_direction() -> None:
    """``monitor="val_score"`` with a custom ``score`` (higher is better): early stopping keeps the epoch of the
    largest validation score."""
    score = metrics.metric(
        lambda o, y: (jnp.argmax(o, -1) == y).astype(jnp.float32), name="score", higher_is_better=True
    )
    exp = _exp(
        "mlp",
        model_kwargs={"widths": (16,)},
        eval_metrics=(score,),
        metrics=("test_score",),
        early_stopping=True,
        monitor="val_score",
        hparams={"patience": 2.0},
        grid={"learning_rate": [3e-2]},
        epochs=4,
    )
    res = runner.run(exp, progress=False, plot=False, checkpoint=False)
    for m in res.member_rows:
        curve = res.history("learning_rate=0.03", "val_score")[m["seed"]]
        assert curve.max() > curve.min()  # the score moved: a minimum would be another epoch
        assert m["best_epoch"] == int(np.argmax(curve)) + 1  # the first epoch of the largest score
    with pytest.raises(ValueError, match=r"monitor.*'val_score'"):
        runner.plan(_exp("mlp", early_stopping=True, monitor="val_scor", eval_metrics=(score,)))


def _focal(outputs, targets, hparams):
    """Focal loss ``-(1 - p_y)^gamma log p_y``: its own ``gamma``, not momentum's."""
    logp = numerics.log_softmax(outputs)
    lp = jnp.take_along_axis(logp, targets[:, None], -1)[:, 0]
    return -((1.0 - numerics.exp(lp)) ** hparams["gamma"]) * lp


def test_a_loss_hyperparameter_has_its_own_namespace() -> None:
    """A focal loss's ``gamma`` is ``loss.gamma``: under momentum the optimizer keeps its ``gamma`` (0.9) and the
    loss gets its own; under Adam ``loss.gamma=2`` is not checked against momentum's range; a bare ``gamma`` is the
    optimizer's, and a hint names the loss's key."""
    focal = losses.loss(_focal, targets="class", hparams={"gamma": 0.5})
    exp = _exp("mlp", model_kwargs={"widths": (16,)}, loss=focal, optimizer="momentum", grid={}, epochs=1, seeds=1)
    config = experiment.build_config(exp, experiment.build_model(exp, N_CLASSES), 300)
    full = train.validate_hparams(config, {})
    assert full["gamma"] == 0.9 and full["loss.gamma"] == 0.5
    assert config.loss_hparams(full) == {"gamma": 0.5}
    swept = experiment.with_settings(exp, experiment.parse_set(["loss.gamma=[0.5,2.0]"], exp))
    res = runner.run(swept, progress=False, plot=False, checkpoint=False)
    assert [a.name for a in res.arms] == ["loss.gamma=0.5", "loss.gamma=2"]
    assert res.compiles == {"group0/init": 1, "group0/epoch": 1}
    losses_at_1 = [res.history(a.name, "train_loss")[0, 0] for a in res.arms]
    assert losses_at_1[0] != losses_at_1[1]  # the loss read its own value
    adam = dataclasses.replace(exp, optimizer="adam", hparams={"loss.gamma": 2.0})
    assert experiment.validate(adam)[0].hparams == {"loss.gamma": 2.0}
    with pytest.raises(ValueError, match=r"not read by arm .*the loss's own 'gamma' is set as 'loss.gamma'"):
        experiment.validate(dataclasses.replace(adam, hparams={"gamma": 2.0}))
    weighted = losses.loss(_weighted_ce, targets="class", name="weighted_ce", hparams={"aux_weight": 0.1})
    with pytest.raises(ValueError, match=r"custom_hparams \['aux_weight'\] are also hyperparameters of the loss"):
        experiment.validate(dataclasses.replace(exp, loss=weighted, custom_hparams={"aux_weight": 1.0}))


def test_a_loaded_member_preprocesses_raw_inputs_as_the_run_did(tmp_path) -> None:
    """``jtricks.load(...).apply(x_raw)`` under ``preprocess="standardize"``: the run's test accuracy and the logits
    of the preprocessed inputs; ``preprocess=False`` is the raw model. A folder saved without the record fits the
    preprocessing again from the data: the same statistics."""
    import jtricks
    from jtricks import prepare

    far = data.arrays(  # inputs far from standardized: a model fed them unprocessed predicts something else
        CLASSIFICATION.x_train * 7.0 + 3.0,
        CLASSIFICATION.y_train,
        CLASSIFICATION.x_test * 7.0 + 3.0,
        CLASSIFICATION.y_test,
        num_classes=N_CLASSES,
        name="far",
    )
    exp = _exp("mlp", dataset=far, model_kwargs={"widths": (16,)}, grid={"learning_rate": [1e-2]}, seeds=1)
    res = runner.run(exp, out_dir=tmp_path / "run", progress=False, plot=False, checkpoint=False)
    member = jtricks.load(tmp_path / "run", arm="learning_rate=0.01", seed=0, experiment=exp)
    assert "preprocess='standardize'" in repr(member) and "raw inputs" in repr(member)
    logits = np.asarray(member.apply(far.x_test))
    x_pre, y_test = prepare.prepare_data(member.experiment).host["test"]
    np.testing.assert_array_equal(logits, np.asarray(member.apply(x_pre, preprocess=False)))
    acc = float(np.mean(np.argmax(logits, -1) == y_test))
    assert acc == pytest.approx(res.history("learning_rate=0.01", "test_acc")[0, -1], abs=1e-6) and acc > 0.5
    assert not np.allclose(np.asarray(member.apply(far.x_test, preprocess=False)), logits)
    index_file = tmp_path / "run" / "models" / "index.json"
    index = json.loads(index_file.read_text())
    assert index["chunks"][0]["preprocess"]["method"] == "standardize"
    for chunk in index["chunks"]:
        del chunk["preprocess"]
    index_file.write_text(json.dumps(index))
    again = jtricks.load(tmp_path / "run", arm="learning_rate=0.01", seed=0, experiment=exp)
    np.testing.assert_array_equal(np.asarray(again.apply(far.x_test)), logits)


def test_float64_regression_targets_are_rounded_to_float32_with_one_warning() -> None:
    """float64 targets that float32 cannot hold: one warning naming the splits, from ``data.arrays`` and from the
    engine's data preparation (a ``Dataset`` built directly); exactly representable ones: silent."""
    import warnings

    from jtricks import prepare

    rng = np.random.default_rng(1)
    x = REGRESSION.x_train
    y64 = x.astype(np.float64) @ rng.normal(size=(N_IN,))  # float64, not float32-representable
    x_te, y_te = REGRESSION.x_test, REGRESSION.y_test.astype(np.float64) / 3.0
    with pytest.warns(UserWarning) as record:
        ds = data.arrays(x, y64, x_te, y_te, num_classes=None, name="f64")
    assert len(record) == 1, [str(r.message) for r in record]
    message = str(record[0].message)
    assert "data set 'f64': y_train, y_test are float64 regression targets, rounded to float32" in message
    assert "largest relative change" in message and ds.y_train.dtype == np.float32
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # float32 values held as float64: nothing is rounded, nothing said
        data.arrays(x, y64.astype(np.float32).astype(np.float64), x_te, ds.y_test, num_classes=None)
    direct = data.Dataset("direct", x, y64, x_te, y_te, None, (N_IN,))
    with pytest.warns(UserWarning, match=r"'direct': y_train, y_val, y_test are float64 regression targets"):
        prepared = prepare.prepare_data(_exp("mlp", dataset=direct, loss="mse"))
    assert prepared.device.y_train.dtype == jnp.float32
