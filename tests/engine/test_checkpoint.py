"""Checkpoints: checksummed, fingerprinted, the last two kept; damage and write failures end cleanly."""

from __future__ import annotations

import logging
import os
import sys
import textwrap
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest
from support import processes

from jtricks import checkpoint as ck
from jtricks import fingerprint as jfp

REPO = Path(__file__).resolve().parents[2]
FP = jfp.run_fingerprint({"learning_rate": 0.001, "seeds": [0, 1]})


def _state(scale: float = 1.0) -> dict:
    return {
        "w": jnp.arange(600.0, dtype=jnp.float32).reshape(20, 30) * scale,
        "step": jnp.int32(7),
        "alive": jnp.array([True, False]),
    }


def _history(epochs: int) -> list[dict]:
    return [{"val_acc": np.array([0.5 + e, 0.25], np.float32)} for e in range(epochs)]


def _save_epochs(folder: Path, epochs: int) -> None:
    for e in range(1, epochs + 1):
        ck.save(folder, e, _state(e), _history(e), FP)


def _data_files(step_dir: Path) -> list[Path]:
    return sorted(
        (p for p in step_dir.rglob("*") if p.is_file() and p.parent.name == "d"), key=lambda p: p.stat().st_size
    )


def test_roundtrip_keeps_last_two_and_restores_exactly(tmp_path):
    _save_epochs(tmp_path, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["2", "3"]
    epoch, state, history = ck.restore(tmp_path, _state(), FP)
    assert epoch == 3
    for k, v in _state(3).items():
        assert state[k].dtype == v.dtype and np.array_equal(np.asarray(state[k]), np.asarray(v))
    assert len(history) == 3 and all(np.array_equal(h["val_acc"], r["val_acc"]) for h, r in zip(history, _history(3)))


def test_missing_or_empty_folder_restores_none(tmp_path):
    assert ck.restore(tmp_path / "nope", _state(), FP) is None
    (tmp_path / "empty").mkdir()
    assert ck.restore(tmp_path / "empty", _state(), FP) is None


def _flip_bit(f: Path) -> None:
    b = bytearray(f.read_bytes())
    b[len(b) // 2] ^= 0x01
    f.write_bytes(bytes(b))


def _truncate(f: Path) -> None:
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])


def _flip_64_bytes(f: Path) -> None:
    b = bytearray(f.read_bytes())
    mid = len(b) // 2 - 32
    b[mid : mid + 64] = bytes(x ^ 0xFF for x in b[mid : mid + 64])
    f.write_bytes(bytes(b))


def _warnings(caplog: pytest.LogCaptureFixture) -> str:
    """The warnings the checkpoint module logged (a run shows them on the terminal: jtricks.engine.runlog)."""
    return "\n".join(
        r.getMessage() for r in caplog.records if r.name == "jtricks.engine.checkpoint" and r.levelno == logging.WARNING
    )


@pytest.mark.parametrize("damage", [_flip_bit, _truncate, _flip_64_bytes])
def test_damaged_newest_falls_back_to_previous(tmp_path, caplog, damage):
    _save_epochs(tmp_path, 3)
    damage(_data_files(tmp_path / "3")[-1])  # the largest array file of the newest checkpoint
    epoch, state, history = ck.restore(tmp_path, _state(), FP)
    assert epoch == 2 and len(history) == 2
    assert np.array_equal(np.asarray(state["w"]), np.asarray(_state(2)["w"]))
    err = _warnings(caplog)
    assert f"jtricks: warning: checkpoint {tmp_path / '3'} is damaged" in err and "previous" in err
    # the next save replaces the damaged step
    ck.save(tmp_path, 3, _state(3), _history(3), FP)
    assert ck.restore(tmp_path, _state(), FP)[0] == 3


def test_damaged_metadata_is_detected(tmp_path, caplog):
    _save_epochs(tmp_path, 2)
    meta = tmp_path / "2" / "meta" / "metadata"
    meta.write_text(meta.read_text()[:-7])
    assert ck.restore(tmp_path, _state(), FP)[0] == 1
    assert "damaged" in _warnings(caplog)


def test_all_damaged_raises_with_recovery_hint(tmp_path):
    _save_epochs(tmp_path, 2)
    for step in ("1", "2"):
        for f in _data_files(tmp_path / step):
            _flip_bit(f)
    with pytest.raises(ck.CheckpointCorruptError, match=r"no intact checkpoint in .*start over without --resume"):
        ck.restore(tmp_path, _state(), FP)


def test_other_settings_are_named(tmp_path):
    _save_epochs(tmp_path, 1)
    other = jfp.run_fingerprint({"learning_rate": 0.1, "seeds": [0, 1]})
    with pytest.raises(jfp.FingerprintMismatchError, match=r"learning_rate: 0.001 -> 0.1"):
        ck.restore(tmp_path, _state(), other)


def test_other_state_shape_is_rejected(tmp_path):
    _save_epochs(tmp_path, 1)
    template = {**_state(), "w": jnp.zeros((10, 30))}
    with pytest.raises(jfp.FingerprintMismatchError, match="shape"):
        ck.restore(tmp_path, template, FP)


def test_save_into_a_file_path_fails_at_once(tmp_path):
    blocker = tmp_path / "checkpoints"
    blocker.write_text("not a folder")
    with pytest.raises(ck.CheckpointWriteError, match=rf"cannot write checkpoint {blocker}.*not a folder"):
        ck.save(blocker, 1, _state(), _history(1), FP)
    # a folder below a regular file is unwritable even for root
    with pytest.raises(ck.CheckpointWriteError, match=rf"cannot write checkpoint {blocker}/group0.*Not a directory"):
        ck.save(blocker / "group0", 1, _state(), _history(1), FP)


_FULL_DISK = textwrap.dedent(
    """
    import resource, signal, sys
    import numpy as np
    from jtricks import checkpoint as ck, fingerprint as jfp
    fp = jfp.run_fingerprint({"x": 1})
    big = {"w": np.random.default_rng(0).random(200_000)}
    ck.save(sys.argv[1], 1, big, [{"a": np.zeros(2)}], fp)          # fits
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))  # files over 100 kB fail (EFBIG), root included
    try:
        ck.save(sys.argv[1], 2, big, [{"a": np.zeros(2)}] * 2, fp)
    except ck.CheckpointWriteError as e:
        print("ERR", e.errno, e, flush=True)
        sys.exit(3)
    """
)


def test_write_failure_in_a_real_process_exits_promptly_and_keeps_the_previous(tmp_path):
    """A full file system (RLIMIT_FSIZE) mid-write: one error naming the path, no hang, step 1 still restores."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "JAX_PLATFORMS": "cpu"}
    p = processes.run([sys.executable, "-c", _FULL_DISK, str(tmp_path)], env=env)
    assert p.returncode == 3, p.stderr
    line = [ln for ln in p.stdout.splitlines() if ln.startswith("ERR")][0]
    assert line.startswith("ERR 27 ") and f"cannot write checkpoint {tmp_path / '2'}: File too large" in line
    big = {"w": np.zeros(200_000, np.float32)}
    epoch, state, _ = ck.restore(tmp_path, big, jfp.run_fingerprint({"x": 1}))  # the partial step 2 is ignored
    assert epoch == 1
    assert np.array_equal(np.asarray(state["w"]), np.random.default_rng(0).random(200_000).astype(np.float32))


def test_checksum_covers_dtype_shape_and_bytes():
    a = {"s": {"0": np.zeros(4, np.float32)}}
    assert ck.checksum(a) == ck.checksum({"s": {"0": np.zeros(4, np.float32)}})
    assert ck.checksum(a) != ck.checksum({"s": {"0": np.zeros((2, 2), np.float32)}})
    assert ck.checksum(a) != ck.checksum({"s": {"0": np.zeros(4, np.int32)}})
    assert ck.checksum(a) != ck.checksum({"s": {"0": np.array([0, 0, 0, 1e-45], np.float32)}})
