"""Tests of jtricks.results.robust against scipy.stats (trim_mean, mannwhitneyu, bootstrap) and by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from jtricks.results import robust


@pytest.mark.parametrize("n", [2, 5, 8, 13])
def test_iqm_is_scipy_trim_mean(n):
    x = np.random.default_rng(n).normal(size=n)
    assert robust.iqm(x) == sps.trim_mean(x, 0.25)
    assert robust.iqm_ci(x).value == sps.trim_mean(x, 0.25)


def test_iqm_of_eight_is_the_mean_of_the_middle_four_and_ignores_non_finite():
    x = [0.0, 10.0, 1.0, 2.0, 3.0, 4.0, -10.0, 5.0]  # sorted: -10 0 1 2 3 4 5 10 -> middle 1 2 3 4
    assert robust.iqm(x) == 2.5
    assert robust.iqm([*x, np.nan, np.inf]) == 2.5
    assert math.isnan(robust.iqm([np.nan]))


def test_iqm_ci_is_the_scipy_percentile_bootstrap_with_the_fixed_seed():
    x = np.random.default_rng(3).normal(0.6, 0.05, size=8)
    ci = robust.iqm_ci(x, 0.9)
    ref = sps.bootstrap(
        (x,),
        lambda s, axis: sps.trim_mean(s, 0.25, axis=axis),
        n_resamples=robust.N_BOOT,
        confidence_level=0.9,
        method="percentile",
        rng=np.random.default_rng(robust.BOOT_SEED),
    ).confidence_interval
    assert (ci.lo, ci.hi) == (ref.low, ref.high)
    assert ci.lo < ci.value < ci.hi and ci.n == 8
    assert robust.iqm_ci(x, 0.9) == ci  # deterministic
    one = robust.iqm_ci([0.5, np.nan])
    assert one.value == 0.5 and math.isnan(one.lo) and one.n == 1


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_unpaired_poi_is_mann_whitney_u_over_nm(seed):
    rng = np.random.default_rng(seed)
    a = np.round(rng.normal(0.1, 1.0, size=9), 1)  # rounded: ties
    b = np.round(rng.normal(0.0, 1.0, size=7), 1)
    assert math.isclose(robust.poi(a, b, paired=False), sps.mannwhitneyu(a, b).statistic / (9 * 7), rel_tol=1e-14)
    ci = robust.poi_ci(a, b, paired=False)
    assert ci.lo <= ci.value <= ci.hi and ci.n == 16


def test_paired_poi_counts_seeds_won_with_ties_as_half():
    a = [0.7, 0.6, 0.5, 0.9, -np.inf, -np.inf]
    b = [0.6, 0.6, 0.8, 0.1, 0.5, -np.inf]  # win, tie, loss, win, loss (diverged), tie (both diverged)
    assert robust.poi(a, b) == (1 + 0.5 + 0 + 1 + 0 + 0.5) / 6
    assert robust.poi([0.7, np.nan], [0.6, 0.9]) == 1.0  # a pair with nan is left out
    ci = robust.poi_ci(a, b)
    w = np.array([1.0, 0.5, 0.0, 1.0, 0.0, 0.5])
    ref = sps.bootstrap(
        (w,),
        np.mean,
        n_resamples=robust.N_BOOT,
        method="percentile",
        rng=np.random.default_rng(robust.BOOT_SEED),
    ).confidence_interval
    np.testing.assert_allclose([ci.lo, ci.hi], [ref.low, ref.high], rtol=1e-12)
    with pytest.raises(ValueError, match="same length"):
        robust.poi([1.0], [1.0, 2.0])


def test_poi_bootstrap_interval_covers_in_simulation():
    rng = np.random.default_rng(11)
    covered = 0
    for _ in range(40):
        a, b = rng.normal(0.5, 1.0, size=30), rng.normal(0.0, 1.0, size=30)  # P(a > b) = Phi(0.5 / sqrt 2)
        ci = robust.poi_ci(a, b, paired=False)
        covered += ci.lo <= sps.norm.cdf(0.5 / math.sqrt(2)) <= ci.hi
    assert covered >= 34  # nominal 95 %: 38 of 40 expected
