"""jtricks.results.compare / `jtricks compare`: two results folders arm by arm, against scipy's paired and Welch
t-tests, on small finished folders written here."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

from jtricks import cli, fingerprint, report, results, results_io, stats

EPOCHS = 3


def _finished(folder: Path, finals: Mapping[str, Mapping[int, float]], *, diverged: Sequence[tuple] = ()) -> Path:
    """A finished results folder whose members end at ``finals[arm][seed]`` (``val_acc``; ``train_loss`` falls)."""
    folder.mkdir(parents=True, exist_ok=True)
    seeds = sorted({s for per in finals.values() for s in per})
    rows = []
    for arm, per in finals.items():
        for seed, final in per.items():
            for epoch in range(1, EPOCHS + 1):
                rows.append(
                    {
                        "arm": arm,
                        "seed": seed,
                        "epoch": epoch,
                        "metric": "val_acc",
                        "value": final - 0.1 * (EPOCHS - epoch),
                    }
                )
                rows.append(
                    {"arm": arm, "seed": seed, "epoch": epoch, "metric": "train_loss", "value": 1.0 - final / epoch}
                )
    report.write_metrics_csv(folder / "metrics.csv", rows)
    members = [
        {
            "arm": a,
            "seed": s,
            "diverged_epoch": 2 if (a, s) in diverged else -1,
            "stopped_epoch": -1,
            "best_epoch": EPOCHS,
        }
        for a, per in finals.items()
        for s in per
    ]
    report.write_members_csv(folder / "members.csv", members)
    arms = [{"arm": a, "factors": {"rate": float(i)}} for i, a in enumerate(finals)]
    (folder / "arms.json").write_text(json.dumps(arms))
    manifest = {
        "experiment": "t",
        "seeds": seeds,
        "config": {"epochs": EPOCHS, "metrics": ["val_acc", "train_loss"], "confidence": 0.95},
        "arms": arms,
        "directions": {"val_acc": "higher", "train_loss": "lower"},
    }
    results_io.write_manifest(folder, manifest, fingerprint.run_fingerprint({"finals": repr(finals)}))
    return folder


def _values(seed: int, n: int, loc: float, scale: float = 0.01) -> dict[int, float]:
    rng = np.random.default_rng(seed)
    return {s: float(v) for s, v in zip(range(n), rng.normal(loc, scale, size=n))}


def _runs(tmp_path: Path, n_b: int = 6) -> tuple[Path, Path]:
    a = _finished(tmp_path / "a", {"base": _values(0, 6, 0.80), "drop": _values(1, 6, 0.85)})
    shift = {s: v + 0.02 + 0.002 * s for s, v in _values(0, 6, 0.80).items()}  # seed-paired: same seeds, small shift
    b = _finished(tmp_path / "b", {"base": shift if n_b == 6 else _values(2, n_b, 0.82), "drop": _values(3, n_b, 0.85)})
    return a, b


def test_same_seeds_are_paired_and_match_scipy_ttest_rel(tmp_path):
    a, b = _runs(tmp_path)
    rows = results.compare(a, b)
    assert [r["arm"] for r in rows] == ["base", "drop"] and {r["test"] for r in rows} == {"paired"}
    fa = report.read_metrics_csv(a / "metrics.csv")
    fb = report.read_metrics_csv(b / "metrics.csv")
    for r in rows:
        xa = [x["value"] for x in fa if x["arm"] == r["arm"] and x["epoch"] == EPOCHS and x["metric"] == "val_acc"]
        xb = [x["value"] for x in fb if x["arm"] == r["arm"] and x["epoch"] == EPOCHS and x["metric"] == "val_acc"]
        ref = sps.ttest_rel(xb, xa)
        ci = ref.confidence_interval(0.95)
        np.testing.assert_allclose(
            [r["diff"], r["lo"], r["hi"], r["p"]], [np.mean(xb) - np.mean(xa), ci.low, ci.high, ref.pvalue], rtol=1e-10
        )
        assert (r["n_a"], r["n_b"], r["metric"], r["confidence"]) == (6, 6, "val_acc", 0.95)
    base, drop = rows
    assert base["verdict"] == "better" and drop["verdict"] == "n.s."  # B's base is 0.02 + higher, seed by seed
    np.testing.assert_allclose(
        [base["p_adjusted"], drop["p_adjusted"]], stats.adjust_pvalues([base["p"], drop["p"]], "holm")
    )


def test_other_seeds_give_welch_matching_scipy_ttest_ind(tmp_path):
    a, b = _runs(tmp_path, n_b=9)
    rows = results.compare(a, b, "val_acc", confidence=0.9)
    for r in rows:
        xa = list(_values(0 if r["arm"] == "base" else 1, 6, 0.80 if r["arm"] == "base" else 0.85).values())
        xb = list(_values(2 if r["arm"] == "base" else 3, 9, 0.82 if r["arm"] == "base" else 0.85).values())
        ref = sps.ttest_ind(xb, xa, equal_var=False)
        ci = ref.confidence_interval(0.9)
        assert r["test"] == "welch" and (r["n_a"], r["n_b"], r["confidence"]) == (6, 9, 0.9)
        np.testing.assert_allclose([r["lo"], r["hi"], r["p"]], [ci.low, ci.high, ref.pvalue], rtol=1e-9)
        np.testing.assert_allclose([r["mean_a"], r["mean_b"]], [np.mean(xa), np.mean(xb)], rtol=1e-15)


def test_lower_is_better_diverged_members_and_arms_of_one_run(tmp_path):
    a = _finished(tmp_path / "a", {"base": _values(0, 5, 0.8), "only_a": _values(1, 5, 0.8)})
    finals_b = {"new": _values(4, 5, 0.8), "base": {s: v + 0.05 for s, v in _values(0, 5, 0.8).items()}}
    b = _finished(tmp_path / "b", finals_b, diverged=[("base", 4)])
    [row] = results.compare(a, b, "train_loss")
    assert row["arm"] == "base" and row["test"] == "paired" and (row["n_a"], row["n_b"]) == (4, 4)  # 4 pairs left
    assert row["diff"] < 0 and row["verdict"] == "better"  # a lower loss is better
    text = results.comparison_report(a, b, "train_loss")
    assert text.splitlines()[-2:] == ["only in A: only_a", "only in B: new"]


def test_equal_runs_are_degenerate(tmp_path):
    a, _ = _runs(tmp_path)
    assert {r["verdict"] for r in results.compare(a, a)} == {"degenerate"}
    assert results.comparison_report(a, a).splitlines()[0] == "val_acc, B − A: paired by seed; no arm has a p-value"


def test_cli_prints_a_table_of_at_most_100_columns_and_exits_0(tmp_path, capsys):
    long = "optimizer=adam,learning_rate=0.001,weight_decay=0.0001,schedule=cosine,warmup=5"
    a = _finished(tmp_path / "a", {long: _values(0, 4, 0.8), "b": _values(1, 4, 0.7)})
    b = _finished(tmp_path / "b", {long: _values(2, 4, 0.9), "b": _values(3, 4, 0.7)})
    assert cli.main(["compare", str(a), str(b), "--metric", "val_acc"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "val_acc, B − A: paired by seed; Holm over 2 p-values"
    assert lines[1].split() == ["arm", "seeds", "B", "−", "A", "[95%", "CI]", "p", "p", "(Holm)", "verdict"]
    assert max(len(line) for line in lines) <= 100 and lines[3].startswith(long[:30]) and "…" in lines[3]
    assert "4 pairs" in lines[3] and "4 pairs" in lines[4]


def test_refuses_unfinished_and_part_folders_with_one_line(tmp_path, capsys):
    a, b = _runs(tmp_path)
    (b / "manifest.json").unlink()
    assert cli.main(["compare", str(a), str(b)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"jtricks compare: {b} has no manifest.json: the run did not finish") and "\n" not in err
    with pytest.raises(ValueError, match="is not a folder"):
        results.compare(a, tmp_path / "nothing")
    man = json.loads((a / "manifest.json").read_text())
    man.pop("fingerprint"), man.pop("files")
    man["part"] = {"index": 1, "count": 2, "members": [[arm, s] for arm in ("base", "drop") for s in range(6)]}
    results_io.write_manifest(a, man, fingerprint.run_fingerprint({"part": 1}))
    with pytest.raises(ValueError, match=r"is part 1/2 of a run: merge the parts"):
        results.compare(a, a)
    a2, b2 = _runs(tmp_path / "again")
    with pytest.raises(ValueError, match=r"^metric 'test_acc' is not in RUN_A's metrics.csv"):
        results.compare(a2, b2, metric="test_acc")
    with pytest.raises(TypeError, match="metric must be a str"):
        results.compare(a2, b2, metric=3)
    with pytest.raises(TypeError, match="^b must be a path"):
        results.compare(a2, 3)
