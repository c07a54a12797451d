"""Plots that scale: the many-arm layout, the log-scale decision, robust y-ranges, the best arms, and
``jtricks plot RUN --kind ...`` on a small results folder."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from jtricks import cli, fingerprint, report, results_io
from jtricks.results import paired, plots

PNG = b"\x89PNG\r\n\x1a\n"


def test_legend_goes_outside_past_ten_arms() -> None:
    assert [plots.legend_outside(n) for n in (1, 10, 11, 63)] == [False, False, True, True]


def test_log_scale_for_losses_spanning_more_than_two_decades() -> None:
    assert plots.log_scale("train_loss", [0.05, 0.3, 2.3, 30.0])  # log10(600) = 2.8
    assert not plots.log_scale("train_loss", [0.5, 1.0, 2.3, 40.0])  # log10(80) = 1.9
    assert not plots.log_scale("val_acc", [1e-4, 0.5])  # not a loss
    assert not plots.log_scale("train_loss", [0.0, 0.5, 300.0])  # a zero has no logarithm
    assert plots.log_scale("val_loss", [0.01, np.nan, np.inf, 5.0])  # non-finite values are left out


def test_robust_limits_keep_ordinary_curves_whole() -> None:
    values = np.linspace(0.1, 0.65, 60)
    lo, hi, off = plots.robust_limits(values)
    span = 0.65 - 0.1
    assert off == 0 and lo == pytest.approx(0.1 - 0.05 * span) and hi == pytest.approx(0.65 + 0.05 * span)


def test_robust_limits_leave_a_diverging_arm_off_scale() -> None:
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.uniform(0.2, 2.5, 200), [3.0e4, 1.6e4, 7.5e3], [np.nan, np.inf]])
    lo, hi, off = plots.robust_limits(values)
    t = values[np.isfinite(values)]
    q05, q95 = np.quantile(t, [0.05, 0.95])
    inside = t[(t >= q05 - 1.5 * (q95 - q05)) & (t <= q95 + 1.5 * (q95 - q05))]
    pad = 0.05 * (inside.max() - inside.min())
    assert (lo, hi) == pytest.approx((inside.min() - pad, inside.max() + pad))
    assert off == 3 and hi < 3.0
    # on a log scale the fences are in log10: the spikes still fall outside
    lo, hi, off = plots.robust_limits(values, log=True)
    assert off == 3 and 2.5 < hi < 7.5e3 and 0 < lo < 0.2


def test_robust_limits_without_finite_values() -> None:
    assert plots.robust_limits([np.nan, np.inf]) is None
    assert plots.robust_limits([0.5, 0.5])[:2] == pytest.approx((0.475, 0.525))


def test_best_arms_follow_the_metric_direction() -> None:
    finals = {"a": 0.5, "b": 0.7, "c": math.nan, "d": 0.7, "e": 0.1}
    assert plots.best_arms(finals, +1, k=3) == ["b", "d", "a"]  # a tie keeps the arm order
    assert plots.best_arms(finals, -1, k=2) == ["e", "a"]
    assert plots.best_arms(finals, +1, k=10)[-1] == "c"  # no finite value: last


def _run_folder(path: Path, groups: tuple[str, ...] = ("sgd", "adam"), lrs: tuple[float, ...] = (0.01, 0.1)) -> None:
    """A finished results folder: arms ``optimizer=G,learning_rate=LR`` x 3 seeds x 3 epochs, ``val_acc``,
    ``test_acc`` and ``train_loss``; the last arm's seed 1 diverged (an exploding loss)."""
    rng = np.random.default_rng(1)
    arms = [f"optimizer={g},learning_rate={lr:g}" for g in groups for lr in lrs]
    rows = []
    for i, arm in enumerate(arms):
        for seed in range(3):
            for epoch in (1, 2, 3):
                acc = 0.3 + 0.05 * i + 0.1 * epoch + 0.01 * rng.normal()
                loss = 2.0 / epoch if (arm, seed) != (arms[-1], 1) else 10.0**epoch
                rows += [
                    {"arm": arm, "seed": seed, "epoch": epoch, "metric": "val_acc", "value": acc},
                    {"arm": arm, "seed": seed, "epoch": epoch, "metric": "test_acc", "value": acc - 0.01},
                    {"arm": arm, "seed": seed, "epoch": epoch, "metric": "train_loss", "value": loss},
                ]
    report.write_metrics_csv(path / "metrics.csv", rows)
    members = [
        {
            "arm": a,
            "seed": s,
            "diverged_epoch": 3 if (a, s) == (arms[-1], 1) else -1,
            "stopped_epoch": -1,
            "best_epoch": 3,
        }
        for a in arms
        for s in range(3)
    ]
    report.write_members_csv(path / "members.csv", members)
    (path / "arms.json").write_text(json.dumps([{"arm": a, "factors": {}} for a in arms]))
    manifest = {
        "config": {"name": "tiny", "metrics": ["test_acc"], "epochs": 3},
        "baseline": arms[0],
        "metrics": ["test_acc"],
        "seeds": [0, 1, 2],
        "arms": [{"arm": a, "factors": {}} for a in arms],
    }
    results_io.write_manifest(path, manifest, fingerprint.run_fingerprint({"tiny": 1}))


@pytest.mark.parametrize(
    "kind, default", [("curves", "curves.png"), ("lr-sensitivity", "lr_sensitivity.png"), ("paired", "paired.png")]
)
def test_plot_cli_writes_each_kind(tmp_path: Path, kind: str, default: str, capsys: pytest.CaptureFixture[str]) -> None:
    _run_folder(tmp_path)
    assert cli.main(["plot", str(tmp_path), "--kind", kind]) == 0
    assert (tmp_path / default).read_bytes()[:8] == PNG
    assert capsys.readouterr().out.rstrip().endswith(f"wrote {tmp_path / default}")
    out = tmp_path / "elsewhere" / "x.png"
    assert cli.main(["plot", str(tmp_path), "--kind", kind, "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == PNG


def test_plot_cli_curves_equal_what_report_draws(tmp_path: Path) -> None:
    _run_folder(tmp_path)
    assert cli.main(["report", str(tmp_path)]) == 0
    drawn = (tmp_path / "curves.png").read_bytes()
    assert cli.main(["plot", str(tmp_path), "--out", str(tmp_path / "again.png")]) == 0
    assert (tmp_path / "again.png").read_bytes() == drawn


def test_many_arms_plot(tmp_path: Path) -> None:
    _run_folder(tmp_path, groups=("sgd", "adam", "rmsprop", "adagrad"), lrs=(0.001, 0.01, 0.1))  # 12 arms
    assert cli.main(["plot", str(tmp_path)]) == 0
    assert (tmp_path / "curves.png").read_bytes()[:8] == PNG


def test_plot_cli_pair_prints_the_comparison(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _run_folder(tmp_path)
    a, b = "optimizer=adam,learning_rate=0.01:test_acc", "optimizer=sgd,learning_rate=0.01:test_acc"
    assert cli.main(["plot", str(tmp_path), "--kind", "paired", "--pair", a, b]) == 0
    c = paired.compare(tmp_path, a, b)
    finals = {
        arm: [
            r["value"]
            for r in report.read_metrics_csv(tmp_path / "metrics.csv")
            if r["arm"] == arm and r["metric"] == "test_acc" and r["epoch"] == 3
        ]
        for arm in ("optimizer=adam,learning_rate=0.01", "optimizer=sgd,learning_rate=0.01")
    }
    expected = np.mean(np.subtract(*finals.values()))
    assert c.diff.diff == pytest.approx(expected, abs=1e-12) and c.diff.n == 3
    assert f"difference (paired by seed, n=3): {expected:+.4f}" in capsys.readouterr().out


def test_paired_comparisons_skip_the_baseline_and_count_divergence(tmp_path: Path) -> None:
    _run_folder(tmp_path)
    comps = paired.comparisons(tmp_path)
    assert len(comps) == 3 and all(c.b == "optimizer=sgd,learning_rate=0.01:test_acc" for c in comps)
    diverged = next(c for c in comps if c.a.startswith("optimizer=adam,learning_rate=0.1:"))
    assert diverged.diff.n == 2 and int(np.sum(np.isnan(diverged.deltas))) == 1
    assert [c.diff.diff for c in comps] == sorted((c.diff.diff for c in comps), reverse=True)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--kind", "curves", "--pair", "a:x", "b:x"], "--pair goes with --kind paired"),
        (["--kind", "curves", "--baseline", "x"], "--metric and --baseline go with"),
        (["--out", "plot.svg"], "--out must name a .png file"),
        (["--kind", "paired", "--pair", "nope", "b:x"], "a series is ARM:METRIC"),
        (["--kind", "paired", "--baseline", "nope"], "baseline 'nope' is not an arm"),
    ],
)
def test_plot_cli_bad_input(tmp_path: Path, args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    _run_folder(tmp_path)
    assert cli.main(["plot", str(tmp_path), *args]) == 2
    assert message in capsys.readouterr().err


def test_plot_cli_missing_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["plot", str(tmp_path / "nope")]) == 2
    assert "is not a folder" in capsys.readouterr().err
