"""Paired comparison of two (arm, metric) series of a results folder, by seed (:mod:`jtricks.results.paired`;
the plot: ``jtricks plot RUN --kind paired --pair A B``)::

    python experiments/plots/paired.py runs/overfitting ema:avg_test_acc none:test_acc
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence

from jtricks.results import paired


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="paired comparison of two ARM:METRIC series by seed")
    p.add_argument("run_dir")
    p.add_argument("a", help="ARM:METRIC")
    p.add_argument("b", help="ARM:METRIC (the reference)")
    args = p.parse_args(argv)
    c = paired.compare(args.run_dir, args.a, args.b)
    print(paired.line(c))
    return 0 if math.isfinite(c.diff.diff) else 1


if __name__ == "__main__":
    raise SystemExit(main())
