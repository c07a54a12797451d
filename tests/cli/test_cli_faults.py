"""The CLI on bad input and interruptions: one line and exit 2, exit 130 on Ctrl-C, --resume says what it does.

Real subprocesses (``python -m jtricks``) on tiny digits runs.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from support import processes

from jtricks import experiment as jexp
from jtricks import results_io

pytestmark = pytest.mark.slow  # real jtricks runs / processes: left out of `-m "not slow"`

REPO = Path(__file__).resolve().parents[2]
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


#: runs the command line and SIGKILLs it right after the checkpoint of epoch N
KILL_AFTER_EPOCH = Path(__file__).resolve().parents[1] / "support" / "kill_after_epoch.py"


def _cli(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return processes.run([sys.executable, "-m", "jtricks", *args], cwd=cwd, env=env or ENV)


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
    _one_line_error(
        _cli("run", str(missing), cwd=tmp_path), "ModuleNotFoundError: No module named 'no_such_module_here'"
    )
    p = _cli("run", str(missing), "--debug", cwd=tmp_path)
    assert p.returncode == 1 and "Traceback" in p.stderr


def test_out_is_a_file_or_below_a_file(tmp_path):
    f = _exp(tmp_path)
    blocker = tmp_path / "results"
    blocker.write_text("")
    _one_line_error(
        _cli("run", str(f), "--out", str(blocker), cwd=tmp_path), f"--out {blocker} is a file, not a folder"
    )
    _one_line_error(_cli("run", str(f), "--out", str(blocker / "x"), cwd=tmp_path), f"{blocker} is a file")


@pytest.mark.parametrize(
    "setting, fragment",
    [
        ("seed_offset=-5", "'seed_offset' must be an int >= 0, got -5"),
        ("split_seed=abc", "'split_seed' must be an int >= 0, got 'abc'"),
        ("dataset_kwargs={'colour': 1}", "'dataset_kwargs' ['colour'] are not arguments of the 'digits' loader"),
        ("metrics=abc", "'metrics' must be None or a non-empty list of metric names (e.g. ['val_acc']), got 'abc'"),
        ("metrics=[abc]", "metrics ['abc'] are measured by no arm"),
        ("target=abc", "'target' must be None, a finite number (a val_acc target) or {metric: number}, got 'abc'"),
        ("target={'val_accc': 0.5}", "'target' names metric 'val_accc', measured by no arm"),
        ("equivalence_margin=-1", "equivalence_margin must be a finite number > 0, got -1"),
        ("equivalence_margin={'val_accc': 0.01}", "equivalence_margin names metric 'val_accc', measured by no arm"),
    ],
)
def test_data_settings_fail_before_loading(tmp_path, setting, fragment):
    _one_line_error(
        _cli("run", str(_exp(tmp_path)), "--out", str(tmp_path / "o"), "--set", setting, cwd=tmp_path), fragment
    )
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "setting, fragment",
    [
        ("batch_size=100000", "batch_size=100000 exceeds the 256 training examples"),
        ("n_val=5000", "n_val=5000 leaves no training examples: the data set has 1437"),
        ("n_train=5000", "n_train=5000 exceeds the 1337 training examples left after the validation split"),
    ],
)
def test_data_dependent_settings_fail_after_loading_and_leave_no_folder(tmp_path, setting, fragment):
    """Checked against the loaded data, before anything compiles or is written."""
    _one_line_error(
        _cli("run", str(_exp(tmp_path)), "--out", str(tmp_path / "o"), "--set", setting, cwd=tmp_path), fragment
    )
    assert not (tmp_path / "o").exists()


def test_broken_idx_files_are_one_line(tmp_path):
    data = tmp_path / "fm"
    data.mkdir()
    for stem in (
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ):
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
    _one_line_error(
        _cli("run", str(f), "--out", str(out), "--resume", "--no-checkpoint", cwd=tmp_path), "--no-checkpoint"
    )
    (out / "metrics.csv").write_bytes(before[: len(before) // 2])
    _one_line_error(_cli("report", str(out), cwd=tmp_path), f"{out / 'metrics.csv'} does not match manifest.json")
    (out / "metrics.csv").write_bytes(before.splitlines(keepends=True)[0])  # header only
    _one_line_error(_cli("report", str(out), cwd=tmp_path), f"{out / 'metrics.csv'} does not match manifest.json")
    (out / "manifest.json").unlink()
    _one_line_error(_cli("report", str(out), cwd=tmp_path), f"{out} has no manifest.json: the run did not finish")


def test_ctrl_c_exits_130_with_a_resume_hint_and_resume_finishes(tmp_path):
    f = _exp(tmp_path)
    f.write_text(f.read_text().replace("epochs=1", "epochs=60"))  # many fast epochs: still running when SIGINT lands
    out = tmp_path / "o"
    # the default SIGINT disposition for the child: a test runner's worker may ignore SIGINT, and an ignored
    # disposition is inherited (Python then installs no KeyboardInterrupt handler)
    proc = subprocess.Popen(
        [sys.executable, "-m", "jtricks", "run", str(f), "--out", str(out), "--no-plot"],
        cwd=tmp_path,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + processes.limit()
    seen = ""
    while "epoch 2/60" not in seen:  # training is under way: the checkpoint of epoch 1 is complete
        line = proc.stderr.readline()
        if not line or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the run never reached epoch 2 (exit {proc.wait()}); its output:\n{seen[-2000:]}")
        seen += line
    proc.send_signal(signal.SIGINT)
    _, err = processes.communicate(proc)
    err = seen + err
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    # the first Ctrl-C stops the run at the next epoch boundary, with a verified checkpoint of that epoch
    m = re.fullmatch(
        r"jtricks run: stopped by SIGINT after epoch (\d+)/60; its checkpoint is verified; continue with: "
        r"jtricks run \S+ --out \S+ --no-plot --resume",
        err.strip().splitlines()[-1],
    )
    assert m is not None, err
    epoch = int(m.group(1))
    assert 1 <= epoch < 60 and (out / "checkpoints" / "group0_chunk0" / str(epoch)).is_dir()  # complete
    assert not (out / "manifest.json").exists()
    p = _cli("run", str(f), "--out", str(out), "--quiet", "--no-plot", "--resume", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    manifest = results_io.check_complete(out)  # all 60 epochs, consistent
    assert manifest["seeds"] == [0] and manifest["config"]["epochs"] == 60


# ------------------------------------------------------------------- resume, damage, locks, writes
def test_resume_refuses_other_settings_and_survives_a_damaged_checkpoint(tmp_path):
    f = _exp(tmp_path)
    f.write_text(f.read_text().replace("epochs=1", "epochs=3").replace("seeds=1", "seeds=2"))
    full, out = tmp_path / "full", tmp_path / "o"
    assert _cli("run", str(f), "--out", str(full), "--quiet", "--no-plot", cwd=tmp_path).returncode == 0
    killed = processes.run(
        [sys.executable, str(KILL_AFTER_EPOCH), "2", "run", str(f), "--out", str(out), "--quiet", "--no-plot"],
        cwd=tmp_path,
        env=ENV,
    )
    assert killed.returncode == -signal.SIGKILL
    ck = out / "checkpoints" / "group0_chunk0"
    assert sorted(p.name for p in ck.iterdir() if p.name.isdigit()) == ["1", "2"]
    # (a) other settings: exit 2 naming what differs, checkpoints untouched
    for args, fragment in [
        (["--set", "learning_rate=0.01"], "experiment.hparams.learning_rate: 0.003 -> 0.01"),
        (["--seeds", "1"], "experiment.seeds: 2 -> 1"),
        (["--epochs", "2"], "experiment.epochs: 3 -> 2"),
    ]:
        p = _cli("run", str(f), "--out", str(out), "--quiet", "--no-plot", "--resume", *args, cwd=tmp_path)
        _one_line_error(p, f"the checkpoint {ck} was made with other settings (")
        assert fragment in p.stderr, p.stderr
    assert sorted(p.name for p in ck.iterdir() if p.name.isdigit()) == ["1", "2"]
    # (b) every checkpoint damaged: exit 2 with the way out
    broken = tmp_path / "broken"
    shutil.copytree(out, broken)
    for step in ("1", "2"):
        for data_file in _array_files(broken / "checkpoints" / "group0_chunk0" / step):
            _flip_64_bytes(data_file)
    p = _cli("run", str(f), "--out", str(broken), "--quiet", "--resume", cwd=tmp_path)
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    *warnings, last = [ln for ln in p.stderr.splitlines() if ln.strip() and " arms x " not in ln]
    assert len(warnings) == 2 and all(w.startswith("jtricks: warning: checkpoint ") for w in warnings), p.stderr
    assert last.startswith(f"jtricks run: no intact checkpoint in {broken / 'checkpoints' / 'group0_chunk0'}: ")
    assert last.endswith(f"start over without --resume (or delete {broken / 'checkpoints' / 'group0_chunk0'})")
    # (b) the newest damaged: a warning, the previous one is used, the results are byte-identical
    _flip_64_bytes(_array_files(ck / "2")[-1])
    p = _cli("run", str(f), "--out", str(out), "--quiet", "--no-plot", "--resume", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert f"jtricks: warning: checkpoint {ck / '2'} is damaged" in p.stderr and "trying the previous one" in p.stderr
    for name in ("metrics.csv", "members.csv"):
        assert (out / name).read_bytes() == (full / name).read_bytes(), name


def _array_files(step_dir: Path) -> list[Path]:
    """The array data files of a checkpoint step (orbax's ``d/`` folders), smallest first."""
    files = [p for p in step_dir.rglob("*") if p.is_file() and p.parent.name == "d"]
    assert files, f"no array files in {step_dir}"
    return sorted(files, key=lambda p: p.stat().st_size)


def _flip_64_bytes(f: Path) -> None:
    b = bytearray(f.read_bytes())
    mid = max(0, len(b) // 2 - 32)
    b[mid : mid + 64] = bytes(x ^ 0xFF for x in b[mid : mid + 64])
    f.write_bytes(bytes(b))


_HOLD = textwrap.dedent(
    """
    import sys
    from jtricks import results_io
    with results_io.lock(sys.argv[1]):
        print("locked", flush=True)
        sys.stdin.read()  # hold until the parent closes stdin
    """
)


def test_a_second_writer_is_refused_with_the_holders_pid(tmp_path):
    f, out = _exp(tmp_path), tmp_path / "o"
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(out)], env=ENV, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        p = _cli("run", str(f), "--out", str(out), "--quiet", cwd=tmp_path)
        _one_line_error(p, f"{out} is in use by PID {holder.pid}")
        assert p.stderr.strip().splitlines()[-1] == f"jtricks run: {out} is in use by PID {holder.pid}"
        _one_line_error(_cli("report", str(out), cwd=tmp_path), f"{out} is in use by PID {holder.pid}")
        assert sorted(p.name for p in out.iterdir()) == [".lock", ".lock.held"]  # nothing written but the lock
    finally:
        holder.stdin.close()
        processes.wait(holder)


def test_unwritable_checkpoint_path_ends_the_run_promptly(tmp_path):
    f, out = _exp(tmp_path), tmp_path / "o"
    out.mkdir()
    (out / "checkpoints").write_text("a file where the checkpoints go")
    p = _cli("run", str(f), "--out", str(out), "--quiet", cwd=tmp_path)  # a hang fails the test
    _one_line_error(p, f"cannot write checkpoint {out / 'checkpoints' / 'group0_chunk0' / '1'}: Not a directory")
    assert p.stderr.strip().splitlines()[-1] == (
        f"jtricks run: cannot write checkpoint {out / 'checkpoints' / 'group0_chunk0' / '1'}: Not a directory"
    )
    assert not (out / "manifest.json").exists()


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


def test_a_finished_or_unfinished_folder_is_not_overwritten_without_overwrite(tmp_path):
    f, out = _exp(tmp_path), tmp_path / "o"
    assert _cli("run", str(f), "--out", str(out), "--quiet", "--no-plot", cwd=tmp_path).returncode == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    p = _cli("run", str(f), "--out", str(out), "--quiet", "--no-plot", "--epochs", "2", cwd=tmp_path)
    _one_line_error(p, f"{out} holds a finished run (tiny, ")
    assert "--overwrite" in p.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before  # nothing touched
    # an unfinished run (checkpoints, no manifest) points at --resume
    (out / "manifest.json").unlink()
    (out / "checkpoints" / "group0_chunk0").mkdir(parents=True)
    p = _cli("run", str(f), "--out", str(out), "--quiet", "--no-plot", cwd=tmp_path)
    _one_line_error(p, f"{out} holds an unfinished run (checkpoints); continue it with --resume")
    _one_line_error(_cli("run", str(f), "--out", str(out), "--resume", "--overwrite", cwd=tmp_path), "give one")
    p = _cli("run", str(f), "--out", str(out), "--quiet", "--no-plot", "--epochs", "2", "--overwrite", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert not (out / "checkpoints").exists()
    assert results_io.check_complete(out)["config"]["epochs"] == 2
