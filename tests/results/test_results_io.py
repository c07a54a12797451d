"""Run fingerprints, the results-folder lock (real processes), atomic writes and the completeness check."""

from __future__ import annotations

import json
import lzma
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from support import processes

from jtricks import fingerprint as jfp
from jtricks import report as jreport
from jtricks import results_io as rio
from jtricks._core import files as jfiles

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "JAX_PLATFORMS": "cpu"}


# ------------------------------------------------------------------------------------ fingerprint
def test_fingerprint_is_canonical_and_stable():
    a = jfp.run_fingerprint({"b": (64, 64), "a": np.float32(0.5), "c": {"y": 1, "x": None}})
    b = jfp.run_fingerprint({"c": {"x": None, "y": 1}, "a": 0.5, "b": [64, 64]})
    assert a == b
    assert a["sha256"] == "{}".format(
        __import__("hashlib").sha256(b'{"a":0.5,"b":[64,64],"c":{"x":null,"y":1}}').hexdigest()
    )
    assert jfp.run_fingerprint({"x": float("nan")})["settings"] == {"x": "nan"}
    with pytest.raises(TypeError, match=r"model\.init must be JSON-like"):
        jfp.run_fingerprint({"model": {"init": lambda k: k}})


def test_only_summary_choices_are_left_out_of_the_fingerprint():
    """How rows are summarised (metrics, baseline, target, adjustment, equivalence margin) and the labels do not
    enter a run's fingerprint; ``train_eval``, a reporting setting that adds metric rows, does."""
    from jtricks import experiment as jexp

    assert jexp.REPORT_ONLY == {
        "metrics",
        "baseline",
        "target",
        "adjust",
        "equivalence_margin",
        "test_bootstrap",
        "name",
        "description",
    }
    assert "train_eval" in jexp.SETTINGS and jexp.SETTINGS["train_eval"]["section"] == "reporting"


def test_diff_names_the_changed_settings():
    a = jfp.run_fingerprint({"experiment": {"epochs": 16, "hparams": {"learning_rate": 0.001}}, "seeds": [0, 1]})
    b = jfp.run_fingerprint({"experiment": {"epochs": 10, "hparams": {"learning_rate": 0.1}}, "seeds": [0]})
    assert jfp.diff(a, b) == [
        "experiment.epochs: 16 -> 10",
        "experiment.hparams.learning_rate: 0.001 -> 0.1",
        "seeds: [0, 1] -> [0]",
    ]
    assert jfp.diff(a, a) == []
    assert jfp.diff({"x": 1}, {"y": 1}) == ["x: 1 -> <absent>", "y: <absent> -> 1"]
    with pytest.raises(
        jfp.FingerprintMismatchError, match=r"the checkpoint was made with other settings \(experiment.epochs: 16 -> 10"
    ):
        jfp.check_same(a, b, "the checkpoint")
    jfp.check_same(a, jfp.run_fingerprint(a["settings"]), "same")  # equal: no error


def test_data_checksum_sees_values_dtype_and_shape():
    x = np.arange(6, dtype=np.float32)
    assert jfp.data_checksum(x, np.arange(3)) == jfp.data_checksum(x.copy(), np.arange(3))
    assert jfp.data_checksum(x) != jfp.data_checksum(x.reshape(2, 3))
    assert jfp.data_checksum(x) != jfp.data_checksum(x.astype(np.float64))
    y = x.copy()
    y[3] = np.nextafter(y[3], np.float32(10))
    assert jfp.data_checksum(x) != jfp.data_checksum(y)


# ------------------------------------------------------------------------------------------- lock
_HOLD = textwrap.dedent(
    """
    import sys
    from jtricks import results_io as rio
    with rio.lock(sys.argv[1]):
        print("locked", flush=True)
        sys.stdin.read()  # hold until the parent closes stdin
    """
)
_TRY = textwrap.dedent(
    """
    import sys
    from jtricks import results_io as rio
    try:
        with rio.lock(sys.argv[1]):
            print("got it")
    except rio.FolderInUseError as e:
        print(e, file=sys.stderr)
        sys.exit(2)
    """
)


def _holder(folder: Path) -> subprocess.Popen:
    p = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(folder)], env=ENV, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert p.stdout.readline().strip() == "locked"
    return p


def test_second_writer_sees_in_use_by_pid(tmp_path):
    out = tmp_path / "run"
    holder = _holder(out)
    try:
        other = processes.run([sys.executable, "-c", _TRY, str(out)], env=ENV)
        assert other.returncode == 2
        assert other.stderr.strip().endswith(f"{out} is in use by PID {holder.pid}")
        with pytest.raises(rio.FolderInUseError, match=f"in use by PID {holder.pid}"):
            with rio.lock(out):
                pass
        assert rio.lock_holder(out) == holder.pid
    finally:
        holder.stdin.close()
        processes.wait(holder)
    assert not (out / ".lock").exists() and not (out / ".lock.held").exists()  # released
    assert rio.lock_holder(out) is None
    with rio.lock(out) as path:
        assert path.read_text().split()[0] == str(os.getpid())
    assert list(out.iterdir()) == []


def test_lock_of_a_killed_process_is_stale_and_taken_over(tmp_path):
    out = tmp_path / "run"
    holder = _holder(out)
    holder.send_signal(signal.SIGKILL)
    processes.wait(holder)
    assert (out / ".lock").read_text().split()[0] == str(holder.pid)  # left behind
    assert rio.lock_holder(out) is None
    with rio.lock(out) as path:
        assert path.read_text().split()[0] == str(os.getpid())
    (out / ".lock").write_text("999999999 somehost\n")  # a hand-made stale lock with a PID that does not exist
    with rio.lock(out):
        pass
    assert list(out.iterdir()) == []


def test_results_folders_import_without_fcntl(tmp_path):
    """No POSIX-only module at import time (Windows has no fcntl): the lock works through filelock."""
    script = (
        "import sys; sys.modules['fcntl'] = None\n"
        "from jtricks.results import folders\n"
        f"with folders.lock({str(tmp_path / 'run')!r}) as p: print(p.name)\n"
    )
    p = subprocess.run([sys.executable, "-c", script], env=ENV, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and p.stdout.split() == [".lock"], p.stderr


def test_lock_on_a_file_or_below_a_file_names_the_path(tmp_path):
    f = tmp_path / "afile"
    f.write_text("x")
    with pytest.raises(NotADirectoryError, match=f"cannot use {f} as the results folder: it is a file"):
        with rio.lock(f):
            pass
    with pytest.raises(OSError, match=f"cannot create the results folder {f / 'sub'}: Not a directory"):
        with rio.lock(f / "sub"):
            pass


# ------------------------------------------------------------------------------------------ atomic
def test_write_atomic_replaces_whole_and_leaves_nothing_on_failure(tmp_path):
    p = tmp_path / "manifest.json"
    jfiles.write_atomic(p, "old\n")
    jfiles.write_atomic(p, b"new\n")
    assert p.read_bytes() == b"new\n"
    with pytest.raises(RuntimeError):
        with jfiles.atomic_file(p) as tmp:
            tmp.write_text("partial")
            raise RuntimeError("killed mid-write")
    assert p.read_bytes() == b"new\n" and sorted(x.name for x in tmp_path.iterdir()) == ["manifest.json"]
    blocker = tmp_path / "f"
    blocker.write_text("")
    with pytest.raises(OSError, match=f"cannot write {blocker / 'metrics.csv'}: Not a directory"):
        jfiles.write_atomic(blocker / "metrics.csv", "x")


# ------------------------------------------------------------------------------------ completeness
def _finished_run(folder: Path, *, arms=("a", "b"), seeds=(0, 1), epochs=3) -> dict:
    rows = [
        {"arm": a, "seed": s, "epoch": e, "metric": m, "value": 0.5 + 0.01 * e + 0.001 * s}
        for a in arms
        for s in seeds
        for e in range(1, epochs + 1)
        for m in ("train_loss", "val_acc")
    ]
    jreport.write_metrics_csv(folder / "metrics.csv", rows)
    jreport.write_members_csv(
        folder / "members.csv",
        [
            {"arm": a, "seed": s, "diverged_epoch": -1, "stopped_epoch": -1, "best_epoch": epochs}
            for a in arms
            for s in seeds
        ],
    )
    jfiles.write_atomic(folder / "arms.json", json.dumps([{"arm": a, "factors": {}} for a in arms]))
    fp = jfp.run_fingerprint({"epochs": epochs, "seeds": list(seeds)})
    manifest = {
        "experiment": "t",
        "seeds": list(seeds),
        "config": {"epochs": epochs},
        "arms": [{"arm": a, "factors": {}} for a in arms],
    }
    rio.write_manifest(folder, manifest, fp)
    return fp


def test_complete_folder_passes_and_render_agrees(tmp_path):
    fp = _finished_run(tmp_path)
    man = rio.check_complete(tmp_path)
    assert man["fingerprint"] == fp and set(man["files"]) == {"metrics.csv", "members.csv", "arms.json"}


def test_publish_compresses_large_metrics_and_report_rerenders_the_copy_byte_for_byte(tmp_path, monkeypatch):
    """``publish``: the results without models, metrics.csv xz-compressed above the threshold (deterministic
    bytes); the copy passes ``check_complete`` (digests of the decompressed rows) and ``render`` gives the
    same summaries as in the run folder; a damaged stream is refused."""
    run, pub = tmp_path / "run", tmp_path / "pub"
    run.mkdir()
    _finished_run(run)
    jreport.render(run, plot=False)
    (run / "models").mkdir()
    monkeypatch.setattr(rio, "COMPRESS_ABOVE_BYTES", 10)
    rio.publish(run, pub)
    assert not (pub / "metrics.csv").exists() and not (pub / "models").exists()
    assert lzma.decompress((pub / "metrics.csv.xz").read_bytes()) == (run / "metrics.csv").read_bytes()
    first = (pub / "metrics.csv.xz").read_bytes()
    rio.publish(run, pub)
    assert (pub / "metrics.csv.xz").read_bytes() == first  # no time stamp: the same bytes every time
    rio.check_complete(pub)
    before = {n: (pub / n).read_bytes() for n in ("summary.md", "summary.csv")}
    jreport.render(pub, plot=False)
    assert {n: (pub / n).read_bytes() for n in before} == before == {n: (run / n).read_bytes() for n in before}
    (pub / "metrics.csv.xz").write_bytes(first[: len(first) // 2])
    with pytest.raises(ValueError, match="metrics.csv.xz"):
        rio.check_complete(pub)
    monkeypatch.setattr(rio, "COMPRESS_ABOVE_BYTES", 10**9)
    rio.publish(run, pub)  # small: plain, and the stale compressed copy is gone
    assert (pub / "metrics.csv").is_file() and not (pub / "metrics.csv.xz").exists()


def _truncate_lines(p: Path, keep: int) -> None:
    p.write_text("".join(p.read_text().splitlines(keepends=True)[:keep]))


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda d: _truncate_lines(d / "metrics.csv", 20), "metrics.csv does not match manifest.json"),
        (lambda d: _truncate_lines(d / "metrics.csv", 1), "metrics.csv does not match manifest.json"),
        (lambda d: (d / "metrics.csv").unlink(), "metrics.csv is missing"),
        (lambda d: (d / "manifest.json").unlink(), "has no manifest.json: the run did not finish"),
        (lambda d: (d / "checkpoints").mkdir(), "holds checkpoints of an unfinished run"),
        (
            lambda d: (d / "manifest.json").write_text((d / "manifest.json").read_text()[:40]),
            "manifest.json is unreadable",
        ),
    ],
)
def test_incomplete_or_inconsistent_folder_is_refused(tmp_path, damage, message):
    _finished_run(tmp_path)
    damage(tmp_path)
    with pytest.raises(ValueError, match=message) as info:
        rio.check_complete(tmp_path)
    assert "\n" not in str(info.value)


def _strip_records(folder: Path) -> None:
    """A folder written before results carried file checksums: only the rows can be checked."""
    man = json.loads((folder / "manifest.json").read_text())
    del man["files"], man["fingerprint"]
    (folder / "manifest.json").write_text(json.dumps(man))


@pytest.mark.parametrize(
    "keep, message",
    [
        (1, "has a header but no rows"),
        (14, r"is incomplete: arm 'b' seed 0 lacks epochs \[2, 3\]"),
        (20, r"is incomplete: arm 'b' seed 1 lacks epochs \[2, 3\]"),
        (24, r"is incomplete: arm 'b' seed 1 lacks epoch 3 of \['val_acc'\]"),  # the last row cut
    ],
)
def test_rows_are_checked_against_the_manifest(tmp_path, keep, message):
    _finished_run(tmp_path)
    _strip_records(tmp_path)
    rio.check_complete(tmp_path)
    _truncate_lines(tmp_path / "metrics.csv", keep)
    with pytest.raises(ValueError, match=message):
        rio.check_complete(tmp_path)


def test_summarised_metric_missing_and_a_row_cut_in_the_middle(tmp_path):
    _finished_run(tmp_path)
    _strip_records(tmp_path)
    man = json.loads((tmp_path / "manifest.json").read_text())
    (tmp_path / "manifest.json").write_text(json.dumps({**man, "metrics": ["val_acc", "test_acc"]}))
    with pytest.raises(ValueError, match=r"incomplete: no rows of \['test_acc'\]"):
        rio.check_complete(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps(man))
    data = (tmp_path / "metrics.csv").read_bytes()
    (tmp_path / "metrics.csv").write_bytes(data[:-3])  # inside the last value: the row still parses
    with pytest.raises(ValueError, match=r"metrics.csv is truncated \(its last row is cut off\)"):
        rio.check_complete(tmp_path)


def test_rows_of_another_run_and_an_edited_fingerprint_are_refused(tmp_path):
    _finished_run(tmp_path / "x", arms=("a", "b"))
    _finished_run(tmp_path / "y", arms=("a", "c"))
    _strip_records(tmp_path / "x")
    (tmp_path / "x" / "metrics.csv").write_bytes((tmp_path / "y" / "metrics.csv").read_bytes())
    with pytest.raises(ValueError, match="rows of arm 'c' seed 0 not in manifest.json"):
        rio.check_complete(tmp_path / "x")
    man = json.loads((tmp_path / "y" / "manifest.json").read_text())
    man["fingerprint"]["settings"]["epochs"] = 99
    (tmp_path / "y" / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(ValueError, match="fingerprint does not match its settings"):
        rio.check_complete(tmp_path / "y")
