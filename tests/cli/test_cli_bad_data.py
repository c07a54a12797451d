"""The command line on bad data.

Real subprocesses (``python -m jtricks``): non-finite features refused in one line (exit 2); with
``allow_nonfinite=True`` the members that diverge in epoch 1 from finite initial parameters are named in one
warning line.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from support import processes

from jtricks import runner

pytestmark = pytest.mark.slow  # real jtricks runs / processes: left out of `-m "not slow"`

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "JAX_PLATFORMS": "cpu"}

NAN_DATA = """
import numpy as np

from jtricks import data
from jtricks.experiment import Experiment

rng = np.random.default_rng(0)
x = rng.normal(size=(300, 8)).astype(np.float32)
y = (x[:, 0] > 0).astype(np.int32)
x[1::3, 1] = np.nan
DS = data.arrays(x[:200], y[:200], x[200:], y[200:], num_classes=2{allow})
EXPERIMENT = Experiment(
    name="nan", dataset=DS, preprocess="raw", n_val=50, model="mlp", model_kwargs={{"widths": (8,)}},
    grid={{"learning_rate": [1e-3, 1e-2]}}, epochs=2, batch_size=50, eval_batch_size=50, seeds=2,
)
"""


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return processes.run([sys.executable, "-m", "jtricks", *args], cwd=cwd, env=ENV)


def test_nonfinite_features_are_refused_in_one_line(tmp_path: Path) -> None:
    f = tmp_path / "nan.py"
    f.write_text(NAN_DATA.format(allow=""))
    p = _cli("run", str(f), "--no-plot", "--quiet", "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert p.stderr.splitlines() == [
        "jtricks run: Dataset 'arrays': the train features hold 67 non-finite values (NaN/Inf), first at example 1; "
        "clean them or pass allow_nonfinite=True"
    ]
    assert not (tmp_path / "out").exists()


def test_members_diverging_in_epoch_one_from_finite_init_are_named(tmp_path: Path) -> None:
    f = tmp_path / "nan.py"
    f.write_text(NAN_DATA.format(allow=", allow_nonfinite=True"))
    out = tmp_path / "out"
    p = _cli("run", str(f), "--no-plot", "--quiet", "--cpu-devices", "1", "--out", str(out), cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "diverged members: 4;" in p.stdout
    warnings = [ln for ln in p.stderr.splitlines() if ln.startswith("jtricks: warning:")]
    assert warnings == [
        "jtricks: warning: 4 members diverged in epoch 1, from finite initial parameters (the epoch-1 loss is already "
        "non-finite or exploded): learning_rate=0.001/seed=0, learning_rate=0.001/seed=1, learning_rate=0.01/seed=0 "
        "and 1 more; the data or the loss may be the cause, or a learning rate far too large"
    ]
    members = (out / "members.csv").read_text().splitlines()
    assert len(members) == 5 and all(",1," in row for row in members[1:])  # diverged_epoch 1


def test_diverged_at_start_needs_epoch_one_and_finite_parameters() -> None:
    finite = {"w": np.ones((2, 2), np.float32)}
    rows = [
        {"arm": "a", "seed": 0, "diverged_epoch": 1},  # named
        {"arm": "a", "seed": 1, "diverged_epoch": 2},  # later
        {"arm": "b", "seed": 0, "diverged_epoch": 1},  # non-finite parameters
        {"arm": "b", "seed": 1, "diverged_epoch": -1},  # healthy
    ]
    states = {
        "a/seed=0": finite,
        "a/seed=1": finite,
        "b/seed=0": {"w": np.array([[1.0, np.nan]], np.float32)},
        "b/seed=1": finite,
    }
    res = runner.RunResult(None, [], [], rows, [], {}, 0.0, states)
    assert res.diverged_at_start() == ["a/seed=0"]
