"""Best learning rates and learning-rate sensitivity (:mod:`jtricks.results.lr_sensitivity`) on a synthetic
results folder whose optima are known."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from jtricks import report
from jtricks.results import lr_sensitivity


def test_best_learning_rates_and_their_comparisons(tmp_path: Path) -> None:
    mod = lr_sensitivity
    assert mod.split_arm("optimizer=adam,learning_rate=0.001") == ("optimizer=adam", 0.001)
    assert mod.split_arm("none,learning_rate=0.1") == ("none", 0.1)
    # a synthetic results folder: 2 groups x 2 learning rates x 3 seeds x 2 epochs
    rng = np.random.default_rng(0)
    arms = [f"optimizer={g},learning_rate={lr:g}" for g in ("sgd", "adam") for lr in (0.01, 0.1)]
    # best: sgd at 0.1, adam at 0.01 (adam at 0.1 is higher on validation but a member diverged there)
    val = {arms[0]: 0.5, arms[1]: 0.7, arms[2]: 0.8, arms[3]: 0.9}
    test = {a: rng.uniform(0.3, 0.9, size=3) for a in arms}
    rows = []
    for a in arms:
        for seed in range(3):
            for epoch in (1, 2):
                rows.append(
                    {"arm": a, "seed": seed, "epoch": epoch, "metric": "val_acc", "value": val[a] + 0.01 * seed}
                )
                rows.append(
                    {
                        "arm": a,
                        "seed": seed,
                        "epoch": epoch,
                        "metric": "test_acc",
                        "value": float(test[a][seed]) + epoch - 2,
                    }
                )
    report.write_metrics_csv(tmp_path / "metrics.csv", rows)
    members = [
        {
            "arm": a,
            "seed": s,
            "diverged_epoch": 2 if (a, s) == (arms[3], 1) else -1,
            "stopped_epoch": -1,
            "best_epoch": 2,
        }
        for a in arms
        for s in range(3)
    ]
    report.write_members_csv(tmp_path / "members.csv", members)
    a = mod.analyse(tmp_path, baseline="optimizer=sgd")
    assert a["best"] == {"optimizer=sgd": 0.1, "optimizer=adam": 0.01}
    # Δ at the best learning rates: adam@0.01 - sgd@0.1, paired by seed (final epoch values)
    d = a["best_diff"]["optimizer=adam"]
    assert d.diff == pytest.approx(float(np.mean(test[arms[2]] - test[arms[1]])), abs=1e-12)
    assert d.n == 3
    assert a["best_p_adjusted"] == {"optimizer=adam": pytest.approx(d.p)}  # a family of one comparison
    # the diverged member is excluded and counted
    c = a["cells"][("optimizer=adam", 0.1)]
    assert c["n_div"] == 1 and c["ci"].n == 2
    assert c["diff"].n == 2  # paired with sgd at the same lr on the two surviving seeds
    assert c["ci"].mean == pytest.approx(float(np.mean(test[arms[3]][[0, 2]])), abs=1e-12)
    text = mod.write(tmp_path, baseline="optimizer=sgd")
    assert text == (tmp_path / "lr_sensitivity.md").read_text()
    assert (tmp_path / "lr_sensitivity.png").is_file()
    md = (tmp_path / "lr_sensitivity.md").read_text()
    assert "| optimizer=adam | 0.01 |" in md and "| optimizer=sgd | 0.1 |" in md and "| p (Holm) | verdict |" in md
    assert "- `optimizer=adam`: learning rate(s) 0.1 excluded from the choice (diverged members)." in md
    assert "- `optimizer=sgd`: the best learning rate 0.1 is the largest swept: the optimum may lie outside" in md
    assert "- `optimizer=adam`: the best learning rate 0.01 is the smallest swept" in md
