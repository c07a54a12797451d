"""The data cache is an optimization: a damaged entry is remade and an unusable folder (below a regular file,
read-only, a full disk) skipped, each with one warning line on stderr, and the data still loads."""

from __future__ import annotations

import contextlib
import errno
import gzip
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from jtricks import data
from jtricks._core import files as jfiles
from jtricks.data import _generated as data_generated
from jtricks.data import _idx as data_idx


def _fake_generated(seed: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    return (
        rng.normal(size=(50, 40)).astype(np.float32),
        rng.integers(0, 10, 50).astype(np.int32),
        rng.normal(size=(20, 40)).astype(np.float32),
        rng.integers(0, 10, 20).astype(np.int32),
    )


@pytest.fixture
def fake_mnist1d(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[int]:
    """MNIST-1D generation replaced by small seeded arrays (counted), a fresh cache under ``tmp_path``."""
    calls: list[int] = []

    def generate(seed: int) -> tuple[np.ndarray, ...]:
        calls.append(seed)
        return _fake_generated(seed)

    monkeypatch.setattr(data_generated, "generate_mnist1d", generate)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    data.clear_cache()
    yield calls
    data.clear_cache()


def _warnings(err: str) -> list[str]:
    return [ln for ln in err.splitlines() if ln.startswith("jtricks: warning:")]


def test_data_cache_below_a_regular_file_gives_one_warning_and_loads(
    fake_mnist1d: list[int], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the cache should be")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker / "sub"))
    ds = data.mnist1d(3)
    np.testing.assert_array_equal(ds.x_test, _fake_generated(3)[2])
    assert _warnings(capsys.readouterr().err) == [
        f"jtricks: warning: data cache {blocker}/sub/jtricks/mnist1d unusable (Not a directory); running without it"
    ]
    assert blocker.read_text() == "a file where the cache should be"


@pytest.mark.parametrize("code", [errno.EROFS, errno.ENOSPC])
def test_read_only_or_full_data_cache_gives_one_warning_and_loads(
    fake_mnist1d: list[int], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, code: int
) -> None:
    @contextlib.contextmanager
    def failing(path: str | os.PathLike) -> Iterator[Path]:
        raise jfiles.os_error(path, OSError(code, os.strerror(code)), "write")
        yield Path(path)  # pragma: no cover

    monkeypatch.setattr(jfiles, "atomic_file", failing)
    ds = data.mnist1d(4)
    assert ds.num_train == 50 and fake_mnist1d == [4]
    folder = data.mnist1d_cache_file(4).parent
    assert _warnings(capsys.readouterr().err) == [
        f"jtricks: warning: data cache {folder} unusable ({os.strerror(code)}); running without it"
    ]


@pytest.mark.parametrize(
    ("damage", "why"),
    [
        ("truncate", "BadZipFile: "),
        ("nan", "non-finite values"),
        ("fields", "unexpected arrays"),
    ],
)
def test_damaged_data_cache_entry_is_remade_with_one_warning(
    fake_mnist1d: list[int], capsys: pytest.CaptureFixture, damage: str, why: str
) -> None:
    ds = data.mnist1d(5)
    path = data.mnist1d_cache_file(5)
    good = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(good[: len(good) // 2])
    else:
        x, y, xt, yt = _fake_generated(5)
        if damage == "nan":
            x = x.copy()
            x[7, 3] = np.nan
        else:
            y = y.astype(np.float32)
        with open(path, "wb") as f:
            np.savez(f, x=x, y=y, x_test=xt, y_test=yt)
    capsys.readouterr()
    data.clear_cache()
    again = data.mnist1d(5)
    np.testing.assert_array_equal(again.x_train, ds.x_train)
    assert fake_mnist1d == [5, 5]  # generated again
    lines = _warnings(capsys.readouterr().err)
    assert len(lines) == 1 and lines[0].startswith(f"jtricks: warning: data cache entry {path} is damaged ({why}")
    assert lines[0].endswith("; regenerating it")
    assert path.read_bytes() == good  # rewritten whole
    data.clear_cache()
    data.mnist1d(5)  # the remade entry is read, not generated
    assert fake_mnist1d == [5, 5] and _warnings(capsys.readouterr().err) == []


def test_mnist_download_with_an_unusable_default_cache_reads_a_temporary_copy(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    monkeypatch.delenv("JTRICKS_DATA", raising=False)
    fetched: list[Path] = []

    def fake_download(cache_dir: str | os.PathLike, *, mirrors: object) -> Path:
        folder = Path(cache_dir)
        rng = np.random.default_rng(0)
        for stem, shape in (("train-images-idx3-ubyte", (12, 3, 5)), ("train-labels-idx1-ubyte", (12,)),
                            ("t10k-images-idx3-ubyte", (5, 3, 5)), ("t10k-labels-idx1-ubyte", (5,))):  # fmt: skip
            arr = rng.integers(0, 10, shape, dtype=np.uint8)
            header = bytes([0, 0, 8, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
            (folder / f"{stem}.gz").write_bytes(gzip.compress(header + arr.tobytes()))
        fetched.append(folder)
        return folder

    monkeypatch.setattr(data_idx, "download_mnist", fake_download)
    ds = data.mnist(download=True)
    assert ds.x_train.shape == (12, 3, 5, 1) and ds.num_test == 5
    assert len(fetched) == 1 and not fetched[0].exists()  # the temporary copy is gone
    assert _warnings(capsys.readouterr().err) == [
        f"jtricks: warning: data cache {blocker}/jtricks/mnist unusable (Not a directory); running without it"
    ]
