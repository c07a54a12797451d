"""Expected validation performance (jtricks.results.budget) against exhaustive enumeration of the draws."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from jtricks.results import budget


def _enumerated(scores, n, best=max):
    """Mean and sd of the best of n draws with replacement, over all N^n equally likely draws."""
    bests = np.array([best(draw) for draw in itertools.product(scores, repeat=n)])
    return bests.mean(), bests.std()


SCORES = [0.61, 0.58, 0.64, 0.58, 0.40]  # a tie and an outlier


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_expected_max_is_the_exhaustive_enumeration(n):
    mean, sd = _enumerated(SCORES, n)
    assert budget.expected_max(SCORES, n)[0] == pytest.approx(mean, rel=1e-12)
    ns, curve, band = budget.expected_max_curve(SCORES)
    assert ns[n - 1] == n and curve[n - 1] == pytest.approx(mean, rel=1e-12)
    assert band[n - 1] == pytest.approx(sd, rel=1e-9, abs=1e-12)


def test_lower_is_better_is_the_expected_minimum():
    losses = [1.2, 0.9, 1.5, 0.7]
    for n in (1, 2, 3):
        mean, sd = _enumerated(losses, n, best=min)
        assert budget.expected_max(losses, n, higher=False)[0] == pytest.approx(mean, rel=1e-12)
        assert budget.expected_max_curve(losses, higher=False)[2][n - 1] == pytest.approx(sd, rel=1e-9)


def test_curve_limits():
    rng = np.random.default_rng(0)
    scores = rng.uniform(0.5, 0.7, size=40)
    ns, curve, band = budget.expected_max_curve(scores)
    assert curve[0] == pytest.approx(scores.mean(), rel=1e-12)  # one configuration: the mean score
    assert np.all(np.diff(curve) > 0) and curve[-1] < scores.max()  # rises towards the best, never reaches it
    assert budget.expected_max(scores, 10_000)[0] == pytest.approx(scores.max(), rel=1e-12)
    np.testing.assert_allclose(budget.max_probabilities(40, ns).sum(axis=1), 1.0, rtol=1e-12)
    assert band[0] == pytest.approx(scores.std(), rel=1e-9)


def test_bad_input():
    with pytest.raises(ValueError, match="scores must be finite"):
        budget.expected_max([0.5, float("nan")], 1)
    with pytest.raises(ValueError, match="scores must be a non-empty"):
        budget.expected_max([], 1)
    with pytest.raises(ValueError, match="n must be positive ints"):
        budget.expected_max([0.5], 0)
    with pytest.raises(ValueError, match="n must be positive ints"):
        budget.expected_max([0.5], 1.5)


def test_evp_plot(tmp_path):
    from jtricks.results import plots

    rows = []
    for arm, scores in (("sgd", [0.55, 0.60, 0.58, 0.31]), ("adam", [0.62, 0.59, 0.10, 0.61])):
        n, mean, sd = budget.expected_max_curve(scores)
        rows.append({"arm": arm, "metric": "val_acc", "n": n.tolist(), "mean": mean.tolist(), "sd": sd.tolist()})
    rows.append({"arm": "diverged", "metric": "val_acc", "n": [], "mean": [], "sd": []})
    a = plots.plot_expected_performance(tmp_path / "a" / "evp.png", rows, title="t")
    b = plots.plot_expected_performance(tmp_path / "b.png", rows, title="t")
    assert a.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and a.read_bytes() == b.read_bytes()  # deterministic
    with pytest.raises(ValueError, match="at least one arm"):
        plots.plot_expected_performance(tmp_path / "c.png", [])
