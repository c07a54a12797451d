"""Expected validation performance as a function of the tuning budget (Dodge et al. 2019, "Show your work").

A tuning run tries ``N`` hyperparameter configurations and keeps the best by validation score. How good is the
best of ``n <= N`` configurations drawn at random? With the ``N`` observed scores sorted, ``v_(1) <= ... <=
v_(N)``, as the empirical distribution of a configuration's score, the maximum of ``n`` draws (with
replacement) is ``v_(i)`` with probability ``(i/N)^n - ((i-1)/N)^n``, so

    E[max_n] = sum_i v_(i) ((i/N)^n - ((i-1)/N)^n),
    Var[max_n] = sum_i v_(i)^2 ((i/N)^n - ((i-1)/N)^n) - E[max_n]^2,

exactly (no simulation). ``E[max_1]`` is the mean score, ``E[max_n]`` rises towards ``v_(N)``; the band
``E +/- sd`` is the spread of the best of ``n`` configurations. For a score where lower is better the same is
the expected minimum (the formula on ``-v``). Scores must be finite: a diverged configuration has none, so drop
it (and say so) or give it the worst value first.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["max_probabilities", "expected_max", "expected_max_curve"]


def _scores(scores: Sequence[float], higher: bool) -> np.ndarray:
    v = np.asarray(scores, dtype=np.float64)
    if v.ndim != 1 or v.size == 0:
        raise ValueError(f"scores must be a non-empty 1-d sequence, got shape {v.shape}")
    if not np.all(np.isfinite(v)):
        raise ValueError(f"scores must be finite (a diverged configuration has no score), got {list(v)}")
    return np.sort(v if higher else -v)


def _check_n(n: int | Sequence[int]) -> np.ndarray:
    ns = np.atleast_1d(np.asarray(n))
    if ns.size == 0 or not np.issubdtype(ns.dtype, np.integer) or np.any(ns < 1):
        raise ValueError(f"n must be positive ints (configurations drawn), got {n!r}")
    return ns


def max_probabilities(size: int, n: int | Sequence[int]) -> np.ndarray:
    """``P(max of n draws = v_(i)) = (i/N)^n - ((i-1)/N)^n`` for ``i = 1..N`` (``N = size``), one row per ``n``."""
    ns = _check_n(n)
    cdf = (np.arange(size + 1) / size)[None, :] ** ns[:, None]
    return np.diff(cdf, axis=1)


def expected_max(scores: Sequence[float], n: int | Sequence[int], higher: bool = True) -> np.ndarray:
    """``E[max_n]``, the expected best score of ``n`` configurations drawn from ``scores`` (module docstring);
    the expected minimum when ``higher`` is False. One value per ``n``."""
    v = _scores(scores, higher)
    e = max_probabilities(v.size, n) @ v
    return e if higher else -e


def expected_max_curve(scores: Sequence[float], higher: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(n, E[max_n], sd[max_n])`` for ``n = 1..N``: the expected validation performance curve and its band."""
    v = _scores(scores, higher)
    ns = np.arange(1, v.size + 1)
    p = max_probabilities(v.size, ns)
    mean = p @ v
    sd = np.sqrt(np.maximum(p @ (v - v[-1]) ** 2 - (mean - v[-1]) ** 2, 0.0))  # shifted: no cancellation at n = N
    return ns, (mean if higher else -mean), sd
