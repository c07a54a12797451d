"""Test-run setup: one persistent XLA compilation cache and one data cache shared by the test processes.

Many tests (and the ``jtricks`` command-line processes they start) compile the same small programs; with
JAX's persistent compilation cache each distinct program is compiled once per test run. The cache is a
fresh folder per test run (so results never depend on an earlier run) and the executables are the ones a
compile would give, so every numeric assertion is unaffected.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

# set before jax is imported anywhere (pytest imports conftest.py first); subprocesses inherit it
_SESSION = os.environ.get("PYTEST_XDIST_TESTRUNUID") or str(os.getppid())
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(Path(tempfile.gettempdir()) / f"jtricks-tests-xla-{_SESSION}"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
# generated data sets (MNIST-1D) are kept under $XDG_CACHE_HOME/jtricks: a fresh folder per test run, never the user's
os.environ["XDG_CACHE_HOME"] = str(Path(tempfile.gettempdir()) / f"jtricks-tests-cache-{_SESSION}")

# the suite runs in the portable numerics mode (the default of `jtricks run` and `runner.run`), pinned before any
# test starts JAX: the same programs, and so the same bits, on every x86-64 CPU from AVX2 up (AVX-512 or not)
from jtricks import runtime as _runtime  # noqa: E402  (after the environment above)

_runtime.pin_numerics("portable")
