"""Statistics over seeds: t confidence intervals, paired and Welch differences, seeds needed.

An ablation arm is trained with several seeds; the seed fixes the initial weights and the data order,
and every arm of an ablation shares them (see ``docs/results-format.md``). This module turns the
per-seed final values into

* :func:`mean_ci` -- the mean over seeds with a Student-t confidence interval,
* :func:`paired_diff_ci` -- the difference arm - baseline *paired by seed* (paired t-test),
* :func:`welch_diff_ci` -- the unpaired difference (Welch's t-test) when seeds are not shared,
* :func:`adjust_pvalues` -- Holm or Benjamini-Hochberg adjustment of a family of p-values,
* :func:`binomial_ci` -- Clopper-Pearson interval of a rate (the divergence rate of an arm),
* :func:`wilcoxon_signed_rank` / :func:`itt_paired` -- the exact paired rank test, and the
  intention-to-treat comparison in which a diverged member counts as the worst outcome,
* :func:`divergence_test` -- the exact McNemar (sign) test of "the arm diverges more (or less) often than the
  baseline", on the seeds where exactly one of the two diverged,
* :func:`tost_paired` -- equivalence within a margin: two one-sided paired t-tests (TOST),
* :func:`t_test_power` / :func:`seeds_needed` -- the exact (noncentral t) power of the paired t-test
  and the number of seeds that would resolve a difference of a given size (a planning estimate).

NumPy for the sums, ``scipy.stats`` for every distribution: the Student-t quantiles and tail probabilities
(``scipy.stats.t``), the beta quantiles of :func:`binomial_ci` (``scipy.stats.beta``), the noncentral t of
:func:`t_test_power` (``scipy.stats.nct``), the ranks of :func:`wilcoxon_signed_rank`
(``scipy.stats.rankdata``) and the binomial test of :func:`divergence_test` (``scipy.stats.binomtest``). SciPy is
imported on first use, so importing this module stays cheap. Normal quantiles (the start of the seeds-needed
search) come from :class:`statistics.NormalDist`.
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Any, NamedTuple

import numpy as np

__all__ = [
    "check_probability",
    "CI",
    "DiffCI",
    "mean_ci",
    "paired_diff_ci",
    "welch_diff_ci",
    "seeds_needed",
    "t_test_power",
    "MAX_NONCENTRALITY",
    "t_ppf",
    "t_sf",
    "ADJUST_METHODS",
    "adjust_pvalues",
    "binomial_ci",
    "RankTest",
    "wilcoxon_signed_rank",
    "itt_paired",
    "DivergenceTest",
    "divergence_test",
    "Equivalence",
    "tost_paired",
]

#: The multiple-comparison adjustments of :func:`adjust_pvalues`.
ADJUST_METHODS: tuple[str, ...] = ("holm", "bh", "none")


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


def check_probability(name: str, value: Any) -> float:
    """``float(value)`` for a real number strictly between 0 and 1 (a confidence level, a power); ``TypeError`` /
    ``ValueError`` naming ``name`` otherwise."""
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
# distributions (scipy.stats)
# ----------------------------------------------------------------------------------------------


def _sps() -> Any:
    """``scipy.stats``, imported on first use (it takes a second; most imports of jtricks never need it)."""
    from scipy import stats

    return stats


def t_ppf(q: float, df: float) -> float:
    """Quantile of Student's t distribution: the ``t`` with ``P(T <= t) = q`` for ``df`` d.o.f.
    (``scipy.stats.t.ppf``; ``df`` may be fractional, Welch-Satterthwaite); ``nan`` unless ``df > 0``."""
    q = float(q)
    df = float(df)
    if not (df > 0):
        return _NAN
    return float(_sps().t.ppf(q, df))


def t_sf(t: float, df: float) -> float:
    """Survival function of Student's t distribution, ``P(T > t)`` for ``df`` d.o.f. (``scipy.stats.t.sf``);
    ``nan`` unless ``df > 0``."""
    t = float(t)
    df = float(df)
    if not (df > 0):
        return _NAN
    return float(_sps().t.sf(t, df))


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
    confidence = check_probability("confidence", confidence)
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
    comparison is *degenerate*: the data say nothing about the spread, so the interval and the
    p-value are ``nan`` (``std`` is ``0``; SciPy would give a zero-width interval and ``p = 0``).
    Fewer than two pairs give ``nan`` interval and p-value.

    Args:
      a: per-seed values of the arm, indexed by seed.
      b: per-seed values of the baseline, same length and seed order as ``a``.
      confidence: coverage of the interval, in (0, 1).

    Returns:
      A :class:`DiffCI` with ``n == n_a == n_b`` the number of pairs used and ``df = n - 1``.
    """
    confidence = check_probability("confidence", confidence)
    xa = _as_1d("a", a)
    xb = _as_1d("b", b)
    if xa.shape != xb.shape:
        raise ValueError(f"a and b must have the same length (one value per seed), got {xa.size} and {xb.size}")
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
    if not se > 0:  # degenerate: every difference equal
        return DiffCI(diff, std, se, _NAN, _NAN, n, n, n, df, _NAN)
    half = t_ppf(0.5 * (1.0 + confidence), df) * se
    return DiffCI(diff, std, se, diff - half, diff + half, n, n, n, df, _two_sided_p(diff / se, df))


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
    the comparison is degenerate: ``nan`` interval and p-value.

    Args:
      a: values of the first group.
      b: values of the second group (any length).
      confidence: coverage of the interval, in (0, 1).

    Returns:
      A :class:`DiffCI` with ``n = n_a + n_b``.
    """
    confidence = check_probability("confidence", confidence)
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
        return DiffCI(diff, std, 0.0, _NAN, _NAN, na + nb, na, nb, _NAN, _NAN)
    df = (ua + ub) ** 2 / (ua * ua / (na - 1) + ub * ub / (nb - 1))
    half = t_ppf(0.5 * (1.0 + confidence), df) * se
    p = _two_sided_p(diff / se, df)
    return DiffCI(diff, std, se, diff - half, diff + half, na + nb, na, nb, df, p)


# ----------------------------------------------------------------------------------------------
# exact power of the t-test and seeds needed (planning)
# ----------------------------------------------------------------------------------------------


#: The largest noncentrality :func:`t_test_power` evaluates (a difference of 1e9 standard errors).
MAX_NONCENTRALITY = 1e9


def t_test_power(n: int, effect: float, confidence: float = 0.95) -> float:
    """Exact power of the two-sided one-sample (paired) t-test with ``n`` pairs.

    With ``effect = diff / sd`` (the true mean difference over the std of one paired difference), the
    statistic ``t = mean(d) / (s_d / sqrt(n))`` follows a noncentral t with ``df = n - 1`` and
    noncentrality ``delta = sqrt(n) * effect``, so with ``c = t_{(1+confidence)/2, n-1}``

    ``power = P(T'_{n-1, delta} > c) + P(T'_{n-1, delta} < -c)``

    (``scipy.stats.nct``). The lower tail is taken as ``P(T'_{n-1, -delta} > c)``, its mirror image: scipy 1.17's
    ``nct.cdf`` returns NaN far in the lower tail (e.g. ``n = 3, effect = 5, confidence = 0.9967``), its ``sf``
    does not, and where both are finite they agree bit for bit. ``delta`` is capped at
    :data:`MAX_NONCENTRALITY` (scipy's noncentral t gives NaN above about 3e9); the power there is 1 to double
    precision unless ``c`` is above about 1e7, so the cap only matters for near-zero standard deviations.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
        raise ValueError(f"n must be an int >= 2, got {n!r}")
    confidence = check_probability("confidence", confidence)
    df = float(n - 1)
    c = t_ppf(0.5 * (1.0 + confidence), df)
    delta = min(math.sqrt(n) * abs(float(effect)), MAX_NONCENTRALITY)
    nct = _sps().nct
    return float(nct.sf(c, df, delta) + nct.sf(c, df, -delta))


def seeds_needed(diff_mean: float, diff_std: float, confidence: float = 0.95, power: float = 0.8) -> int | float:
    """Seeds needed to resolve a difference with a paired t-test: a *planning estimate*.

    The smallest ``n >= 2`` with :func:`t_test_power` ``(n, diff_mean / diff_std, confidence) >= power``
    (exact noncentral t, not the normal approximation ``((z_{1-alpha/2} + z_power) sd / diff)^2``,
    which is too small for few seeds: at 95 % / 80 % a difference of one sd needs 10 seeds, not 8, and
    of two sd 5, not 2). For a paired comparison pass the std of the per-seed differences
    (``paired_diff_ci(...).std``); for independent arms ``sqrt(var_a + var_b)`` gives a rough number per
    arm. Fed with an *observed* difference and std this is post hoc: it says how many seeds a next run
    would need if the true values were the observed ones, not whether this run's difference is real.

    Args:
      diff_mean: the difference to resolve (sign ignored).
      diff_std: the standard deviation of one difference (``>= 0``).
      confidence: ``1 - alpha`` of the two-sided test, in (0, 1) (pass a family-adjusted level to plan
        for a multiple-comparison adjustment).
      power: probability of detecting a true difference of ``diff_mean``, in (0, 1).

    Returns:
      The number of seeds (an ``int`` >= 2); ``math.inf`` when ``diff_mean`` is zero; ``nan`` when either
      input is not finite or ``diff_std == 0`` (a degenerate sample: no spread to plan with).
    """
    confidence = check_probability("confidence", confidence)
    power = check_probability("power", power)
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
    if diff_std == 0:
        return _NAN
    effect = abs(diff_mean) / diff_std
    z = NormalDist()
    k = z.inv_cdf(0.5 * (1.0 + confidence)) + z.inv_cdf(power)
    start = max(2, int(math.ceil((k / effect) ** 2)) - 1)  # the normal approximation; exact n is near it
    reached = lambda m: t_test_power(m, effect, confidence) >= power  # noqa: E731 (monotone in m)
    # bracket lo < n <= hi (lo = 1 or not reached; hi >= 2 reached) by doubling steps around the start,
    # then bisect: O(log n) power evaluations
    step, lo, hi = 1, start - 1, start
    while lo >= 2 and reached(lo):
        hi, lo, step = lo, max(1, lo - 2 * step), 2 * step
    while not reached(hi):
        lo, hi, step = hi, hi + 2 * step, 2 * step
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if reached(mid) else (mid, hi)
    return hi


# ----------------------------------------------------------------------------------------------
# multiple comparisons
# ----------------------------------------------------------------------------------------------


def adjust_pvalues(p_values: Any, method: str = "holm") -> np.ndarray:
    """Adjust a family of p-values for multiple comparisons.

    With the ``m`` finite p-values sorted ascending, ``p_(1) <= ... <= p_(m)``:

    * ``"holm"`` (Holm 1979, controls the familywise error rate):
      ``adj_(i) = max_{j <= i} min(1, (m - j + 1) p_(j))``;
    * ``"bh"`` (Benjamini & Hochberg 1995, controls the false discovery rate under independence or
      positive dependence): ``adj_(i) = min_{j >= i} min(1, m p_(j) / j)``;
    * ``"none"``: the p-values unchanged.

    Rejecting where ``adj < alpha`` is the method's test at level ``alpha``. ``nan`` entries (comparisons
    without a p-value) stay ``nan`` and are not counted in ``m``. Equal to
    ``statsmodels.stats.multitest.multipletests(p, method="holm" / "fdr_bh")``; SciPy has no Holm (its
    ``false_discovery_control`` is BH, equal to the last bit or two).

    Returns:
      The adjusted p-values, in the input order.
    """
    if method not in ADJUST_METHODS:
        raise ValueError(f"adjust must be one of {list(ADJUST_METHODS)}, got {method!r}")
    p = _as_1d("p_values", p_values)
    out = np.full(p.shape, _NAN)
    idx = np.flatnonzero(np.isfinite(p))
    if idx.size == 0:
        return out
    if np.any((p[idx] < 0) | (p[idx] > 1)):
        raise ValueError(f"p_values must lie in [0, 1], got {p[idx].tolist()}")
    if method == "none":
        out[idx] = p[idx]
        return out
    order = idx[np.argsort(p[idx], kind="stable")]
    m = order.size
    ranked = p[order]
    j = np.arange(1, m + 1)
    if method == "holm":
        adj = np.maximum.accumulate(np.minimum(1.0, (m - j + 1) * ranked))
    else:
        adj = np.minimum.accumulate(np.minimum(1.0, m * ranked / j)[::-1])[::-1]
    out[order] = adj
    return out


# ----------------------------------------------------------------------------------------------
# binomial interval (divergence rate)
# ----------------------------------------------------------------------------------------------


def binomial_ci(k: int, n: int, confidence: float = 0.95) -> tuple[float, float, float]:
    """A rate ``k / n`` with its Clopper-Pearson ("exact") two-sided interval.

    ``lo = B^{-1}(alpha/2; k, n - k + 1)`` (``0`` when ``k == 0``) and
    ``hi = B^{-1}(1 - alpha/2; k + 1, n - k)`` (``1`` when ``k == n``), ``B^{-1}`` the beta quantile and
    ``alpha = 1 - confidence`` (``scipy.stats.binomtest(k, n).proportion_ci(confidence, "exact")``). Its
    coverage is at least ``confidence`` for every true rate. ``n == 0`` gives ``(nan, 0, 1)``.

    Returns:
      ``(rate, lo, hi)``.
    """
    confidence = check_probability("confidence", confidence)
    for name, v in (("k", k), ("n", n)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
            raise TypeError(f"{name} must be a non-negative int, got {v!r}")
    if k > n:
        raise ValueError(f"k must be <= n, got k={k}, n={n}")
    if n == 0:
        return _NAN, 0.0, 1.0
    alpha = 1.0 - confidence
    beta = _sps().beta
    lo = 0.0 if k == 0 else float(beta.ppf(0.5 * alpha, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1.0 - 0.5 * alpha, k + 1, n - k))
    return k / n, lo, hi


# ----------------------------------------------------------------------------------------------
# paired rank test, intention to treat
# ----------------------------------------------------------------------------------------------


class RankTest(NamedTuple):
    """An exact Wilcoxon signed-rank test of paired differences.

    Attributes:
      n: pairs compared (including ties).
      n_nonzero: pairs with a non-zero difference (the ones ranked).
      w_plus: sum of the ranks of the positive differences.
      w_minus: sum of the ranks of the negative differences.
      p: exact two-sided p-value (``nan`` when every difference is zero or there are no pairs).
    """

    n: int
    n_nonzero: int
    w_plus: float
    w_minus: float
    p: float


def wilcoxon_signed_rank(d: Any) -> RankTest:
    """Exact two-sided Wilcoxon signed-rank test of ``median(d) == 0``.

    Zero differences are dropped (Wilcoxon's convention, ``scipy.stats.wilcoxon(zero_method="wilcox")``);
    the others are ranked by ``|d_i|`` (mean ranks for ties; ``+-inf`` allowed and ranked last), and under
    the null hypothesis each rank's sign is + or - with probability 1/2 independently. The distribution of
    ``W+`` over those ``2^n`` sign patterns (conditional on the ranks, so exact with ties too) is counted
    by dynamic programming over the doubled rank sums, and ``p = min(1, 2 min(P(W+ <= w), P(W+ >= w)))``.
    Without ties this is ``scipy.stats.wilcoxon(d, method="exact")``; with ties scipy has no exact null
    distribution that scales (its ``"exact"`` rounds the statistic, its ``PermutationMethod`` evaluates all
    ``2^n`` sign patterns, or samples them), so the counting is done here: ``O(n * sum of ranks)``.
    """
    x = _as_1d("d", d)
    if np.any(np.isnan(x)):
        raise ValueError("d must not contain nan (give tied pairs a difference of 0)")
    nz = x[x != 0]
    if nz.size == 0:
        return RankTest(int(x.size), 0, 0.0, 0.0, _NAN)
    ranks = _sps().rankdata(np.abs(nz))  # mean ranks for ties; inf values tie
    w_plus = float(ranks[nz > 0].sum())
    w_minus = float(ranks[nz < 0].sum())
    doubled = np.rint(2.0 * ranks).astype(np.int64)  # mean ranks are multiples of 1/2
    counts = np.zeros(int(doubled.sum()) + 1)
    counts[0] = 1.0
    for r in doubled:
        shifted = np.zeros_like(counts)
        shifted[r:] = counts[:-r]
        counts = counts + shifted
    prob = counts / counts.sum()
    w = int(round(2.0 * w_plus))
    p = min(1.0, 2.0 * min(float(prob[: w + 1].sum()), float(prob[w:].sum())))
    return RankTest(int(x.size), int(nz.size), w_plus, w_minus, p)


def itt_paired(a: Any, b: Any, higher_is_better: bool = True) -> RankTest:
    """Intention-to-treat paired comparison of ``a`` vs ``b`` by seed: a diverged member is the worst outcome.

    Every pair is kept. A non-finite value (a diverged member) becomes the worst possible value
    (``-inf`` when higher is better, ``+inf`` when lower is), so a pair in which only ``a`` diverged has
    a difference worse than any finite one, and a pair in which both diverged is a tie (difference 0).
    The differences ``a_i - b_i`` go to :func:`wilcoxon_signed_rank`. Unlike the t-test on the complete
    pairs, an arm cannot look better by losing its bad seeds to divergence.
    """
    xa = _as_1d("a", a)
    xb = _as_1d("b", b)
    if xa.shape != xb.shape:
        raise ValueError(f"a and b must have the same length (one value per seed), got {xa.size} and {xb.size}")
    worst = -math.inf if higher_is_better else math.inf
    xa = np.where(np.isfinite(xa), xa, worst)
    xb = np.where(np.isfinite(xb), xb, worst)
    with np.errstate(invalid="ignore"):
        d = xa - xb
    return wilcoxon_signed_rank(np.where(np.isnan(d), 0.0, d))


# ----------------------------------------------------------------------------------------------
# divergence counts: exact McNemar test
# ----------------------------------------------------------------------------------------------


class DivergenceTest(NamedTuple):
    """The exact McNemar test of paired divergence flags.

    Attributes:
      n: pairs (seeds shared by the arm and the baseline).
      arm_only: seeds on which the arm diverged and the baseline did not.
      base_only: seeds on which the baseline diverged and the arm did not.
      p: exact two-sided p-value; ``nan`` when no seed is discordant (``arm_only + base_only == 0``).
    """

    n: int
    arm_only: int
    base_only: int
    p: float


def divergence_test(arm_diverged: Any, base_diverged: Any) -> DivergenceTest:
    """Exact McNemar test of "the arm diverges as often as the baseline", the members paired by seed.

    The unit is the member, and seed ``i`` pairs the arm's member with the baseline's. Seeds on which both or
    neither diverged say nothing about which diverges more often; of the ``d = b + c`` discordant seeds (``b``:
    only the arm diverged, ``c``: only the baseline), under the null hypothesis each is ``b`` or ``c`` with
    probability 1/2, so ``b ~ Binomial(d, 1/2)`` and

    ``p = min(1, 2 * P(B <= min(b, c)))``

    (``scipy.stats.binomtest(b, d, 0.5)``, two-sided; equal to ``statsmodels``' ``mcnemar(..., exact=True)``). With
    ``n`` seeds the smallest p-value is ``2^(1-n)``: all ``n`` seeds discordant the same way (8 seeds: 0.0078).

    Args:
      arm_diverged: per seed, whether the arm's member diverged (bools, or numbers read as bools).
      base_diverged: the same for the baseline, same length and seed order.
    """
    a = np.asarray(arm_diverged).reshape(-1).astype(bool)
    b = np.asarray(base_diverged).reshape(-1).astype(bool)
    if a.shape != b.shape:
        raise ValueError(
            f"arm_diverged and base_diverged must have the same length (one flag per seed), got {a.size} and {b.size}"
        )
    arm_only, base_only = int(np.sum(a & ~b)), int(np.sum(b & ~a))
    d = arm_only + base_only
    p = float(_sps().binomtest(arm_only, d, 0.5).pvalue) if d else _NAN
    return DivergenceTest(int(a.size), arm_only, base_only, p)


# ----------------------------------------------------------------------------------------------
# equivalence: two one-sided tests
# ----------------------------------------------------------------------------------------------


class Equivalence(NamedTuple):
    """A paired equivalence test (TOST) of ``|mean(a - b)| < margin``.

    Attributes:
      margin: the smallest difference of interest (``> 0``).
      lo: lower end of the ``1 - 2 alpha`` paired t interval of the difference.
      hi: upper end of that interval.
      p_lower: p-value of the one-sided test of ``diff <= -margin``.
      p_upper: p-value of the one-sided test of ``diff >= margin``.
      p: ``max(p_lower, p_upper)``, the TOST p-value (``nan`` with fewer than 2 pairs or no spread).
      n: pairs used.
    """

    margin: float
    lo: float
    hi: float
    p_lower: float
    p_upper: float
    p: float
    n: int


def tost_paired(a: Any, b: Any, margin: float, confidence: float = 0.95) -> Equivalence:
    """Two one-sided paired t-tests (Schuirmann 1987) of equivalence within ``+-margin``.

    With the pairs where both values are finite, ``d_i = a_i - b_i``, ``se = std(d, ddof=1) / sqrt(n)`` and
    ``df = n - 1`` (as :func:`paired_diff_ci`):

    ``p_lower = P(T_df > (mean(d) + margin) / se)`` (null: ``diff <= -margin``),
    ``p_upper = P(T_df > (margin - mean(d)) / se)`` (null: ``diff >= margin``), ``p = max(p_lower, p_upper)``.

    Equivalence at level ``alpha = 1 - confidence`` (``p < alpha``) is the same as the ``1 - 2 alpha`` interval
    ``mean(d) -/+ t_{1-alpha, df} se`` lying inside ``(-margin, margin)`` (``[lo, hi]``). Equal to
    ``statsmodels.stats.weightstats.ttost_paired(a, b, -margin, margin)``. With fewer than two pairs, or every
    difference equal (no spread), the p-values and the interval are ``nan``.

    Args:
      a: per-seed values of the arm, indexed by seed.
      b: per-seed values of the baseline, same length and seed order.
      margin: the smallest difference of interest, a finite number ``> 0``.
      confidence: ``1 - alpha``, in (0.5, 1).
    """
    confidence = check_probability("confidence", confidence)
    if confidence <= 0.5:
        raise ValueError(
            f"confidence must be > 0.5 for an equivalence test (its interval is 1 - 2 alpha), got {confidence!r}"
        )
    if isinstance(margin, bool) or not isinstance(margin, (int, float, np.integer, np.floating)):
        raise TypeError(f"margin must be a positive number, got {type(margin).__name__} {margin!r}")
    margin = float(margin)
    if not (math.isfinite(margin) and margin > 0):
        raise ValueError(f"margin must be a finite number > 0, got {margin!r}")
    d = paired_diff_ci(a, b, 2.0 * confidence - 1.0)
    if not (d.n >= 2 and d.se > 0):
        return Equivalence(margin, _NAN, _NAN, _NAN, _NAN, _NAN, d.n)
    p_lower = t_sf((d.diff + margin) / d.se, d.df)
    p_upper = t_sf((margin - d.diff) / d.se, d.df)
    return Equivalence(margin, d.lo, d.hi, p_lower, p_upper, max(p_lower, p_upper), d.n)
