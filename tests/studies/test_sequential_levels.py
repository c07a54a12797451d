"""The looks and levels of adaptive seeds (jtricks.sequential): planned looks, the rules' levels, sequential.md."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest

from jtricks import cli, sequential
from jtricks.results import sequential_bounds as sb


def test_planned_looks():
    assert sequential.planned_looks(8, 8, 32) == [8, 16, 24, 32]
    assert sequential.planned_looks(8, 8, 20) == [8, 16, 20]
    assert sequential.planned_looks(8, 8, 8) == [8]
    with pytest.raises(ValueError, match="MAX must be >="):
        sequential.planned_looks(8, 8, 4)


def test_conservative_rules_are_the_spending_increments():
    obf = sequential.spending([8, 16, 24, 32], 0.05, "obf")
    z = NormalDist().inv_cdf(0.975)
    spent = [2 - 2 * NormalDist().cdf(z / math.sqrt(t)) for t in (0.25, 0.5, 0.75, 1.0)]
    np.testing.assert_allclose(np.cumsum(obf), spent, rtol=1e-10)  # scipy vs the statistics module
    assert sum(obf) == pytest.approx(0.05, abs=1e-15) and obf[0] < 1e-4 < obf[-1]
    assert sequential.spending([8, 16], 0.05, "bonferroni") == [0.025, 0.025]
    assert sequential.spending([8, 16], 0.05, "obf", family=3) == sequential.spending([8, 16], 0.05, "obf")


def test_exact_rules_are_the_boundaries_of_alpha_over_the_family():
    looks = [8, 16, 24, 32]
    assert sequential.DEFAULT_RULE == "obf-exact"
    exact = sequential.spending(looks, 0.05, "obf-exact")
    np.testing.assert_allclose(exact, [8.86e-5, 0.00554, 0.02155, 0.04109], rtol=2e-3)
    assert all(e >= o for e, o in zip(exact, sequential.spending(looks, 0.05, "obf")))  # less strict at every look
    for rule, function in (("obf-exact", "obf"), ("pocock-exact", "pocock")):
        # a family of 3: each comparison's boundaries at alpha / 3, the family level 3 times their nominal level
        c = sb.boundaries(np.array(looks) / 32, 0.05 / 3, function)
        np.testing.assert_allclose(sequential.spending(looks, 0.05, rule, 3), 3 * sb.nominal_levels(c), rtol=1e-12)
    # Pocock-type: nearly constant nominal levels
    pocock = sequential.spending(looks, 0.05, "pocock-exact")
    assert max(pocock) / min(pocock) < 1.06 and 0.017 < min(pocock)


def test_bad_designs_are_refused_before_anything_runs():
    with pytest.raises(ValueError, match="rule must be one of"):
        sequential.spending([8], 0.05, "pocock")
    with pytest.raises(ValueError, match=r"alpha must be in \(0, 1\)"):
        sequential.spending([8], 0.0, "obf-exact")
    with pytest.raises(ValueError, match="family must be a positive int"):
        sequential.spending([8], 0.05, "obf-exact", family=0)
    with pytest.raises(ValueError, match="the look at 2 of 1000 seeds spends no alpha"):
        sequential.spending([2, 1000], 0.05, "obf-exact")
    run = next(a for a in cli._parser()._actions if isinstance(a.choices, dict))  # the subcommands
    spending = next(a for a in run.choices["run"]._actions if a.dest == "spending")
    assert tuple(spending.choices) == sequential.RULES and spending.default == sequential.DEFAULT_RULE


def test_sequential_markdown():
    comp = {"diff": 0.0534, "lo": 0.04, "hi": 0.066, "p_adjusted": 4.1e-6, "test": "t", "verdict": "better"}
    open_ = {"diff": 0.01, "lo": None, "hi": None, "p_adjusted": 0.2, "test": "itt", "verdict": "n.s."}
    record = {
        "rule": "obf-exact",
        "alpha": 0.05,
        "adjust": "holm",
        "family": 2,
        "metric": "test_acc",
        "planned_looks": [{"seeds": 8, "alpha": 1e-5}, {"seeds": 16, "alpha": 0.05}],
        "looks": [{"seeds": 8, "alpha": 1e-5, "comparisons": {"a": comp, "b": open_}, "resolved": False}],
        "stopped_at": 8,
        "resolved": False,
        "first_resolved_at": {"a": 8, "b": None},
    }
    md = sequential.markdown(record)
    assert "| 8 | 1e-05 | a | +0.0534 [+0.04, +0.066] | 4.1e-06 | better |" in md
    assert "| 8 | 1e-05 | b | +0.01 | 0.2 | n.s. |" in md
    assert "exact O'Brien-Fleming-type" in md and "a family of 2" in md and "b: not resolved" in md
