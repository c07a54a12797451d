"""The summary's equivalence, divergence and robust columns (jtricks.results.summary) against scipy and statsmodels."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from jtricks import report, stats
from jtricks.results import robust

SEEDS = 8


def _rows(effects, sd=0.002, seeds=SEEDS, rng_seed=3, diverged=()):
    """val_acc and train_loss of arm "base" (+0) and one arm per ``(name, effect)``: a seed effect shared by every arm
    and independent noise ``sd``; the members ``diverged`` (``(arm, seed)``) are nan and flagged in members.csv."""
    rng = np.random.default_rng(rng_seed)
    seed_effect = rng.normal(0, 0.02, size=seeds)
    rows, members = [], []
    for arm, effect in [("base", 0.0), *effects]:
        for s in range(seeds):
            lost = (arm, s) in diverged
            acc = math.nan if lost else 0.7 + seed_effect[s] + effect + rng.normal(0, sd)
            rows.append((arm, s, 1, "val_acc", acc))
            rows.append((arm, s, 1, "train_loss", math.nan if lost else 1.0 - acc))
            members.append((arm, s, 1 if lost else -1, -1, 1))
    return rows, members


def _finals(rows, metric):
    out = {}
    for arm, seed, _, m, v in rows:
        if m == metric:
            out.setdefault(arm, {})[seed] = v
    return {arm: np.array([v[s] for s in sorted(v)]) for arm, v in out.items()}


def _row(summary, arm, metric="val_acc"):
    (r,) = [r for r in summary if r["metric"] == metric and r["arm"] == arm]
    return r


# ----------------------------------------------------------------------------------------------
# equivalence
# ----------------------------------------------------------------------------------------------


def test_equivalence_verdicts_tost_against_statsmodels_and_holm_within_the_family():
    from statsmodels.stats.weightstats import ttost_paired

    rows, members = _rows([("same", 0.0), ("far", 0.05), ("unclear", 0.006)], sd=0.004)
    summary = report.summarize(rows, members, None, metrics=["val_acc"], equivalence_margin=0.01)
    finals = _finals(rows, "val_acc")
    arms = ["same", "far", "unclear"]
    p_tost = [ttost_paired(finals[a], finals["base"], -0.01, 0.01)[0] for a in arms]
    holm = stats.adjust_pvalues(p_tost, "holm")
    for arm, p, q in zip(arms, p_tost, holm):
        r = _row(summary, arm)
        np.testing.assert_allclose([r["eq_p"], r["eq_p_adjusted"]], [p, q], rtol=1e-10)
        lo, hi = sps.ttest_rel(finals[arm], finals["base"]).confidence_interval(0.90)
        np.testing.assert_allclose([r["eq_lo"], r["eq_hi"]], [lo, hi], rtol=1e-10)
        assert (r["eq_margin"], r["eq_family"]) == (0.01, 3)
    assert [_row(summary, a)["verdict"] for a in arms] == ["equivalent", "better", "not resolved"]
    # the decision rule: not resolved as different, and the adjusted TOST p-value below alpha
    same = _row(summary, "same")
    assert same["p_adjusted"] >= 0.05 and same["eq_p_adjusted"] < 0.05
    unclear = _row(summary, "unclear")
    assert unclear["p_adjusted"] >= 0.05 and unclear["eq_p_adjusted"] >= 0.05
    # without a margin nothing changes but the verdict's name for an unresolved comparison
    plain = report.summarize(rows, members, None, metrics=["val_acc"])
    assert [_row(plain, a)["verdict"] for a in arms] == ["n.s.", "better", "n.s."]
    assert _row(plain, "same")["eq_margin"] is None and math.isnan(_row(plain, "same")["eq_p"])
    for key in ("p_value", "p_adjusted", "diff_lo", "iqm", "poi"):
        assert [_row(plain, a)[key] for a in arms] == [_row(summary, a)[key] for a in arms]


def test_equivalence_margin_per_metric_and_validation():
    rows, members = _rows([("same", 0.0)])
    per_metric = report.summarize(rows, members, None, equivalence_margin={"val_acc": 0.01})
    assert _row(per_metric, "same")["eq_margin"] == 0.01
    assert _row(per_metric, "same", "train_loss")["eq_margin"] is None
    assert _row(per_metric, "same", "train_loss")["verdict"] == "n.s."
    for bad, error, match in [
        (-0.1, ValueError, r"equivalence_margin must be a finite number > 0, got -0.1"),
        (math.inf, ValueError, r"equivalence_margin must be a finite number > 0"),
        ("0.1", TypeError, r"equivalence_margin must be None, a finite number > 0 \(every metric\) or"),
        ({"val_acc": 0}, ValueError, r"equivalence_margin\['val_acc'\] must be a finite number > 0, got 0"),
        ({}, ValueError, r"equivalence_margin must not be an empty mapping"),
    ]:
        with pytest.raises(error, match=match):
            report.summarize(rows, members, None, equivalence_margin=bad)
    with pytest.raises(ValueError, match=r"confidence must be > 0.5 with an equivalence_margin"):
        report.summarize(rows, members, None, confidence=0.4, equivalence_margin=0.01)
    from jtricks.results import summary as jsummary

    with pytest.raises(ValueError, match=r"names metric 'val_accc', measured by no arm; the arms measure"):
        jsummary.equivalence_margins({"val_accc": 0.01}, {"val_acc", "train_loss"})


def test_no_equivalence_claim_when_a_member_diverged():
    """TOST on the surviving pairs could call an arm that loses seeds to divergence equivalent: no test then."""
    rows, members = _rows([("same", 0.0)], diverged={("same", 3)})
    r = _row(report.summarize(rows, members, None, metrics=["val_acc"], equivalence_margin=0.05), "same")
    assert r["test"] == "itt" and math.isnan(r["eq_p"]) and r["eq_family"] == 0
    assert r["verdict"] == "not resolved"


# ----------------------------------------------------------------------------------------------
# divergence: the exact McNemar test, its own family
# ----------------------------------------------------------------------------------------------


def test_divergence_test_counts_the_discordant_seeds_and_is_holm_adjusted():
    """Two arms diverge on every seed, one arm and the baseline on one seed each: every comparison has a discordant
    seed (the baseline's seed 5), so all 12 form the divergence family."""
    effects = [(f"a{i}", 0.001 * i) for i in range(10)] + [("nan1", 0.0), ("nan2", 0.0)]
    diverged = {(a, s) for a in ("nan1", "nan2") for s in range(SEEDS)} | {("a3", 0), ("base", 5)}
    rows, members = _rows(effects, diverged=diverged)
    summary = report.summarize(rows, members, None, metrics=["val_acc"])
    r = _row(summary, "nan1")
    assert (r["test"], r["itt_p"], r["verdict"]) == ("itt", 2 * 0.5**7, "n.s.")  # seed 5: both diverged, a tie
    assert r["p_adjusted"] > 0.05 and r["family"] == 12
    # every comparison has a discordant seed: the baseline's seed 5 diverged alone against every arm but nan1/nan2
    names = [name for name, _ in effects]
    counts = {a: (_row(summary, a)["div_arm_only"], _row(summary, a)["div_base_only"]) for a in names}
    assert counts["nan1"] == (7, 0) and counts["a3"] == (1, 1) and counts["a0"] == (0, 1)
    p = [sps.binomtest(*(lambda b, c: (b, b + c))(*counts[a]), 0.5).pvalue for a in names]
    np.testing.assert_allclose([_row(summary, a)["div_p"] for a in names], p, rtol=1e-12)
    np.testing.assert_allclose(
        [_row(summary, a)["div_p_adjusted"] for a in names], stats.adjust_pvalues(p, "holm"), rtol=1e-12
    )
    assert r["div_family"] == 12 and r["div_verdict"] == "n.s."  # 12 x 2 x 0.5^7 = 0.19


def test_divergence_family_leaves_out_comparisons_without_a_discordant_seed():
    effects = [(f"a{i}", 0.001 * i) for i in range(10)] + [("nan1", 0.0), ("nan2", 0.0)]
    diverged = {(a, s) for a in ("nan1", "nan2") for s in range(SEEDS)}
    rows, members = _rows(effects, diverged=diverged)
    summary = report.summarize(rows, members, None, metrics=["val_acc", "train_loss"])
    for metric in ("val_acc", "train_loss"):
        r = _row(summary, "nan1", metric)
        assert (r["div_arm_only"], r["div_base_only"], r["div_p"]) == (8, 0, 2 * 0.5**8)
        assert (r["div_family"], r["div_p_adjusted"], r["div_verdict"]) == (2, 4 * 0.5**8, "more")
        assert r["verdict"] == "n.s."  # the ITT rank test, Holm over the 12 comparisons of the metric
        quiet = _row(summary, "a1", metric)
        assert (quiet["div_arm_only"], quiet["div_base_only"], quiet["div_verdict"]) == (0, 0, "n/a")
        assert math.isnan(quiet["div_p"])
    assert _row(summary, "base")["div_verdict"] == "baseline"


# ----------------------------------------------------------------------------------------------
# robust aggregates
# ----------------------------------------------------------------------------------------------


def test_iqm_and_probability_of_improvement_columns_against_references():
    rows, members = _rows([("up", 0.002), ("lost", 0.01)], sd=0.004, diverged={("lost", 1), ("lost", 6)})
    summary = report.summarize(rows, members, None, confidence=0.9)
    acc = _finals(rows, "val_acc")
    for arm in ("base", "up", "lost"):
        r = _row(summary, arm)
        x = acc[arm][np.isfinite(acc[arm])]
        assert r["iqm"] == sps.trim_mean(x, 0.25)
        assert (r["iqm_lo"], r["iqm_hi"]) == robust.iqm_ci(x, 0.9)[1:3]
    base = _row(summary, "base")
    assert math.isnan(base["poi"]) and math.isnan(base["poi_lo"])
    # paired by seed, ties 1/2; a diverged member loses to the baseline's member of its seed
    for arm in ("up", "lost"):
        a = np.where(np.isnan(acc[arm]), -np.inf, acc[arm])
        wins = (a > acc["base"]) + 0.5 * (a == acc["base"])
        r = _row(summary, arm)
        assert r["poi"] == np.mean(wins)
        assert (r["poi_lo"], r["poi_hi"]) == robust.poi_ci(a, acc["base"], 0.9)[1:3]
    # lower is better for a loss: P(better) is P(loss_arm < loss_base)
    loss = _finals(rows, "train_loss")
    r = _row(summary, "up", "train_loss")
    assert r["poi"] == np.mean((loss["up"] < loss["base"]) + 0.5 * (loss["up"] == loss["base"]))
    assert r["poi"] == _row(summary, "up")["poi"]  # train_loss = 1 - val_acc here


# ----------------------------------------------------------------------------------------------
# summary.md and jtricks report
# ----------------------------------------------------------------------------------------------


def test_summary_md_second_table_and_render_reads_the_margin_from_the_manifest(tmp_path):
    import json

    rows, members = _rows([("same", 0.0), ("nan", 0.0)], diverged={("nan", s) for s in range(SEEDS)})
    report.write_metrics_csv(tmp_path / "metrics.csv", rows)
    report.write_members_csv(tmp_path / "members.csv", members)
    config = {"metrics": ["val_acc"], "equivalence_margin": {"val_acc": 0.01}}
    (tmp_path / "manifest.json").write_text(json.dumps({"config": config}))
    summary = report.render(tmp_path, plot=False)
    assert _row(summary, "same")["verdict"] == "equivalent" and _row(summary, "nan")["div_verdict"] == "more"
    md = (tmp_path / "summary.md").read_text(encoding="utf-8")
    assert (
        "Family: 2 comparisons with `base` (Holm adjustment over the comparisons of this metric); divergence: "
        "1 comparison with a seed on which only one arm diverged; equivalence within ±0.01: 1 comparison."
    ) in md
    header = (
        "| arm | IQM [95% CI] | P(better) [95% CI] | diverged alone (arm / baseline) | p divergence (Holm) | "
        "divergence | Δ [90% CI] vs ±0.01 | p TOST (Holm) |"
    )
    assert header in md
    r = _row(summary, "same")
    dec = lambda v: f"{v:.4f}"  # noqa: E731 (accuracies: 4 decimals)
    assert (
        f"| same | {dec(r['iqm'])} [{dec(r['iqm_lo'])}, {dec(r['iqm_hi'])}] | {r['poi']:.2f} [{r['poi_lo']:.2f}, "
        f"{r['poi_hi']:.2f}] | 0 / 0 | n/a | n/a | [{r['eq_lo']:+.4f}, {r['eq_hi']:+.4f}] |"
    ) in md
    assert "| nan | n/a | 0.00 [0.00, 0.00] | 8 / 0 | 0.0078 | more | n/a | n/a |" in md
    # the terminal table keeps its columns
    assert "IQM" not in report.format_summary_table(summary, "val_acc")


def test_summary_csv_round_trips_the_new_columns(tmp_path):
    rows, members = _rows([("same", 0.0)], diverged={("same", 2)})
    summary = report.summarize(rows, members, None, equivalence_margin=0.02)
    csv_path, _ = report.write_summary(tmp_path, summary, title="t")
    header = csv_path.read_text(encoding="utf-8").splitlines()[0].split(",")
    assert header == list(report.SUMMARY_COLUMNS) and header[-18:] == [
        "iqm",
        "iqm_lo",
        "iqm_hi",
        "poi",
        "poi_lo",
        "poi_hi",
        "div_arm_only",
        "div_base_only",
        "div_p",
        "div_p_adjusted",
        "div_family",
        "div_verdict",
        "eq_margin",
        "eq_lo",
        "eq_hi",
        "eq_p",
        "eq_p_adjusted",
        "eq_family",
    ]
