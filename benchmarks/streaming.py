"""Training steps per second with the training split on the device vs streamed from the host, with and without
prefetching.

    python -m benchmarks.streaming [--quick] [--members 8] [--n 8192] [--features 784]

One population (an MLP ``features``-256-10 under Adam, batch 128, ``members`` seeds) on synthetic float32 data of
``n`` examples, in the host-loop execution (the one streaming uses), four ways, timed interleaved
(:func:`benchmarks.common.measure`): ``device`` (the split on the device, each batch gathered inside the step),
``stream, memmap, prefetch 0`` (the split a read-only memory map of a ``.npy`` file, each member's batch gathered
on the host when its step comes), ``stream, memmap, prefetch 2`` (gathered and put on the device two batches ahead
by a background thread) and ``stream, in memory, prefetch 2``. An epoch is the unit timed; the rate is scaled to
optimizer steps per second of the population. Evaluation sets are 64 examples (the steps dominate). Prints a table
and writes ``benchmarks/results/streaming-<date>-<host>[-quick].{json,md}``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
from pathlib import Path

import jax
import numpy as np

from benchmarks.common import RESULTS_DIR, fmt_rate, machine_info, markdown_table, measure, now_stamp, versions
from jtricks import data as jdata
from jtricks import experiment as jexp
from jtricks.engine import build as jbuild
from jtricks.engine import execute as jexec
from jtricks.engine import plan as jplan
from jtricks.engine import programs as jprog
from jtricks.engine.options import RunOptions


def _data(folder: Path, n: int, features: int) -> tuple[jdata.Dataset, jdata.Dataset]:
    """The same synthetic 10-class data in memory and as memory-mapped ``.npy`` files."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n + 128, features)).astype(np.float32)
    y = (x[:, :10].argmax(axis=1)).astype(np.int32)
    splits = {"x_train": x[:n], "y_train": y[:n], "x_val": x[n : n + 64], "y_val": y[n : n + 64]}
    splits |= {"x_test": x[n + 64 :], "y_test": y[n + 64 :]}
    for k, a in splits.items():
        np.save(folder / f"{k}.npy", a)
    return jdata.arrays(**splits, num_classes=10), jdata.npy_folder(folder, num_classes=10)


def _runner(exp: jexp.Experiment, prefetch: int) -> tuple[object, int]:
    """``run(k)``: ``k`` epochs of the population; and the optimizer steps per epoch."""
    the_plan = jplan.plan(exp, RunOptions())
    setup = jbuild.build(the_plan, jprog.TraceCounter(), prefetch=prefetch)[0]
    g = the_plan.groups[0]
    state = setup.programs.init(*jexec.population_inputs(g.chunks[0], g.size, setup.config))
    holder = [state]

    def run(k: int) -> None:
        s = holder[0]
        for _ in range(k):
            s, m = setup.programs.run_epoch(s)
        jax.block_until_ready((s, m))
        holder[0] = s

    return run, setup.data.num_train // exp.batch_size


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--members", type=int, default=8)
    ap.add_argument("--n", type=int, default=8192)
    ap.add_argument("--features", type=int, default=784)
    args = ap.parse_args()
    n = 2048 if args.quick else args.n
    with tempfile.TemporaryDirectory() as tmp:
        in_memory, mapped = _data(Path(tmp), n, args.features)
        base = jexp.Experiment(
            name="streaming",
            dataset=in_memory,
            preprocess="raw",
            model="mlp",
            model_kwargs={"widths": (256,)},
            epochs=1000,
            batch_size=128,
            eval_batch_size=64,
            seeds=args.members,
            execution="loop",
            hparams={"learning_rate": 1e-3},
        )
        variants = {
            "device": (base, 0),
            "stream, memmap, prefetch 0": (dataclasses.replace(base, dataset=mapped, data_placement="stream"), 0),
            "stream, memmap, prefetch 2": (dataclasses.replace(base, dataset=mapped, data_placement="stream"), 2),
            "stream, in memory, prefetch 2": (dataclasses.replace(base, data_placement="stream"), 2),
        }
        runners, steps = {}, {}
        for name, (exp, depth) in variants.items():
            runners[name], steps[name] = _runner(exp, depth)
        rates = measure(runners, steps=1, blocks=3 if args.quick else 7, warmup=1)
    base_rate = rates["device"].median * steps["device"]
    rows = []
    for name, r in rates.items():
        s = r.scaled(steps[name])
        rows.append([name, fmt_rate(s), f"{s.median / base_rate:.2f}"])
    header = ["training split", "population steps/s [min–max]", "vs device"]
    table = markdown_table(header, rows)
    note = (
        f"MLP {args.features}-256-10, Adam, batch 128, {args.members} members, {n} examples, host-loop execution; "
        f"backend {jax.default_backend()}"
    )
    print(note)
    print(table)
    stamp = f"streaming-{now_stamp()}-{machine_info()['host']}{'-quick' if args.quick else ''}"
    RESULTS_DIR.mkdir(exist_ok=True)
    doc = {"note": note, "rates": {k: v.scaled(steps[k]).as_dict() for k, v in rates.items()}}
    doc |= {"machine": machine_info(), "versions": versions()}
    (RESULTS_DIR / f"{stamp}.json").write_text(json.dumps(doc, indent=1) + "\n")
    (RESULTS_DIR / f"{stamp}.md").write_text(f"{note}\n\n{table}\n")


if __name__ == "__main__":
    main()
