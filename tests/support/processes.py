"""Subprocesses for the tests: generous time limits, scaled by ``JTRICKS_TEST_TIMEOUT_SCALE`` (default 1) on a
slow or busy machine, and a failure that says which command ran out of time, under what load, and its last
output (instead of a bare ``TimeoutExpired``). No test depends on how fast a process is, only on its finishing."""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Sequence
from typing import Any

import pytest

#: the limit of one test subprocess: minutes of slack over the seconds a quiet 2-core machine needs
LIMIT_S = 900.0


def limit(seconds: float = LIMIT_S) -> float:
    """``seconds`` scaled by ``JTRICKS_TEST_TIMEOUT_SCALE``."""
    return seconds * float(os.environ.get("JTRICKS_TEST_TIMEOUT_SCALE", "1"))


def _fail(cmd: Sequence[str] | str, seconds: float, output: Any) -> None:
    text = output.decode(errors="replace") if isinstance(output, bytes) else str(output or "")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    shown = cmd if isinstance(cmd, str) else shlex.join(str(c) for c in cmd)
    pytest.fail(
        f"{shown[:300]} ran past its limit of {seconds:.0f} s (load average {load}; raise "
        f"JTRICKS_TEST_TIMEOUT_SCALE on a slow machine); its last output:\n{text[-2000:]}",
        pytrace=False,
    )


def run(cmd: Sequence[str], *, timeout: float = LIMIT_S, **kwargs: Any) -> subprocess.CompletedProcess:
    """``subprocess.run(cmd, capture_output=True, text=True, ...)`` under :func:`limit` ``(timeout)``."""
    kwargs.setdefault("capture_output", True)
    kwargs.setdefault("text", True)
    try:
        return subprocess.run(cmd, timeout=limit(timeout), **kwargs)
    except subprocess.TimeoutExpired as e:
        _fail(cmd, limit(timeout), e.stderr or e.output)
        raise  # unreachable: pytest.fail raises


def communicate(proc: subprocess.Popen, *, timeout: float = LIMIT_S) -> tuple[Any, Any]:
    """``proc.communicate()`` under :func:`limit` ``(timeout)``; on timeout the process is killed first."""
    try:
        return proc.communicate(timeout=limit(timeout))
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        _fail(proc.args, limit(timeout), err or out)
        raise


def wait(proc: subprocess.Popen, *, timeout: float = LIMIT_S) -> int:
    """``proc.wait()`` under :func:`limit` ``(timeout)``; on timeout the process is killed first."""
    try:
        return proc.wait(timeout=limit(timeout))
    except subprocess.TimeoutExpired:
        proc.kill()
        _fail(proc.args, limit(timeout), "")
        raise
