"""Tests of jtricks.stats against scipy.stats and hand computation with NumPy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from jtricks import stats

RTOL = 1e-10  # both sides are float64 closed forms; only summation order / quantile algorithms differ


def _sample(seed: int, n: int, loc: float = 0.9, scale: float = 0.01) -> np.ndarray:
    return np.random.default_rng(seed).normal(loc, scale, size=n)


# ----------------------------------------------------------------------------------------------
# t distribution
# ----------------------------------------------------------------------------------------------


def test_public_t_functions_match_scipy():
    np.testing.assert_allclose(stats.t_ppf(0.975, 4), sps.t.ppf(0.975, 4), rtol=1e-14)
    np.testing.assert_allclose(stats.t_sf(2.5, 6.2), sps.t.sf(2.5, 6.2), rtol=1e-14)
    assert math.isnan(stats.t_ppf(0.975, 0))


# ----------------------------------------------------------------------------------------------
# mean_ci
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n,confidence", [(2, 0.95), (5, 0.95), (10, 0.9), (30, 0.99)])
def test_mean_ci_matches_scipy_t_interval(n, confidence):
    x = _sample(n, n)
    ci = stats.mean_ci(x, confidence)
    mean, std = x.mean(), x.std(ddof=1)
    lo, hi = sps.t.interval(confidence, n - 1, loc=mean, scale=std / math.sqrt(n))
    np.testing.assert_allclose([ci.mean, ci.std, ci.lo, ci.hi], [mean, std, lo, hi], rtol=RTOL)
    assert ci.n == n


def test_mean_ci_hand_computation_small():
    # x = [1, 2, 3, 4]: mean 2.5, std sqrt(5/3), t_{0.975,3} = 3.182446305284263
    ci = stats.mean_ci([1.0, 2.0, 3.0, 4.0])
    std = math.sqrt(5.0 / 3.0)
    half = sps.t.ppf(0.975, 3) * std / 2.0
    assert ci.mean == 2.5
    np.testing.assert_allclose(ci.std, std, rtol=1e-15)
    np.testing.assert_allclose([ci.lo, ci.hi], [2.5 - half, 2.5 + half], rtol=1e-14)


def test_mean_ci_ignores_non_finite_and_reports_n():
    x = np.array([0.91, np.nan, 0.93, np.inf, 0.92, -np.inf])
    ci = stats.mean_ci(x)
    ref = stats.mean_ci([0.91, 0.93, 0.92])
    assert ci == ref
    assert ci.n == 3


def test_mean_ci_n1_and_n0():
    ci = stats.mean_ci([0.5, np.nan])
    assert ci.mean == 0.5 and ci.n == 1
    assert math.isnan(ci.std) and math.isnan(ci.lo) and math.isnan(ci.hi)
    ci0 = stats.mean_ci([np.nan, np.nan])
    assert ci0.n == 0 and all(math.isnan(v) for v in ci0[:4])
    ci_empty = stats.mean_ci([])
    assert ci_empty.n == 0


def test_mean_ci_constant_values_give_zero_width():
    ci = stats.mean_ci([0.25, 0.25, 0.25])
    assert (ci.mean, ci.std, ci.lo, ci.hi, ci.n) == (0.25, 0.0, 0.25, 0.25, 3)


@pytest.mark.parametrize("bad", [0.0, 1.0, 1.5, -0.1])
def test_confidence_validated(bad):
    with pytest.raises(ValueError, match="confidence"):
        stats.mean_ci([1.0, 2.0], confidence=bad)
    with pytest.raises(ValueError, match="confidence"):
        stats.paired_diff_ci([1.0, 2.0], [1.0, 3.0], confidence=bad)


def test_confidence_type_checked():
    with pytest.raises(TypeError, match="confidence"):
        stats.mean_ci([1.0, 2.0], confidence="95%")


# ----------------------------------------------------------------------------------------------
# paired_diff_ci
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [2, 3, 5, 12])
def test_paired_diff_matches_scipy_ttest_rel(n):
    base = _sample(100 + n, n, scale=0.02)
    arm = base + _sample(200 + n, n, loc=0.005, scale=0.004)  # correlated with base, as shared seeds are
    d = stats.paired_diff_ci(arm, base)
    res = sps.ttest_rel(arm, base)
    ci = res.confidence_interval(0.95)
    diffs = arm - base
    np.testing.assert_allclose(d.diff, diffs.mean(), rtol=RTOL)
    np.testing.assert_allclose(d.std, diffs.std(ddof=1), rtol=RTOL)
    np.testing.assert_allclose(d.se, diffs.std(ddof=1) / math.sqrt(n), rtol=RTOL)
    np.testing.assert_allclose([d.lo, d.hi], [ci.low, ci.high], rtol=RTOL)
    np.testing.assert_allclose(d.p, res.pvalue, rtol=1e-9)
    assert (d.n, d.n_a, d.n_b, d.df) == (n, n, n, n - 1)


def test_paired_is_tighter_than_welch_when_seeds_are_shared():
    base = _sample(7, 8, scale=0.02)
    arm = base + 0.004 + _sample(8, 8, loc=0.0, scale=0.002)
    paired = stats.paired_diff_ci(arm, base)
    welch = stats.welch_diff_ci(arm, base)
    assert paired.hi - paired.lo < 0.5 * (welch.hi - welch.lo)
    assert paired.lo > 0  # resolved when paired
    assert welch.lo < 0 < welch.hi  # not resolved when the shared seed variance is ignored


def test_paired_drops_pairs_with_non_finite_member():
    a = np.array([0.90, np.nan, 0.93, 0.95, 0.91])
    b = np.array([0.89, 0.90, np.inf, 0.93, 0.90])
    d = stats.paired_diff_ci(a, b)
    keep = [0, 3, 4]
    res = sps.ttest_rel(a[keep], b[keep])
    assert d.n == 3
    np.testing.assert_allclose(d.diff, np.mean(a[keep] - b[keep]), rtol=RTOL)
    np.testing.assert_allclose(d.p, res.pvalue, rtol=1e-9)


def test_paired_edge_cases():
    one = stats.paired_diff_ci([0.5, np.nan], [0.4, 0.3])
    assert one.n == 1 and one.diff == pytest.approx(0.1, abs=1e-15)
    assert math.isnan(one.lo) and math.isnan(one.p)
    none = stats.paired_diff_ci([np.nan], [0.3])
    assert none.n == 0 and math.isnan(none.diff)
    # degenerate (every difference equal): no interval and no p-value, not a zero-width interval and p = 0
    same = stats.paired_diff_ci([0.5, 0.6, 0.7], [0.5, 0.6, 0.7])
    assert same.diff == 0.0 and same.std == 0.0 and math.isnan(same.lo) and math.isnan(same.hi) and math.isnan(same.p)
    shift = stats.paired_diff_ci([1.5, 2.5, 3.5], [1.0, 2.0, 3.0])
    assert (
        (shift.diff, shift.std) == (0.5, 0.0) and math.isnan(shift.lo) and math.isnan(shift.hi) and math.isnan(shift.p)
    )
    with pytest.raises(ValueError, match="same length"):
        stats.paired_diff_ci([1.0, 2.0], [1.0])


# ----------------------------------------------------------------------------------------------
# welch_diff_ci
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("na,nb", [(2, 2), (4, 7), (10, 3)])
def test_welch_matches_scipy_ttest_ind(na, nb):
    a = _sample(na, na, loc=0.91, scale=0.01)
    b = _sample(50 + nb, nb, loc=0.90, scale=0.03)
    d = stats.welch_diff_ci(a, b, confidence=0.9)
    res = sps.ttest_ind(a, b, equal_var=False)
    ci = res.confidence_interval(0.9)
    np.testing.assert_allclose(d.diff, a.mean() - b.mean(), rtol=RTOL)
    np.testing.assert_allclose([d.lo, d.hi], [ci.low, ci.high], rtol=1e-9)
    np.testing.assert_allclose(d.p, res.pvalue, rtol=1e-9)
    np.testing.assert_allclose(d.df, res.df, rtol=1e-12)
    np.testing.assert_allclose(d.std, math.sqrt(a.var(ddof=1) + b.var(ddof=1)), rtol=RTOL)
    assert (d.n, d.n_a, d.n_b) == (na + nb, na, nb)


def test_welch_drops_non_finite_and_small_samples():
    d = stats.welch_diff_ci([0.9, np.nan, 0.92, 0.91], [0.8, 0.85, np.inf])
    ref = stats.welch_diff_ci([0.9, 0.92, 0.91], [0.8, 0.85])
    assert d == ref and (d.n_a, d.n_b) == (3, 2)
    small = stats.welch_diff_ci([0.9], [0.8, 0.85])
    assert small.diff == pytest.approx(0.075) and math.isnan(small.lo) and math.isnan(small.p)


# ----------------------------------------------------------------------------------------------
# seeds_needed
# ----------------------------------------------------------------------------------------------


def _power_by_quadrature(c: float, df: float, delta: float) -> float:
    """``P(|T'| > c)`` for ``T' = (Z + delta) / S``, ``S = sqrt(chi2_df / df)``: the normal tails given ``S = s``
    integrated over the density of ``S`` (``scipy.integrate.quad``), independent of ``scipy.stats.nct``."""
    from scipy import integrate

    s_dist = sps.chi(df, scale=1.0 / math.sqrt(df))
    tails = lambda s: (sps.norm.sf(c * s - delta) + sps.norm.cdf(-c * s - delta)) * s_dist.pdf(s)  # noqa: E731
    return integrate.quad(tails, 0.0, np.inf, epsabs=1e-13, epsrel=1e-12, limit=200)[0]


def test_t_test_power_matches_scipy_nct_and_quadrature():
    for n, effect, conf in [(2, 1.0, 0.95), (5, 2.0, 0.95), (10, 1.0, 0.95), (30, 0.3, 0.99), (200, 0.1, 0.9)]:
        df, delta = n - 1, math.sqrt(n) * effect
        c = sps.t.ppf(0.5 * (1 + conf), df)
        ref = sps.nct.sf(c, df, delta) + sps.nct.cdf(-c, df, delta)
        np.testing.assert_allclose(stats.t_test_power(n, effect, conf), ref, rtol=1e-12)
        np.testing.assert_allclose(_power_by_quadrature(c, df, delta), ref, atol=1e-9)
    with pytest.raises(ValueError, match="n must be"):
        stats.t_test_power(1, 1.0)


def test_seeds_needed_exact_noncentral_t():
    # The classic exact values at 95 % / 80 %: one sd needs 10 seeds (normal approximation: 8), two sd 5 (not 2).
    assert stats.seeds_needed(1.0, 1.0) == 10
    assert stats.seeds_needed(2.0, 1.0) == 5
    for diff, sd, conf, power in [(0.01, 0.02, 0.95, 0.8), (0.003, 0.01, 0.95, 0.8), (-0.02, 0.01, 0.99, 0.9)]:
        n = stats.seeds_needed(diff, sd, conf, power)
        effect = abs(diff) / sd
        assert stats.t_test_power(n, effect, conf) >= power > stats.t_test_power(n - 1, effect, conf)
    assert stats.seeds_needed(0.5, 1.0) == 34


def test_seeds_needed_edge_cases():
    assert stats.seeds_needed(0.0, 0.01) == math.inf
    assert math.isnan(stats.seeds_needed(0.01, float("nan")))
    assert math.isnan(stats.seeds_needed(0.01, 0.0))  # degenerate: no spread to plan with
    with pytest.raises(ValueError, match="diff_std"):
        stats.seeds_needed(0.01, -1.0)
    with pytest.raises(ValueError, match="power"):
        stats.seeds_needed(0.01, 0.02, power=1.0)
    with pytest.raises(TypeError, match="diff_mean"):
        stats.seeds_needed("0.01", 0.02)


def test_seeds_needed_resolves_difference_in_simulation():
    # With the suggested number of paired seeds, the paired CI excludes 0 in `power` of repeated
    # studies (exact: 0.8; binomial sd over 400 trials 0.02): check >= 0.74.
    diff, sd = 0.004, 0.006
    n = stats.seeds_needed(diff, sd)
    rng = np.random.default_rng(0)
    hits = 0
    trials = 400
    for _ in range(trials):
        d = rng.normal(diff, sd, size=n)
        res = stats.paired_diff_ci(d, np.zeros(n))
        hits += res.lo > 0
    assert hits / trials >= 0.74


# ----------------------------------------------------------------------------------------------
# multiple comparisons, binomial interval, rank tests
# ----------------------------------------------------------------------------------------------


def test_adjust_pvalues_holm_and_bh():
    p = [0.01, 0.04, 0.03, np.nan, 0.2]
    # Holm by hand: sorted 0.01, 0.03, 0.04, 0.2 times 4, 3, 2, 1 -> 0.04, 0.09, 0.08 -> max-accumulated 0.09, 0.2
    np.testing.assert_allclose(stats.adjust_pvalues(p, "holm"), [0.04, 0.09, 0.09, np.nan, 0.2], rtol=1e-15)
    bh = stats.adjust_pvalues(p, "bh")
    np.testing.assert_allclose(bh[[0, 1, 2, 4]], sps.false_discovery_control([0.01, 0.04, 0.03, 0.2]), rtol=1e-14)
    assert math.isnan(bh[3])
    np.testing.assert_array_equal(stats.adjust_pvalues(p, "none"), p)
    rng = np.random.default_rng(3)
    q = rng.uniform(0, 0.2, size=12)
    np.testing.assert_allclose(stats.adjust_pvalues(q, "bh"), sps.false_discovery_control(q), rtol=1e-13)
    holm = stats.adjust_pvalues(q, "holm")
    assert np.all(holm >= q) and np.all(holm <= np.minimum(1, 12 * q))
    with pytest.raises(ValueError, match="adjust must be one of"):
        stats.adjust_pvalues(q, "bonf")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        stats.adjust_pvalues([1.5], "holm")


@pytest.mark.parametrize("k,n", [(0, 8), (1, 8), (4, 8), (7, 8), (8, 8), (3, 40)])
def test_binomial_ci_is_clopper_pearson(k, n):
    ref = sps.binomtest(k, n).proportion_ci(0.95, "exact")
    rate, lo, hi = stats.binomial_ci(k, n)
    assert rate == k / n
    np.testing.assert_allclose([lo, hi], [ref.low, ref.high], rtol=1e-12, atol=1e-15)


def test_binomial_ci_validation():
    assert math.isnan(stats.binomial_ci(0, 0)[0])
    with pytest.raises(ValueError, match="k must be <= n"):
        stats.binomial_ci(3, 2)
    with pytest.raises(TypeError, match="k must be"):
        stats.binomial_ci(1.5, 2)


@pytest.mark.parametrize("n", [3, 6, 9, 15])
def test_wilcoxon_matches_scipy_exact(n):
    d = np.random.default_rng(n).normal(0.3, 1.0, size=n)
    res = stats.wilcoxon_signed_rank(d)
    ref = sps.wilcoxon(d, method="exact")
    np.testing.assert_allclose(res.p, ref.pvalue, rtol=1e-12)
    assert min(res.w_plus, res.w_minus) == ref.statistic and res.w_plus + res.w_minus == n * (n + 1) / 2


def test_wilcoxon_ties_zeros_and_exact_permutation():
    d = np.array([0.0, 1.0, -1.0, 2.0, 2.0, 3.0, 0.0])
    res = stats.wilcoxon_signed_rank(d)
    # zeros dropped; |d| = 1, 1, 2, 2, 3 -> mid-ranks 1.5, 1.5, 3.5, 3.5, 5; brute force over the 2^5 signs
    ranks = np.array([1.5, 1.5, 3.5, 3.5, 5.0])
    signs = np.array(np.meshgrid(*[[0, 1]] * 5)).reshape(5, -1).T
    null = signs @ ranks
    w = 1.5 + 3.5 + 3.5 + 5.0
    p = min(1.0, 2 * min(np.mean(null <= w), np.mean(null >= w)))
    assert (res.n, res.n_nonzero, res.w_plus, res.w_minus) == (7, 5, w, 1.5)
    np.testing.assert_allclose(res.p, p, rtol=1e-14)
    assert math.isnan(stats.wilcoxon_signed_rank([0.0, 0.0]).p)


def test_itt_counts_diverged_as_worst():
    # 4 of 8 members of the arm diverged, the other 4 slightly better: the complete pairs say "better",
    # the ITT test does not.
    a = [0.71, np.nan, 0.72, np.nan, 0.73, np.nan, 0.74, np.nan]
    b = [0.70] * 8
    complete = stats.paired_diff_ci(a, b)
    assert complete.n == 4 and complete.lo > 0
    itt = stats.itt_paired(a, b)
    assert (itt.n, itt.n_nonzero, itt.w_plus, itt.w_minus) == (8, 8, 10.0, 26.0)
    # the four -inf differences tie (mid-rank 6.5); brute force over the 2^8 sign patterns of those ranks
    ranks = np.array([1, 2, 3, 4, 6.5, 6.5, 6.5, 6.5])
    null = np.array(np.meshgrid(*[[0, 1]] * 8)).reshape(8, -1).T @ ranks
    np.testing.assert_allclose(itt.p, 2 * np.mean(null <= 10.0), rtol=1e-14)
    assert itt.p > 0.2
    # lower-is-better: a diverged (nan / inf) member is +inf; both diverged is a tie
    loss = stats.itt_paired([0.5, np.inf, np.nan], [0.6, 0.4, np.nan], higher_is_better=False)
    assert (loss.n, loss.n_nonzero, loss.w_plus, loss.w_minus) == (3, 2, 2.0, 1.0)


def test_power_is_finite_where_scipy_returns_nan_and_seeds_needed_is_the_smallest_n(monkeypatch):
    """scipy 1.17's noncentral t cdf gives NaN at (n=3, effect=5, 95%/15 family): the lower tail is taken by its
    mirror image (sf), which matches the quadrature; the bracketing search returns what a linear search returns,
    with O(log n) power evaluations."""
    c = 1 - 0.05 / 15
    p = stats.t_test_power(3, 5.0, c)
    assert (
        math.isfinite(p)
        and abs(p - _power_by_quadrature(stats.t_ppf(0.5 * (1 + c), 2.0), 2.0, math.sqrt(3) * 5.0)) < 1e-9
    )

    def linear(effect: float, conf: float) -> int:
        n = 2
        while stats.t_test_power(n, effect, conf) < 0.8:
            n += 1
        return n

    for effect in (0.3, 1.0, 2.0, 3.0, 5.0, 10.0):
        for conf in (0.95, c):
            assert stats.seeds_needed(effect, 1.0, confidence=conf) == linear(effect, conf), (effect, conf)
    calls = []
    real = stats.t_test_power
    monkeypatch.setattr(stats, "t_test_power", lambda *a, **k: calls.append(a) or real(*a, **k))
    n = stats.seeds_needed(0.001, 1.0, confidence=c)
    assert 14_000_000 < n < 14_500_000 and len(calls) < 80


def test_power_of_an_effect_beyond_scipys_noncentral_t_is_one():
    """scipy's noncentral t gives NaN above a noncentrality of about 3e9 (a near-zero std): the power is taken at
    the cap, 1 to double precision, so two seeds suffice."""
    assert stats.t_test_power(2, 1e12) == 1.0 and stats.t_test_power(3, 5e15, 0.99) == 1.0
    assert stats.seeds_needed(5.5e15, 1.0) == 2


# ----------------------------------------------------------------------------------------------
# divergence counts (exact McNemar), equivalence (TOST)
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_divergence_test_is_scipy_binomtest_and_statsmodels_exact_mcnemar(seed):
    from statsmodels.stats.contingency_tables import mcnemar

    rng = np.random.default_rng(seed)
    arm, base = rng.random(12) < 0.6, rng.random(12) < 0.3
    t = stats.divergence_test(arm, base)
    b, c = int(np.sum(arm & ~base)), int(np.sum(base & ~arm))
    assert (t.n, t.arm_only, t.base_only) == (12, b, c)
    assert t.p == sps.binomtest(b, b + c, 0.5).pvalue
    table = [[np.sum(arm & base), b], [c, np.sum(~arm & ~base)]]
    np.testing.assert_allclose(t.p, mcnemar(table, exact=True).pvalue, rtol=1e-12)


def test_divergence_test_floor_and_no_discordant_seed():
    # every one of 8 seeds diverged in the arm only: the smallest p-value 8 seeds can give, 2 * 0.5^8
    assert stats.divergence_test([True] * 8, [False] * 8).p == 2 * 0.5**8
    assert stats.divergence_test([0, 0, 1, 1], [1, 1, 0, 0]).p == 1.0
    none = stats.divergence_test([True, False, True], [True, False, True])  # concordant seeds only
    assert (none.arm_only, none.base_only) == (0, 0) and math.isnan(none.p)
    with pytest.raises(ValueError, match="same length"):
        stats.divergence_test([True], [True, False])


@pytest.mark.parametrize("seed,n,margin", [(0, 8, 0.01), (1, 5, 0.02), (2, 12, 0.005), (3, 8, 0.03)])
def test_tost_paired_matches_statsmodels_ttost_paired(seed, n, margin):
    from statsmodels.stats.weightstats import ttost_paired

    rng = np.random.default_rng(seed)
    b = rng.normal(0.8, 0.02, size=n)
    a = b + rng.normal(0.004, 0.008, size=n)
    eq = stats.tost_paired(a, b, margin)
    p, (_, p_lower, _), (_, p_upper, _) = ttost_paired(a, b, -margin, margin)
    np.testing.assert_allclose([eq.p, eq.p_lower, eq.p_upper], [p, p_lower, p_upper], rtol=1e-10)
    # the decision at alpha is the (1 - 2 alpha) interval inside the margin
    d = a - b
    lo, hi = sps.ttest_rel(a, b).confidence_interval(0.90)
    np.testing.assert_allclose([eq.lo, eq.hi], [lo, hi], rtol=1e-10)
    assert (eq.p < 0.05) == (-margin < lo and hi < margin)
    assert eq.n == n and eq.margin == margin and math.isclose(float(np.mean(d)), (eq.lo + eq.hi) / 2, rel_tol=1e-12)


def test_tost_paired_resolves_equivalence_and_not_a_large_difference():
    rng = np.random.default_rng(7)
    b = rng.normal(0.8, 0.02, size=16)
    same = b + rng.normal(0.0, 0.002, size=16)
    far = b + 0.05 + rng.normal(0.0, 0.002, size=16)
    assert stats.tost_paired(same, b, 0.01).p < 1e-6
    assert stats.tost_paired(far, b, 0.01).p > 0.99


def test_tost_paired_edge_cases_and_validation():
    eq = stats.tost_paired([0.5, 0.6, np.nan], [0.4, 0.5, 0.5], 0.2)  # every difference 0.1: no spread
    assert eq.n == 2 and math.isnan(eq.p) and math.isnan(eq.lo)
    assert math.isnan(stats.tost_paired([0.5], [0.4], 0.2).p)
    for bad in (0.0, -0.1, math.inf, math.nan):
        with pytest.raises(ValueError, match="margin must be a finite number > 0"):
            stats.tost_paired([1.0, 2.0], [1.0, 2.5], bad)
    with pytest.raises(TypeError, match="margin must be a positive number"):
        stats.tost_paired([1.0, 2.0], [1.0, 2.5], "0.1")
    with pytest.raises(ValueError, match="confidence must be > 0.5"):
        stats.tost_paired([1.0, 2.0], [1.0, 2.5], 0.1, confidence=0.4)
