"""The end-of-run table (named metric, at most 100 columns) and intervals clipped to a metric's bounds: shown
clipped and marked, stored unclipped with the ``ci_clipped`` flag."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

from jtricks import report
from jtricks.results import rendering, summary
from jtricks.results.read import read_summary

# final accuracies of 3 seeds: "high" sits near 1 with a wide spread, so its t interval crosses 1
FINALS = {"baseline": [0.80, 0.82, 0.81], "high": [0.99, 0.93, 1.0]}


def _rows(finals: dict[str, list[float]] = FINALS, metric: str = "val_acc") -> list[dict]:
    return [
        {"arm": arm, "seed": s, "epoch": 1, "metric": metric, "value": v}
        for arm, values in finals.items()
        for s, v in enumerate(values)
    ]


def test_bounds_and_clipping_of_accuracies_only() -> None:
    assert summary.metric_bounds("val_acc") == (0.0, 1.0) and summary.metric_bounds("test_top5_accuracy") == (0, 1)
    assert summary.metric_bounds("train_loss") is None
    assert summary.ci_clipped("val_acc", -0.1, 1.2) == "both"
    assert summary.ci_clipped("val_acc", 0.2, 1.2) == "upper" and summary.ci_clipped("val_acc", -0.2, 0.5) == "lower"
    assert summary.ci_clipped("val_acc", math.nan, math.nan) == "" and summary.ci_clipped("train_loss", -5, 5) == ""
    assert summary.clip_ci("val_acc", -0.1, 1.2) == (0.0, 1.0) and summary.clip_ci("val_loss", -0.1, 1.2) == (-0.1, 1.2)


def test_the_summary_keeps_the_t_interval_and_flags_the_clipped_end() -> None:
    rows = {r["arm"]: r for r in summary.summarize(_rows(), None, None, metrics=("val_acc",))}
    x = np.asarray(FINALS["high"])
    half = sps.t.ppf(0.975, 2) * x.std(ddof=1) / math.sqrt(3)
    assert rows["high"]["ci_hi"] == pytest.approx(x.mean() + half, rel=1e-12) and rows["high"]["ci_hi"] > 1
    assert rows["high"]["ci_clipped"] == "upper" and rows["baseline"]["ci_clipped"] == ""


def test_summary_files_store_unclipped_numbers_and_render_clipped_marked(tmp_path: Path) -> None:
    rows = summary.summarize(_rows(), None, None, metrics=("val_acc",))
    report.write_summary(tmp_path, rows, title="clip")
    with (tmp_path / "summary.csv").open() as f:
        stored = {r["arm"]: r for r in csv.DictReader(f)}
    assert float(stored["high"]["ci_hi"]) == rows[1]["ci_hi"] > 1 and stored["high"]["ci_clipped"] == "upper"
    md = (tmp_path / "summary.md").read_text()
    lo = f"{rows[1]['ci_lo']:.4f}"
    assert f"| [{lo}, 1.0000]{rendering.CLIPPED_MARK} |" in md
    assert f"{rendering.CLIPPED_MARK} interval clipped at 1, the bound of val_acc" in md
    frame = read_summary(tmp_path)
    assert list(frame["ci_clipped"].fillna("")) == ["", "upper"]  # an empty cell is missing


def test_a_summary_csv_without_the_flag_column_still_reads(tmp_path: Path) -> None:
    rows = summary.summarize(_rows(), None, None, metrics=("val_acc",))
    report.write_summary(tmp_path, rows, title="old")
    with (tmp_path / "summary.csv").open() as f:
        table = list(csv.reader(f))
    with (tmp_path / "summary.csv").open("w", newline="") as f:
        csv.writer(f).writerows([r[:-1] for r in table])  # the columns before `ci_clipped` existed
    assert list(read_summary(tmp_path)["ci_clipped"].fillna("")) == ["", "upper"]


def test_console_table_names_its_metric_and_fits_100_columns() -> None:
    finals = {
        f"optimizer={opt},learning_rate={lr:g},schedule=cosine": [0.5 + 0.1 * i, 0.52 + 0.11 * i, 0.51 + 0.09 * i]
        for i, (opt, lr) in enumerate([("sgd", 0.001), ("momentum", 0.01), ("adam", 0.1), ("adagrad", 3.0)])
    }
    finals["optimizer=rmsprop,learning_rate=10,schedule=cosine"] = [0.99, 0.93, 1.0]
    rows = summary.summarize(_rows(finals), None, None, metrics=("val_acc",))
    text = rendering.format_console_table(rows, "val_acc")
    lines = text.splitlines()
    assert lines[0].startswith("val_acc, higher is better: final value over 3 seeds")
    assert max(len(line) for line in lines) <= 100
    body = lines[3:8]
    arm = body[1].split("  ")[0]  # cut in the middle: the first factor and the last one's value stay
    assert arm.startswith("optimizer=mom") and "…" in arm and arm.endswith("schedule=cosine")
    assert f", 1.0000]{rendering.CLIPPED_MARK}" in body[4] and lines[8].startswith(rendering.CLIPPED_MARK)
    assert "baseline" in body[0] and "better" in body[2]
    wide = rendering.format_console_table(rows, "val_acc", width=200)
    assert "optimizer=adagrad,learning_rate=3,schedule=cosine" in wide and "[+" in wide  # whole names, Δ intervals
    with pytest.raises(ValueError, match="width"):
        rendering.format_console_table(rows, "val_acc", width=20)
