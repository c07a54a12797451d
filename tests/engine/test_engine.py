"""Invariants of the training engine and the population runner.

Training is chaotic, so these tests demand *bitwise* equality wherever the engine promises it: one ulp
of difference grows into a different run.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from support.experiments import small_digits_mlp

from jtricks import experiment as jexp
from jtricks import models as jmodels
from jtricks import optim as joptim
from jtricks import prepare, runner
from jtricks import train as jtrain
from jtricks.keys import key_for, seed_key, stable_id

pytestmark = pytest.mark.slow  # real jtricks runs / processes: left out of `-m "not slow"`

REPO = Path(__file__).resolve().parents[2]


small_exp = small_digits_mlp


@pytest.fixture(scope="module")
def digits_data():
    exp = small_exp()
    dd, num_classes, input_shape = prepare.prepare_data(exp)[:3]
    return dd, num_classes, input_shape


def _config(model=None, *, dropout=True, **kw) -> jtrain.TrainConfig:
    model = model or jmodels.mlp((32,), 10)
    spec = joptim.OptimizerSpec("adam", schedule="per_epoch_decay", clip=True, steps_per_epoch=10)
    return jtrain.TrainConfig(
        model=model, optimizer=spec, epochs=3, batch_size=64, eval_batch_size=128, dropout=dropout, **kw
    )


def _hp(config: jtrain.TrainConfig, **kw) -> dict:
    return jtrain.validate_hparams(config, kw)


def _stack(hps: list[dict]) -> dict:
    return {k: jnp.asarray(np.array([h[k] for h in hps], np.float32)) for k in hps[0]}


def _tree_equal(a, b) -> bool:
    la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    return len(la) == len(lb) and all(
        np.array_equal(np.asarray(x), np.asarray(y), equal_nan=True) for x, y in zip(la, lb)
    )


def _member(tree, i):
    return jax.tree_util.tree_map(lambda x: x[i], tree)


# ------------------------------------------------------------------------------------------ keys
def test_stable_ids_are_fixed_and_distinct():
    ids = {n: stable_id(n) for n in ("init", "data", "dropout")}
    assert len(set(ids.values())) == 3
    # the value is a pure function of the name: pin it so a refactor cannot silently change every stream
    import hashlib

    assert ids["init"] == int.from_bytes(hashlib.sha256(b"init").digest()[:4], "big") & 0x7FFFFFFF
    with pytest.raises(ValueError, match="stream name"):
        stable_id("")


# ---------------------------------------------------------------------- population == standalone
def test_population_members_equal_standalone_runs_bitwise(digits_data):
    dd, _, _ = digits_data
    config = _config()
    train = jtrain.make_train(config, dd)
    members = [(0, 3e-3, 0.0), (1, 1e-2, 0.2), (2, 3e-3, 0.5), (3, 1e-3, 0.2)]
    hps = [_hp(config, learning_rate=lr, dropout_rate=r, clip_norm=1.0, decay_rate=0.9) for _, lr, r in members]
    keys = jnp.stack([seed_key(s) for s, _, _ in members])
    pop_state, pop_hist = jax.jit(jax.vmap(train))(keys, _stack(hps))
    # a population of another size (the last two members only)
    pop2_state, pop2_hist = jax.jit(jax.vmap(train))(keys[2:], _stack(hps[2:]))
    alone = jax.jit(train)
    for i, (s, _, _) in enumerate(members):
        st, hist = alone(seed_key(s), jtrain.as_arrays(hps[i]))
        assert _tree_equal(st.params, _member(pop_state.params, i)), f"member {i} params differ from standalone"
        assert _tree_equal(hist, _member(pop_hist, i)), f"member {i} history differs from standalone"
        if i >= 2:
            assert _tree_equal(st.params, _member(pop2_state.params, i - 2))
            assert _tree_equal(hist, _member(pop2_hist, i - 2))
    # and the runs really differ from each other (the test can fail)
    assert not np.array_equal(pop_hist["train_loss"][0], pop_hist["train_loss"][1])


def test_scan_and_loop_execution_agree(digits_data):
    dd, _, input_shape = digits_data
    exp = small_exp(grid={"dropout_rate": [0.0, 0.3]}, hparams={"learning_rate": 3e-3}, epochs=2)
    scan = runner.run(dataclasses.replace(exp, execution="scan"), progress=False)
    loop = runner.run(dataclasses.replace(exp, execution="loop"), progress=False)
    a = {(r["arm"], r["seed"], r["epoch"], r["metric"]): r["value"] for r in scan.metric_rows}
    b = {(r["arm"], r["seed"], r["epoch"], r["metric"]): r["value"] for r in loop.metric_rows}
    assert a.keys() == b.keys()
    va, vb = np.array([a[k] for k in sorted(a)]), np.array([b[k] for k in sorted(a)])
    # Same math; XLA may fuse the two programs differently, so allow float32 round-off growth over 2 epochs.
    np.testing.assert_allclose(va, vb, rtol=2e-4, atol=2e-5)


# ------------------------------------------------------------------------------ named key streams
def test_toggling_dropout_keeps_init_and_data_order(digits_data):
    dd, _, input_shape = digits_data
    with_dropout = _config(jmodels.mlp((32,), 10, dropout_rate=0.5), dropout=True)
    without = _config(jmodels.mlp((32,), 10), dropout=False)
    key = seed_key(7)
    s1 = jtrain.init_state(with_dropout, key, _hp(with_dropout, dropout_rate=0.5), input_shape)
    s2 = jtrain.init_state(without, key, _hp(without), input_shape)
    s3 = jtrain.init_state(with_dropout, key, _hp(with_dropout, dropout_rate=0.2), input_shape)
    assert _tree_equal(s1.params, s2.params) and _tree_equal(s1.params, s3.params)
    n = int(dd.x_train.shape[0])
    idx1 = jtrain.epoch_indices(with_dropout, s1, n)
    idx2 = jtrain.epoch_indices(without, s2, n)
    assert np.array_equal(idx1, idx2)
    # different seeds do differ
    s4 = jtrain.init_state(without, seed_key(8), _hp(without), input_shape)
    assert not _tree_equal(s4.params, s2.params)
    assert key_for(key, "init").tolist() != key_for(key, "data").tolist()


# --------------------------------------------------------------------------------- compile count
def test_grid_compiles_once_per_static_configuration():
    exp = small_exp(
        grid={"learning_rate": [1e-3, 3e-3], "dropout_rate": [0.0, 0.5], "model.norm": [None, "layer"]},
        hparams={},
        seeds=4,
        epochs=1,
    )
    res = runner.run(exp, progress=False)
    # two static configurations (norm None / layer), each compiled exactly once per function
    assert set(res.compiles) == {"group0/init", "group0/epoch", "group1/init", "group1/epoch"}
    assert all(c == 1 for c in res.compiles.values()), res.compiles
    assert len(res.member_rows) == 2 * 2 * 2 * 4


def test_chunked_population_equals_whole_population():
    exp = small_exp(grid={"learning_rate": [1e-3, 3e-3, 1e-2]}, hparams={}, seeds=2, epochs=2)
    whole = runner.run(exp, progress=False)
    chunked = runner.run(exp, progress=False, max_members=4)  # 6 members -> chunks of 4 and 2 (+2 padding)
    assert whole.metric_rows == chunked.metric_rows
    assert all(c == 1 for c in chunked.compiles.values()), chunked.compiles


@pytest.mark.parametrize(
    "model,kw",
    [
        ("mlp", {"model_kwargs": {"widths": (32,)}}),  # scan execution: init + epoch compiled ahead
        (
            "mlp",
            {"model_kwargs": {"widths": (32,)}, "execution": "loop"},
        ),  # host-loop execution: its programs compiled ahead
    ],
)
def test_ahead_of_time_compilation_gives_identical_results(model, kw):
    """compile_workers=2 compiles both static groups' programs in threads before training: same programs,
    so bit-identical metrics, still one trace per function, and the compile time lands in the timing record."""
    exp = small_exp(
        model=model,
        **kw,
        grid={"learning_rate": [1e-3, 3e-3], "model.norm": [None, "layer"]},
        hparams={},
        seeds=2,
        epochs=2,
    )
    lazy = runner.run(exp, progress=False, compile_workers=1)
    ahead = runner.run(exp, progress=False, compile_workers=2)
    assert ahead.metric_rows == lazy.metric_rows
    assert ahead.compiles == lazy.compiles and all(c == 1 for c in ahead.compiles.values()), ahead.compiles
    for t in ahead.timing:
        assert t["compile_s"] > 0 and len(t["epoch_s"]) == 2 and t["members"] == 4
    assert all(t["compile_s"] is None for t in lazy.timing)
    assert [t["arms"] for t in ahead.timing] == [
        ["learning_rate=0.001,norm=None", "learning_rate=0.003,norm=None"],
        ["learning_rate=0.001,norm=layer", "learning_rate=0.003,norm=layer"],
    ]


def test_compile_workers_is_validated_before_anything_runs():
    with pytest.raises(ValueError, match="compile_workers"):
        runner.run(small_exp(), progress=False, compile_workers=0)


# ------------------------------------------------------------------------------------ divergence
def test_diverging_member_is_frozen_and_does_not_affect_others():
    exp = small_exp(grid={"learning_rate": [3e-3, 1e9]}, hparams={}, optimizer="sgd", seeds=2, epochs=3)
    res = runner.run(exp, progress=False)
    alone = runner.run(dataclasses.replace(exp, grid={"learning_rate": [3e-3]}), progress=False)
    div = {(m["arm"], m["seed"]): m["diverged_epoch"] for m in res.member_rows}
    assert div[("learning_rate=1e+09", 0)] >= 1 and div[("learning_rate=1e+09", 1)] >= 1
    assert div[("learning_rate=0.003", 0)] == -1
    good = [r for r in res.metric_rows if r["arm"] == "learning_rate=0.003"]
    assert good == alone.metric_rows  # bitwise: the diverging member changed nothing
    bad = res.history("learning_rate=1e+09", "val_acc")
    first = min(div[("learning_rate=1e+09", s)] for s in (0, 1))
    assert np.isnan(bad[:, first - 1 :]).all()
    row = [r for r in res.summary if r["arm"] == "learning_rate=1e+09" and r["metric"] == "test_acc"][0]
    assert row["diverged"] == 2 and row["n"] == 0
    # the frozen params stay finite (nothing poisoned)
    for k, p in res.final_states.items():
        assert all(np.isfinite(x).all() for x in jax.tree_util.tree_leaves(p)), k


def test_exploding_but_finite_member_is_diverged_and_does_not_affect_others():
    """SGD at learning rate 3e3: the loss reaches ~1e11 in epoch 1 but stays finite. The explosion rule
    (|objective| > 1e6 x the first step's) freezes it in epoch 1; switched off, the same member trains on."""
    exp = small_exp(grid={"learning_rate": [3e-3, 3e3]}, hparams={}, optimizer="sgd", seeds=2, epochs=2)
    assert exp.divergence_factor == 1e6  # the default
    res = runner.run(exp, progress=False)
    div = {(m["arm"], m["seed"]): m["diverged_epoch"] for m in res.member_rows}
    assert div == {
        ("learning_rate=0.003", 0): -1,
        ("learning_rate=0.003", 1): -1,
        ("learning_rate=3000", 0): 1,
        ("learning_rate=3000", 1): 1,
    }
    assert np.isnan(res.history("learning_rate=3000", "val_acc")).all()
    row = [r for r in res.summary if r["arm"] == "learning_rate=3000" and r["metric"] == "test_acc"][0]
    assert row["diverged"] == 2 and row["n"] == 0
    for k, p in res.final_states.items():
        assert all(np.isfinite(x).all() for x in jax.tree_util.tree_leaves(p)), k
    alone = runner.run(dataclasses.replace(exp, grid={"learning_rate": [3e-3]}), progress=False)
    assert [r for r in res.metric_rows if r["arm"] == "learning_rate=0.003"] == alone.metric_rows  # bitwise
    off = runner.run(dataclasses.replace(exp, divergence_factor=None), progress=False)
    assert all(m["diverged_epoch"] == -1 for m in off.member_rows)
    exploded = off.history("learning_rate=3000", "train_loss")[:, 0]
    first = off.history("learning_rate=0.003", "train_loss")[:, 0]  # ~2.5: the first objectives are of this size
    assert np.isfinite(exploded).all() and (exploded > 1e6 * first).all()


def test_divergence_factor_is_validated():
    with pytest.raises(ValueError, match=r"divergence_factor must be a finite number >= 1 or None, got 0.5"):
        jexp.validate(small_exp(divergence_factor=0.5))


# -------------------------------------------------------------------------------- early stopping
def test_early_stopping_per_member_restores_best(digits_data):
    exp = small_exp(
        early_stopping=True,
        grid={"learning_rate": [3e-3, 0.5]},
        hparams={"patience": 1.0},
        optimizer="sgd",
        epochs=6,
    )
    res = runner.run(exp, progress=False)
    stopped = [m for m in res.member_rows if m["stopped_epoch"] >= 0]
    assert stopped, "no member stopped early: the checks below would not run"
    for m in stopped:
        # after stopping, the member is frozen at its best params: later epochs repeat the best val loss
        vl = res.history(m["arm"], "val_loss")[m["seed"] - exp.seed_offset]
        best = m["best_epoch"]
        assert m["stopped_epoch"] >= best
        tail = vl[m["stopped_epoch"] - 1 :]
        assert np.all(tail[1:] == tail[0])
        assert np.isclose(tail[0], np.nanmin(vl[: m["stopped_epoch"]]), rtol=1e-6)


# ------------------------------------------------------------------------------ determinism & IO
def test_rerun_gives_identical_metrics_csv(tmp_path):
    exp = small_exp(grid={"dropout_rate": [0.0, 0.5]}, hparams={"learning_rate": 3e-3}, epochs=2)
    runner.run(exp, out_dir=tmp_path / "a", progress=False, plot=False)
    runner.run(exp, out_dir=tmp_path / "b", progress=False, plot=False)
    for f in ("metrics.csv", "members.csv", "summary.csv"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
    import json

    man = json.loads((tmp_path / "a" / "manifest.json").read_text())
    for key in ("versions", "device", "prng_impl", "seeds", "config", "compiles", "wall_time_s"):
        assert key in man
    assert man["versions"]["jax"] == jax.__version__


def _cli(args, cwd, env_extra=None, check=True):
    env = {**os.environ, **(env_extra or {})}
    env.setdefault("JAX_PLATFORMS", "cpu")
    p = subprocess.run(
        [sys.executable, "-m", "jtricks", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )
    if check and p.returncode != 0:
        raise AssertionError(f"exit {p.returncode}\n{p.stdout}\n{p.stderr}")
    return p


def _write_exp(tmp_path: Path) -> Path:
    f = tmp_path / "tinyexp.py"
    f.write_text(
        "from jtricks.experiment import Experiment\n"
        "EXPERIMENT = Experiment(name='tinyexp', description='tiny', dataset='digits', preprocess='unit', n_val=200,\n"
        "    n_train=640, model='mlp', model_kwargs={'widths': (32,)}, optimizer='adam', "
        "hparams={'learning_rate': 3e-3},\n"
        "    epochs=4, batch_size=64, eval_batch_size=128, seeds=2, grid={'dropout_rate': [0.0, 0.5]})\n"
    )
    return f


def test_kill_and_resume_reproduces_uninterrupted_run(tmp_path):
    f = _write_exp(tmp_path)
    _cli(["run", str(f), "--out", str(tmp_path / "full"), "--quiet", "--no-plot"], cwd=tmp_path)
    kill_after = Path(__file__).resolve().parents[1] / "support" / "kill_after_epoch.py"
    killed = subprocess.run(
        [
            sys.executable,
            str(kill_after),
            "2",
            "run",
            str(f),
            "--out",
            str(tmp_path / "resumed"),
            "--quiet",
            "--no-plot",
        ],
        cwd=tmp_path,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert killed.returncode != 0  # SIGKILL
    assert not (tmp_path / "resumed" / "metrics.csv").exists()
    assert list((tmp_path / "resumed" / "checkpoints").glob("*/2"))
    _cli(["run", str(f), "--out", str(tmp_path / "resumed"), "--quiet", "--no-plot", "--resume"], cwd=tmp_path)
    assert (tmp_path / "full" / "metrics.csv").read_bytes() == (tmp_path / "resumed" / "metrics.csv").read_bytes()


# ------------------------------------------------------------------------------- invalid configs
@pytest.mark.parametrize(
    "setting, fragment",
    [
        ("optimizer=adamm", "optimizer"),
        ("model.norm=batchy", "norm"),
        ("learning_rate=-1", "learning_rate"),
        ("dropout_rate=1.5", "dropout_rate"),
        ("colour=red", "unknown setting 'colour'"),
        ("dataset=cifar", "dataset"),
    ],
)
def test_invalid_config_fails_fast_with_a_clear_message(tmp_path, setting, fragment):
    f = _write_exp(tmp_path)
    p = _cli(["run", str(f), "--out", str(tmp_path / "x"), "--set", setting], cwd=tmp_path, check=False)
    assert p.returncode == 2, p.stderr
    assert fragment in p.stderr
    assert not (tmp_path / "x").exists()  # nothing ran


def test_cli_rejects_non_positive_compile_workers(tmp_path):
    f = _write_exp(tmp_path)
    p = _cli(["run", str(f), "--out", str(tmp_path / "x"), "--compile-workers", "0"], cwd=tmp_path, check=False)
    assert p.returncode == 2, p.stderr
    assert "--compile-workers must be a positive int, got 0" in p.stderr
    assert not (tmp_path / "x").exists()


def test_validate_rejects_hparams_not_read_by_an_arm():
    with pytest.raises(ValueError, match="clip_norm"):
        jexp.validate(small_exp(hparams={"clip_norm": 1.0}))  # clipping is off
    with pytest.raises(ValueError, match="baseline"):
        jexp.validate(small_exp(baseline="nope"))


def test_cli_list_shows_repo_experiments():
    p = _cli(["list"], cwd=REPO)
    assert "dropout_mnist1d" in p.stdout


# ------------------------------------------------------------------------------------- sharding
def test_population_sharded_over_four_host_devices_matches(tmp_path):
    f = _write_exp(tmp_path)
    _cli(["run", str(f), "--out", str(tmp_path / "one"), "--quiet", "--no-plot", "--epochs", "2"], cwd=tmp_path)
    _cli(
        ["run", str(f), "--out", str(tmp_path / "four"), "--quiet", "--no-plot", "--epochs", "2"],
        cwd=tmp_path,
        env_extra={"XLA_FLAGS": "--xla_force_host_platform_device_count=4"},
    )
    import json

    man = json.loads((tmp_path / "four" / "manifest.json").read_text())
    assert man["device"]["count"] == 4
    a = (tmp_path / "one" / "metrics.csv").read_text().splitlines()
    b = (tmp_path / "four" / "metrics.csv").read_text().splitlines()
    assert a == b


def test_cnn_population_members_equal_standalone_runs_bitwise():
    """Convolutional steps run members unrolled on CPU (population='auto'), so they too are bit-identical."""
    exp = small_exp(
        model="cnn",
        model_kwargs={"widths": (4, 8), "padding": "SAME"},
        n_train=256,
        batch_size=32,
        grid={"dropout_rate": [0.0, 0.5]},
        hparams={"learning_rate": 3e-3},
        epochs=2,
    )
    pop = runner.run(exp, progress=False)
    assert all(c == 1 for c in pop.compiles.values()), pop.compiles
    for seed in (0, 1):
        alone = runner.run(
            dataclasses.replace(exp, grid={"dropout_rate": [0.5]}, seeds=1, seed_offset=seed), progress=False
        )
        mine = [r for r in pop.metric_rows if r["arm"] == "dropout_rate=0.5" and r["seed"] == seed]
        assert mine == alone.metric_rows


def test_l2_and_weight_decay_arms_switch_themselves_on():
    exp = small_exp(arms=[{"name": "none"}, {"name": "l2", "l2": 1e-3}, {"name": "wd", "weight_decay": 1e-3}], epochs=1)
    arms = {a.name: a for a in jexp.validate(exp)}
    assert not arms["none"].experiment.l2 and not arms["none"].experiment.weight_decay
    assert arms["l2"].experiment.l2 and arms["l2"].hparams["l2"] == 1e-3
    assert arms["wd"].experiment.weight_decay and arms["wd"].hparams["weight_decay"] == 1e-3
    off = jexp.apply_overrides(small_exp(l2=True, hparams={"learning_rate": 3e-3}), {"l2": False})
    assert off.l2 is False


def test_step_schedule_drops_every_n_epochs():
    exp = small_exp(
        optimizer="sgd",
        schedule="step",
        decay_every_epochs=2,
        hparams={"learning_rate": 0.1, "decay_rate": 0.5},
        epochs=4,
        seeds=1,
    )
    res = runner.run(exp, progress=False)
    lr = res.history(res.arms[0].name, "lr")[0]  # lr at the end of each epoch (step = 10·epoch)
    steps_per_epoch = 640 // 64
    expected = [0.1 * 0.5 ** ((e * steps_per_epoch) // (2 * steps_per_epoch)) for e in (1, 2, 3, 4)]
    np.testing.assert_allclose(lr, expected, rtol=1e-6)


def test_missing_metric_does_not_break_the_plot(tmp_path):
    with pytest.raises(ValueError, match="avg_test_acc"):  # a metric no arm measures: refused before training
        runner.plan(small_exp(metrics=("test_acc", "avg_test_acc"), epochs=1, seeds=2))
    # measured by some arms only (the averaging ones): summarised where present, plotted
    exp = small_exp(
        metrics=("test_acc", "avg_test_acc"),
        epochs=1,
        seeds=2,
        arms=[{"name": "plain"}, {"name": "ema", "averaging": "ema"}],
    )
    res = runner.run(exp, out_dir=tmp_path, progress=False)
    assert {r["arm"] for r in res.summary if r["metric"] == "avg_test_acc"} == {"plain", "ema"}
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (tmp_path / "checkpoints").exists()
