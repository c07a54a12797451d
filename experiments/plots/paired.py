"""Paired comparison of two (arm, metric) pairs of a results folder, by seed.

``ARM:METRIC`` names a series of final values, one per seed (the value at each member's last epoch;
diverged members excluded), e.g. ``ema:avg_test_acc`` (the averaged weights of the EMA arm) against
``none:test_acc``. Prints both means with 95% t-CIs and the paired difference ``a - b`` with its 95%
CI and p-value (:func:`jtricks.stats.paired_diff_ci`)::

    python experiments/plots/paired.py runs/overfitting ema:avg_test_acc none:test_acc
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from jtricks import stats


def _series(run_dir: Path, spec: str) -> tuple[str, str]:
    arm, sep, metric = spec.rpartition(":")
    if not sep or not arm or not metric:
        raise SystemExit(f"expected ARM:METRIC, got {spec!r}")
    return arm, metric


def compare(run_dir: str | Path, a: str, b: str) -> tuple[stats.CI, stats.CI, stats.DiffCI]:
    """(CI of a, CI of b, paired difference a - b) for ``a``, ``b`` given as ``"arm:metric"``."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("_lr_sensitivity", Path(__file__).with_name("lr_sensitivity.py"))
    mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    values, diverged, _ = mod.load(run_dir)
    seeds = sorted({s for per in values.values() for s in per})
    arm_a, met_a = _series(Path(run_dir), a)
    arm_b, met_b = _series(Path(run_dir), b)
    for arm, met in ((arm_a, met_a), (arm_b, met_b)):
        if (arm, met) not in values:
            raise SystemExit(f"no values for arm {arm!r} metric {met!r} in {run_dir}")
    fa = mod.finals(values, diverged, arm_a, met_a, seeds)
    fb = mod.finals(values, diverged, arm_b, met_b, seeds)
    return stats.mean_ci(fa), stats.mean_ci(fb), stats.paired_diff_ci(fa, fb)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="paired comparison of two ARM:METRIC series by seed")
    p.add_argument("run_dir")
    p.add_argument("a", help="ARM:METRIC")
    p.add_argument("b", help="ARM:METRIC (the reference)")
    args = p.parse_args(argv)
    ca, cb, d = compare(args.run_dir, args.a, args.b)
    print(f"{args.a}: {ca.mean:.4f} [{ca.lo:.4f}, {ca.hi:.4f}] (n={ca.n})")
    print(f"{args.b}: {cb.mean:.4f} [{cb.lo:.4f}, {cb.hi:.4f}] (n={cb.n})")
    verdict = "n.s." if not (d.lo > 0 or d.hi < 0) else ("higher" if d.lo > 0 else "lower")
    print(f"difference (paired by seed, n={d.n}): {d.diff:+.4f} [{d.lo:+.4f}, {d.hi:+.4f}], p={d.p:.2g}: {verdict}")
    return 0 if np.isfinite(d.diff) else 1


if __name__ == "__main__":
    raise SystemExit(main())
