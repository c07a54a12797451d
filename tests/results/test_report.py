"""Tests of jtricks.report: tidy CSV round trips, summaries against scipy, Markdown, plot, render."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats as sps

from jtricks import report, stats

ARMS = [
    {"arm": "dropout_rate=0.0", "factors": {"dropout_rate": 0.0}},
    {"arm": "dropout_rate=0.2", "factors": {"dropout_rate": 0.2}},
    {"arm": "optimizer=adam,learning_rate=0.001", "factors": {"optimizer": "adam", "learning_rate": 0.001}},
]
A, B, C = (a["arm"] for a in ARMS)
SEEDS = 5
EPOCHS = 4


def _experiment():
    """Synthetic results with known structure.

    val_acc[arm, seed, epoch]: a seed effect shared by all arms (as shared init/data order give),
    plus an arm effect (B +0.01, C +0.02) and small noise. C seed 2 diverges at epoch 3 (nan
    from there on); B seed 4 is early-stopped after epoch 3 (no epoch-4 rows). train_loss falls;
    test_acc is written once, at each member's final epoch.
    """
    rng = np.random.default_rng(1234)
    seed_effect = rng.normal(0.0, 0.02, size=SEEDS)
    effect = {A: 0.0, B: 0.01, C: 0.02}
    val = {}
    rows = []
    members = []
    for arm in (A, B, C):
        for s in range(SEEDS):
            last = 3 if (arm, s) == (B, 4) else EPOCHS
            diverged = 3 if (arm, s) == (C, 2) else -1
            for e in range(1, last + 1):
                v = np.float32(0.6 + 0.08 * e + seed_effect[s] + effect[arm] + rng.normal(0, 0.003))
                loss = 1.0 / e + 0.05 * effect[arm] + rng.normal(0, 0.001)
                if diverged > 0 and e >= diverged:
                    v, loss = np.float32("nan"), float("inf")
                val[arm, s, e] = float(v)
                rows.append({"arm": arm, "seed": s, "epoch": e, "metric": "val_acc", "value": v})
                rows.append({"arm": arm, "seed": s, "epoch": e, "metric": "train_loss", "value": loss})
            test = val[arm, s, last] - 0.01 if math.isfinite(val[arm, s, last]) else float("nan")
            rows.append({"arm": arm, "seed": s, "epoch": last, "metric": "test_acc", "value": test})
            members.append(
                {
                    "arm": arm,
                    "seed": s,
                    "diverged_epoch": diverged,
                    "stopped_epoch": 3 if last == 3 else -1,
                    "best_epoch": last,
                }
            )
    return rows, members, val


def _final(rows, metric):
    """{(arm, seed): value at the member's last epoch} computed independently of report.py."""
    last = {}
    for r in rows:
        if r["metric"] != metric:
            continue
        key = (r["arm"], r["seed"])
        if key not in last or r["epoch"] > last[key][0]:
            last[key] = (r["epoch"], float(r["value"]))
    return {k: v for k, (_, v) in last.items()}


def _row(summary, metric, arm):
    (r,) = [r for r in summary if r["metric"] == metric and r["arm"] == arm]
    return r


# ----------------------------------------------------------------------------------------------
# CSV files
# ----------------------------------------------------------------------------------------------


def test_metrics_csv_round_trip_exact(tmp_path):
    rows, _, _ = _experiment()
    rows += [
        {"arm": 'name with "quotes", commas', "seed": 7, "epoch": 1, "metric": "grad_norm", "value": -math.inf},
        {"arm": A, "seed": np.int32(3), "epoch": np.int64(9), "metric": "x", "value": np.float32(1 / 3)},
        (A, 0, 10, "x", 1e-300),
    ]
    path = report.write_metrics_csv(tmp_path / "sub" / "metrics.csv", rows)
    back = report.read_metrics_csv(path)
    assert len(back) == len(rows)
    for r, b in zip(rows, back):
        r = r if isinstance(r, dict) else dict(zip(report.METRICS_COLUMNS, r))
        assert b["arm"] == r["arm"] and b["metric"] == r["metric"]
        assert b["seed"] == int(r["seed"]) and b["epoch"] == int(r["epoch"])
        assert type(b["seed"]) is int and type(b["value"]) is float
        v = float(r["value"])
        assert (math.isnan(v) and math.isnan(b["value"])) or b["value"] == v
    # float32 values survive exactly
    assert np.float32(back[-2]["value"]) == np.float32(1 / 3)


def test_members_csv_round_trip_exact(tmp_path):
    _, members, _ = _experiment()
    path = report.write_members_csv(tmp_path / "members.csv", members)
    assert report.read_members_csv(path) == members


def test_write_twice_gives_identical_bytes(tmp_path):
    rows, members, _ = _experiment()
    p1 = report.write_metrics_csv(tmp_path / "a.csv", rows)
    p2 = report.write_metrics_csv(tmp_path / "b.csv", report.read_metrics_csv(p1))
    assert p1.read_bytes() == p2.read_bytes()
    m1 = report.write_members_csv(tmp_path / "m1.csv", members)
    m2 = report.write_members_csv(tmp_path / "m2.csv", members)
    assert m1.read_bytes() == m2.read_bytes()
    text = p1.read_text()
    assert text.startswith("arm,seed,epoch,metric,value\n") and "\r" not in text
    assert ",nan\n" in text and ",inf\n" in text


def test_csv_validation(tmp_path):
    with pytest.raises(ValueError, match="value"):
        report.write_metrics_csv(tmp_path / "m.csv", [{"arm": A, "seed": 0, "epoch": 1, "metric": "x"}])
    with pytest.raises(TypeError, match="seed"):
        report.write_metrics_csv(tmp_path / "m.csv", [(A, 0.5, 1, "x", 1.0)])
    with pytest.raises(TypeError, match="arm"):
        report.write_metrics_csv(tmp_path / "m.csv", [(3, 0, 1, "x", 1.0)])
    bad = tmp_path / "bad.csv"
    bad.write_text("arm,seed,epoch,value\nA,0,1,0.5\n")
    with pytest.raises(ValueError, match="header"):
        report.read_metrics_csv(bad)
    with pytest.raises(ValueError, match="header"):
        report.read_members_csv(bad)


# ----------------------------------------------------------------------------------------------
# summarize
# ----------------------------------------------------------------------------------------------


def test_summarize_matches_scipy():
    rows, members, _ = _experiment()
    summary = report.summarize(rows[::-1], members, ARMS)  # row order must not matter
    assert [r["metric"] for r in summary] == ["test_acc"] * 3 + ["val_acc"] * 3 + ["train_loss"] * 3
    assert [r["arm"] for r in summary[:3]] == [A, B, C]
    assert set(summary[0]) == set(report.SUMMARY_COLUMNS)
    for metric in ("test_acc", "val_acc", "train_loss"):
        final = _final(rows, metric)
        for arm in (A, B, C):
            r = _row(summary, metric, arm)
            x = np.array([final[arm, s] for s in range(SEEDS) if (arm, s) != (C, 2)])
            lo, hi = sps.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=x.std(ddof=1) / math.sqrt(len(x)))
            np.testing.assert_allclose(
                [r["mean"], r["std"], r["ci_lo"], r["ci_hi"]], [x.mean(), x.std(ddof=1), lo, hi], rtol=1e-10
            )
            assert r["n"] == len(x) and r["n_members"] == SEEDS
            assert r["diverged"] == (1 if arm == C else 0)
            assert r["baseline"] == A
            if arm == A:
                assert r["verdict"] == "baseline" and math.isnan(r["diff"]) and r["diff_n"] == 0
                continue
            seeds = [s for s in range(SEEDS) if (arm, s) != (C, 2)]
            a = np.array([final[arm, s] for s in seeds])
            b = np.array([final[A, s] for s in seeds])
            res = sps.ttest_rel(a, b)
            ci = res.confidence_interval(0.95)
            np.testing.assert_allclose(
                [r["diff"], r["diff_lo"], r["diff_hi"], r["p_value"]],
                [np.mean(a - b), ci.low, ci.high, res.pvalue],
                rtol=1e-9,
            )
            np.testing.assert_allclose(r["diff_std"], np.std(a - b, ddof=1), rtol=1e-10)
            assert r["diff_n"] == len(seeds)


def test_summarize_final_value_of_early_stopped_member():
    rows, members, val = _experiment()
    summary = report.summarize(rows, members, ARMS, metrics=["val_acc"])
    r = _row(summary, "val_acc", B)
    finals = [val[B, s, 3 if s == 4 else EPOCHS] for s in range(SEEDS)]
    np.testing.assert_allclose(r["mean"], np.mean(finals), rtol=1e-12)


def _without_diverged(rows, members):
    """The experiment without C's diverged member (C then has seeds 0, 1, 3, 4: complete pairs)."""
    keep = lambda r: (r["arm"], r["seed"]) != (C, 2)  # noqa: E731
    return [r for r in rows if keep(r)], [m for m in members if keep(m)]


def test_summarize_verdicts_follow_metric_direction():
    rows, members = _without_diverged(*_experiment()[:2])
    summary = report.summarize(rows, members, ARMS, adjust="none")
    # The shared seed effect cancels in the paired difference: +0.02 is clearly resolved.
    assert _row(summary, "val_acc", C)["verdict"] == "better"
    assert _row(summary, "val_acc", C)["diff_lo"] > 0 and _row(summary, "val_acc", C)["test"] == "t"
    # Loss of C is higher by 0.05*0.02 = 0.001 (noise 0.001/seed): resolved and "worse".
    loss = _row(summary, "train_loss", C)
    assert loss["diff_lo"] > 0 and loss["verdict"] == "worse"
    # Flip the baseline: now the other arms are lower in accuracy (worse) and lower in loss (better).
    flipped = report.summarize(rows, members, ARMS, baseline=C, adjust="none")
    assert _row(flipped, "val_acc", A)["verdict"] == "worse"
    assert _row(flipped, "train_loss", A)["verdict"] == "better"
    assert _row(flipped, "val_acc", C)["verdict"] == "baseline"


def test_summarize_ns_and_undirected_metric():
    rows = []
    rng = np.random.default_rng(0)
    for arm in ("base", "same"):
        for s in range(4):
            rows.append((arm, s, 1, "val_acc", 0.9 + rng.normal(0, 0.01)))
            rows.append((arm, s, 1, "grad_norm", (2.0 if arm == "same" else 1.0) + s * 0.01))
    summary = report.summarize(rows, None, None, metrics=("val_acc", "grad_norm"))
    r = _row(summary, "val_acc", "same")
    assert r["diff_lo"] < 0 < r["diff_hi"] and r["verdict"] == "n.s."
    g = _row(summary, "grad_norm", "same")
    assert g["verdict"] == "higher" and g["diff"] == pytest.approx(1.0)


def test_summarize_best_epoch_and_target():
    rows = []
    acc = {"a": [0.5, 0.7, 0.9, 0.85], "b": [0.6, 0.92, 0.8, 0.7]}
    for arm, curve in acc.items():
        for s, off in enumerate((-0.01, 0.0, 0.01)):
            for e, v in enumerate(curve, start=1):
                rows.append((arm, s, e, "val_acc", v + off))
                rows.append((arm, s, e, "train_loss", 1.0 - v + off))
    summary = report.summarize(
        rows, None, ["a", "b"], metrics=("val_acc", "train_loss"), target={"val_acc": 0.88, "train_loss": 0.15}
    )
    a, b = _row(summary, "val_acc", "a"), _row(summary, "val_acc", "b")
    assert (a["best_epoch"], b["best_epoch"]) == (3, 2)
    np.testing.assert_allclose([a["best_mean"], b["best_mean"]], [0.9, 0.92], rtol=1e-12)
    assert (a["epochs_to_target"], b["epochs_to_target"]) == (3, 2)
    la, lb = _row(summary, "train_loss", "a"), _row(summary, "train_loss", "b")
    assert (la["best_epoch"], lb["best_epoch"]) == (3, 2)  # argmin for losses
    # losses reach a target from above: mean curves a [0.5, 0.3, 0.1, 0.15], b [0.4, 0.08, 0.2, 0.3]
    assert (la["epochs_to_target"], lb["epochs_to_target"]) == (3, 2)
    # A bare float is a val_acc target; other metrics get none. No target -> None.
    s2 = report.summarize(rows, None, ["a", "b"], metrics=("val_acc", "train_loss"), target=0.91)
    assert (_row(s2, "val_acc", "a")["epochs_to_target"], _row(s2, "val_acc", "b")["epochs_to_target"]) == (-1, 2)
    assert _row(s2, "val_acc", "a")["target"] == 0.91
    assert _row(s2, "train_loss", "a")["target"] is None
    assert _row(s2, "train_loss", "a")["epochs_to_target"] is None
    s3 = report.summarize(rows, None, ["a", "b"], metrics=("val_acc",))
    assert s3[0]["target"] is None and s3[0]["epochs_to_target"] is None


def test_summarize_validation():
    rows, members, _ = _experiment()
    with pytest.raises(ValueError, match="baseline"):
        report.summarize(rows, members, ARMS, baseline="nope")
    with pytest.raises(ValueError, match="twice"):
        report.summarize(rows, members, [A, A])
    with pytest.raises(ValueError, match="duplicate"):
        report.summarize(rows + rows[:1], members, ARMS)
    with pytest.raises(ValueError, match="confidence"):
        report.summarize(rows, members, ARMS, confidence=95)
    # Metrics absent from the data are skipped.
    assert {r["metric"] for r in report.summarize(rows, members, ARMS, metrics=("val_loss", "val_acc"))} == {"val_acc"}


# ----------------------------------------------------------------------------------------------
# Markdown, console table, plot, render
# ----------------------------------------------------------------------------------------------


def test_write_summary_files(tmp_path):
    rows, members, _ = _experiment()
    summary = report.summarize(rows, members, ARMS, target={"val_acc": 0.9})
    csv_path, md_path = report.write_summary(tmp_path, summary, title="Dropout ablation", notes=["5 seeds"])
    lines = csv_path.read_text().splitlines()
    assert lines[0] == ",".join(report.SUMMARY_COLUMNS)
    assert len(lines) == 1 + len(summary)
    md = md_path.read_text()
    assert md.startswith("# Dropout ablation\n")
    assert "- 5 seeds" in md
    assert "## val_acc (higher is better)" in md and "## train_loss (lower is better)" in md
    assert (
        "| arm | mean ± std | 95% CI | n | diverged [CI] | best epoch | Δ vs baseline [95% CI] | p | p (Holm) "
        "| verdict | seeds (planning) |"
    ) in md
    assert "Family: 2 comparisons with `dropout_rate=0.0` (Holm adjustment" in md
    r = _row(summary, "val_acc", C)
    expected_cell = f"{r['mean']:.4f} ± {r['std']:.4f}"
    (line,) = [ln for ln in md.splitlines() if ln.startswith(f"| {C} |") and expected_cell in ln]
    # C lost a member to divergence: 4 of 5 pairs, the ITT test decides (one -inf pair: W+ 10, W- 5, p 0.625)
    lo, hi = sps.binomtest(1, 5).proportion_ci(0.95, "exact")
    assert f"| {r['n']} | 1/5 [{lo:.0%}, {hi:.0%}] |" in line and "| n.s. (ITT) |" in line
    assert f"+{r['diff']:.4f} [+{r['diff_lo']:.4f}, +{r['diff_hi']:.4f}] (4/5 pairs)" in line
    assert "| 0.62 |" in line
    # deterministic
    before = (csv_path.read_bytes(), md_path.read_bytes())
    report.write_summary(tmp_path, summary, title="Dropout ablation", notes=["5 seeds"])
    assert (csv_path.read_bytes(), md_path.read_bytes()) == before
    with pytest.raises(ValueError, match="lacks"):
        report.write_summary(tmp_path, [{"metric": "x"}], title="t")


def test_markdown_escapes_pipes(tmp_path):
    rows = [("a|b", s, 1, "val_acc", 0.5 + 0.01 * s) for s in range(3)]
    _, md = report.write_summary(tmp_path, report.summarize(rows, None, None), title="t")
    assert "| a\\|b |" in md.read_text()


def test_format_summary_table():
    rows, members, _ = _experiment()
    summary = report.summarize(rows, members, ARMS)
    text = report.format_summary_table(summary, "train_loss")
    lines = text.splitlines()
    assert len(lines) == 2 + 3
    assert lines[0].startswith("arm") and set(lines[1]) <= {"-", " "}
    assert lines[2].startswith(A) and "(baseline)" in lines[2]
    assert lines[4].startswith(C) and "n.s. (ITT)" in lines[4]  # 5 of 5 ITT pairs worse: exact p = 2/32
    with pytest.raises(ValueError, match="no summary rows"):
        report.format_summary_table(summary, "val_loss")


def test_plot_curves_writes_png(tmp_path):
    rows, members, _ = _experiment()
    path = report.plot_curves(tmp_path / "plots" / "curves.png", rows, title="demo", member_rows=members, arms=ARMS)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 1024
    with pytest.raises(ValueError, match="not in the data"):
        report.plot_curves(tmp_path / "x.png", rows, metrics=["val_loss"])


def test_render_reproduces_summary(tmp_path):
    rows, members, _ = _experiment()
    config = {
        "name": "dropout ablation",
        "description": "p in {0, 0.2}",
        "baseline": B,
        "metrics": ["val_acc", "test_acc"],
        "target": {"val_acc": 0.9},
    }
    # What the engine does: write the tidy files and the summary from memory.
    report.write_metrics_csv(tmp_path / "metrics.csv", rows)
    report.write_members_csv(tmp_path / "members.csv", members)
    (tmp_path / "arms.json").write_text(json.dumps(ARMS))
    (tmp_path / "manifest.json").write_text(json.dumps({"config": config}))
    summary = report.summarize(rows, members, ARMS, metrics=config["metrics"], baseline=B, target=config["target"])
    report.write_summary(tmp_path, summary, title="dropout ablation: p in {0, 0.2}")
    csv_before = (tmp_path / "summary.csv").read_bytes()
    md_before = (tmp_path / "summary.md").read_bytes()
    (tmp_path / "summary.csv").unlink()
    # What `jtricks report DIR` does: re-derive everything from the files.
    again = report.render(tmp_path)
    assert (tmp_path / "summary.csv").read_bytes() == csv_before
    assert (tmp_path / "summary.md").read_bytes() == md_before
    assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"
    assert [r["arm"] for r in again] == [A, B, C] * 2 and again[0]["baseline"] == B


def test_render_reads_top_level_manifest_keys(tmp_path):
    rows, members, _ = _experiment()
    report.write_metrics_csv(tmp_path / "metrics.csv", rows)
    report.write_members_csv(tmp_path / "members.csv", members)
    (tmp_path / "arms.json").write_text(json.dumps(ARMS))
    manifest = {
        "experiment": "exp",
        "config": {"baseline": None, "metrics": None},
        "baseline": C,
        "metrics": ["train_loss"],
    }
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    summary = report.render(tmp_path, plot=False)
    assert [r["metric"] for r in summary] == ["train_loss"] * 3
    assert summary[0]["baseline"] == C
    assert (tmp_path / "summary.md").read_text().startswith("# exp\n")
    assert not (tmp_path / "curves.png").exists()


def test_render_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="metrics.csv"):
        report.render(tmp_path)


# ----------------------------------------------------------------------------------------------
# multiple comparisons, divergence, degenerate comparisons
# ----------------------------------------------------------------------------------------------


def _arms_rows(effects, sd=0.01, seeds=6, rng_seed=5):
    """val_acc of arms "base" (+0) and one per effect, a shared seed effect, independent noise ``sd``."""
    rng = np.random.default_rng(rng_seed)
    seed_effect = rng.normal(0, 0.02, size=seeds)
    rows = []
    for arm, effect in [("base", 0.0), *effects]:
        for s in range(seeds):
            rows.append((arm, s, 1, "val_acc", 0.7 + seed_effect[s] + effect + rng.normal(0, sd)))
    return rows


def test_holm_and_bh_adjust_the_family_and_decide_the_verdict():
    rows = _arms_rows([("a", 0.01), ("b", 0.0), ("c", 0.002), ("d", 0.03)], sd=0.004)
    raw = report.summarize(rows, None, None, adjust="none")
    holm = report.summarize(rows, None, None)  # default: holm
    bh = report.summarize(rows, None, None, adjust="bh")
    arms = ["a", "b", "c", "d"]
    p = np.array([_row(raw, "val_acc", a)["p_value"] for a in arms])
    for summary, method in ((raw, "none"), (holm, "holm"), (bh, "bh")):
        adj = [_row(summary, "val_acc", a)["p_adjusted"] for a in arms]
        np.testing.assert_allclose(adj, stats.adjust_pvalues(p, method), rtol=1e-15)
        for a, q in zip(arms, adj):
            r = _row(summary, "val_acc", a)
            assert (r["family"], r["adjust"], r["test"]) == (4, method, "t")
            assert r["verdict"] == ("better" if q < 0.05 and r["diff"] > 0 else "n.s." if q >= 0.05 else "worse")
    # without adjustment the verdict is the raw interval's; Holm's interval is the Bonferroni one (1 - 0.05/4)
    ra = _row(raw, "val_acc", "a")
    assert (ra["diff_lo"] > 0) == (ra["verdict"] == "better") and (ra["adj_lo"], ra["adj_hi"]) == (
        ra["diff_lo"],
        ra["diff_hi"],
    )
    ha = _row(holm, "val_acc", "a")
    final = {(r[0], r[1]): r[4] for r in rows}
    d = np.array([final["a", s] - final["base", s] for s in range(6)])
    lo, hi = sps.ttest_rel(d, np.zeros(6)).confidence_interval(1 - 0.05 / 4)
    np.testing.assert_allclose([ha["adj_lo"], ha["adj_hi"]], [lo, hi], rtol=1e-10)
    # "a" (raw p 0.036) is better without adjustment, not after Holm (4 x 0.036 > 0.05); "d" stays better
    assert [_row(raw, "val_acc", a)["verdict"] for a in ("a", "d")] == ["better", "better"]
    assert [_row(holm, "val_acc", a)["verdict"] for a in ("a", "d")] == ["n.s.", "better"]
    with pytest.raises(ValueError, match="adjust must be one of"):
        report.summarize(rows, None, None, adjust="bonferroni")


def test_diverged_members_switch_the_verdict_to_itt_and_zero_variance_is_degenerate():
    rows = _arms_rows([("half_diverged", 0.01)], sd=0.001, seeds=8)
    rows = [(a, s, e, m, (math.nan if a == "half_diverged" and s % 2 else v)) for a, s, e, m, v in rows]
    members = [
        {
            "arm": a,
            "seed": s,
            "diverged_epoch": 1 if (a == "half_diverged" and s % 2) else -1,
            "stopped_epoch": -1,
            "best_epoch": 1,
        }
        for a in ("base", "half_diverged")
        for s in range(8)
    ]
    summary = report.summarize(rows, members, None, adjust="none")
    h = _row(summary, "val_acc", "half_diverged")
    assert h["diff_lo"] > 0  # the 4 complete pairs alone would say "better"
    assert (h["diff_n"], h["itt_n"], h["test"], h["verdict"]) == (4, 8, "itt", "n.s.")
    assert h["itt_w"] == 10 - 26 and h["p_adjusted"] == h["itt_p"]
    lo, hi = sps.binomtest(4, 8).proportion_ci(0.95, "exact")
    np.testing.assert_allclose([h["div_rate"], h["div_lo"], h["div_hi"]], [0.5, lo, hi], rtol=1e-12)
    md = report.format_summary_table(summary, "val_acc")
    assert "(4/8 pairs)" in md and "n.s. (ITT)" in md and "4/8 [16%, 84%]" in md
    # every paired difference equal: "degenerate", no interval, left out of the family
    exact = [
        (a, s, 1, "val_acc", 0.5 + 0.1 * s + (0.25 if a == "flat" else 0.0)) for a in ("base", "flat") for s in range(4)
    ]
    g = _row(report.summarize(exact, None, None), "val_acc", "flat")
    assert (
        g["verdict"] == "degenerate" and math.isnan(g["diff_lo"]) and math.isnan(g["p_adjusted"]) and g["family"] == 0
    )


def test_value_at_the_validation_best_epoch():
    rows, members = [], []
    for s in range(3):
        for e, v in enumerate([0.5, 0.8, 0.6], start=1):
            rows.append(("a", s, e, "test_acc", v + 0.01 * s))
        members.append(
            {"arm": "a", "seed": s, "diverged_epoch": -1, "stopped_epoch": -1, "best_epoch": 2 if s < 2 else 1}
        )
    (r,) = report.summarize(rows, members, None, metrics=("test_acc",))
    np.testing.assert_allclose([r["mean"], r["at_best_mean"]], [0.61, (0.8 + 0.81 + 0.52) / 3], rtol=1e-12)
    header = report.format_summary_table([r], "test_acc").splitlines()[0]
    assert "at val-best epoch" in header


def test_edge_optimum_flagged_in_words(tmp_path):
    arms = [
        {"arm": f"opt={o},learning_rate={lr:g}", "factors": {"opt": o, "learning_rate": lr}}
        for o in ("sgd", "adam")
        for lr in (0.01, 0.1, 1.0)
    ]
    acc = {
        ("sgd", 0.01): 0.5,
        ("sgd", 0.1): 0.6,
        ("sgd", 1.0): 0.7,  # best at the largest lr: flagged
        ("adam", 0.01): 0.6,
        ("adam", 0.1): 0.8,
        ("adam", 1.0): 0.9,
    }  # 1.0 diverged once: 0.1 (inside) wins
    rows, members = [], []
    for a in arms:
        key = (a["factors"]["opt"], a["factors"]["learning_rate"])
        for s in range(3):
            div = key == ("adam", 1.0) and s == 0
            rows.append((a["arm"], s, 1, "val_acc", math.nan if div else acc[key] + 0.01 * s))
            members.append(
                {"arm": a["arm"], "seed": s, "diverged_epoch": 1 if div else -1, "stopped_epoch": -1, "best_epoch": 1}
            )
    summary = report.summarize(rows, members, arms, metrics=("val_acc",))
    notes = report.edge_optima(summary, arms, "val_acc")
    assert notes == [
        "Edge optimum: for opt='sgd', the best learning_rate by mean `val_acc` is 1 "
        "(`opt=sgd,learning_rate=1`), the largest value swept; the optimum may lie outside the grid."
    ]
    _, md = report.write_summary(tmp_path, summary, title="t", arms=arms)
    assert notes[0] in md.read_text()


def test_skipped_steps_notes_sum_each_members_epochs_per_arm() -> None:
    from jtricks.results import rendering

    def row(arm, seed, epoch, value, metric="skipped_steps"):
        return {"arm": arm, "seed": seed, "epoch": epoch, "metric": metric, "value": value}

    rows = [
        row("b", 0, 1, 3.0),
        row("b", 0, 2, 2.0),
        row("b", 1, 1, 0.0),
        row("b", 1, 2, 4.0),
        row("a", 0, 1, 0.0),
        row("a", 1, 1, math.nan),  # a diverged member's epoch
        row("b", 0, 1, 9.0, metric="train_loss"),
    ]
    assert rendering.skipped_steps_notes(rows) == [
        "float16 loss scaling skipped 9 steps in arm 'b' (2 of 2 members; at most 5 per member)"
    ]
    assert rendering.skipped_steps_notes([row("a", 0, 1, 0.0)]) == []
    assert rendering.skipped_steps_notes([row("a", 0, 1, 1.0, metric="train_loss")]) == []
