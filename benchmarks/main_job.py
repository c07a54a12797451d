"""The main job, process start to results written: ``jtricks run dropout_mnist1d`` against the same job by hand.

Each round runs, in turn (interleaved, so drifts in the machine's speed hit every variant alike):

* ``jtricks``              — ``jtricks run dropout_mnist1d --no-plot --no-checkpoint --quiet`` as a user runs it:
  compilation cache warm (the variant's first, cold run is the warm-up), one XLA CPU device per core;
* ``jtricks cold cache``   — the same with an empty compilation cache (a fresh folder every round);
* ``jtricks 1 device, no cache`` — ``--cpu-devices 1 --no-compile-cache``: what the engine cost before the runtime
  settings;
* ``hand-written``         — ``python -m benchmarks.handwritten_mnist1d`` (JAX + optax in one file).

It prints the wall times (median [min–max]), the ratios hand-written / variant per round (median [min–max]),
the compile seconds of the cold and the warm jtricks run (from their manifests), the cache's size, the
test accuracies of jtricks and the hand-written script per dropout rate with a Welch t-test, the job's
matmul FLOPs against the machine's matmul peak, and the targets table::

    python -m benchmarks.main_job [--rounds 5] [--epochs 30]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import common

ROOT = Path(__file__).resolve().parent.parent
WIDTHS = (40, 256, 256, 10)
N_TRAIN, N_EVAL, MEMBERS = 3500, 1500, 32  # training signals, validation + test signals, rates × seeds


def job_flop(epochs: int) -> float:
    """Matmul FLOPs of the job: 3 × forward per training example (forward, two backward products), 1 × per evaluated
    example."""
    fwd = sum(2 * a * b for a, b in zip(WIDTHS[:-1], WIDTHS[1:]))
    return float(MEMBERS * epochs * (3 * fwd * N_TRAIN + fwd * N_EVAL))


def _timed(cmd: list[str], env: dict[str, str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{p.stderr[-2000:]}")
    return wall, p.stdout


def _jtricks(out: Path, epochs: int, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "jtricks",
        "run",
        "dropout_mnist1d",
        "--no-plot",
        "--no-checkpoint",
        "--quiet",
        "--epochs",
        str(epochs),
        "--out",
        str(out),
        *extra,
    ]


def _jtricks_test_acc(run_dir: Path) -> dict[float, list[float]]:
    """Final-epoch test accuracy per dropout rate from a jtricks ``metrics.csv`` (arm ``dropout_rate=R``)."""
    with open(run_dir / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["metric"] == "test_acc"]
    last = max(int(r["epoch"]) for r in rows)
    acc: dict[float, list[float]] = {}
    for r in rows:
        if int(r["epoch"]) == last:
            acc.setdefault(float(r["arm"].split("=")[1]), []).append(float(r["value"]))
    return acc


def _hand_test_acc(run_dir: Path) -> dict[float, list[float]]:
    acc: dict[float, list[float]] = {}
    with open(run_dir / "members.csv") as f:
        for row in csv.DictReader(f):
            acc.setdefault(float(row["dropout_rate"]), []).append(float(row["test_acc"]))
    return acc


def _welch_p(a: list[float], b: list[float]) -> float:
    from jtricks import stats

    return float(stats.welch_diff_ci(np.asarray(a), np.asarray(b)).p)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=30)
    args = ap.parse_args(argv)
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("XLA_FLAGS", "JAX_COMPILATION_CACHE_DIR", "JTRICKS_COMPILE_CACHE")
    }
    env["PYTHONPATH"] = str(ROOT)
    tmp = Path(tempfile.mkdtemp(prefix="jtricks_main_job_"))
    warm_cache = tmp / "warm-cache"
    variants = {
        "jtricks": lambda r: _jtricks(tmp / "warm", args.epochs, "--compile-cache", str(warm_cache)),
        "jtricks cold cache": lambda r: _jtricks(
            tmp / "cold", args.epochs, "--compile-cache", str(tmp / f"cold-cache-{r}")
        ),
        "jtricks 1 device, no cache": lambda r: _jtricks(
            tmp / "plain", args.epochs, "--cpu-devices", "1", "--no-compile-cache"
        ),
        "hand-written": lambda r: [sys.executable, "-m", "benchmarks.handwritten_mnist1d", "--out", str(tmp / "hand")],
    }
    if args.epochs != 30:
        variants.pop("hand-written")  # the script's budget is the experiment's 30 epochs
    _timed(variants["jtricks"](-1), env)  # the warm-up fills the warm cache
    walls: dict[str, list[float]] = {k: [] for k in variants}
    compile_s: dict[str, list[float]] = {"cold": [], "warm": []}
    for r in range(args.rounds):
        for name, cmd in variants.items():
            wall, _ = _timed(cmd(r), env)
            walls[name].append(wall)
            if name in ("jtricks", "jtricks cold cache"):
                m = json.loads((tmp / ("warm" if name == "jtricks" else "cold") / "manifest.json").read_text())
                compile_s["warm" if name == "jtricks" else "cold"].append(m["compile"]["xla_s"])
        print(
            f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.1f}s" for k, v in walls.items()), file=sys.stderr, flush=True
        )
    res = _report(args, walls, compile_s, tmp, warm_cache)
    print(json.dumps(res))
    return res


def _stat(v: list[float]) -> dict[str, float]:
    return {"median": float(np.median(v)), "min": float(np.min(v)), "max": float(np.max(v))}


def _report(
    args: argparse.Namespace,
    walls: dict[str, list[float]],
    compile_s: dict[str, list[float]],
    tmp: Path,
    warm_cache: Path,
) -> dict[str, Any]:
    from benchmarks import step as bstep
    from jtricks import runtime

    peak = bstep.matmul_peak()["gflops"]["median"]
    flop = job_flop(args.epochs)
    base = walls.get("hand-written")
    gflops = {name: flop / float(np.median(v)) / 1e9 for name, v in walls.items()}  # over the whole process
    rows = []
    for name, v in walls.items():
        ratio = _stat([b / a for a, b in zip(v, base)]) if base else None
        rows.append(
            [
                name,
                common.fmt_rate(_stat(v), 1),
                common.fmt_rate(ratio, 2) if ratio else "",
                f"{gflops[name]:.1f}",
                f"{gflops[name] / peak:.2f}",
            ]
        )
    print(
        f"\nmain job, {args.epochs} epochs, {args.rounds} rounds; matmul peak {peak:.0f} GFLOP/s; "
        f"job {flop / 1e12:.2f} TFLOP\n"
    )
    print(
        common.markdown_table(["variant", "wall s", "speed × hand-written", "GFLOP/s (whole process)", "of peak"], rows)
    )
    cold, warm = np.median(compile_s["cold"]), np.median(compile_s["warm"])
    cache_bytes = runtime.cache_size_bytes(warm_cache)
    print(
        f"\nXLA compile (manifest `compile.xla_s`): cold cache {cold:.2f} s, warm {warm:.2f} s ({warm / cold:.1%}); "
        f"cache on disk {cache_bytes / 2**20:.1f} MiB"
    )
    out: dict[str, Any] = {
        "walls": walls,
        "compile_s": compile_s,
        "peak_gflops": peak,
        "flop": flop,
        "cache_bytes": cache_bytes,
        "machine": common.machine_info(),
        "versions": common.versions(),
    }
    if base:
        ours, hand = _jtricks_test_acc(tmp / "warm"), _hand_test_acc(tmp / "hand")
        acc_rows = [
            [r, f"{np.mean(ours[r]):.4f}", f"{np.mean(hand[r]):.4f}", f"{_welch_p(ours[r], hand[r]):.3f}"]
            for r in sorted(ours)
        ]
        print(
            "\n"
            + common.markdown_table(["dropout rate", "jtricks test_acc", "hand-written test_acc", "Welch p"], acc_rows)
        )
        out["accuracy"] = acc_rows
        speed = np.median([b / a for a, b in zip(walls["jtricks"], base)])
        targets = [
            ["main job ≥ 1.5× hand-written", f"{speed:.2f}×", "met" if speed >= 1.5 else "missed"],
            [
                "fraction of matmul peak ≥ 0.40",
                f"{gflops['jtricks'] / peak:.2f}",
                "met" if gflops["jtricks"] / peak >= 0.4 else "missed",
            ],
            ["rerun compile ≤ 10% of the first", f"{warm / cold:.1%}", "met" if warm <= 0.1 * cold else "missed"],
        ]
        print("\n" + common.markdown_table(["target", "measured", ""], targets))
        out["targets"] = targets
    return out


if __name__ == "__main__":
    main()
