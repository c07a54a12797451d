"""Exact group-sequential boundaries (jtricks.results.sequential_bounds) against published values and Monte Carlo."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from jtricks.results import sequential_bounds as sb

FOUR = (0.25, 0.5, 0.75, 1.0)


def test_lan_demets_obf_per_side_matches_the_published_boundaries():
    # Reboussin, DeMets, Kim & Lan (2000), ldbounds / gsDesign: 4 equally spaced looks, alpha 0.05 two-sided, the
    # O'Brien-Fleming-type function spending alpha/2 on each side: 4.3326, 2.9631, 2.3590, 2.0141
    t = np.array(FOUR)
    cumulative = 2 * (2 * stats.norm.sf(stats.norm.isf(0.025 / 2) / np.sqrt(t)))
    np.testing.assert_allclose(sb.solve_boundaries(t, cumulative), [4.3326, 2.9631, 2.3590, 2.0141], atol=6e-5)


@pytest.mark.parametrize(
    "bounds, k",
    [
        # Pocock (1977): constant boundaries for K = 2, 4, 5 looks at alpha 0.05 (3 decimals)
        ([2.178] * 2, 2),
        ([2.361] * 4, 4),
        ([2.413] * 5, 5),
        # O'Brien & Fleming (1979), Jennison & Turnbull Table 2.3: c_k = C sqrt(K / k), C = 2.024 for K = 4
        (list(2.024 * np.sqrt(4 / np.arange(1, 5))), 4),
    ],
)
def test_published_constant_boundaries_have_level_005(bounds, k):
    t = np.arange(1, k + 1) / k
    total = sb.crossing_probabilities(t, bounds).sum()
    # the published constants are rounded to 3 decimals: d alpha / dc is about 0.1 here, so 5e-4 * 0.1 * 2
    assert total == pytest.approx(0.05, abs=1.5e-4)


@pytest.mark.parametrize("function", sb.SPENDING)
def test_boundaries_spend_the_spending_function(function, monkeypatch):
    t = np.array([2, 5, 6, 10]) / 10  # unequal looks
    c = sb.boundaries(t, 0.05, function)
    spent = sb.spent(t, 0.05, function)
    np.testing.assert_allclose(np.cumsum(sb.crossing_probabilities(t, c)), spent, rtol=1e-8)
    assert spent[-1] == pytest.approx(0.05, rel=1e-12)  # alpha spent in full
    assert c[0] == pytest.approx(stats.norm.isf(spent[0] / 2), rel=1e-9)  # the first look alone
    # twice as fine a grid moves no boundary by more than 1e-8
    monkeypatch.setattr(sb, "GRID_POINTS", 2 * sb.GRID_POINTS - 1)
    np.testing.assert_allclose(sb.boundaries(t, 0.05, function), c, atol=1e-8)


def test_obf_nominal_levels_are_above_the_spending_increments():
    c = sb.boundaries(FOUR, 0.05, "obf")
    np.testing.assert_allclose(c, [3.9199, 2.7740, 2.2982, 2.0426], atol=1e-4)
    nominal = sb.nominal_levels(c)
    increments = np.diff(sb.spent(FOUR, 0.05, "obf"), prepend=0.0)
    assert nominal[0] == pytest.approx(increments[0], rel=1e-9)
    assert np.all(nominal[1:] > increments[1:])  # the correlation between looks, used: less strict
    np.testing.assert_allclose(nominal, [8.86e-5, 0.00554, 0.02155, 0.04109], rtol=2e-3)
    assert sb.boundaries([1.0], 0.05)[0] == pytest.approx(stats.norm.isf(0.025), rel=1e-12)
    assert sb.boundaries([1 / 1024, 1.0], 0.05)[0] == math.inf  # nothing a double can hold spent at t = 1/1024


def _brownian(rng, t, n):
    return np.cumsum(rng.normal(size=(n, len(t))) * np.sqrt(np.diff(t, prepend=0.0)), axis=1) / np.sqrt(t)


@pytest.mark.parametrize("function", sb.SPENDING)
def test_monte_carlo_familywise_error_of_normal_statistics(function):
    t, n = np.array(FOUR), 200_000
    c = sb.boundaries(t, 0.05, function)
    z = _brownian(np.random.default_rng(0), t, n)
    crossed = np.abs(z) >= c
    first = crossed & (np.cumsum(crossed, axis=1) == 1)
    se = np.sqrt(0.05 * 0.95 / n)
    assert abs(crossed.any(axis=1).mean() - 0.05) < 3 * se  # 3 Monte Carlo standard errors (0.0015)
    inc = np.diff(sb.spent(t, 0.05, function), prepend=0.0)
    assert np.all(np.abs(first.mean(axis=0) - inc) < 3 * np.sqrt(inc * (1 - inc) / n) + 1e-4)


def test_monte_carlo_familywise_error_of_t_statistics_with_few_seeds():
    """The study's own test: paired t statistics of 8, 16, 24, 32 seeds, rejected where the t p-value (df = n - 1)
    is below the boundary's nominal level. The marginal level of each look is exact; the looks' correlation is
    not the normal one's, which the simulation measures (0.0491 here; tools/sequential_alpha.py simulates more)."""
    looks = np.array([8, 16, 24, 32])
    nominal = sb.nominal_levels(sb.boundaries(looks / 32, 0.05, "obf"))
    n = 60_000
    d = np.random.default_rng(1).normal(size=(n, 32))
    rejected = np.zeros(n, bool)
    for n_j, p_j in zip(looks, nominal):
        x = d[:, :n_j]
        t_stat = x.mean(1) / (x.std(1, ddof=1) / np.sqrt(n_j))
        rejected |= 2 * stats.t.sf(np.abs(t_stat), n_j - 1) < p_j
    assert abs(rejected.mean() - 0.05) < 3 * np.sqrt(0.05 * 0.95 / n)  # 0.0027


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="function must be one of"):
        sb.boundaries(FOUR, 0.05, "haybittle")
    with pytest.raises(ValueError, match=r"alpha must be in \(0, 1\)"):
        sb.spent(FOUR, 1.5)
    with pytest.raises(ValueError, match="fractions must increase strictly"):
        sb.boundaries([0.5, 0.5, 1.0])
    with pytest.raises(ValueError, match="fractions must increase strictly"):
        sb.boundaries([0.0, 1.0])
    with pytest.raises(ValueError, match="bounds must be one positive number per look"):
        sb.crossing_probabilities(FOUR, [2.0, 2.0])
    with pytest.raises(ValueError, match="cumulative must be one non-decreasing value"):
        sb.solve_boundaries([0.5, 1.0], [0.03, 0.02])
