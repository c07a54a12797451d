"""Benchmark: the dry run's device-memory estimate (``jtricks run --dry-run``, :mod:`jtricks.engine.dryrun`)
against what XLA reports for the compiled programs (``Compiled.memory_analysis()``: arguments + outputs +
temporaries - aliased, of the largest program of the group), for a few experiments and population sizes::

    python -m benchmarks.dry_run [--experiments dropout_mnist1d,init] [--sizes 8,32]

Compiles the programs (what the dry run avoids); loads the data. Prints one table: the estimate's range (low: layer
outputs as the activations; high: every intermediate) and XLA's number, in MiB, and the ratio XLA / high.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from jtricks.engine import build as jbuild
from jtricks.engine import catalog, dryrun, execute, plan, programs


def _xla_bytes(exp: Any, size: int) -> tuple[int, int, int]:
    """(low, high, XLA) bytes of the first group of ``exp`` with a population of ``size``."""
    exp = dataclasses.replace(exp, max_members=size)  # every chunk of the first group: a population of ``size``
    dr = dryrun.dry_run(exp)
    the_plan = plan.plan(exp)
    setup = jbuild.build(the_plan, programs.TraceCounter())[0]
    g = the_plan.groups[0]
    keys, hp = execute.population_inputs(g.chunks[0], g.size, setup.config)
    biggest = 0
    for low in setup.programs.lower(keys, hp).values():
        m = low.compile().memory_analysis()
        used = m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes - m.alias_size_in_bytes
        biggest = max(biggest, used)
    mem = dr.groups[0].memory
    return mem.low, mem.high, biggest


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--experiments", default="dropout_mnist1d,init")
    p.add_argument("--sizes", default="8,32")
    args = p.parse_args()
    print("| experiment | population | estimate low (MiB) | estimate high (MiB) | XLA (MiB) | XLA / high |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in args.experiments.split(","):
        for size in (int(s) for s in args.sizes.split(",")):
            lo, hi, xla = _xla_bytes(catalog.load_experiment(name), size)
            mib = 1024.0**2
            print(f"| {name} | {size} | {lo / mib:.1f} | {hi / mib:.1f} | {xla / mib:.1f} | {xla / hi:.2f} |")


if __name__ == "__main__":
    main()
