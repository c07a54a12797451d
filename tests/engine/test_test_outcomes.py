"""``test_bootstrap=True``: every member's per-example test outcomes are recorded at its end (their mean is its
final test accuracy), the summary gains the total intervals, and ``jtricks report`` re-renders them byte for byte."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from support.experiments import small_digits_mlp

from jtricks import report, runner
from jtricks.results import bootstrap as jboot

pytestmark = pytest.mark.slow


def test_outcomes_make_up_the_final_test_accuracy_and_rerender(tmp_path):
    out = tmp_path / "run"
    exp = small_digits_mlp(test_bootstrap=True, epochs=2, seeds=3, grid={"learning_rate": [1e-3, 3e-3]})
    result = runner.run(exp, out_dir=out, progress=False, plot=False)
    outcomes = jboot.read_outcomes(out)
    assert outcomes.metric == "test_acc" and outcomes.values.shape == (6, 360)
    last = [r for r in result.metric_rows if r["metric"] == "test_acc" and r["epoch"] == 2]
    final = {(r["arm"], r["seed"]): r["value"] for r in last}
    for member, row in zip(outcomes.members, outcomes.values):
        np.testing.assert_allclose(row.mean(), final[member], rtol=0, atol=1e-7)  # float32 mean vs exact count
    with open(out / "summary.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [c for c in jboot.TOTAL_COLUMNS if c not in rows[0]] == []
    acc = [r for r in rows if r["metric"] == "test_acc"]
    assert all(float(r["total_ci_low"]) < float(r["mean"]) < float(r["total_ci_high"]) for r in acc)
    assert all(r["total_ci_low"] == "" for r in rows if r["metric"] != "test_acc")
    before = {p: (out / p).read_bytes() for p in ("summary.csv", "summary.md")}
    report.render(out, plot=False)
    assert {p: (out / p).read_bytes() for p in before} == before
