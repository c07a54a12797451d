"""Robust aggregates over seeds, with bootstrap intervals: the interquartile mean and the probability of improvement.

After Agarwal et al. (2021), "Deep reinforcement learning at the edge of the statistical precipice":

* :func:`iqm_ci` -- the interquartile mean (IQM) of an arm's members, the mean of their middle 50 %
  (``scipy.stats.trim_mean(x, 0.25)``), which one outlying seed cannot move far, with a bootstrap interval;
* :func:`poi` / :func:`poi_ci` -- the probability of improvement ``P(X_arm > X_base)`` (ties count 1/2), paired by
  seed or over all pairs of members (the Mann-Whitney ``U / (n m)``), with a bootstrap interval.

The intervals are percentile intervals of ``scipy.stats.bootstrap`` with :data:`N_BOOT` resamples drawn from
``numpy.random.default_rng(BOOT_SEED)``: the same values give the same interval, bit for bit, on every call (a
summary is deterministic). The bootstrap is stratified by arm: each arm's members are resampled on their own, and a
paired comparison resamples the seeds (the pairs) together.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from jtricks.results.stats import check_probability

__all__ = ["N_BOOT", "BOOT_SEED", "Boot", "iqm", "iqm_ci", "poi", "poi_ci"]

#: Bootstrap resamples of every interval of this module.
N_BOOT = 2000

#: The seed of the bootstrap's random numbers (``numpy.random.default_rng``), the same on every call.
BOOT_SEED = 0

_NAN = float("nan")


class Boot(NamedTuple):
    """A statistic with its percentile bootstrap interval.

    Attributes:
      value: the statistic of the sample itself.
      lo: lower end of the interval (``nan`` with fewer than 2 values).
      hi: upper end of the interval (``nan`` with fewer than 2 values).
      n: values used (pairs, for a paired statistic).
    """

    value: float
    lo: float
    hi: float
    n: int


def _bootstrap(samples: tuple[np.ndarray, ...], statistic: Any, confidence: float, paired: bool) -> tuple[float, float]:
    """The percentile interval of ``statistic`` over :data:`N_BOOT` resamples (``scipy.stats.bootstrap``)."""
    from scipy import stats

    res = stats.bootstrap(
        samples,
        statistic,
        n_resamples=N_BOOT,
        paired=paired,
        vectorized=True,
        confidence_level=confidence,
        method="percentile",
        rng=np.random.default_rng(BOOT_SEED),
    )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def _trimmed(x: np.ndarray, axis: int = -1) -> np.ndarray:
    from scipy import stats

    return stats.trim_mean(x, 0.25, axis=axis)


def iqm(values: Any) -> float:
    """Interquartile mean of the finite values: ``scipy.stats.trim_mean(x, 0.25)``, the mean after cutting
    ``floor(n / 4)`` values from each end of the sorted sample (8 values: the mean of the middle 4); ``nan`` without
    finite values."""
    x = np.asarray(values, dtype=np.float64).reshape(-1)
    x = x[np.isfinite(x)]
    return float(_trimmed(x)) if x.size else _NAN


def iqm_ci(values: Any, confidence: float = 0.95) -> Boot:
    """:func:`iqm` of the finite values with a percentile bootstrap interval at ``confidence`` (the members resampled
    with replacement, :data:`N_BOOT` times)."""
    confidence = check_probability("confidence", confidence)
    x = np.asarray(values, dtype=np.float64).reshape(-1)
    x = x[np.isfinite(x)]
    if x.size < 2:
        return Boot(iqm(x), _NAN, _NAN, int(x.size))
    lo, hi = _bootstrap((x,), _trimmed, confidence, paired=False)
    return Boot(iqm(x), lo, hi, int(x.size))


def _wins(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """1 where ``a > b``, 1/2 where equal (``-inf == -inf`` included), 0 otherwise."""
    return (a > b) + 0.5 * (a == b)


def _paired_poi(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(_wins(a, b), axis=axis)


def _unpaired_poi(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    a = np.moveaxis(a, axis, -1)[..., :, None]
    b = np.moveaxis(b, axis, -1)[..., None, :]
    return np.mean(_wins(a, b), axis=(-2, -1))


def _poi_inputs(a: Any, b: Any, paired: bool) -> tuple[np.ndarray, np.ndarray]:
    xa = np.asarray(a, dtype=np.float64).reshape(-1)
    xb = np.asarray(b, dtype=np.float64).reshape(-1)
    if paired:
        if xa.shape != xb.shape:
            raise ValueError(f"a and b must have the same length (one value per seed), got {xa.size} and {xb.size}")
        keep = ~(np.isnan(xa) | np.isnan(xb))
        return xa[keep], xb[keep]
    return xa[~np.isnan(xa)], xb[~np.isnan(xb)]


def poi(a: Any, b: Any, paired: bool = True) -> float:
    """Probability of improvement ``P(X_a > X_b)``, ties counting 1/2.

    Paired (``a`` and ``b`` indexed by the same seeds): ``(1/n) sum_i [a_i > b_i] + [a_i == b_i] / 2``, the
    probability that the arm's member beats the baseline's member of the same seed. Unpaired: over all ``n m`` pairs
    of members, ``U / (n m)`` with ``U`` the Mann-Whitney statistic of ``a`` (``scipy.stats.mannwhitneyu(a, b).
    statistic``). ``+-inf`` compare as usual (a diverged member set to the worst value loses to every finite one,
    two of them tie); ``nan`` values (and, paired, their pairs) are left out. ``nan`` when nothing is left.
    """
    xa, xb = _poi_inputs(a, b, paired)
    if xa.size == 0 or xb.size == 0:
        return _NAN
    return float((_paired_poi if paired else _unpaired_poi)(xa, xb))


def poi_ci(a: Any, b: Any, confidence: float = 0.95, paired: bool = True) -> Boot:
    """:func:`poi` with a percentile bootstrap interval at ``confidence``: paired, the seeds are resampled (each
    resample keeps the pairs); unpaired, each arm's members are resampled on their own (stratified by arm).
    Fewer than 2 values (pairs) in either sample give a ``nan`` interval."""
    confidence = check_probability("confidence", confidence)
    xa, xb = _poi_inputs(a, b, paired)
    value = poi(xa, xb, paired)
    n = int(xa.size) if paired else int(xa.size + xb.size)
    if min(xa.size, xb.size) < 2:
        return Boot(value, _NAN, _NAN, n)
    lo, hi = _bootstrap((xa, xb), _paired_poi if paired else _unpaired_poi, confidence, paired)
    return Boot(value, lo, hi, n)
