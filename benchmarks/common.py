"""Shared helpers of the benchmarks: interleaved timing, statistics, machine description, result rows.

Timing protocol (every benchmark): each competitor is warmed up (compiled and run a few times), then
``blocks`` timed blocks of ``steps`` calls each are run *interleaved* (block 1 of every competitor,
then block 2 of every competitor, ...), so slow phases of a noisy machine hit all competitors alike
and ratios measured in one run are comparable. A block ends with a device synchronisation
(``jax.block_until_ready``). Reported: the median rate over blocks and the min–max spread.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "Rate",
    "Runner",
    "measure",
    "machine_info",
    "versions",
    "torch_available",
    "fmt_rate",
    "RESULTS_DIR",
]

RESULTS_DIR = Path(__file__).resolve().parent / "results"

#: A competitor: ``run(n)`` performs ``n`` steps and returns only when their results are ready.
Runner = Callable[[int], None]


@dataclasses.dataclass
class Rate:
    """Steps per second of one competitor over timed blocks (``unit`` steps per call)."""

    median: float
    lo: float
    hi: float
    blocks: int
    steps: int

    def as_dict(self) -> dict[str, float]:
        return {
            "median": round(self.median, 3),
            "min": round(self.lo, 3),
            "max": round(self.hi, 3),
            "blocks": self.blocks,
            "steps_per_block": self.steps,
        }

    def scaled(self, k: float) -> Rate:
        return Rate(self.median * k, self.lo * k, self.hi * k, self.blocks, self.steps)


def measure(
    runners: Mapping[str, Runner], *, steps: int, blocks: int, warmup: int = 3, min_block_s: float = 0.0
) -> dict[str, Rate]:
    """Time every runner in interleaved blocks; return steps/s per runner (median, min, max).

    ``warmup`` calls of ``run(1)`` first (compilation, caches). With ``min_block_s`` > 0 the number of
    steps per block is raised per runner (from a calibration block) so that a block lasts at least that
    long (short blocks are dominated by timer and dispatch noise).
    """
    per_runner_steps: dict[str, int] = {}
    for name, run in runners.items():
        for _ in range(warmup):
            run(1)
        n = steps
        if min_block_s > 0:
            t0 = time.perf_counter()
            run(steps)
            dt = time.perf_counter() - t0
            if dt < min_block_s:
                n = int(steps * min_block_s / max(dt, 1e-9)) + 1
        per_runner_steps[name] = n
    samples: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(blocks):
        for name, run in runners.items():
            n = per_runner_steps[name]
            t0 = time.perf_counter()
            run(n)
            samples[name].append(n / (time.perf_counter() - t0))
    return {
        name: Rate(statistics.median(v), min(v), max(v), blocks, per_runner_steps[name]) for name, v in samples.items()
    }


def stateful_runner(state: Any, call: Callable[[Any, int], tuple[Any, Any]]) -> Runner:
    """A runner for :func:`measure`: ``run(n)`` applies ``state, out = call(state, i)`` for ``i < n``, keeps the
    state for the next call (donated buffers stay valid) and blocks until the last result is ready."""
    import jax

    holder = [state]

    def run(n: int) -> None:
        s, out = holder[0], None
        for i in range(n):
            s, out = call(s, i)
        holder[0] = s
        jax.block_until_ready((s, out))

    return run


def torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except Exception:
        return False
    return True


def versions() -> dict[str, str]:
    """Versions of Python and of every framework benchmarked (``absent`` when not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("jax", "jaxlib", "optax", "flax", "numpy", "torch", "jtricks"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "absent"
    return out


def machine_info() -> dict[str, Any]:
    """CPU model (``lscpu``), core count, host name, platform and the jax backend / device."""
    model = platform.processor() or "unknown"
    try:
        txt = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in txt.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except Exception:
        pass
    import jax

    dev = jax.devices()[0]
    return {
        "host": socket.gethostname(),
        "cpu": model,
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "backend": jax.default_backend(),
        "device": getattr(dev, "device_kind", str(dev)),
        "device_count": jax.device_count(),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
    }


def fmt_rate(r: Rate | Mapping[str, float] | None, digits: int = 0) -> str:
    """``median [min–max]``."""
    if r is None:
        return "n/a"
    if isinstance(r, Rate):
        r = r.as_dict()
    f = f"{{:,.{digits}f}}"
    return f"{f.format(r['median'])} [{f.format(r['min'])}–{f.format(r['max'])}]"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured Markdown table."""
    lines = ["| " + " | ".join(str(h) for h in header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(str(c) for c in r) + " |")
    return "\n".join(lines)


def run_subprocess_json(
    module: str, args: Sequence[str], *, env: Mapping[str, str] | None = None, timeout: float = 600
) -> dict[str, Any]:
    """Run ``python -m module *args`` in a fresh process; it must print one JSON object as its last line."""
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        cwd=str(root),
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{module} {' '.join(args)} failed (rc={proc.returncode}):\n{proc.stderr[-3000:]}")
    last = [ln for ln in proc.stdout.splitlines() if ln.strip()][-1]
    return json.loads(last)


def now_stamp() -> str:
    return _dt.datetime.now().strftime("%Y-%m-%d")


def block(x: Any) -> Any:
    import jax

    return jax.block_until_ready(x)


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    """``(fn(), seconds)`` (``fn`` must block until its result is ready)."""
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0
