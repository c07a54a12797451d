"""The MLflow and Weights & Biases callbacks: a tiny run logged to a local MLflow file store and to W&B offline
files, read back with each tool's own client / record format and compared with the run's ``metrics.csv``."""

from __future__ import annotations

import importlib.util
import math
from collections import defaultdict
from pathlib import Path

import pytest

from jtricks.engine import runner
from jtricks.results import tables as jtables
from jtricks.results import trackers as jtrackers
from tests.support import experiments as support

pytestmark = pytest.mark.slow  # two whole runs (with the tools' own clients: tens of seconds on 2 cores)

needs_mlflow = pytest.mark.skipif(importlib.util.find_spec("mlflow") is None, reason="needs mlflow (jtricks[mlflow])")
needs_wandb = pytest.mark.skipif(importlib.util.find_spec("wandb") is None, reason="needs wandb (jtricks[wandb])")


def _run(out: Path, callback: object) -> runner.RunResult:
    exp = support.small_digits_mlp(grid={"dropout_rate": [0.0, 0.3]}, epochs=2, log_every=5)
    return runner.run(exp, out_dir=out, progress=False, save_models=False, callbacks=[callback])


def _expected(out: Path) -> dict[tuple[str, int], dict[str, list[tuple[int, float]]]]:
    """``{member: {series: [(step, value)]}}`` from ``metrics.csv``: epochs, and ``train_loss_steps`` at the
    global step (640 examples in batches of 64: 10 steps per epoch, blocks ending at 5 and 10)."""
    series: dict[tuple[str, int], dict[str, list[tuple[int, float]]]] = defaultdict(lambda: defaultdict(list))
    for r in jtables.read_metrics_csv(out / "metrics.csv"):
        if "@" in r["metric"]:
            base, end = r["metric"].split("@")
            series[(r["arm"], r["seed"])][base + "_steps"].append(((r["epoch"] - 1) * 10 + int(end), r["value"]))
        else:
            series[(r["arm"], r["seed"])][r["metric"]].append((r["epoch"], r["value"]))
    return series


def _factors(res: runner.RunResult) -> dict[str, dict[str, str]]:
    return {a.name: {k: str(v) for k, v in a.factors.items()} for a in res.arms}


def _summary_means(res: runner.RunResult) -> dict[tuple[str, str], float]:
    return {(r["arm"], r["metric"]): r["mean"] for r in res.summary if math.isfinite(r["mean"])}


@needs_mlflow
def test_mlflow_logs_members_arms_and_the_summary(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    uri = (tmp_path / "mlruns").as_uri()
    res = _run(tmp_path / "run", jtrackers.MLflowTracker(uri, experiment="ablations"))
    client = MlflowClient(tracking_uri=uri)
    exp_id = client.get_experiment_by_name("ablations").experiment_id
    runs = client.search_runs([exp_id])
    by_level = defaultdict(list)
    for r in runs:
        by_level[r.data.tags["jtricks.level"]].append(r)
    (parent,) = by_level["run"]
    assert parent.info.run_name == "tiny" and parent.info.status == "FINISHED"
    assert sorted(a.path for a in client.list_artifacts(parent.info.run_id)) == ["curves.png", "summary.md"]
    local = client.download_artifacts(parent.info.run_id, "summary.md", str(tmp_path / "dl"))
    assert Path(local).read_bytes() == (tmp_path / "run" / "summary.md").read_bytes()

    arms = {r.info.run_name: r for r in by_level["arm"]}
    assert sorted(arms) == ["dropout_rate=0", "dropout_rate=0.3"]
    means = _summary_means(res)
    for name, r in arms.items():
        assert r.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert r.data.params == _factors(res)[name] == {"dropout_rate": str(0.0 if name.endswith("=0") else 0.3)}
        logged = {k.removesuffix("/mean"): v for k, v in r.data.metrics.items() if k.endswith("/mean")}
        assert logged == {m: v for (a, m), v in means.items() if a == name} and logged

    expected = _expected(tmp_path / "run")
    members = by_level["member"]
    assert len(members) == 4 and {r.info.status for r in members} == {"FINISHED"}
    for r in members:
        arm, seed = r.data.tags["jtricks.arm"], int(r.data.tags["jtricks.seed"])
        assert r.data.tags["mlflow.parentRunId"] == arms[arm].info.run_id
        assert r.data.params == {**_factors(res)[arm], "seed": str(seed)}
        want = expected[(arm, seed)]
        assert set(r.data.metrics) == set(want)
        for metric, points in want.items():
            history = client.get_metric_history(r.info.run_id, metric)
            assert sorted((m.step, m.value) for m in history) == sorted(points), metric


@needs_wandb
def test_wandb_offline_files_hold_the_members_and_the_summary(tmp_path, monkeypatch):
    from tests.support import wandb_files

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    tracker = jtrackers.WandbTracker("ablations", dir=tmp_path / "wb", init_kwargs={"settings": {"console": "off"}})
    res = _run(tmp_path / "run", tracker)
    runs = wandb_files.read_runs(tmp_path / "wb" / "wandb")
    members = [r for r in runs if r.job_type == "member"]
    (summary,) = [r for r in runs if r.job_type == "summary"]

    expected = _expected(tmp_path / "run")
    assert sorted(r.name for r in members) == sorted(f"{a}/seed={s}" for a, s in expected)
    for r in members:
        arm, seed = r.config["arm"], r.config["seed"]
        assert r.name == f"{arm}/seed={seed}" and r.group == arm
        assert r.config["dropout_rate"] == _factors(res)[arm]["dropout_rate"]
        got: dict[str, list[tuple[int, float]]] = defaultdict(list)
        for row in r.history:
            axis = "global_step" if "global_step" in row else "epoch"
            for k, v in row.items():
                if not k.startswith("_") and k != axis:
                    got[k].append((row[axis], v))
        assert {k: sorted(v) for k, v in got.items()} == {k: sorted(v) for k, v in expected[(arm, seed)].items()}

    assert summary.name == "tiny"
    means = {k.removesuffix("/mean"): v for k, v in summary.summary.items() if k.endswith("/mean")}
    assert means == {f"{a}/{m}": v for (a, m), v in _summary_means(res).items()} and means
    for name in jtrackers.ARTIFACTS:
        assert (summary.folder / "files" / name).read_bytes() == (tmp_path / "run" / name).read_bytes()


def test_bad_arguments_are_refused_before_anything_runs():
    with pytest.raises(ValueError, match="`metrics` must be None or a non-empty list"):
        jtrackers.MLflowTracker(metrics=[])
    with pytest.raises(ValueError, match=r"`mode` must be None or one of \['online', 'offline', 'disabled'\]"):
        jtrackers.WandbTracker(mode="local")


@pytest.mark.parametrize(
    ("make", "module", "extra"),
    [(jtrackers.MLflowTracker, "mlflow.tracking", "mlflow"), (jtrackers.WandbTracker, "wandb", "wandb")],
)
def test_a_missing_tracker_names_the_extra(monkeypatch, make, module, extra):
    monkeypatch.setitem(__import__("sys").modules, module, None)  # import fails as if not installed
    with pytest.raises(ModuleNotFoundError, match=rf"pip install 'jtricks\[{extra}\]'"):
        make()
