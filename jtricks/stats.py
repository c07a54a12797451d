"""Statistics over seeds: t confidence intervals, paired and Welch differences, seeds needed.

An ablation arm is trained with several seeds; the seed fixes the initial weights and the data order,
and every arm of an ablation shares them (see ``docs/results-format.md``). This module turns the
per-seed final values into

* :func:`mean_ci` -- the mean over seeds with a Student-t confidence interval,
* :func:`paired_diff_ci` -- the difference arm - baseline *paired by seed* (paired t-test),
* :func:`welch_diff_ci` -- the unpaired difference (Welch's t-test) when seeds are not shared,
* :func:`seeds_needed` -- how many seeds would resolve a difference of a given size.

Pure NumPy. Student-t quantiles and tail probabilities come from ``scipy.stats.t`` when SciPy is
installed (it is in the ``experiments`` and ``dev`` extras) and otherwise from a built-in
implementation (regularized incomplete beta function by continued fraction, Newton inversion) that
agrees with SciPy to about 1e-12. Normal quantiles come from :class:`statistics.NormalDist`.
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Any, NamedTuple

import numpy as np

__all__ = [
    "CI",
    "DiffCI",
    "mean_ci",
    "paired_diff_ci",
    "welch_diff_ci",
    "seeds_needed",
    "t_ppf",
    "t_sf",
]


class CI(NamedTuple):
    """Mean over seeds with a two-sided confidence interval.

    Attributes:
      mean: sample mean of the finite values.
      std: sample standard deviation (``ddof=1``); ``nan`` when ``n < 2``.
      lo: lower end of the interval; ``nan`` when ``n < 2``.
      hi: upper end of the interval; ``nan`` when ``n < 2``.
      n: number of finite values used.
    """

    mean: float
    std: float
    lo: float
    hi: float
    n: int


class DiffCI(NamedTuple):
    """A difference of means ``a - b`` with a two-sided confidence interval and t-test p-value.

    Attributes:
      diff: the estimated difference ``mean(a) - mean(b)`` (paired: the mean of ``a_i - b_i``).
      std: the standard deviation of one difference -- paired: ``std(a_i - b_i, ddof=1)``; Welch:
        ``sqrt(var_a + var_b)`` (the std of ``a_i - b_j`` for independent draws). Either way
        ``seeds_needed(diff, std)`` is the number of seeds per arm that would resolve ``diff``.
      se: standard error of ``diff``.
      lo: lower end of the interval.
      hi: upper end of the interval.
      n: number of pairs used (paired) or ``n_a + n_b`` (Welch).
      n_a: number of finite values of ``a`` used.
      n_b: number of finite values of ``b`` used.
      df: degrees of freedom of the t distribution (paired ``n - 1``; Welch-Satterthwaite).
      p: two-sided p-value of the t-test of ``diff == 0``.
    """

    diff: float
    std: float
    se: float
    lo: float
    hi: float
    n: int
    n_a: int
    n_b: int
    df: float
    p: float


_NAN = float("nan")


# ----------------------------------------------------------------------------------------------
# validation helpers
# ----------------------------------------------------------------------------------------------


def _check_prob(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a float in (0, 1), got {type(value).__name__} {value!r}")
    value = float(value)
    if not 0.0 < value < 1.0:
        raise ValueError(f"{name} must be in the open interval (0, 1), got {value!r}")
    return value


def _as_1d(name: str, values: Any) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{name} must be a sequence of numbers, got {type(values).__name__}") from e
    return arr.reshape(-1)


# ----------------------------------------------------------------------------------------------
# Student-t distribution (SciPy when available, built-in fallback otherwise)
# ----------------------------------------------------------------------------------------------


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz; Numerical Recipes 6.4)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c = 1.0
    d = 1.0 - qab * x / qap
    d = tiny if abs(d) < tiny else d
    d = 1.0 / d
    h = d
    for m in range(1, 1000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = tiny if abs(d) < tiny else d
        c = 1.0 + aa / c
        c = tiny if abs(c) < tiny else c
        d = 1.0 / d
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = tiny if abs(d) < tiny else d
        c = 1.0 + aa / c
        c = tiny if abs(c) < tiny else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta function ``I_x(a, b)``."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    front = math.exp(log_front)
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def _t_sf_builtin(t: float, df: float) -> float:
    """Survival function ``P(T > t)`` of Student's t with ``df`` degrees of freedom (built-in)."""
    if math.isnan(t) or math.isnan(df):
        return _NAN
    if math.isinf(t):
        return 0.0 if t > 0 else 1.0
    tail = 0.5 * _betainc(0.5 * df, 0.5, df / (df + t * t))  # P(|T| > |t|) / 2
    return tail if t >= 0 else 1.0 - tail


def _t_ppf_builtin(q: float, df: float) -> float:
    """Quantile function of Student's t (built-in): the ``t`` with ``P(T <= t) = q``."""
    if math.isnan(q) or math.isnan(df):
        return _NAN
    if q == 0.5:
        return 0.0
    if q < 0.5:
        return -_t_ppf_builtin(1.0 - q, df)
    target = 1.0 - q  # find t > 0 with sf(t) = target
    # Bracket [0, hi] with sf(hi) < target, then safeguarded Newton steps.
    lo, hi = 0.0, max(1.0, NormalDist().inv_cdf(q))
    while _t_sf_builtin(hi, df) > target:
        lo, hi = hi, 2.0 * hi
    log_norm = math.lgamma(0.5 * (df + 1.0)) - math.lgamma(0.5 * df) - 0.5 * math.log(df * math.pi)
    t = 0.5 * (lo + hi)
    for _ in range(200):
        f = _t_sf_builtin(t, df) - target  # decreasing in t
        if f > 0:
            lo = t
        else:
            hi = t
        pdf = math.exp(log_norm - 0.5 * (df + 1.0) * math.log1p(t * t / df))
        step = t + f / pdf if pdf > 0 else _NAN
        t_new = step if lo < step < hi else 0.5 * (lo + hi)
        if abs(t_new - t) <= 1e-14 * max(1.0, abs(t)):
            return t_new
        t = t_new
    return t


def _scipy_t() -> Any:
    try:
        from scipy import stats as _sps  # noqa: PLC0415 - optional dependency, imported lazily
    except ImportError:
        return None
    return _sps.t


def t_ppf(q: float, df: float) -> float:
    """Quantile of Student's t distribution: the ``t`` with ``P(T <= t) = q`` for ``df`` d.o.f.

    Uses ``scipy.stats.t.ppf`` when SciPy is installed, else a built-in inversion of
    ``P(T > t) = I_{df/(df+t^2)}(df/2, 1/2) / 2`` (regularized incomplete beta function). ``df`` may
    be fractional (Welch-Satterthwaite).
    """
    q = float(q)
    df = float(df)
    if not (df > 0):
        return _NAN
    dist = _scipy_t()
    if dist is not None:
        return float(dist.ppf(q, df))
    return _t_ppf_builtin(q, df)


def t_sf(t: float, df: float) -> float:
    """Survival function of Student's t distribution, ``P(T > t)`` for ``df`` d.o.f.

    Uses ``scipy.stats.t.sf`` when SciPy is installed, else the built-in
    ``P(|T| > |t|) = I_{df/(df+t^2)}(df/2, 1/2)``.
    """
    t = float(t)
    df = float(df)
    if not (df > 0):
        return _NAN
    dist = _scipy_t()
    if dist is not None:
        return float(dist.sf(t, df))
    return _t_sf_builtin(t, df)


def _two_sided_p(t: float, df: float) -> float:
    if math.isnan(t):
        return _NAN
    return min(1.0, 2.0 * t_sf(abs(t), df))


# ----------------------------------------------------------------------------------------------
# public statistics
# ----------------------------------------------------------------------------------------------


def mean_ci(values: Any, confidence: float = 0.95) -> CI:
    """Mean over seeds with a two-sided Student-t confidence interval.

    With the ``n`` finite values ``x_i`` (non-finite values -- diverged members -- are ignored),

    ``mean = sum(x_i) / n``, ``std = sqrt(sum((x_i - mean)^2) / (n - 1))`` and
    ``[lo, hi] = mean -/+ t_{(1+confidence)/2, n-1} * std / sqrt(n)``,

    the classic small-sample interval (equal to ``scipy.stats.t.interval(confidence, n - 1,
    loc=mean, scale=std/sqrt(n))``). With ``n == 1`` the std and interval are ``nan``; with
    ``n == 0`` everything but ``n`` is ``nan``.

    Args:
      values: the per-seed values (any array-like; flattened).
      confidence: coverage of the interval, in (0, 1).

    Returns:
      A :class:`CI` ``(mean, std, lo, hi, n)``.
    """
    confidence = _check_prob("confidence", confidence)
    x = _as_1d("values", values)
    x = x[np.isfinite(x)]
    n = int(x.size)
    if n == 0:
        return CI(_NAN, _NAN, _NAN, _NAN, 0)
    mean = float(np.mean(x))
    if n == 1:
        return CI(mean, _NAN, _NAN, _NAN, 1)
    std = float(np.std(x, ddof=1))
    half = t_ppf(0.5 * (1.0 + confidence), n - 1) * std / math.sqrt(n)
    return CI(mean, std, mean - half, mean + half, n)


def paired_diff_ci(a: Any, b: Any, confidence: float = 0.95) -> DiffCI:
    """Paired difference ``a - b`` by seed, with a t confidence interval and paired t-test.

    Seed ``i`` of every arm shares the initial weights and the data order, so ``a_i`` and ``b_i``
    are correlated and the comparison is paired (Student 1908; ``scipy.stats.ttest_rel``): with the
    ``n`` pairs where both values are finite and ``d_i = a_i - b_i``,

    ``diff = mean(d)``, ``std = std(d, ddof=1)``, ``se = std / sqrt(n)``,
    ``[lo, hi] = diff -/+ t_{(1+confidence)/2, n-1} * se``, ``t = diff / se`` and
    ``p = 2 * P(T_{n-1} > |t|)``.

    Pairing removes the seed-to-seed variance the arms share, so it resolves smaller differences
    than comparing two independent means. When all differences are equal (``std == 0``) the
    interval is ``[diff, diff]`` and ``p`` is ``0`` (``nan`` if ``diff == 0``), as in SciPy. Fewer
    than two pairs give ``nan`` interval and p-value.

    Args:
      a: per-seed values of the arm, indexed by seed.
      b: per-seed values of the baseline, same length and seed order as ``a``.
      confidence: coverage of the interval, in (0, 1).

    Returns:
      A :class:`DiffCI` with ``n == n_a == n_b`` the number of pairs used and ``df = n - 1``.
    """
    confidence = _check_prob("confidence", confidence)
    xa = _as_1d("a", a)
    xb = _as_1d("b", b)
    if xa.shape != xb.shape:
        raise ValueError(
            f"a and b must have the same length (one value per seed), got {xa.size} and {xb.size}"
        )
    keep = np.isfinite(xa) & np.isfinite(xb)
    d = xa[keep] - xb[keep]
    n = int(d.size)
    if n == 0:
        return DiffCI(_NAN, _NAN, _NAN, _NAN, _NAN, 0, 0, 0, _NAN, _NAN)
    diff = float(np.mean(d))
    if n == 1:
        return DiffCI(diff, _NAN, _NAN, _NAN, _NAN, 1, 1, 1, _NAN, _NAN)
    std = float(np.std(d, ddof=1))
    se = std / math.sqrt(n)
    df = float(n - 1)
    half = t_ppf(0.5 * (1.0 + confidence), df) * se
    if se > 0:
        p = _two_sided_p(diff / se, df)
    else:
        p = _NAN if diff == 0 else 0.0
    return DiffCI(diff, std, se, diff - half, diff + half, n, n, n, df, p)


def welch_diff_ci(a: Any, b: Any, confidence: float = 0.95) -> DiffCI:
    """Unpaired difference ``mean(a) - mean(b)`` with Welch's t interval and t-test.

    For independent samples (no shared seeds) with finite values only, ``v_a = var(a, ddof=1)``,
    ``v_b = var(b, ddof=1)``:

    ``se = sqrt(v_a/n_a + v_b/n_b)``,
    ``df = se^4 / ((v_a/n_a)^2/(n_a-1) + (v_b/n_b)^2/(n_b-1))`` (Welch-Satterthwaite),
    ``[lo, hi] = diff -/+ t_{(1+confidence)/2, df} * se``, ``p = 2 * P(T_df > |diff|/se)``
    (``scipy.stats.ttest_ind(a, b, equal_var=False)``).

    ``std`` is ``sqrt(v_a + v_b)``, the std of one difference ``a_i - b_j``. Either sample with
    fewer than two finite values gives ``nan`` interval and p-value. If both variances are zero
    the interval is ``[diff, diff]`` and ``p`` is ``0`` (``nan`` if ``diff == 0``).

    Args:
      a: values of the first group.
      b: values of the second group (any length).
      confidence: coverage of the interval, in (0, 1).

    Returns:
      A :class:`DiffCI` with ``n = n_a + n_b``.
    """
    confidence = _check_prob("confidence", confidence)
    xa = _as_1d("a", a)
    xb = _as_1d("b", b)
    xa = xa[np.isfinite(xa)]
    xb = xb[np.isfinite(xb)]
    na, nb = int(xa.size), int(xb.size)
    if na == 0 or nb == 0:
        return DiffCI(_NAN, _NAN, _NAN, _NAN, _NAN, na + nb, na, nb, _NAN, _NAN)
    diff = float(np.mean(xa) - np.mean(xb))
    if na < 2 or nb < 2:
        return DiffCI(diff, _NAN, _NAN, _NAN, _NAN, na + nb, na, nb, _NAN, _NAN)
    va = float(np.var(xa, ddof=1))
    vb = float(np.var(xb, ddof=1))
    ua, ub = va / na, vb / nb
    se = math.sqrt(ua + ub)
    std = math.sqrt(va + vb)
    if se == 0:
        p = _NAN if diff == 0 else 0.0
        return DiffCI(diff, std, 0.0, diff, diff, na + nb, na, nb, _NAN, p)
    df = (ua + ub) ** 2 / (ua * ua / (na - 1) + ub * ub / (nb - 1))
    half = t_ppf(0.5 * (1.0 + confidence), df) * se
    p = _two_sided_p(diff / se, df)
    return DiffCI(diff, std, se, diff - half, diff + half, na + nb, na, nb, df, p)


def seeds_needed(
    diff_mean: float, diff_std: float, confidence: float = 0.95, power: float = 0.8
) -> int | float:
    """Approximate number of seeds needed to resolve a difference of means.

    The normal-approximation sample size of a two-sided test at level ``alpha = 1 - confidence``
    with the given ``power`` (e.g. Cohen 1988; Chow, Shao & Wang 2008):

    ``n = ceil(((z_{1-alpha/2} + z_{power}) * diff_std / diff_mean)^2)``,

    where ``z_q`` is the standard normal quantile. For a paired comparison pass the std of the
    per-seed differences (``paired_diff_ci(...).std``); for independent arms pass
    ``sqrt(var_a + var_b)`` (``welch_diff_ci(...).std``) and read ``n`` as seeds per arm. The
    normal approximation underestimates slightly for very small ``n`` (the t quantile is larger),
    and a t interval needs at least two seeds, so the result is at least ``2``.

    Args:
      diff_mean: the difference to resolve (sign ignored).
      diff_std: the standard deviation of one difference (``>= 0``).
      confidence: ``1 - alpha`` of the two-sided test, in (0, 1).
      power: probability of detecting a true difference of ``diff_mean``, in (0, 1).

    Returns:
      The number of seeds (an ``int`` >= 2), or ``math.inf`` when ``diff_mean`` is zero;
      ``nan`` when either input is not finite (e.g. fewer than two seeds to estimate ``diff_std``).
    """
    confidence = _check_prob("confidence", confidence)
    power = _check_prob("power", power)
    for name, v in (("diff_mean", diff_mean), ("diff_std", diff_std)):
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
            raise TypeError(f"{name} must be a real number, got {type(v).__name__} {v!r}")
    diff_mean, diff_std = float(diff_mean), float(diff_std)
    if not (math.isfinite(diff_mean) and math.isfinite(diff_std)):
        return _NAN
    if diff_std < 0:
        raise ValueError(f"diff_std must be >= 0, got {diff_std!r}")
    if diff_mean == 0:
        return math.inf
    z = NormalDist()
    k = z.inv_cdf(0.5 * (1.0 + confidence)) + z.inv_cdf(power)
    n = (k * diff_std / abs(diff_mean)) ** 2
    # Guard ceil against 4.000000000001-style rounding noise.
    return max(2, int(math.ceil(n - 1e-9)))
