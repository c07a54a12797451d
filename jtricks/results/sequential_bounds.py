"""Exact group-sequential boundaries for a Lan-DeMets alpha-spending function (two-sided, symmetric).

Under the null hypothesis the standardized statistics ``Z_1, ..., Z_K`` of a group-sequential test at the
information fractions ``0 < t_1 < ... < t_K = 1`` are those of a Brownian motion, ``Z_k = W(t_k) / sqrt(t_k)``:
each is standard normal, with independent increments of the score ``W``. A design stops at the first look
with ``|Z_k| >= c_k``; its boundaries ``c_k`` are chosen so that the probability of first crossing at look
``k`` is the spending function's increment, ``a(t_k) - a(t_{k-1})``, and the whole design spends exactly
``a(1) = alpha``.

Spending functions (:func:`spent`; Lan & DeMets 1983, Kim & DeMets 1987):

* ``"obf"``, O'Brien-Fleming-type: ``a(t) = 2 - 2 Phi(z_{1-alpha/2} / sqrt(t))``;
* ``"pocock"``, Pocock-type: ``a(t) = alpha ln(1 + (e - 1) t)``.

The boundaries come from the recursive numerical integration of Armitage, McPherson & Rowe (1969)
(Jennison & Turnbull 2000, ch. 19): the sub-density of ``Z_k`` on the continuation region,

    f_1(z) = phi(z),
    f_k(z) = integral_{-c_{k-1}}^{c_{k-1}} f_{k-1}(u) phi((z - u r_k) / s_k) / s_k du,
    r_k = sqrt(t_{k-1} / t_k),   s_k = sqrt(1 - t_{k-1} / t_k),

and the probability of first crossing at look ``k``,

    P_k(c) = integral_{-c_{k-1}}^{c_{k-1}} f_{k-1}(u) [Phi((-c - u r_k) / s_k) + Phi((u r_k - c) / s_k)] du,

solved for ``c_k`` (``P_k(c_k)`` = the increment) by Brent's method; the first look is the same recursion from
a point mass at ``Z_0 = 0`` (``t_0 = 0``: ``c_1 = z_{1 - a(t_1)/2}``). Each integral
is Simpson's rule on a fixed grid of :data:`GRID_POINTS` points over ``[-c, c]`` (clipped to
``|z| <= Z_MAX``, beyond which the standard normal holds less than 1e-18). Numpy and scipy only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import optimize, stats

__all__ = [
    "SPENDING",
    "GRID_POINTS",
    "Z_MAX",
    "spent",
    "solve_boundaries",
    "boundaries",
    "crossing_probabilities",
    "nominal_levels",
]

SPENDING: tuple[str, ...] = ("obf", "pocock")
GRID_POINTS = 1001  # odd: Simpson's rule
Z_MAX = 9.0
_C_MAX = 40.0  # a boundary above this spends nothing a double can hold


def _check_fractions(fractions: Sequence[float]) -> np.ndarray:
    t = np.asarray(fractions, dtype=np.float64)
    if t.ndim != 1 or t.size == 0 or not np.all(np.isfinite(t)):
        raise ValueError(f"fractions must be a non-empty 1-d sequence of finite numbers, got {fractions!r}")
    if t[0] <= 0.0 or t[-1] > 1.0 or np.any(np.diff(t) <= 0.0):
        raise ValueError(f"fractions must increase strictly within (0, 1], got {list(t)}")
    return t


def spent(fractions: Sequence[float], alpha: float, function: str = "obf") -> np.ndarray:
    """The cumulative alpha ``a(t_k)`` spent by each look at the information fractions (module docstring)."""
    if function not in SPENDING:
        raise ValueError(f"function must be one of {list(SPENDING)}, got {function!r}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    t = _check_fractions(fractions)
    if function == "obf":
        return 2.0 * stats.norm.sf(stats.norm.isf(alpha / 2.0) / np.sqrt(t))
    return alpha * np.log1p((math.e - 1.0) * t)


def _grid(c: float) -> tuple[np.ndarray, np.ndarray]:
    """Simpson's rule on ``[-c, c]`` (clipped to ``Z_MAX``): the points and their weights."""
    half = min(c, Z_MAX)
    z = np.linspace(-half, half, GRID_POINTS)
    w = np.where(np.arange(GRID_POINTS) % 2 == 1, 4.0, 2.0)
    w[0] = w[-1] = 1.0
    return z, w * (z[1] - z[0]) / 3.0


def _cross(u: np.ndarray, mass: np.ndarray, r: float, s: float, c: float) -> float:
    """``P_k(c)``: the continuation mass ``mass`` (density times weight at the points ``u``) crossing ``|Z_k| >= c``."""
    mu = u * r
    return float(mass @ (stats.norm.cdf((-c - mu) / s) + stats.norm.sf((c - mu) / s)))


def _advance(u: np.ndarray, mass: np.ndarray, r: float, s: float, c: float) -> tuple[np.ndarray, np.ndarray]:
    """The continuation mass of look ``k`` on the grid of ``[-c, c]``, from that of look ``k - 1``."""
    z, w = _grid(c)
    kernel = stats.norm.pdf((z[:, None] - r * u[None, :]) / s) / s
    return z, (kernel @ mass) * w


def _walk(t: np.ndarray, bounds: np.ndarray | None, increments: np.ndarray | None) -> list[tuple[float, float]]:
    """The recursion over the looks, from a point mass at ``Z_0 = 0`` (``t_0 = 0``): with the boundaries given,
    or solving each one for its increment. Returns per look ``(c_k, P_k(c_k))``."""
    out: list[tuple[float, float]] = []
    u, mass, t_prev = np.zeros(1), np.ones(1), 0.0
    for k, t_k in enumerate(t):
        r, s = math.sqrt(t_prev / t_k), math.sqrt(1.0 - t_prev / t_k)
        if bounds is not None:
            c = float(bounds[k])
        elif increments[k] <= _cross(u, mass, r, s, _C_MAX):
            c = math.inf  # the look spends nothing a double can hold
        else:
            c = optimize.brentq(lambda x: _cross(u, mass, r, s, x) - increments[k], 0.0, _C_MAX, xtol=1e-12)
        out.append((c, _cross(u, mass, r, s, c) if math.isfinite(c) else 0.0))
        u, mass, t_prev = *_advance(u, mass, r, s, c), t_k
    return out


def solve_boundaries(fractions: Sequence[float], cumulative: Sequence[float]) -> np.ndarray:
    """The two-sided symmetric boundaries ``c_k`` (z scale) whose first-crossing probabilities under the null are
    the increments of ``cumulative`` (the alpha spent by each look, non-decreasing, in [0, 1)).

    Returns:
      ``c_k`` per look (``inf`` where a look spends nothing).
    """
    t = _check_fractions(fractions)
    a = np.asarray(cumulative, dtype=np.float64)
    if a.shape != t.shape or not np.all(np.isfinite(a)) or a[0] < 0.0 or a[-1] >= 1.0 or np.any(np.diff(a) < 0.0):
        raise ValueError(f"cumulative must be one non-decreasing value in [0, 1) per look ({t.size}), got {list(a)}")
    return np.array([c for c, _ in _walk(t, None, np.diff(a, prepend=0.0))])


def boundaries(fractions: Sequence[float], alpha: float = 0.05, function: str = "obf") -> np.ndarray:
    """The two-sided symmetric boundaries ``c_k`` (z scale) that spend ``a(t_k) - a(t_{k-1})`` at each look.

    Args:
      fractions: the information fractions of the looks, strictly increasing in ``(0, 1]``; the last one is
        normally 1 (then the design spends all of ``alpha``).
      alpha: the total two-sided level, in (0, 1).
      function: the spending function, one of :data:`SPENDING`.

    Returns:
      ``c_k`` per look (``inf`` where a look spends nothing).
    """
    return solve_boundaries(fractions, spent(fractions, alpha, function))


def crossing_probabilities(fractions: Sequence[float], bounds: Sequence[float]) -> np.ndarray:
    """Under the null, the probability of first crossing ``|Z_k| >= c_k`` at each look (their sum: the design's
    total two-sided level). Used to check boundaries, and for any boundaries (Pocock's constant ones, say)."""
    t = _check_fractions(fractions)
    c = np.asarray(bounds, dtype=np.float64)
    if c.shape != t.shape or np.any(np.isnan(c)) or np.any(c <= 0.0):
        raise ValueError(f"bounds must be one positive number per look ({t.size}), got {list(bounds)}")
    return np.array([p for _, p in _walk(t, c, None)])


def nominal_levels(bounds: Sequence[float]) -> np.ndarray:
    """The nominal two-sided p-value of each boundary, ``2 (1 - Phi(c_k))``: a look's test rejects when its own
    p-value is below it."""
    return 2.0 * stats.norm.sf(np.asarray(bounds, dtype=np.float64))
