"""Saved models, callbacks, TensorBoard and metrics every k steps, with a real ``jtricks run`` process.

One tiny CLI run (digits, 2 arms x 2 seeds, 3 epochs, EMA and early stopping) is shared by the tests of
this module: they load its members back and compare with the numbers the run recorded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import jtricks
from jtricks import report as jreport
from jtricks import saved as jsaved

pytestmark = pytest.mark.slow  # real jtricks runs / processes: left out of `-m "not slow"`

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "JAX_PLATFORMS": "cpu"}

EXPERIMENT = """\
import numpy as np
from jtricks import data
from jtricks.experiment import Experiment

rng = np.random.default_rng(0)
y = np.arange(420) % 3
x = (rng.normal(size=(420, 8)) + 1.5 * np.eye(3, 8)[y]).astype(np.float32)
TOY = data.arrays(x[:360], y[:360], x[360:], y[360:], num_classes=3, name="toy")
EXPERIMENT = Experiment(name='tooling', dataset=TOY, preprocess='standardize', n_val=60,
    model='mlp', model_kwargs={'widths': (16,)}, hparams={'learning_rate': 3e-2, 'patience': 1},
    grid={'dropout_rate': [0.0, 0.5]}, averaging='ema', early_stopping=True, epochs=3,
    batch_size=60, eval_batch_size=60, seeds=2)
"""


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("tooling")
    (tmp / "tooling.py").write_text(EXPERIMENT)
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "jtricks",
            "run",
            "tooling.py",
            "--out",
            "out",
            "--quiet",
            "--no-plot",
            "--tensorboard",
            "--set",
            "log_every=2",
        ],
        cwd=tmp,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0, p.stderr
    return tmp / "out"


def _recorded(run_dir: Path) -> dict[tuple[str, int, int, str], float]:
    return {
        (r["arm"], r["seed"], r["epoch"], r["metric"]): r["value"]
        for r in jreport.read_metrics_csv(run_dir / "metrics.csv")
    }


def test_saved_member_reproduces_its_recorded_numbers(run_dir: Path) -> None:
    rec = _recorded(run_dir)
    best_epoch = {(m["arm"], m["seed"]): m["best_epoch"] for m in jreport.read_members_csv(run_dir / "members.csv")}
    index = json.loads((run_dir / "models" / "index.json").read_text())
    assert [tuple(m) for c in index["chunks"] for m in c["members"]] == [
        ("dropout_rate=0", 0),
        ("dropout_rate=0", 1),
        ("dropout_rate=0.5", 0),
        ("dropout_rate=0.5", 1),
    ]
    for arm, seed in [("dropout_rate=0", 1), ("dropout_rate=0.5", 0)]:
        # the data set is an object of the experiment file: the file rebuilds the experiment
        member = jtricks.load(run_dir, arm=arm, seed=seed, experiment=str(run_dir.parent / "tooling.py"))
        assert member.hparams["dropout_rate"] == float(arm.split("=")[1])
        test = member.evaluate("test")
        # exact: the engine's evaluation of the saved weights, as in the run
        assert test["acc"] == rec[(arm, seed, 3, "test_acc")] > 0.5
        assert test["loss"] == rec[(arm, seed, 3, "test_loss")]
        assert member.evaluate("test", which="averaged")["acc"] == rec[(arm, seed, 3, "avg_test_acc")]
        best = best_epoch[(arm, seed)]
        assert member.evaluate("val", which="best")["loss"] == rec[(arm, seed, best, "val_loss")]
        x = member.experiment  # the arm's experiment gives the same test split
        from jtricks import prepare

        x_test, y_test = prepare.prepare_data(x).host["test"]
        logits = np.asarray(member.apply(x_test, preprocess=False))  # inputs preprocessed already
        acc = float(np.mean(np.argmax(logits, -1) == y_test))
        assert acc == pytest.approx(rec[(arm, seed, 3, "test_acc")], abs=1e-6)
        raw = x.dataset.x_test  # the data set's raw inputs: apply standardizes them as the run did
        np.testing.assert_array_equal(np.asarray(member.apply(raw)), logits)


def test_load_refuses_unknown_members_and_damaged_saves(run_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"`arm` must be one of \['dropout_rate=0', 'dropout_rate=0.5'\]"):
        jtricks.load(run_dir, arm="dropout_rate=0.2", seed=0)
    with pytest.raises(ValueError, match=r"`seed` must be one of \[0, 1\]"):
        jtricks.load(run_dir, arm="dropout_rate=0", seed=7)
    with pytest.raises(ValueError, match="no saved models"):
        jtricks.load(tmp_path, arm="dropout_rate=0", seed=0)
    with pytest.raises(ValueError, match=r"cannot rebuild the experiment .* pass experiment="):
        jtricks.load(run_dir, arm="dropout_rate=0", seed=0)  # the manifest names the data set Dataset(toy)
    member = jtricks.load(run_dir, arm="dropout_rate=0", seed=0, experiment=str(run_dir.parent / "tooling.py"))
    with pytest.raises(ValueError, match=r"`which` must be one of \['final', 'best', 'averaged'\]"):
        member.weights("ema")
    index = json.loads((run_dir / "models" / "index.json").read_text())
    index["chunks"][0]["sha256"] = "0" * 64
    damaged = tmp_path / "damaged"
    import shutil

    shutil.copytree(run_dir, damaged)
    (damaged / "models" / "index.json").write_text(json.dumps(index))
    with pytest.raises(ValueError, match="damaged"):
        jsaved.load(damaged, arm="dropout_rate=0", seed=0, experiment=member.experiment)


def _event_scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """The scalars of a TensorBoard run folder, read by TensorBoard's own loader."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_tensorboard_runs_hold_every_member_metric(run_dir: Path) -> None:
    rec = _recorded(run_dir)
    runs = sorted(p.relative_to(run_dir / "tensorboard").as_posix() for p in (run_dir / "tensorboard").glob("*/*"))
    assert runs == [
        "dropout_rate=0.5/seed=0",
        "dropout_rate=0.5/seed=1",
        "dropout_rate=0/seed=0",
        "dropout_rate=0/seed=1",
    ]
    scalars = _event_scalars(run_dir / "tensorboard" / "dropout_rate=0.5" / "seed=1")
    metrics = {m for (a, s, _, m) in rec if (a, s) == ("dropout_rate=0.5", 1) and "@" not in m}
    assert set(scalars) == metrics | {"train_loss_steps"}
    # every 2 of the 5 steps of an epoch, at the global step that ends the block
    steps = [(e - 1) * 5 + end for e in (1, 2, 3) for end in (2, 4, 5)]
    assert scalars["train_loss_steps"] == [
        (st, np.float32(rec[("dropout_rate=0.5", 1, (st - 1) // 5 + 1, f"train_loss@{(st - 1) % 5 + 1}")]))
        for st in steps
    ]
    for metric in ("val_acc", "train_loss", "avg_test_acc", "lr"):
        expected = [(e, np.float32(rec[("dropout_rate=0.5", 1, e, metric)])) for e in (1, 2, 3)]
        assert scalars[metric] == expected  # float32 values, step = epoch


def test_tensorboard_arm_mode_writes_mean_and_band(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from jtricks import stats
    from jtricks.tensorboard import TensorBoard

    rows = [
        {"arm": arm, "seed": s, "epoch": e, "metric": "val_acc", "value": 0.5 + 0.1 * e + 0.01 * s + d}
        for arm, d in (("a", 0.0), ("b=1", 0.05))
        for s in range(3)
        for e in (1, 2)
    ]
    tb = TensorBoard(tmp_path / "tb", mode="arm")
    tb.on_epoch_end(rows)  # nothing live in arm mode
    assert not (tmp_path / "tb").exists()
    tb.on_run_end(SimpleNamespace(metric_rows=rows))
    scalars = _event_scalars(tmp_path / "tb" / "b=1")
    ci = stats.mean_ci([r["value"] for r in rows if r["arm"] == "b=1" and r["epoch"] == 2])
    assert scalars["val_acc/mean"][1] == (2, np.float32(ci.mean))
    assert scalars["val_acc/ci_lo"][1] == (2, np.float32(ci.lo))
    assert scalars["val_acc/ci_hi"][1] == (2, np.float32(ci.hi))
    with pytest.raises(ValueError, match=r"`mode` must be one of \['member', 'arm'\]"):
        TensorBoard(tmp_path, mode="seed")


def test_callbacks_are_checked_before_anything_loads() -> None:
    from jtricks import callbacks, experiment, runner

    class Tracker:
        def on_run_end(self, result):  # only one hook: fine
            pass

    t = Tracker()
    assert callbacks.check_callbacks([t]) == (t,) and callbacks.check_callbacks(None) == ()
    exp = experiment.Experiment(name="x", dataset="digits", epochs=1, seeds=1)
    with pytest.raises(
        TypeError, match=r"`callbacks\[1\]` \(object\) has neither on_epoch_end\(rows\) nor on_run_end\(result\)"
    ):
        runner.run(exp, callbacks=[Tracker(), object()], progress=False)
    with pytest.raises(TypeError, match="`callbacks` must be a list"):
        runner.run(exp, callbacks=Tracker(), progress=False)


def test_loss_every_k_steps_rows(run_dir: Path) -> None:
    rec = _recorded(run_dir)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["config"]["log_every"] == 2 and "train_loss@2" not in manifest["directions"]
    for (arm, seed, epoch, metric), value in rec.items():
        if metric != "train_loss":
            continue
        blocks = [rec[(arm, seed, epoch, f"train_loss@{end}")] for end in (2, 4, 5)]
        assert (arm, seed, epoch, "train_loss@3") not in rec
        # 5 steps in blocks of 2, 2 and 1: their weighted mean is the epoch's mean
        assert np.dot(blocks, [2, 2, 1]) / 5 == pytest.approx(value, rel=1e-6)


def test_step_blocks_against_numpy() -> None:
    from jtricks import train

    x = np.arange(1.0, 8.0, dtype=np.float32) ** 2
    for k, ends in ((2, [2, 4, 6, 7]), (7, [7]), (10, [7])):
        means, got_ends = train.step_blocks(x, k)
        assert got_ends.tolist() == ends
        np.testing.assert_allclose(
            np.asarray(means), [x[e - k if e % k == 0 else e - e % k : e].mean() for e in ends], rtol=1e-6
        )
