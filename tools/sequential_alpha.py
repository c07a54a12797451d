"""The simulated familywise error of the ``--until-resolved`` designs (:mod:`jtricks.sequential`) under the null.

For each spending rule, looks and family size ``m`` (the arms besides the baseline, all equal to it), seeds give
``m + 1`` independent standard normal values per seed (one per arm); a comparison is the paired difference of an
arm with the baseline (so the ``m`` comparisons share the baseline: correlation 1/2). At look ``j`` the
Holm-adjusted p-values are compared with the look's family level ``alpha_j`` (:func:`jtricks.sequential.spending`);
under the global null Holm rejects something exactly when ``m`` times the smallest p-value is below ``alpha_j``.
The p-value of a comparison is that of the normal statistic (known variance: the design's own model) or of the
paired t-test with ``n_j - 1`` degrees of freedom (what a look computes). Prints the share of simulated studies
with any rejection over all looks, and its Monte Carlo standard error::

    python tools/sequential_alpha.py                  # 400,000 studies per row
    python tools/sequential_alpha.py --n 100000 --seed 1
"""

from __future__ import annotations

import argparse

import numpy as np
from scipy import stats

from jtricks.studies import sequential

DESIGNS = ((8, 16, 24, 32), (2, 4), (4, 8, 12, 16, 20, 24, 28, 32))


def simulate(looks: tuple[int, ...], m: int, rule: str, n: int, seed: int, chunk: int = 20_000) -> tuple[float, float]:
    """The simulated familywise error ``(normal statistics, t statistics)`` of one design over ``n`` studies."""
    levels = sequential.spending(list(looks), 0.05, rule, m)
    rng = np.random.default_rng(seed)
    hits = np.zeros(2)
    for start in range(0, n, chunk):
        x = rng.normal(size=(min(chunk, n - start), looks[-1], m + 1))
        d = x[:, :, 1:] - x[:, :, :1]  # (studies, seeds, m)
        rejected = np.zeros((2, d.shape[0]), bool)
        for n_j, a_j in zip(looks, levels):
            mean = d[:, :n_j].mean(axis=1)
            z = mean / np.sqrt(2.0 / n_j)
            t = mean / (d[:, :n_j].std(axis=1, ddof=1) / np.sqrt(n_j))
            p = np.stack([2 * stats.norm.sf(np.abs(z)), 2 * stats.t.sf(np.abs(t), n_j - 1)])
            rejected |= m * p.min(axis=2) < a_j
        hits += rejected.sum(axis=1)
    return float(hits[0] / n), float(hits[1] / n)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=400_000, help="simulated studies per row")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    se = np.sqrt(0.05 * 0.95 / args.n)
    print(f"alpha 0.05, {args.n} studies per row, Monte Carlo standard error at 0.05: {se:.5f}")
    print("| rule | looks (seeds) | m | normal statistics | t statistics |")
    print("|---|---|---:|---:|---:|")
    for rule in sequential.RULES:
        for looks in DESIGNS:
            for m in (1, 3):
                normal, t = simulate(looks, m, rule, args.n, args.seed)
                print(f"| {rule} | {', '.join(map(str, looks))} | {m} | {normal:.4f} | {t:.4f} |")


if __name__ == "__main__":
    main()
