"""Per-operation time of a jitted program on XLA CPU, from a ``jax.profiler`` trace.

``op_profile(run, steps)`` traces ``run(steps)`` with ``jax.profiler.trace(create_perfetto_trace=True)``
and sums the duration of every XLA CPU thunk (fusions, dots, convolutions, copies ...) per step.
``categorize`` groups them into matmul / convolution / elementwise+optimizer / reduction / copy / other,
which is the evidence docs/performance.md gives for what bounds each benchmark.
"""

from __future__ import annotations

import collections
import glob
import gzip
import json
import re
import tempfile
from collections.abc import Callable

import jax

__all__ = ["op_profile", "categorize", "summarize"]

# Host-side / runtime events that are not XLA operations.
_SKIP = re.compile(
    r"^(\$|ThunkExecutor|PjitFunction|CommonPjRt|SlinkyThreadPool|ParseArguments|"
    r"PjRt|TfrtCpu|Execute|xla::|jax::|tsl::|ProfilerSession)"
)


def op_profile(run: Callable[[int], None], steps: int = 20) -> dict[str, float]:
    """Microseconds per step spent in each XLA operation while ``run(steps)`` executes (after 2 warm-up steps)."""
    run(2)
    with tempfile.TemporaryDirectory() as d:
        with jax.profiler.trace(d, create_perfetto_trace=True):
            run(steps)
        files = glob.glob(d + "/**/*.trace.json.gz", recursive=True)
        if not files:
            return {}
        with gzip.open(files[0]) as f:
            data = json.load(f)
    events = data["traceEvents"] if isinstance(data, dict) else data
    total: collections.Counter[str] = collections.Counter()
    for e in events:
        if e.get("ph") == "X" and not _SKIP.match(e.get("name", "")):
            total[e["name"]] += float(e.get("dur", 0.0))
    return {k: v / steps for k, v in total.most_common()}


_CATEGORIES = (
    ("convolution", re.compile(r"^convolution|onednn_conv|xnn_conv")),
    ("matmul", re.compile(r"^(dot|ynn_fusion|xnn_fusion|onednn|custom-call|__onednn)")),
    ("copy/transpose", re.compile(r"^(copy|transpose|bitcast)")),
    ("reduction", re.compile(r"reduce|slice_add|concatenate")),
    ("gather/rng", re.compile(r"gather|threefry|rng|random|iota")),
    ("elementwise/optimizer", re.compile(r"fusion|select|add|multiply|maximum|compare")),
)


def categorize(profile: dict[str, float]) -> dict[str, float]:
    """Sum per-op times into categories (the first matching pattern wins; ``other`` for the rest)."""
    out: collections.Counter[str] = collections.Counter()
    for name, us in profile.items():
        for cat, pat in _CATEGORIES:
            if pat.search(name):
                out[cat] += us
                break
        else:
            out["other"] += us
    return {k: round(v, 1) for k, v in out.most_common()}


def summarize(profile: dict[str, float], top: int = 12) -> list[tuple[str, float]]:
    """The ``top`` most expensive operations (name, µs per step)."""
    return [(k, round(v, 1)) for k, v in list(profile.items())[:top]]
