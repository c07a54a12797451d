"""Portable numerics across CPUs, for real: the same run on this machine and under QEMU's user-mode emulation
of AVX2-only CPUs gives byte-identical results.

Emulation runs a whole jtricks process on an emulated CPU (its CPUID, so XLA, oneDNN and YNNPACK see an AVX2-only
machine) about 10x slower, so these tests run only when asked for (``JTRICKS_EMULATED=1``, which ``.ci/run``
sets in a step of its own when ``qemu-x86_64`` is installed). Emulation computes every IEEE operation as the
hardware does (fused multiply-adds included), but not approximate-reciprocal instructions, which jtricks' code
does not use.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(
    not os.environ.get("JTRICKS_EMULATED")
    or shutil.which("qemu-x86_64") is None
    or platform.machine().lower() not in ("x86_64", "amd64"),
    reason="emulated CPUs: set JTRICKS_EMULATED=1 with qemu-x86_64 installed (Debian: qemu-user)",
)

TINY = (
    "from jtricks.experiment import Experiment\n"
    "EXPERIMENT = Experiment(name='crosscpu', description='cross-CPU check', dataset='digits', "
    "preprocess='standardize',\n"
    "    n_val=200, n_train=512, model='mlp', model_kwargs={'widths': (32,), 'norm': 'batch'}, optimizer='adam',\n"
    "    hparams={'learning_rate': 3e-3, 'clip_norm': 1.0}, clip=True, epochs=2, batch_size=64, eval_batch_size=128,\n"
    "    seeds=2, grid={'dropout_rate': [0.0, 0.3]})\n"
)


def _run(tmp: Path, out: str, cpu: str | None) -> Path:
    cmd = [
        sys.executable,
        "-m",
        "jtricks",
        "run",
        "crosscpu.py",
        "--out",
        out,
        "--quiet",
        "--no-plot",
        "--no-save-models",
        "--no-compile-cache",
    ]
    if cpu is not None:
        cmd = ["qemu-x86_64", "-cpu", cpu, *cmd]
    p = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, timeout=1200)
    assert p.returncode == 0, p.stderr[-3000:]
    return tmp / out


@pytest.mark.parametrize("cpu", ["EPYC-Milan", "Haswell"])
def test_portable_run_is_byte_identical_on_an_emulated_avx2_cpu(tmp_path: Path, cpu: str) -> None:
    (tmp_path / "crosscpu.py").write_text(TINY)
    here = _run(tmp_path, "here", None)
    there = _run(tmp_path, "there", cpu)
    for name in ("metrics.csv", "members.csv", "summary.csv"):
        assert (here / name).read_bytes() == (there / name).read_bytes(), f"{name} differs on an emulated {cpu}"
