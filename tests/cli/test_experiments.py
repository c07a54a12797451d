"""Smoke tests of the experiments: every experiment file of the guide loads, validates and runs at tiny scale.

Every ``experiments/*.py`` file must load and validate in full (every arm's model, optimizer and
hyperparameters are built and checked; nothing compiles), and run end to end with a tiny
configuration so that none of them rots: ``--set epochs=1``, 2 seeds, a small training subset,
static grid factors cut to their first value, and only the arms that share the first arm's
compiled program (every numeric arm of it: learning rates, dropout rates, coefficients), an experiment of one
ResNet with one block per stage (ResNet-8 for ResNet-20); an experiment with ``tune`` is not run here
(tune-then-ablate runs end to end in tests/engine/test_search.py). On XLA CPU
one compiled program costs seconds, so running every static group of every experiment (about 60
programs, ResNet-20 alone over a minute) is left to the real runs. Fashion-MNIST experiments run on
a tiny synthetic Fashion-MNIST written as IDX files, CIFAR-10 experiments on a tiny CIFAR-10 written in the
python format (``dataset_kwargs.path``), so they need neither the real data sets nor much time: no experiment is
skipped for want of its data. The post-processing scripts of ``experiments/plots/`` run on those results.
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from support import processes

from jtricks import experiment as jexp
from jtricks import report, runner, tuning

pytestmark = pytest.mark.slow  # real jtricks runs / processes: left out of `-m "not slow"`

REPO = Path(__file__).resolve().parents[2]
EXP_DIR = REPO / "experiments"
NAMES = sorted(p.stem for p in EXP_DIR.glob("*.py") if not p.name.startswith("_"))
CLAIMS = (
    "scaling",
    "init",
    "batchnorm",
    "dropout_mnist1d",
    "dropout_fashion_cnn",
    "overfitting",
    "optimizers",
    "clipping",
    "lr_decay",
    "architectures",
)


def _module(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(f"_test_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _write_idx(path: Path, arr: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + arr.astype(np.uint8).tobytes())


#: This module's temporary folder (pytest's ``tmp_path_factory``), set by :func:`_temp_root`.
_TEMP_ROOT: list[Path] = []


@pytest.fixture(scope="module", autouse=True)
def _temp_root(tmp_path_factory: pytest.TempPathFactory) -> None:
    _TEMP_ROOT[:] = [tmp_path_factory.mktemp("experiments")]


@functools.lru_cache(maxsize=1)
def fake_cifar10_dir() -> Path:
    """A tiny CIFAR-10 look-alike (300 train / 100 test 32x32x3 images) in the python format
    (``tests/support/cifar_files.py``)."""
    d = _TEMP_ROOT[0] / "fake_cifar10"
    _module(REPO / "tests" / "support" / "cifar_files.py").write_cifar10(d, per_batch=60, n_test=100)
    return d


@functools.lru_cache(maxsize=1)
def fake_fashion_dir() -> Path:
    """A tiny Fashion-MNIST look-alike (400 train / 200 test 28x28 images, 10 classes) as gzipped IDX files."""
    d = _TEMP_ROOT[0] / "fake_fashion"
    d.mkdir()
    rng = np.random.default_rng(0)
    for stem, n in (("train", 400), ("t10k", 200)):
        y = np.arange(n) % 10
        x = rng.integers(0, 80, size=(n, 28, 28))
        for k in range(10):  # a class-dependent bright row, so the task is learnable
            x[y == k, 2 + 2 * k, :] = 250
        _write_idx(d / f"{stem}-images-idx3-ubyte.gz", x)
        _write_idx(d / f"{stem}-labels-idx1-ubyte.gz", y)
    return d


def smoke_settings(exp: jexp.Experiment) -> dict[str, Any]:
    """The ``--set`` settings of the smoke run of ``exp`` (what `jtricks run NAME --set ...` would take)."""
    arms = jexp.validate(exp)
    datasets = {a.experiment.dataset for a in arms}
    # The host-loop execution compiles several small programs, ~25% faster than one fused epoch on XLA CPU,
    # and vmapped members compile once where unrolled ones compile once per member; both choices execute
    # the same functions (tests/engine/test_engine.py and tests/engine/test_population.py check that they agree), and
    # vmap is what the convnet experiments use on the GPU they are meant for.
    s: dict[str, Any] = {"epochs": 1, "seeds": 2, "execution": "loop", "population": "vmap"}
    if "fashion_mnist" in datasets:
        s.update(dataset_kwargs={"path": str(fake_fashion_dir())}, n_train=128, n_val=100, eval_batch_size=100)
    elif "cifar10" in datasets:
        s.update(dataset_kwargs={"path": str(fake_cifar10_dir())}, n_train=128, n_val=100, eval_batch_size=100)
    if exp.model == "resnet" and not any("model" in a for a in exp.arms):
        s["model.blocks_per_stage"] = 1  # ResNet-8: the same stages, a smaller program to compile than ResNet-20
    else:
        s.update(n_train=200, n_val=100, eval_batch_size=500)
    for key, values in exp.grid.items():
        static = key.startswith("model.") or key in jexp.STATIC_FIELDS
        if static and len(values) > 1:
            s[key] = [values[0]]
    return s


def smoke_experiment(exp: jexp.Experiment) -> jexp.Experiment:
    """``exp`` with :func:`smoke_settings`, restricted to the explicit arms in the first arm's static group."""
    small = jexp.with_settings(exp, smoke_settings(exp))
    if small.tune is not None:  # tuning at smoke scale: two values, no halving (its rungs need more epochs)
        small = dataclasses.replace(small, tune=dataclasses.replace(small.tune, samples=2, halving=None))
    if small.arms:
        sig = jexp.static_signature(jexp.apply_overrides(small, small.arms[0]))
        keep = [a for a in small.arms if jexp.static_signature(jexp.apply_overrides(small, a)) == sig]
        small = dataclasses.replace(small, arms=keep)
    arms = jexp.expand(small)
    if not any(a.experiment.averaging for a in arms):  # no arm left that evaluates averaged weights
        small = dataclasses.replace(small, metrics=tuple(m for m in small.metrics if not m.startswith("avg_")))
    names = {a.name for a in arms}
    if small.baseline is not None and small.baseline not in names:
        small = dataclasses.replace(small, baseline=None)
    return small


@functools.cache
def smoke_run(name: str) -> tuple[runner.RunResult, jexp.Experiment]:
    exp = jexp.load_experiment(str(EXP_DIR / f"{name}.py"))
    small = smoke_experiment(exp)
    out = _TEMP_ROOT[0] / f"smoke_{name}"
    return runner.run(small, out_dir=out, progress=False, checkpoint=False), small


def smoke_program(name: str) -> tuple:
    """What the smoke run of ``name`` compiles and trains: each arm's static signature and hyperparameters."""
    small = smoke_experiment(jexp.load_experiment(str(EXP_DIR / f"{name}.py")))
    return tuple((jexp.static_signature(a.experiment), tuple(sorted(a.hparams.items()))) for a in jexp.validate(small))


def test_every_claim_has_an_experiment_and_all_are_listed() -> None:
    found = jexp.find_experiments()
    for name in CLAIMS:
        assert name in NAMES, f"missing experiments/{name}.py"
    for name in NAMES:
        assert name in found and found[name].resolve() == (EXP_DIR / f"{name}.py").resolve()


@pytest.mark.parametrize("name", NAMES)
def test_experiment_validates_in_full(name: str) -> None:
    exp = jexp.load_experiment(name)
    assert exp.name == name, "the experiment's name must be its file's name (what `jtricks run NAME` takes)"
    assert exp.description
    assert exp.seeds >= 8, "every published experiment uses at least 8 seeds"
    arms = jexp.validate(exp)
    assert len({a.name for a in arms}) == len(arms) >= 2
    if exp.tune is not None:  # its tuning run (the tuned factors' grid, halving rungs, tuning seeds) validates too
        jexp.validate(tuning.tuning_experiment(exp))
    if exp.baseline is not None:
        assert exp.baseline in {a.name for a in arms}


# the main job's smoke run goes through the CLI: test_main_job_cli
@pytest.mark.parametrize("name", [n for n in NAMES if n != "dropout_mnist1d"])
def test_experiment_runs_tiny(name: str) -> None:
    if jexp.load_experiment(name).tune is not None:
        pytest.skip(
            "tune-then-ablate runs end to end on a toy problem in tests/engine/test_search.py (tuning with halving, "
            "then the comparison); this experiment's arms are the optimizers experiment's MNIST-1D MLP, whose "
            "smoke run is above, and its tuning run validates in full (test_experiment_validates_in_full)"
        )
    # an experiment whose smoke run is an earlier one's (the same compiled program and arms) is checked on
    # that run's (cached) result
    same = [o for o in NAMES[: NAMES.index(name)] if o != "dropout_mnist1d" and smoke_program(o) == smoke_program(name)]
    res, small = smoke_run(same[0] if same else name)
    n_arms = len(jexp.validate(small))
    assert len(res.arms) == n_arms
    assert len(res.member_rows) == n_arms * 2
    for f in ("metrics.csv", "members.csv", "manifest.json", "summary.md", "summary.csv", "curves.png"):
        assert (res.out_dir / f).is_file(), f
    # every arm trained: finite losses for the members that did not diverge
    trained = [m for m in res.member_rows if m["diverged_epoch"] < 0]
    assert trained, "every member diverged"
    for m in trained:
        assert np.all(np.isfinite(res.history(m["arm"], "train_loss")[m["seed"] - small.seed_offset]))
    assert {r["metric"] for r in res.summary} >= {small.metrics[0]}


def test_main_job_cli(tmp_path: Path) -> None:
    """The README's main job through the CLI (`make run`), at smoke size."""
    out = tmp_path / "main"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = processes.run(
        [
            sys.executable,
            "-m",
            "jtricks",
            "run",
            "dropout_mnist1d",
            "--out",
            str(out),
            "--quiet",
            "--set",
            "epochs=1",
            "--set",
            "n_train=200",
            "--seeds",
            "2",
        ],
        cwd=REPO,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert "dropout_rate=0.5" in proc.stdout
    assert (out / "summary.md").is_file() and (out / "curves.png").is_file()


def test_overfitting_ensemble_report() -> None:
    res, small = smoke_run("overfitting")
    mod = _module(EXP_DIR / "overfitting.py")
    text = mod.ensemble_report(res, small)
    rows = [line for line in text.splitlines() if line.startswith("| none") or line.startswith("| dropout")]
    assert len(rows) == 2
    for line in rows:
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[1] == "2"
        assert 0.0 <= float(cells[2]) <= 1.0 and 0.0 <= float(cells[3]) <= 1.0


def test_lr_sensitivity_on_a_run() -> None:
    res, _ = smoke_run("optimizers")
    mod = _module(EXP_DIR / "plots" / "lr_sensitivity.py")
    assert mod.main([str(res.out_dir), "--baseline", "optimizer=sgd"]) == 0
    assert "| optimizer=sgd |" in (res.out_dir / "lr_sensitivity.md").read_text()


def test_architectures_table_script(tmp_path: Path) -> None:
    res, _ = smoke_run("architectures")
    mod = _module(EXP_DIR / "plots" / "architectures_table.py")
    assert mod.main([str(res.out_dir), "--out", str(tmp_path), "--members", "2", "--steps", "1"]) == 0
    text = (tmp_path / "table.md").read_text()
    summary = {r["arm"]: r for r in report.read_metrics_csv(res.out_dir / "metrics.csv")}
    for arm in summary:
        assert f"| {arm} |" in text
    # 784*256+256 + 256*128+128 + 128*100+100 + 100*10+10: the Fashion-MNIST benchmark's MLP
    assert "| mlp | 247,766 |" in text
    # default: the time per epoch comes from the run's own timing record, no re-timing
    assert mod.main([str(res.out_dir), "--out", str(tmp_path / "from_run")]) == 0
    text = (tmp_path / "from_run" / "table.md").read_text()
    manifest = json.loads((res.out_dir / "manifest.json").read_text())
    assert "| time per epoch (s) | compile (s) |" in text
    for t in manifest["timing"]:
        epochs = t["epoch_s"] if t["compile_s"] is not None else t["epoch_s"][1:] or t["epoch_s"]
        for arm in t["arms"]:
            assert f"| {float(np.median(epochs)):.2f} |" in next(
                line for line in text.splitlines() if line.startswith(f"| {arm} |")
            )


def test_init_by_depth_shows_vanishing_and_exploding_signals() -> None:
    mod = _module(EXP_DIR / "plots" / "init_by_depth.py")
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((64, 40)).astype(np.float32), (np.arange(64) % 10).astype(np.int32)
    rows = mod.by_depth(
        4, 64, seeds=1, activations=("relu",), inits=("standard_normal", "gaussian", "he_normal"), x=x, y=y
    )
    std = {(r["init"], r["layer"]): r["act_std"] for r in rows}
    grad = {(r["init"], r["layer"]): r["grad_norm"] for r in rows}
    # N(0,1) multiplies the std by about sqrt(64/2) = 5.7 per ReLU layer, N(0, 1/n^2) by about 1/sqrt(2*64) = 0.09
    assert std[("standard_normal", 4)] > 50 * std[("standard_normal", 1)]
    assert std[("gaussian", 4)] < 1e-2 * std[("gaussian", 1)]
    assert 0.2 < std[("he_normal", 4)] / std[("he_normal", 1)] < 5
    # the gradient reaching the first layer vanishes with the small init, not with He's
    assert grad[("gaussian", 1)] < 1e-2 * grad[("gaussian", 5)]
    assert grad[("he_normal", 1)] > 0.1 * grad[("he_normal", 5)]
    assert len(rows) == 3 * 5  # 4 hidden layers + the output layer per init
