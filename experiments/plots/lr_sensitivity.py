"""Best learning rate and learning-rate sensitivity of each arm group of a results folder: writes
``lr_sensitivity.md`` and ``lr_sensitivity.png`` into ``--out`` (:mod:`jtricks.results.lr_sensitivity`; the
plot alone: ``jtricks plot RUN --kind lr-sensitivity``)::

    python experiments/plots/lr_sensitivity.py runs/optimizers --baseline optimizer=sgd --out docs/results/optimizers
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from jtricks.results import lr_sensitivity


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("run_dir")
    p.add_argument("--out", default=None, help="folder for lr_sensitivity.md/png (default: the run folder)")
    p.add_argument("--metric", default="test_acc")
    p.add_argument("--select", default="val_acc")
    p.add_argument("--baseline", default=None, help="group compared against (default: the first)")
    args = p.parse_args(argv)
    print(lr_sensitivity.write(args.run_dir, args.out, metric=args.metric, select=args.select, baseline=args.baseline))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
