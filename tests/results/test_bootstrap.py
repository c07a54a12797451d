"""The test-set bootstrap: the vectorized two-level resampling equals a plain double loop over the same draws, its
spread matches the binomial variance when the test set is the only source of variance and the seed bootstrap when
the seeds are, paired comparisons draw the same examples for both arms, and the outcome files round-trip."""

from __future__ import annotations

import numpy as np
import pytest

from jtricks.results import bootstrap as jboot
from jtricks.results import stats as jstats


def _naive(outcomes: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """The module docstring's loop, with the same draws (seeds first, then examples)."""
    s, n = outcomes.shape
    rng = np.random.default_rng(seed)
    s_idx = rng.integers(0, s, size=(resamples, s))
    n_idx = rng.integers(0, n, size=(resamples, n))
    return np.array([np.mean([outcomes[i, n_idx[b]].mean() for i in s_idx[b]]) for b in range(resamples)])


def test_bootstrap_equals_the_plain_double_loop():
    o = np.random.default_rng(1).random((4, 30)) < 0.7
    np.testing.assert_allclose(jboot.bootstrap_means(o, resamples=200, seed=5), _naive(o, 200, 5), rtol=0, atol=1e-12)


def test_identical_seeds_give_the_binomial_variance():
    # no training variance: every seed classifies the same 700 of 1000 examples correctly
    n, p = 1000, 0.7
    row = np.zeros(n)
    row[: int(p * n)] = 1.0
    t = jboot.bootstrap_means(np.tile(row, (5, 1)), resamples=4000, seed=0)
    # the std of a bootstrap proportion over 4000 resamples is within ~3% of sqrt(p(1-p)/N) (sampling error ~1.1%)
    np.testing.assert_allclose(t.std(), np.sqrt(p * (1 - p) / n), rtol=0.03)
    np.testing.assert_allclose(t.mean(), p, atol=0.002)
    ci = jboot.total_ci(np.tile(row, (5, 1)), resamples=4000, seed=0)
    assert ci.train_lo == ci.train_hi == pytest.approx(p)  # no seed spread: the training-only interval is a point
    half = 1.959964 * np.sqrt(p * (1 - p) / n)
    assert ci.lo == pytest.approx(p - half, abs=0.004) and ci.hi == pytest.approx(p + half, abs=0.004)


def test_constant_examples_give_the_seed_bootstrap():
    # no test-set variance: each member is right on all or none of its examples' share, seed means 0.5..0.8
    means = np.array([0.5, 0.6, 0.7, 0.8])
    o = np.repeat(means[:, None], 40, axis=1)
    t = jboot.bootstrap_means(o, resamples=4000, seed=2)
    # the plug-in std of a resampled mean of S values: std(ddof=0) / sqrt(S)
    np.testing.assert_allclose(t.std(), means.std() / np.sqrt(len(means)), rtol=0.04)


def test_training_interval_is_the_t_interval_and_total_contains_more_variance():
    rng = np.random.default_rng(3)
    o = (rng.random((6, 200)) < rng.uniform(0.6, 0.8, size=(6, 1))).astype(float)
    ci = jboot.total_ci(o, confidence=0.9, resamples=1000, seed=1)
    t = jstats.mean_ci(o.mean(axis=1), 0.9)
    assert (ci.mean, ci.train_lo, ci.train_hi) == (t.mean, t.lo, t.hi)
    assert (ci.seeds, ci.examples, ci.resamples) == (6, 200, 1000)
    assert ci.lo < ci.mean < ci.hi


def test_a_paired_comparison_resamples_the_same_examples():
    rng = np.random.default_rng(4)
    base = (rng.random((5, 300)) < 0.6).astype(float)
    same = jboot.paired_total_ci(base, base, resamples=500, seed=0)
    assert (same.mean, same.lo, same.hi) == (0.0, 0.0, 0.0)  # unpaired examples would give a nonzero spread
    arm = base.copy()
    arm[:, :30] = 1.0  # the arm fixes the first 30 examples of every seed
    d = jboot.paired_total_ci(arm, base, resamples=2000, seed=0)
    np.testing.assert_allclose(d.mean, (arm.mean(1) - base.mean(1)).mean())
    assert 0 < d.lo < d.mean < d.hi
    ta, tb = jboot._bootstrap([arm, base], 2000, 0)
    np.testing.assert_allclose(np.quantile(ta - tb, [0.025, 0.975]), [d.lo, d.hi])


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match=r"\(seeds, examples\)"):
        jboot.total_ci(np.ones(5))
    with pytest.raises(ValueError, match="finite"):
        jboot.total_ci(np.array([[1.0, np.nan]]))
    with pytest.raises(ValueError, match="`resamples` must be an int >= 2"):
        jboot.total_ci(np.ones((2, 2)), resamples=1)
    with pytest.raises(ValueError, match="must pair"):
        jboot.paired_total_ci(np.ones((2, 3)), np.ones((3, 3)))


def test_outcome_files_round_trip(tmp_path):
    rng = np.random.default_rng(5)
    acc = jboot.Outcomes("test_acc", [("a", 0), ("b", 1)], (rng.random((2, 13)) < 0.5).astype(float))
    jboot.write_outcomes(tmp_path, acc)
    stored = np.load(tmp_path / jboot.OUTCOMES_FILE)
    assert stored.dtype == np.uint8 and stored.shape == (2, 2)  # 13 outcomes in 2 bytes per member
    back = jboot.read_outcomes(tmp_path)
    assert back.metric == "test_acc" and back.members == acc.members
    np.testing.assert_array_equal(back.values, acc.values)
    loss = jboot.Outcomes("test_loss", [("a", 0)], rng.random((1, 7)))
    jboot.write_outcomes(tmp_path, loss)
    np.testing.assert_array_equal(jboot.read_outcomes(tmp_path).values, loss.values.astype(np.float32))
    assert jboot.read_outcomes(tmp_path / "none") is None


def test_total_columns_go_on_the_outcome_metric_and_skip_diverged_members():
    rng = np.random.default_rng(6)
    values = (rng.random((6, 50)) < 0.6).astype(float)
    members = [(a, s) for a in ("base", "arm") for s in (0, 1, 2)]
    out = jboot.Outcomes("test_acc", members, values)
    rows = [
        {"metric": "test_acc", "arm": "base", "baseline": "base", "confidence": 0.95},
        {"metric": "test_acc", "arm": "arm", "baseline": "base", "confidence": 0.95},
        {"metric": "val_acc", "arm": "arm", "baseline": "base", "confidence": 0.95},
    ]
    member_rows = [{"arm": a, "seed": s, "diverged_epoch": 2 if (a, s) == ("arm", 1) else -1} for a, s in members]
    got = jboot.add_total_intervals(rows, out, member_rows, resamples=300)
    ref = jboot.total_ci(values[[3, 5]], resamples=300)
    assert (got[1]["total_ci_low"], got[1]["total_ci_high"]) == (ref.lo, ref.hi)
    pair = jboot.paired_total_ci(values[[3, 5]], values[[0, 2]], resamples=300)
    assert (got[1]["total_diff_low"], got[1]["total_diff_high"]) == (pair.lo, pair.hi)
    assert got[0]["total_diff_low"] is None and got[0]["total_ci_low"] is not None
    assert all(got[2][c] is None for c in jboot.TOTAL_COLUMNS)
