"""jtricks.read / jtricks.read_summary: results folders as pandas DataFrames, against the files they read."""

from __future__ import annotations

import csv
import json
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import jtricks
from jtricks import report, stats
from jtricks.results import read as jread

ROOT = Path(__file__).resolve().parents[2]
MAIN = ROOT / "docs" / "results" / "dropout_mnist1d"


def test_read_is_metrics_csv_one_row_per_member_and_epoch_with_the_factors():
    df = jtricks.read(MAIN)
    rows = report.read_metrics_csv(report.result_file(MAIN, "metrics.csv"))
    metrics = list(dict.fromkeys(r["metric"] for r in rows))
    assert list(df.columns) == ["arm", "dropout_rate", "seed", "epoch", *metrics]
    assert len(df) == len({(r["arm"], r["seed"], r["epoch"]) for r in rows}) == 4 * 8 * 30
    assert df["seed"].dtype == np.int64 and df["epoch"].dtype == np.int64 and df["dropout_rate"].dtype == np.float64
    assert list(dict.fromkeys(df["arm"])) == [a["arm"] for a in json.loads((MAIN / "arms.json").read_text())]
    assert sorted(set(df["dropout_rate"])) == [0.0, 0.2, 0.5, 0.8]
    cell = {(r["arm"], r["seed"], r["epoch"], r["metric"]): r["value"] for r in rows}
    for rec in df.sample(200, random_state=0).itertuples(index=False):
        for m in metrics:  # every value bit for bit the file's
            assert getattr(rec, m) == cell[(rec.arm, rec.seed, rec.epoch, m)]


def test_statistics_from_the_frames_are_the_summarys_bit_for_bit():
    df, summary = jtricks.read(MAIN), jtricks.read_summary(MAIN)
    final = df[df["epoch"] == df["epoch"].max()].pivot(index="seed", columns="dropout_rate", values="test_acc")
    row = summary[(summary["metric"] == "test_acc") & (summary["dropout_rate"] == 0.2)].iloc[0]
    d = stats.paired_diff_ci(final[0.2], final[0.0])
    assert (d.diff, d.lo, d.hi, d.p) == (row["diff"], row["diff_lo"], row["diff_hi"], row["p_value"])
    assert stats.mean_ci(final[0.2]).mean == row["mean"]


@pytest.mark.parametrize("folder", ["dropout_mnist1d", "init", "architectures_mnist1d"])
def test_read_summary_is_summary_csv_as_written(folder):
    path = ROOT / "docs" / "results" / folder
    frame = jtricks.read_summary(path)
    arms = jread.arm_factors(path)
    factors = list(dict.fromkeys(n for _, f in arms for n in f))
    assert list(frame.columns) == ["metric", "arm", *factors, *report.SUMMARY_COLUMNS[2:]]
    with (path / "summary.csv").open(newline="") as f:
        written = list(csv.DictReader(f))
    assert len(frame) == len(written)
    for rec, text in zip(frame.to_dict("records"), written):
        for column, cell in text.items():
            value = rec[column]
            if cell in ("", "nan"):
                assert value is None or (isinstance(value, float) and math.isnan(value)), (column, cell)
            elif column in ("metric", "arm", "baseline", "verdict", "test", "adjust", "div_verdict"):
                assert value == cell  # n/a, n.s. stay as written
            else:
                assert float(value) == float(cell), (column, cell)  # bit for bit (round-trip parsing)


def test_factors_named_like_a_column_lists_and_missing_factors(tmp_path):
    rows = [
        {"arm": arm, "seed": seed, "epoch": epoch, "metric": m, "value": 0.1 * epoch + seed}
        for arm in ("b", "a")
        for seed in (1, 0)
        for epoch in (1, 2)
        for m in ("val_acc", "lr")
    ]
    report.write_metrics_csv(tmp_path / "metrics.csv", rows)
    arms = [
        {"arm": "b", "factors": {"lr": 0.1, "model.widths": [64, 64]}},
        {"arm": "a", "factors": {"lr": 0.01, "seed": 3, "norm": "batch"}},
    ]
    (tmp_path / "arms.json").write_text(json.dumps(arms))
    df = jtricks.read(tmp_path)
    assert list(df.columns) == [
        "arm",
        "factor.lr",
        "model.widths",
        "factor.seed",
        "norm",
        "seed",
        "epoch",
        "val_acc",
        "lr",
    ]
    assert list(df["arm"]) == ["b"] * 4 + ["a"] * 4 and list(df["seed"]) == [0, 0, 1, 1] * 2  # arms.json order
    assert df["model.widths"].iloc[0] == (64, 64) and df["model.widths"].iloc[-1] is None
    assert df["factor.seed"].isna().sum() == 4 and df["factor.lr"].tolist()[::4] == [0.1, 0.01]
    assert set(df["model.widths"].dropna()) == {(64, 64)}  # tuples: hashable


def test_user_errors_are_one_line_naming_the_parameter(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="run_dir .* is not a folder"):
        jtricks.read(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="metrics.csv not found: is run_dir"):
        jtricks.read(tmp_path)
    with pytest.raises(FileNotFoundError, match="summary.csv not found"):
        jtricks.read_summary(tmp_path)
    with pytest.raises(TypeError, match="run_dir must be a path"):
        jtricks.read(3)
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match=r'^jtricks.read needs pandas: pip install "jtricks\[notebook\]"$'):
        jtricks.read(MAIN)


def test_read_is_a_lazy_attribute_of_the_package():
    assert jtricks.read is jread.read and jtricks.read_summary is jread.read_summary
    assert "read" in dir(jtricks) and isinstance(jtricks.read(MAIN), pd.DataFrame)
