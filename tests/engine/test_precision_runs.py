"""Whole runs in each precision: float32 is the default program bit for bit, bfloat16 trains as well as float32 on
digits and keeps every member bit-identical to its run alone, float16 skips its overflowing steps and reports them."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from support.experiments import small_digits_mlp

from jtricks import data, experiment, report, runner
from jtricks.engine import stopping

pytestmark = pytest.mark.slow  # real jtricks runs

#: the final validation accuracy of a bfloat16 run may differ from float32's by this much (200 examples: 6 of them)
BF16_ACC_TOLERANCE = 0.03


def _digits(**changes) -> experiment.Experiment:
    """The small digits MLP with batch norm and dropout (the shapes population tests care about), 2 seeds."""
    base = dict(model_kwargs={"widths": (32,), "norm": "batch"}, hparams={"learning_rate": 3e-3, "dropout_rate": 0.2})
    return small_digits_mlp(**{**base, **changes})


def _rows(exp: experiment.Experiment) -> dict[int, list[tuple]]:
    out: dict[int, list[tuple]] = {}
    for r in runner.run(exp, progress=False, plot=False).metric_rows:
        out.setdefault(r["seed"], []).append((r["epoch"], r["metric"], r["value"]))
    return out


def _final(rows: list[tuple], metric: str) -> float:
    return max((e, v) for e, m, v in rows if m == metric)[1]


@pytest.fixture(scope="module")
def float32_rows() -> dict[int, list[tuple]]:
    return _rows(_digits())


def test_explicit_float32_is_the_default_program_bit_for_bit(float32_rows) -> None:
    assert _digits().precision == "float32"
    assert _rows(_digits(precision="float32")) == float32_rows


def test_bfloat16_members_are_their_runs_alone_and_train_like_float32(float32_rows) -> None:
    exp = _digits(precision="bfloat16")
    population = _rows(exp)
    assert population != float32_rows  # bfloat16 really computes something else
    for seed in (0, 1):
        alone = _rows(dataclasses.replace(exp, seeds=1, seed_offset=seed))
        assert alone[seed] == population[seed], f"bfloat16 member {seed} differs from its run alone"
        acc16, acc32 = _final(population[seed], "val_acc"), _final(float32_rows[seed], "val_acc")
        assert acc32 > 0.6  # the task is learned at all
        assert abs(acc16 - acc32) <= BF16_ACC_TOLERANCE, (seed, acc16, acc32)


def _overflowing_toy(**changes) -> experiment.Experiment:
    """Inputs of scale 10: at the initial loss scale 2^15 the first layer's float16 gradients overflow."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(320, 8)).astype(np.float32)
    y = np.digitize(x @ rng.normal(size=8), np.linspace(-2, 2, 9)).astype(np.int32)
    x = 10.0 * x
    base = dict(
        name="fp16_toy",
        dataset=data.arrays(x[:256], y[:256], x[256:], y[256:], num_classes=10, name="toy_x10"),
        preprocess="raw",
        n_val=64,
        model="mlp",
        model_kwargs={"widths": (16,)},
        optimizer="sgd",
        hparams={"learning_rate": 1e-3},
        epochs=3,
        batch_size=32,
        eval_batch_size=64,
        seeds=2,
        precision="float16",
    )
    return experiment.Experiment(**{**base, **changes})


def test_float16_run_skips_overflowing_steps_and_reports_them(tmp_path) -> None:
    res = runner.run(_overflowing_toy(execution="scan"), out_dir=tmp_path, progress=False, plot=False)
    skipped = {(r["seed"], r["epoch"]): r["value"] for r in res.metric_rows if r["metric"] == "skipped_steps"}
    assert sorted(skipped) == [(s, e) for s in (0, 1) for e in (1, 2, 3)]
    assert all(skipped[(s, 1)] >= 1 for s in (0, 1))  # 2^15 overflows at first, then the scale settles
    assert all(v == 0 for (s, e), v in skipped.items() if e > 1)
    assert all(math.isfinite(r["value"]) for r in res.metric_rows)
    assert all(m["diverged_epoch"] == -1 for m in res.member_rows)
    # summary.md says so, and `jtricks report` re-renders it byte for byte
    total = sum(skipped.values())
    summary = (tmp_path / "summary.md").read_text()
    assert f"float16 loss scaling skipped {total:.0f} steps in arm 'baseline' (2 of 2 members" in summary
    report.render(tmp_path, plot=False)
    assert (tmp_path / "summary.md").read_text() == summary
    # the host-loop execution runs the same steps: the same rows bit for bit
    loop = runner.run(_overflowing_toy(execution="loop"), progress=False, plot=False)
    assert loop.metric_rows == res.metric_rows


def test_float16_resume_carries_the_loss_scale(tmp_path) -> None:
    """Stopped after epoch 1 (its checkpoint holds the loss scale) and resumed: the rows of the uninterrupted run."""
    exp = _overflowing_toy(epochs=2)
    quiet = dict(progress=False, plot=False, save_models=False)
    full = runner.run(exp, out_dir=tmp_path / "full", **quiet)
    out = tmp_path / "stopped"
    with pytest.raises(stopping.RunStopped):
        runner.run(exp, out_dir=out, stop=stopping.StopRequest(time_limit_s=1e-3), **quiet)
    resumed = runner.run(exp, out_dir=out, resume=True, **quiet)
    assert resumed.metric_rows == full.metric_rows
    assert (out / "metrics.csv").read_bytes() == (tmp_path / "full" / "metrics.csv").read_bytes()
