"""``jtricks run NAME --dry-run``: the plan, the programs and the memory estimate, with nothing loaded, compiled or
written; the estimate's terms checked against shapes computed by hand."""

from __future__ import annotations

from pathlib import Path

import pytest

from jtricks import cli
from jtricks import data as jdata
from jtricks.engine import catalog, dryrun, runtime
from jtricks.engine.programs import PROGRAMS


def _no_loading(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a dry run loaded a data set")

    monkeypatch.setattr(jdata, "load", refuse)


def test_dry_run_of_the_main_job(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    _no_loading(monkeypatch)
    out = tmp_path / "never"
    assert cli.main(["run", "dropout_mnist1d", "--dry-run", "--out", str(out), "--cpu-devices", "1"]) == 0
    text = capsys.readouterr().out
    assert not out.exists()  # nothing written
    assert "dry run (nothing loaded, compiled or written); results would go to " + str(out) in text
    assert "arms (4): dropout_rate=0, dropout_rate=0.2, dropout_rate=0.5, dropout_rate=0.8" in text
    assert "members: 4 arms x 8 seeds = 32, in 1 static group(s) on 1 device(s)" in text
    assert "32 members in 1 chunk(s) of population 32" in text
    assert "programs (scan mode, compiled once for the group): init, epoch; 35 steps/epoch x 30 epochs" in text
    assert "  execution: epochs=30, batch_size=100" in text
    assert "device memory: " in text and "estimated from shapes, nothing compiled" in text


def test_dry_run_memory_terms_match_the_shapes() -> None:
    exp = catalog.load_experiment("dropout_mnist1d")
    with runtime.CompileMeter() as meter:
        dr = dryrun.dry_run(exp)
    assert meter.programs == 0  # nothing compiled
    m = dr.groups[0].memory
    n_params = 40 * 256 + 256 + 256 * 256 + 256 + 256 * 10 + 10  # MLP 40-256-256-10
    assert m.params == 4 * n_params
    assert 2 * m.params <= m.opt_state < 2 * m.params + 1024  # Adam: two moments, a count, the hyperparameters
    chunk = min(exp.eval_batch_size, exp.n_val, 1000)  # an evaluation chunk; a training batch is 100
    assert m.layer_outputs == 4 * max(100, chunk) * (256 + 256 + 10)  # the three layers' outputs
    assert m.intermediates > m.layer_outputs
    assert m.data == (4000 + 1000) * (40 * 4 + 4)  # float32 signals and int32 labels of every split
    state = m.params + m.opt_state + m.other_state
    assert m.low == m.data + 32 * (state + m.params + m.layer_outputs)
    assert m.high == m.data + 32 * (state + m.params + m.intermediates)


def test_dry_run_of_cifar_resnet_without_its_data(capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    _no_loading(monkeypatch)  # the CIFAR-10 files are not needed: the shapes are known
    assert cli.main(["run", "cifar_resnet", "--dry-run", "--cpu-devices", "1"]) == 0
    text = capsys.readouterr().out
    assert "members: 2 arms x 8 seeds = 16, in 2 static group(s)" in text
    assert "group 1/2: 1 arm(s) (crop+flip); 8 members in 1 chunk(s) of population 8" in text
    assert "351 steps/epoch x 160 epochs" in text  # (50,000 - 5,000) // 128
    dr = dryrun.dry_run(catalog.load_experiment("cifar_resnet"))
    assert dr.groups[0].memory.params == 4 * 272_474  # ResNet-20 on 32x32x3 (the experiment's docstring)
    assert dr.groups[0].programs == tuple(p for p in PROGRAMS[dr.groups[0].mode] if p != "early_stop")


def test_dry_run_chunks_and_settings(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["run", "dropout_mnist1d", "--dry-run", "--cpu-devices", "1", "--max-members", "12"]
    assert cli.main([*args, "--set", "model.widths=[64]"]) == 0
    text = capsys.readouterr().out
    assert "32 members in 3 chunk(s) of population 12 (4 padding copies)" in text
    assert "model_kwargs={'widths': [64]}" in text


def test_dry_run_says_what_it_cannot_estimate(capsys: pytest.CaptureFixture[str]) -> None:
    jdata.register_dataset("dry_run_unknown", lambda: jdata.load("digits"))
    try:
        exp = catalog.load_experiment("dropout_mnist1d")
        import dataclasses

        dr = dryrun.dry_run(dataclasses.replace(exp, dataset="dry_run_unknown"))
    finally:
        jdata.unregister_dataset("dry_run_unknown")
    assert dr.groups[0].memory is None
    assert "not estimated: data set 'dry_run_unknown' has no shapes known without loading it" in dryrun.describe(dr)


def test_dry_run_bad_input_is_a_user_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["run", "dropout_mnist1d", "--dry-run", "--max-members", "0"]) == 2
    assert "--max-members must be a positive int" in capsys.readouterr().err
    assert cli.main(["run", "dropout_mnist1d", "--dry-run", "--set", "optimizer=adamm"]) == 2
    assert "did you mean 'adam'" in capsys.readouterr().err
