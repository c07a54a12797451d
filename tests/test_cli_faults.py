"""The CLI on bad input and interruptions: one line and exit 2, exit 130 on Ctrl-C, --resume says what it does.

Real subprocesses (``python -m jtricks``) on tiny digits runs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jtricks import experiment as jexp

REPO = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(REPO), "JAX_PLATFORMS": "cpu"}

TINY = (
    "from jtricks.experiment import Experiment\n"
    "EXPERIMENT = Experiment(name='tiny', {dataset}, preprocess='unit', n_val=100, n_train=256,\n"
    "    model='mlp', model_kwargs={'widths': (16,)}, hparams={'learning_rate': 3e-3}, epochs=1,\n"
    "    batch_size=64, eval_batch_size=256, seeds=1{extra})\n"
)


def _exp(tmp_path: Path, extra: str = "", dataset: str = "dataset='digits'") -> Path:
    f = tmp_path / "tiny.py"
    f.write_text(TINY.replace("{extra}", extra).replace("{dataset}", dataset))
    return f


def _cli(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "jtricks", *args], cwd=cwd, env=env or ENV, capture_output=True, text=True, timeout=300)


def _one_line_error(p: subprocess.CompletedProcess, fragment: str) -> None:
    assert p.returncode == 2, p.stderr
    assert "Traceback" not in p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.strip() and " arms x " not in ln]  # minus the banner
    assert len(lines) == 1 and lines[0].startswith("jtricks ") and fragment in lines[0], p.stderr


def test_experiment_file_that_fails_to_import(tmp_path):
    bad = tmp_path / "broken.py"
    bad.write_text("from jtricks.experiment import Experiment\nEXPERIMENT = Experiment(name='x'\n")
    _one_line_error(_cli("run", str(bad), cwd=tmp_path), "SyntaxError")
    missing = tmp_path / "missing.py"
    missing.write_text("import no_such_module_here\n")
    _one_line_error(_cli("run", str(missing), cwd=tmp_path), "ModuleNotFoundError: No module named 'no_such_module_here'")
    p = _cli("run", str(missing), "--debug", cwd=tmp_path)
    assert p.returncode == 1 and "Traceback" in p.stderr


def test_out_is_a_file_or_below_a_file(tmp_path):
    f = _exp(tmp_path)
    blocker = tmp_path / "results"
    blocker.write_text("")
    _one_line_error(_cli("run", str(f), "--out", str(blocker), cwd=tmp_path), f"--out {blocker} is a file, not a folder")
    _one_line_error(_cli("run", str(f), "--out", str(blocker / "x"), cwd=tmp_path), f"{blocker} is a file")


@pytest.mark.parametrize(
    "setting, fragment",
    [
        ("seed_offset=-5", "'seed_offset' must be an int >= 0, got -5"),
        ("split_seed=abc", "'split_seed' must be an int >= 0, got 'abc'"),
        ("dataset_kwargs={'colour': 1}", "'dataset_kwargs' ['colour'] are not arguments of the 'digits' loader"),
    ],
)
def test_data_settings_fail_before_loading(tmp_path, setting, fragment):
    _one_line_error(_cli("run", str(_exp(tmp_path)), "--out", str(tmp_path / "o"), "--set", setting, cwd=tmp_path), fragment)
    assert not (tmp_path / "o").exists()


def test_broken_idx_files_are_one_line(tmp_path):
    data = tmp_path / "fm"
    data.mkdir()
    for stem in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (data / stem).write_bytes(b"\x00\x00\x08\x03\x00\x00\x00\x05")  # a header promising data that is not there
    f = _exp(tmp_path, dataset=f"dataset='fashion_mnist', dataset_kwargs={{'path': {str(data)!r}}}")
    _one_line_error(_cli("run", str(f), "--out", str(tmp_path / "o"), "--quiet", cwd=tmp_path), "IDX file")


def test_resume_on_missing_then_finished_folder_and_report_of_a_truncated_one(tmp_path):
    f = _exp(tmp_path)
    out = tmp_path / "o"
    p = _cli("run", str(f), "--out", str(out), "--quiet", "--no-plot", "--resume", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert f"no checkpoints in {out}; nothing to resume, starting from epoch 0" in p.stderr
    before = (out / "metrics.csv").read_bytes()
    p = _cli("run", str(f), "--out", str(out), "--quiet", "--resume", cwd=tmp_path)
    assert p.returncode == 0 and f"{out} holds a finished run, nothing to resume" in p.stderr
    assert (out / "metrics.csv").read_bytes() == before
    _one_line_error(_cli("run", str(f), "--out", str(out), "--resume", "--no-checkpoint", cwd=tmp_path), "--no-checkpoint")
    (out / "metrics.csv").write_bytes(before[: len(before) // 2])
    _one_line_error(_cli("report", str(out), cwd=tmp_path), "metrics.csv")


def test_ctrl_c_exits_130_with_a_resume_hint(tmp_path):
    f = _exp(tmp_path)
    f.write_text(f.read_text().replace("epochs=1", "epochs=400"))  # many fast epochs
    proc = subprocess.Popen([sys.executable, "-m", "jtricks", "run", str(f), "--out", str(tmp_path / "o"), "--no-plot"],
                            cwd=tmp_path, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    seen = ""
    while "epoch 2/400" not in seen and time.monotonic() < deadline:  # training is under way
        seen += proc.stderr.read(1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == "jtricks run: interrupted; continue with --resume"


# ------------------------------------------------------------------------------ --set lists
def _base(**kw) -> jexp.Experiment:
    return jexp.Experiment(name="t", dataset="digits", model="mlp", model_kwargs={"widths": (32,)}, **kw)


def test_set_list_makes_a_grid_factor():
    e = jexp.with_settings(_base(), {"learning_rate": [0.001, 0.01]})
    assert e.grid == {"learning_rate": [0.001, 0.01]}
    assert [a.name for a in jexp.validate(e)] == ["learning_rate=0.001", "learning_rate=0.01"]
    e = jexp.with_settings(_base(), {"optimizer": ["sgd", "adam"], "learning_rate": 0.1})
    assert e.grid == {"optimizer": ["sgd", "adam"]} and e.hparams == {"learning_rate": 0.1}


def test_set_list_of_a_sequence_valued_key():
    e = jexp.with_settings(_base(), {"model.widths": [64, 64]})  # one value: two hidden layers
    assert e.grid == {} and e.model_kwargs["widths"] == [64, 64]
    e = jexp.with_settings(_base(), {"model.widths": [[64], [64, 64]]})  # a sweep
    assert e.grid == {"model.widths": [(64,), (64, 64)]}
    assert [a.name for a in jexp.validate(e)] == ["widths=64", "widths=64x64"]
    e = jexp.with_settings(_base(grid={"model.widths": [(8,), (16,)]}), {"model.widths": [32, 32]})
    assert e.grid == {"model.widths": [(32, 32)]}  # replaces the factor by one value


def test_set_non_grid_keys_and_empty_lists():
    e = jexp.with_settings(_base(), {"metrics": ["val_acc"]})
    assert e.metrics == ["val_acc"] and e.grid == {}
    with pytest.raises(ValueError, match=r"--set learning_rate=\[\] gives no values"):
        jexp.with_settings(_base(), {"learning_rate": []})
