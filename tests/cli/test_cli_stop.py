"""Stopping ``jtricks run`` cleanly: a signal or ``--time-limit`` stops it at an epoch boundary with a verified
checkpoint, one line with the command that continues it and exit 128 + signal (75 for the time limit); the continued
run is byte-identical to an uninterrupted one. ``--resume auto`` continues or starts fresh.

Real subprocesses (``python -m jtricks``) on tiny digits runs.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # real jtricks runs / processes: left out of `-m "not slow"`

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "JAX_PLATFORMS": "cpu"}
TIMEOUT = 300  # seconds for one process: generous, on a loaded machine

TINY = (
    "from jtricks.experiment import Experiment\n"
    "EXPERIMENT = Experiment(name='tiny', dataset='digits', preprocess='unit', n_val=100, n_train=256,\n"
    "    model='mlp', model_kwargs={{'widths': (16,)}}, hparams={{'learning_rate': 3e-3}}, epochs={epochs},\n"
    "    batch_size=64, eval_batch_size=256, seeds=2)\n"
)


def _exp(tmp_path: Path, epochs: int) -> Path:
    f = tmp_path / "tiny.py"
    f.write_text(TINY.format(epochs=epochs))
    return f


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(
            [sys.executable, "-m", "jtricks", *args], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=TIMEOUT
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"`jtricks {shlex.join(args)}` did not finish within {TIMEOUT} s")


def _continue(command: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run the command a stopped run printed (``jtricks run ...``) as ``python -m jtricks run ...``."""
    words = shlex.split(command)
    assert words[0] == "jtricks", command
    return _cli(*words[1:], cwd=cwd)


def _the_line(p: subprocess.CompletedProcess) -> str:
    """The one line a stopped run prints on stderr (besides the banner and the --resume auto notice)."""
    assert "Traceback" not in p.stderr, p.stderr
    lines = [
        ln
        for ln in p.stderr.splitlines()
        if ln.strip() and " arms x " not in ln and not ln.startswith("jtricks run: resuming from")
    ]
    assert len(lines) == 1 and lines[0].startswith("jtricks run: stopped "), p.stderr
    return lines[0]


def _default_signals() -> None:
    """In the child: the default dispositions (a test runner's worker may ignore some, and ignoring is inherited)."""
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1):
        signal.signal(s, signal.SIG_DFL)


def _same_results(a: Path, b: Path) -> None:
    for name in ("metrics.csv", "members.csv"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), f"{name} of {a} differs from {b}"


def test_sigterm_stops_at_an_epoch_boundary_then_resume_and_resume_auto_are_byte_identical(tmp_path):
    f = _exp(tmp_path, epochs=40)  # many fast epochs: still running when the signal lands
    full, out, auto = tmp_path / "full", tmp_path / "o", tmp_path / "auto"
    args = ["run", str(f), "--out", str(out), "--quiet", "--no-plot"]
    assert _cli("run", str(f), "--out", str(full), "--quiet", "--no-plot", cwd=tmp_path).returncode == 0
    proc = subprocess.Popen(
        [sys.executable, "-m", "jtricks", *args],
        cwd=tmp_path,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_default_signals,
    )
    first = out / "checkpoints" / "group0_chunk0" / "1"
    deadline = time.monotonic() + TIMEOUT
    while not first.is_dir() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert first.is_dir(), f"no checkpoint of epoch 1 within {TIMEOUT} s (exit {proc.poll()})"
    proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"the run did not stop within {TIMEOUT} s of SIGTERM")
    p = subprocess.CompletedProcess(proc.args, proc.returncode, "", err)
    assert p.returncode == 143, err
    m = re.fullmatch(
        r"jtricks run: stopped by SIGTERM after epoch (\d+)/40; its checkpoint is verified; continue with: (.+)",
        _the_line(p),
    )
    assert m is not None, err
    epoch, command = int(m.group(1)), m.group(2)
    assert command == shlex.join(["jtricks", *args, "--resume"])
    assert 1 <= epoch < 40 and (out / "checkpoints" / "group0_chunk0" / str(epoch)).is_dir()
    assert not (out / "manifest.json").exists()
    shutil.copytree(out, auto)
    # --resume auto still refuses another run's checkpoints (and leaves them as they were)
    other = ["--resume", "auto", "--epochs", "41"]
    p = _cli("run", str(f), "--out", str(auto), "--quiet", "--no-plot", *other, cwd=tmp_path)
    assert p.returncode == 2 and "was made with other settings (experiment.epochs: 40 -> 41)" in p.stderr, p.stderr
    assert (auto / "checkpoints" / "group0_chunk0" / str(epoch)).is_dir()
    # the printed command finishes the run
    p = _continue(command, tmp_path)
    assert p.returncode == 0, p.stderr
    _same_results(out, full)
    p = _cli("run", str(f), "--out", str(auto), "--quiet", "--no-plot", "--resume", "auto", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert f"jtricks run: resuming from the checkpoints in {auto} (newest: epoch {epoch})" in p.stderr, p.stderr
    _same_results(auto, full)


def test_resume_auto_starts_fresh_on_an_empty_folder_and_does_nothing_on_a_finished_one(tmp_path):
    f, out = _exp(tmp_path, epochs=2), tmp_path / "o"
    p = _cli("run", str(f), "--out", str(out), "--quiet", "--no-plot", "--resume", "auto", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert f"jtricks run: no checkpoints in {out}; nothing to resume, starting from epoch 0" in p.stderr
    assert (out / "manifest.json").is_file()
    before = (out / "metrics.csv").read_bytes()
    p = _cli("run", str(f), "--out", str(out), "--quiet", "--no-plot", "--resume", "auto", cwd=tmp_path)
    assert p.returncode == 0 and f"{out} holds a finished run, nothing to resume" in p.stderr, p.stderr
    assert (out / "metrics.csv").read_bytes() == before


def test_time_limit_stops_with_exit_75_and_the_continued_run_is_byte_identical(tmp_path):
    f = _exp(tmp_path, epochs=2)
    full, out = tmp_path / "full", tmp_path / "o"
    assert _cli("run", str(f), "--out", str(full), "--quiet", "--no-plot", cwd=tmp_path).returncode == 0
    # too short for the whole run: after epoch 1 the next epoch plus the writing margin does not fit; with
    # --checkpoint-every 2 the checkpoint of epoch 1 is the one the stop itself writes
    args = ["run", str(f), "--out", str(out), "--quiet", "--no-plot", "--time-limit", "00:00:01"]
    p = _cli(*args, "--checkpoint-every", "2", cwd=tmp_path)
    assert p.returncode == 75, p.stderr
    m = re.fullmatch(
        r"jtricks run: stopped after epoch 1/2 to stay within --time-limit 00:00:01 \(the next epoch would take "
        r"about [0-9.]+ s\); its checkpoint is verified; continue with: (.+)",
        _the_line(p),
    )
    assert m is not None, p.stderr
    assert m.group(1) == shlex.join(["jtricks", *args, "--checkpoint-every", "2", "--resume"])
    assert sorted(d.name for d in (out / "checkpoints" / "group0_chunk0").iterdir() if d.name.isdigit()) == ["1"]
    p = _continue(m.group(1), tmp_path)  # one epoch left: a run always makes an epoch of progress
    assert p.returncode == 0, p.stderr
    _same_results(out, full)


@pytest.mark.parametrize("value", ["abc", "0", "=-5", "1:60", "1h", "1-24:00:00"])
def test_bad_time_limit_is_one_line_naming_the_flag(tmp_path, value):
    f, out = _exp(tmp_path, epochs=1), tmp_path / "o"
    flag = ["--time-limit" + value] if value.startswith("=") else ["--time-limit", value]
    p = _cli("run", str(f), "--out", str(out), *flag, cwd=tmp_path)
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("jtricks run: --time-limit must be "), p.stderr
    assert not out.exists()


def test_bad_checkpoint_every_is_one_line(tmp_path):
    p = _cli("run", str(_exp(tmp_path, epochs=1)), "--checkpoint-every", "0", cwd=tmp_path)
    assert p.returncode == 2 and p.stderr.strip() == "jtricks run: --checkpoint-every must be a positive int, got 0"
