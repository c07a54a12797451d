"""Benchmark ``summary``: what the robust aggregates' bootstrap costs a summary.

For published results folders, ``jtricks.report.summarize`` of the folder's rows (what ``jtricks report`` computes
before writing) is timed as it is and with the bootstrap intervals of the interquartile mean and of the probability
of improvement replaced by a constant (everything else unchanged), in interleaved blocks (:func:`common.measure`).
Prints one Markdown table: seconds per summary, median [min-max] over blocks, and the ratio::

    python -m benchmarks.summary                      # dropout_mnist1d, init, optimizers
    python -m benchmarks.summary --folders init --blocks 3
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from pathlib import Path
from unittest import mock

from benchmarks import common

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results"


def _inputs(folder: Path) -> dict:
    from jtricks import report

    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    config = manifest.get("config") or {}
    return dict(
        metrics_rows=report.read_metrics_csv(report.result_file(folder, "metrics.csv")),
        member_rows=report.read_members_csv(folder / "members.csv"),
        arms=json.loads((folder / "arms.json").read_text(encoding="utf-8")),
        metrics=tuple(config.get("metrics") or manifest.get("metrics") or report.DEFAULT_METRICS),
        baseline=config.get("baseline") or manifest.get("baseline"),
        directions=manifest.get("directions"),
    )


def bench(folder: Path, blocks: int) -> list[str]:
    """One table row: the folder, its summary rows, seconds per summary with and without the bootstrap, ratio."""
    from jtricks.results import robust
    from jtricks.results import summary as jsummary

    kw = _inputs(folder)
    constant = robust.Boot(0.0, 0.0, 0.0, 0)

    def full(n: int) -> None:
        for _ in range(n):
            jsummary.summarize(**kw)

    def without(n: int) -> None:
        with mock.patch.object(jsummary.jrobust, "iqm_ci", return_value=constant):
            with mock.patch.object(jsummary.jrobust, "poi_ci", return_value=constant):
                full(n)

    rates = common.measure({"full": full, "without": without}, steps=1, blocks=blocks, warmup=1)
    per = {k: 1.0 / r.median for k, r in rates.items()}
    spread = {k: f"{per[k]:.2f} [{1.0 / r.hi:.2f}-{1.0 / r.lo:.2f}]" for k, r in rates.items()}
    rows = len(jsummary.summarize(**kw))
    return [folder.name, str(rows), spread["full"], spread["without"], f"{per['full'] / per['without']:.1f}"]


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--folders", default="dropout_mnist1d,init,optimizers", help="published folders, comma-separated")
    p.add_argument("--blocks", type=int, default=5, help="timed blocks per competitor")
    args = p.parse_args(argv)
    rows = [bench(RESULTS / name, args.blocks) for name in args.folders.split(",")]
    header = ["folder", "summary rows", "s per summary", "s without bootstrap", "ratio"]
    print(common.markdown_table(header, rows))
    info = common.machine_info()
    print(f"\n{info['cpu']}, {info['cores']} cores; load average {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
