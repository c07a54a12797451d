"""Tests for jtricks.data: IDX reader, loaders, caching, download, scaling, splits and batching."""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import io
import os
import sys
import time
import urllib.error
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jtricks import data

# the modules of jtricks.data whose names the tests replace (where the code looks them up)
from jtricks.data import _download as data_download
from jtricks.data import _generated as data_generated
from jtricks.data import _idx as data_idx

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
STEMS = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


# ------------------------------------------------------------------------------------------
# helpers: build IDX files and fake data set folders
# ------------------------------------------------------------------------------------------


def idx_bytes(arr: np.ndarray, *, type_code: int = 0x08) -> bytes:
    header = bytes([0, 0, type_code, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    return header + np.ascontiguousarray(arr, dtype=np.uint8).tobytes()


def write_idx(path: Path, arr: np.ndarray, *, gz: bool) -> Path:
    b = idx_bytes(arr)
    path.write_bytes(gzip.compress(b) if gz else b)
    return path


def make_folder(
    folder: Path, *, n_train: int = 12, n_test: int = 5, rows: int = 3, cols: int = 5, gz: bool = True, seed: int = 0
) -> dict[str, np.ndarray]:
    """Write the four IDX files into ``folder``; return what was written."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        STEMS[0]: rng.integers(0, 256, (n_train, rows, cols), dtype=np.uint8),
        STEMS[1]: rng.integers(0, 10, (n_train,), dtype=np.uint8),
        STEMS[2]: rng.integers(0, 256, (n_test, rows, cols), dtype=np.uint8),
        STEMS[3]: rng.integers(0, 10, (n_test,), dtype=np.uint8),
    }
    for stem, arr in arrays.items():
        write_idx(folder / (stem + (".gz" if gz else "")), arr, gz=gz)
    return arrays


@pytest.fixture
def no_system_data(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No $JTRICKS_DATA and a system folder that does not exist."""
    monkeypatch.delenv("JTRICKS_DATA", raising=False)
    missing = tmp_path / "no-such-system-dir"
    monkeypatch.setattr(data_idx, "FASHION_MNIST_SYSTEM_DIRS", (str(missing),))
    return missing


@pytest.fixture
def parse_counter(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Count read_idx calls (every parse of an IDX file goes through it)."""
    calls: list[str] = []
    real = data.read_idx

    def spy(path, **kw):
        calls.append(str(path))
        return real(path, **kw)

    monkeypatch.setattr(data_idx, "read_idx", spy)
    data.clear_cache()
    yield calls
    data.clear_cache()


# ------------------------------------------------------------------------------------------
# read_idx
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("shape", [(7,), (4, 3, 5), (2, 3, 4, 5)])
def test_read_idx_roundtrip(tmp_path: Path, gz: bool, shape: tuple[int, ...]) -> None:
    arr = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    p = write_idx(tmp_path / "f", arr, gz=gz)
    out = data.read_idx(p)
    assert out.dtype == np.uint8 and out.shape == shape
    np.testing.assert_array_equal(out, arr)
    assert not out.flags.writeable


def test_read_idx_detects_gzip_by_magic_not_extension(tmp_path: Path) -> None:
    arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    gz_no_ext = tmp_path / "images"
    gz_no_ext.write_bytes(gzip.compress(idx_bytes(arr)))
    raw_with_ext = tmp_path / "images.gz"
    raw_with_ext.write_bytes(idx_bytes(arr))
    np.testing.assert_array_equal(data.read_idx(gz_no_ext), arr)
    np.testing.assert_array_equal(data.read_idx(raw_with_ext), arr)


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_truncated_and_trailing(tmp_path: Path, gz: bool) -> None:
    b = idx_bytes(np.zeros((4, 3, 3), np.uint8))
    for name, payload, what in [("short", b[:-5], "truncated"), ("long", b + b"\x00\x01", "trailing")]:
        p = tmp_path / name
        p.write_bytes(gzip.compress(payload) if gz else payload)
        with pytest.raises(ValueError, match=what) as e:
            data.read_idx(p)
        assert str(p) in str(e.value)
        assert "(4, 3, 3)" in str(e.value)


def test_read_idx_bad_headers(tmp_path: Path) -> None:
    cases = {
        "text": (b"hello world, not IDX", "bad magic number"),
        "tiny": (b"\x00\x00", "too short"),
        "float": (idx_bytes(np.zeros(3, np.uint8), type_code=0x0D), "unsupported type code 0x0d"),
        "nodim": (b"\x00\x00\x08\x00", "0 dimensions"),
        "header": (b"\x00\x00\x08\x03\x00\x00\x00\x02", "truncated header"),
    }
    for name, (payload, msg) in cases.items():
        p = tmp_path / name
        p.write_bytes(payload)
        with pytest.raises(ValueError, match=msg) as e:
            data.read_idx(p)
        assert str(p) in str(e.value)


def test_read_idx_expected_ndim(tmp_path: Path) -> None:
    p = write_idx(tmp_path / "labels", np.zeros((5,), np.uint8), gz=False)
    assert data.read_idx(p, expected_ndim=1).shape == (5,)
    with pytest.raises(ValueError, match=r"declares 1 dimensions, expected 0x00000803"):
        data.read_idx(p, expected_ndim=3)


def test_read_idx_corrupt_gzip(tmp_path: Path) -> None:
    p = tmp_path / "cut.gz"
    p.write_bytes(gzip.compress(idx_bytes(np.arange(200, dtype=np.uint8)))[:30])
    with pytest.raises(ValueError, match="gzip") as e:
        data.read_idx(p)
    assert str(p) in str(e.value)


# ------------------------------------------------------------------------------------------
# Fashion-MNIST / MNIST loaders on fake folders
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [True, False])
def test_fashion_mnist_from_path(tmp_path: Path, gz: bool, no_system_data: Path) -> None:
    arrays = make_folder(tmp_path / "fm", gz=gz)
    ds = data.fashion_mnist(tmp_path / "fm", cache=False)
    assert ds.name == "fashion_mnist" and ds.num_classes == 10
    assert ds.input_shape == (3, 5, 1)
    assert ds.x_train.shape == (12, 3, 5, 1) and ds.x_test.shape == (5, 3, 5, 1)
    assert ds.x_train.dtype == np.uint8 and ds.y_train.dtype == np.int32
    np.testing.assert_array_equal(ds.x_train[..., 0], arrays[STEMS[0]])
    np.testing.assert_array_equal(ds.y_train, arrays[STEMS[1]].astype(np.int32))
    np.testing.assert_array_equal(ds.x_test[..., 0], arrays[STEMS[2]])
    np.testing.assert_array_equal(ds.y_test, arrays[STEMS[3]].astype(np.int32))
    assert ds.value_range == (0.0, 255.0)
    assert ds.class_names is not None and ds.class_names[9] == "Ankle boot"


def test_fashion_mnist_mixed_gz_and_raw(tmp_path: Path, no_system_data: Path) -> None:
    folder = tmp_path / "mixed"
    arrays = make_folder(folder, gz=True)
    (folder / (STEMS[1] + ".gz")).unlink()
    write_idx(folder / STEMS[1], arrays[STEMS[1]], gz=False)
    ds = data.fashion_mnist(folder, cache=False)
    np.testing.assert_array_equal(ds.y_train, arrays[STEMS[1]])


def test_fashion_mnist_count_mismatch(tmp_path: Path, no_system_data: Path) -> None:
    folder = tmp_path / "bad"
    make_folder(folder)
    write_idx(folder / (STEMS[3] + ".gz"), np.zeros(4, np.uint8), gz=True)  # 5 test images, 4 labels
    with pytest.raises(ValueError, match="5 images but 4 labels") as e:
        data.fashion_mnist(folder, cache=False)
    assert STEMS[3] in str(e.value)


def test_fashion_mnist_label_out_of_range(tmp_path: Path, no_system_data: Path) -> None:
    folder = tmp_path / "bad"
    make_folder(folder)
    write_idx(folder / (STEMS[1] + ".gz"), np.full(12, 10, np.uint8), gz=True)
    with pytest.raises(ValueError, match=r"label 10 out of range \[0, 10\)"):
        data.fashion_mnist(folder, cache=False)


def test_fashion_mnist_images_file_given_as_labels(tmp_path: Path, no_system_data: Path) -> None:
    folder = tmp_path / "swap"
    arrays = make_folder(folder)
    write_idx(folder / (STEMS[1] + ".gz"), arrays[STEMS[0]], gz=True)
    with pytest.raises(ValueError, match="declares 3 dimensions, expected 0x00000801"):
        data.fashion_mnist(folder, cache=False)


def test_fashion_mnist_env_var_and_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_root, system = tmp_path / "env", tmp_path / "system"
    env_arrays = make_folder(env_root / "fashion-mnist", seed=1)
    sys_arrays = make_folder(system, seed=2, gz=False)
    monkeypatch.setattr(data_idx, "FASHION_MNIST_SYSTEM_DIRS", (str(system),))
    monkeypatch.setenv("JTRICKS_DATA", str(env_root))
    np.testing.assert_array_equal(data.fashion_mnist(cache=False).y_train, env_arrays[STEMS[1]])
    monkeypatch.delenv("JTRICKS_DATA")
    np.testing.assert_array_equal(data.fashion_mnist(cache=False).y_train, sys_arrays[STEMS[1]])
    # an env folder without the files falls through to the system folder
    monkeypatch.setenv("JTRICKS_DATA", str(tmp_path / "empty"))
    np.testing.assert_array_equal(data.fashion_mnist(cache=False).y_train, sys_arrays[STEMS[1]])
    # an explicit path is the only place searched
    with pytest.raises(FileNotFoundError, match="path = "):
        data.fashion_mnist(tmp_path / "empty")


def test_fashion_mnist_not_found_message(tmp_path: Path, no_system_data: Path, monkeypatch) -> None:
    (tmp_path / "root" / "fashion-mnist").mkdir(parents=True)  # an empty folder is skipped, not an error
    monkeypatch.setenv("JTRICKS_DATA", str(tmp_path / "root"))
    with pytest.raises(FileNotFoundError) as e:
        data.fashion_mnist()
    msg = str(e.value)
    assert "apt-get install dataset-fashion-mnist" in msg
    assert f"$JTRICKS_DATA/fashion-mnist = {tmp_path / 'root' / 'fashion-mnist'}: missing train-images" in msg
    assert str(no_system_data) in msg and "no such directory" in msg


@pytest.mark.parametrize("where", ["env", "path"])
def test_fashion_mnist_partial_folder_is_an_error_not_a_fall_back(tmp_path: Path, monkeypatch, where: str) -> None:
    """2 of the 4 files in $JTRICKS_DATA/fashion-mnist (or path): an error naming the 2 missing files, even
    though a complete system copy exists."""
    system = tmp_path / "system"
    make_folder(system, seed=2)
    monkeypatch.setattr(data_idx, "FASHION_MNIST_SYSTEM_DIRS", (str(system),))
    partial = tmp_path / "root" / "fashion-mnist"
    make_folder(partial, gz=False)
    for stem in (STEMS[2], STEMS[3]):
        (partial / stem).unlink()
    monkeypatch.setenv("JTRICKS_DATA", str(tmp_path / "root"))
    desc = "$JTRICKS_DATA/fashion-mnist" if where == "env" else "path"
    with pytest.raises(FileNotFoundError) as e:
        data.fashion_mnist(partial if where == "path" else None, cache=False)
    assert str(e.value) == (
        f"Fashion-MNIST: {desc} = {partial} holds only some of the four IDX files, missing "
        "t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]; add them, or remove the partial folder to use "
        "another copy"
    )
    make_folder(partial, gz=False)  # completed: it is used
    assert data.fashion_mnist(cache=False).x_train.shape == (12, 3, 5, 1)


def test_mnist_from_path_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    arrays = make_folder(tmp_path / "m")
    ds = data.mnist(tmp_path / "m", cache=False)
    assert ds.name == "mnist" and ds.x_train.shape == (12, 3, 5, 1)
    np.testing.assert_array_equal(ds.y_test, arrays[STEMS[3]])
    env_arrays = make_folder(tmp_path / "root" / "mnist", seed=5)
    monkeypatch.setenv("JTRICKS_DATA", str(tmp_path / "root"))
    ds = data.mnist(cache_dir=tmp_path / "nocache", cache=False)
    np.testing.assert_array_equal(ds.y_train, env_arrays[STEMS[1]])


def test_mnist_never_downloads_unless_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*a, **k):
        raise AssertionError("network access without download=True")

    monkeypatch.setattr(data_download, "open_url", forbidden)
    monkeypatch.setattr(data_idx, "download_mnist", forbidden)
    monkeypatch.delenv("JTRICKS_DATA", raising=False)
    with pytest.raises(FileNotFoundError) as e:
        data.mnist(cache_dir=tmp_path / "cache")
    msg = str(e.value)
    assert "download=True" in msg and "$JTRICKS_DATA/mnist" in msg and str(tmp_path / "cache") in msg


def test_mnist_download_true_fills_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Path] = []

    def fake_download(cache_dir, *, mirrors):
        calls.append(Path(cache_dir))
        make_folder(Path(cache_dir), seed=3)
        return Path(cache_dir)

    monkeypatch.setattr(data_idx, "download_mnist", fake_download)
    monkeypatch.delenv("JTRICKS_DATA", raising=False)
    ds = data.mnist(download=True, cache_dir=tmp_path / "c", cache=False)
    assert calls == [tmp_path / "c"] and ds.x_train.shape == (12, 3, 5, 1)
    data.mnist(download=True, cache_dir=tmp_path / "c", cache=False)  # already there: no download
    assert len(calls) == 1


# ------------------------------------------------------------------------------------------
# download_mnist with a fake opener (no network)
# ------------------------------------------------------------------------------------------


class FakeOpener:
    """Serves bytes per URL; raises URLError for unknown URLs; records requests."""

    def __init__(self, served: dict[str, bytes]) -> None:
        self.served = served
        self.requests: list[str] = []

    def __call__(self, url: str, timeout: float) -> io.BytesIO:
        self.requests.append(url)
        if url not in self.served:
            raise urllib.error.URLError(f"unreachable: {url}")
        return io.BytesIO(self.served[url])


def fake_mnist_files(tmp_path: Path) -> dict[str, bytes]:
    src = tmp_path / "src"
    make_folder(src)
    return {stem + ".gz": (src / (stem + ".gz")).read_bytes() for stem in STEMS}


def checksums(blobs: dict[str, bytes]) -> list[tuple[str, str, int]]:
    return [(n, hashlib.sha256(b).hexdigest(), len(b)) for n, b in blobs.items()]


def test_download_good_files_land_atomically(tmp_path: Path) -> None:
    blobs = fake_mnist_files(tmp_path)
    opener = FakeOpener({"https://m1/" + n: b for n, b in blobs.items()})
    out = data.download_mnist(tmp_path / "cache", mirrors=["https://m1/"], files=checksums(blobs), opener=opener)
    assert out == tmp_path / "cache"
    assert sorted(p.name for p in out.iterdir()) == sorted(blobs)  # no temp files left
    for n, b in blobs.items():
        assert (out / n).read_bytes() == b
    ds = data.mnist(out, cache=False)
    assert ds.x_train.shape == (12, 3, 5, 1)
    # a second call finds verified files and fetches nothing
    n_req = len(opener.requests)
    data.download_mnist(out, mirrors=["https://m1/"], files=checksums(blobs), opener=opener)
    assert len(opener.requests) == n_req


def test_download_checksum_mismatch_leaves_nothing(tmp_path: Path) -> None:
    blobs = fake_mnist_files(tmp_path)
    sums = checksums(blobs)
    opener = FakeOpener({"https://m1/" + n: b + b"x" for n, b in blobs.items()})  # corrupted
    with pytest.raises(ValueError, match="checksum mismatch"):
        data.download_mnist(tmp_path / "cache", mirrors=["https://m1/"], files=sums, opener=opener)
    assert list((tmp_path / "cache").iterdir()) == []


def test_download_replaces_corrupt_existing_file(tmp_path: Path) -> None:
    blobs = fake_mnist_files(tmp_path)
    cache = tmp_path / "cache"
    cache.mkdir()
    name = STEMS[0] + ".gz"
    (cache / name).write_bytes(b"garbage")
    opener = FakeOpener({"https://m1/" + n: b for n, b in blobs.items()})
    data.download_mnist(cache, mirrors=["https://m1/"], files=checksums(blobs), opener=opener)
    assert (cache / name).read_bytes() == blobs[name]


def test_download_mirror_fallback_and_unreachable(tmp_path: Path) -> None:
    blobs = fake_mnist_files(tmp_path)
    sums = checksums(blobs)
    served = {"https://good/" + n: b for n, b in blobs.items()}
    served.update({"https://bad/" + n: b"corrupt" for n in blobs})
    opener = FakeOpener(served)
    data.download_mnist(
        tmp_path / "c1", mirrors=["https://down/", "https://bad/", "https://good"], files=sums, opener=opener
    )
    assert sorted(p.name for p in (tmp_path / "c1").iterdir()) == sorted(blobs)
    assert opener.requests[:3] == [f"https://{m}/{sums[0][0]}" for m in ("down", "bad", "good")]
    with pytest.raises(OSError, match="any mirror"):
        data.download_mnist(tmp_path / "c2", mirrors=["https://down/"], files=sums, opener=FakeOpener({}))
    assert list((tmp_path / "c2").iterdir()) == []
    with pytest.raises(TypeError, match="mirrors"):
        data.download_mnist(tmp_path / "c3", mirrors="https://good/", files=sums, opener=opener)


def test_mnist_checksum_table() -> None:
    assert [f.name for f in data.MNIST_FILES] == [s + ".gz" for s in STEMS]
    for f in data.MNIST_FILES:
        assert len(f.sha256) == 64 and int(f.sha256, 16) >= 0 and f.size > 0
    assert all(m.startswith("https://") and m.endswith("/") for m in data.MNIST_MIRRORS)


# ------------------------------------------------------------------------------------------
# CIFAR-10 / CIFAR-100 on test-written folders in the python format
# ------------------------------------------------------------------------------------------


def _cifar_files():
    path = Path(__file__).parents[1] / "support" / "cifar_files.py"
    spec = importlib.util.spec_from_file_location("cifar_files", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


CIFAR = _cifar_files()


@pytest.mark.parametrize("style", ["str", "bytes", "python2"])
def test_cifar10_reads_the_python_format_as_nhwc(tmp_path: Path, style: str) -> None:
    written = CIFAR.write_cifar10(tmp_path, style=style)
    ds = data.cifar10(tmp_path / "cifar-10-batches-py", cache=False)
    assert ds.name == "cifar10" and ds.num_classes == 10 and ds.input_shape == (32, 32, 3)
    assert ds.x_train.dtype == np.uint8 and ds.x_train.shape == (100, 32, 32, 3) and ds.x_test.shape == (20, 32, 32, 3)
    assert ds.y_train.dtype == np.int32 and ds.value_range == (0.0, 255.0)
    np.testing.assert_array_equal(ds.x_train, written["x_train"])  # CHW rows -> NHWC, batches 1..5 in order
    np.testing.assert_array_equal(ds.y_train, written["y_train"])
    np.testing.assert_array_equal(ds.x_test, written["x_test"])
    np.testing.assert_array_equal(ds.y_test, written["y_test"])
    assert ds.class_names == tuple(f"class{k}" for k in range(10))  # from batches.meta
    # one pixel by hand: row r of the file holds R[0..1023], G[..], B[..] of image r, each row-major
    raw = data.read_cifar_pickle(tmp_path / "cifar-10-batches-py" / "data_batch_1")["data"]
    assert ds.x_train[3, 5, 7, 2] == raw[3, 2 * 1024 + 5 * 32 + 7]


def test_cifar10_folder_or_its_parent_env_and_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    CIFAR.write_cifar10(tmp_path / "root")
    a = data.cifar10(tmp_path / "root", cache=False)  # the folder holding cifar-10-batches-py
    monkeypatch.setenv("JTRICKS_DATA", str(tmp_path / "root"))
    b = data.load("cifar10", cache=False)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    (tmp_path / "root" / "cifar-10-batches-py" / "batches.meta").unlink()  # optional: the known names
    assert data.cifar10(cache=False).class_names == data.CIFAR10_CLASSES


def test_cifar100_fine_and_coarse_labels(tmp_path: Path) -> None:
    written = CIFAR.write_cifar100(tmp_path)
    fine = data.cifar100(tmp_path, cache=False)
    coarse = data.load("cifar100", path=tmp_path, labels="coarse", cache=False)
    assert (fine.num_classes, coarse.num_classes) == (100, 20)
    np.testing.assert_array_equal(fine.x_train, written["x_train"])
    np.testing.assert_array_equal(fine.y_test, written["fine_test"])
    np.testing.assert_array_equal(coarse.y_train, written["coarse_train"])
    assert fine.class_names[:2] == ("f0", "f1") and coarse.class_names[-1] == "c19"
    with pytest.raises(ValueError, match="`labels` must be one of 'fine', 'coarse'"):
        data.cifar100(tmp_path, labels="super")


def test_cifar_not_found_says_where_it_looked_and_how_to_get_it(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("JTRICKS_DATA", raising=False)
    with pytest.raises(FileNotFoundError) as e:
        data.cifar10()
    msg = str(e.value)
    assert msg.startswith("CIFAR-10 not found. Searched:\n  - $JTRICKS_DATA/cifar-10-batches-py: not set")
    assert "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz" in msg
    assert 'tar -xzf cifar-10-python.tar.gz -C "$JTRICKS_DATA"' in msg and "path=" in msg
    monkeypatch.setenv("JTRICKS_DATA", str(tmp_path))
    with pytest.raises(FileNotFoundError) as e:
        data.cifar100()
    msg = str(e.value)
    assert f"$JTRICKS_DATA/cifar-100-python = {tmp_path / 'cifar-100-python'}: no such directory" in msg
    assert "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz" in msg
    with pytest.raises(FileNotFoundError, match=f"path = {tmp_path / 'nowhere'}: no such directory"):
        data.cifar10(tmp_path / "nowhere")


def test_cifar_partial_folder_is_an_error(tmp_path: Path) -> None:
    CIFAR.write_cifar10(tmp_path)
    folder = tmp_path / "cifar-10-batches-py"
    (folder / "data_batch_3").unlink()
    (folder / "test_batch").unlink()
    with pytest.raises(FileNotFoundError) as e:
        data.cifar10(folder, cache=False)
    assert str(e.value) == (
        f"CIFAR-10: path = {folder} holds only some of the 6 CIFAR-10 files, missing data_batch_3, test_batch; "
        "add them, or remove the partial folder to use another copy"
    )


def test_cifar_corrupt_files_give_clear_errors(tmp_path: Path) -> None:
    CIFAR.write_cifar10(tmp_path)
    folder = tmp_path / "cifar-10-batches-py"
    batch = folder / "data_batch_2"
    good = batch.read_bytes()

    def fails(fragment: str) -> None:
        with pytest.raises(ValueError) as e:
            data.cifar10(folder, cache=False)
        assert repr(str(batch)) in str(e.value) and fragment in str(e.value), str(e.value)

    batch.write_bytes(good[: len(good) // 2])
    fails("not a readable CIFAR pickle")
    batch.write_bytes(b"this is not a pickle")
    fails("not a readable CIFAR pickle")
    x = CIFAR.images(np.arange(4) % 10, np.random.default_rng(0))
    CIFAR.dump(batch, [1, 2, 3])
    fails("holds a list, expected a dict")
    CIFAR.write_file(batch, x, {"labels": [0, 1, 2]})
    fails("'labels' must be 4 integer labels (one per image)")
    CIFAR.write_file(batch, x, {"labels": [0, 1, 2, 10]})
    fails("label 10 out of range [0, 10)")
    CIFAR.write_file(batch, x, {"fine_labels": [0, 1, 2, 3]})
    fails("no 'labels' entry")
    CIFAR.dump(batch, {"data": np.zeros((4, 32, 32, 3), np.uint8), "labels": [0, 1, 2, 3]})
    fails("'data' must be a uint8 array of shape (N, 3072), got a uint8 array of shape (4, 32, 32, 3)")
    batch.write_bytes(good)
    assert data.cifar10(folder, cache=False).num_train == 100


class _Payload:
    """Unpickling this would create a folder: what a malicious file could do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def test_cifar_pickle_may_not_name_other_globals(tmp_path: Path) -> None:
    CIFAR.write_cifar10(tmp_path)
    batch = tmp_path / "cifar-10-batches-py" / "data_batch_1"
    marker = tmp_path / "executed"
    CIFAR.dump(batch, {"data": _Payload(marker), "labels": []})
    with pytest.raises(ValueError, match=r"refusing to load the global (posix|nt|os)\.mkdir"):
        data.cifar10(tmp_path, cache=False)
    assert not marker.exists()


def test_cifar_cache_hit_and_invalidation(tmp_path: Path) -> None:
    CIFAR.write_cifar10(tmp_path)
    a = data.cifar10(tmp_path)
    b = data.cifar10(tmp_path)
    assert b.x_train is a.x_train and not a.x_train.flags.writeable
    batch = tmp_path / "cifar-10-batches-py" / "test_batch"
    CIFAR.write_file(batch, CIFAR.images(np.zeros(3, int), np.random.default_rng(1)), {"labels": [0, 0, 0]})
    st = batch.stat()
    os.utime(batch, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert data.cifar10(tmp_path).num_test == 3
    data.clear_cache()


# ------------------------------------------------------------------------------------------
# caching
# ------------------------------------------------------------------------------------------


def test_cache_hit_and_invalidation(tmp_path: Path, parse_counter: list[str], no_system_data: Path) -> None:
    folder = tmp_path / "fm"
    make_folder(folder, seed=1)
    a = data.fashion_mnist(folder)
    assert len(parse_counter) == 4
    b = data.fashion_mnist(folder)
    assert len(parse_counter) == 4  # cache hit: nothing parsed again
    assert b.x_train is a.x_train and b.y_test is a.y_test
    for arr in (a.x_train, a.y_train, a.x_test, a.y_test):
        assert not arr.flags.writeable
        with pytest.raises(ValueError):
            arr[0] = 1
    # a changed file (new content and mtime) is parsed again
    new = make_folder(tmp_path / "other", seed=9)
    target = folder / (STEMS[1] + ".gz")
    write_idx(target, new[STEMS[1]], gz=True)
    st = target.stat()
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    c = data.fashion_mnist(folder)
    assert len(parse_counter) == 8
    np.testing.assert_array_equal(c.y_train, new[STEMS[1]])
    data.fashion_mnist(folder, cache=False)
    assert len(parse_counter) == 12


# ------------------------------------------------------------------------------------------
# real data
# ------------------------------------------------------------------------------------------

needs_fashion = pytest.mark.skipif(
    not all((FASHION_DIR / (s + ".gz")).is_file() for s in STEMS),
    reason=f"Fashion-MNIST not installed at {FASHION_DIR} (apt-get install dataset-fashion-mnist)",
)


@needs_fashion
def test_real_fashion_mnist(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JTRICKS_DATA", raising=False)
    t0 = time.perf_counter()
    ds = data.fashion_mnist()
    t1 = time.perf_counter()
    ds2 = data.fashion_mnist()
    t2 = time.perf_counter()
    print(f"Fashion-MNIST load: first {t1 - t0:.3f} s, second {t2 - t1:.5f} s")
    assert ds2.x_train is ds.x_train
    assert ds.x_train.shape == (60000, 28, 28, 1) and ds.x_test.shape == (10000, 28, 28, 1)
    assert ds.x_train.dtype == np.uint8 and ds.y_train.dtype == np.int32
    assert ds.input_shape == (28, 28, 1) and ds.num_classes == 10
    # the data set is balanced: 6,000 train and 1,000 test images per class
    np.testing.assert_array_equal(np.bincount(ds.y_train), np.full(10, 6000))
    np.testing.assert_array_equal(np.bincount(ds.y_test), np.full(10, 1000))
    assert ds.x_train.max() == 255 and ds.x_train.min() == 0


def test_mnist1d_generated_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mnist1d.data as m1d

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    np_state = np.random.get_state()
    data.clear_cache()
    ds = data.mnist1d()
    assert ds.x_train.shape == (4000, 40) and ds.x_test.shape == (1000, 40)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int32
    assert ds.input_shape == (40,) and ds.value_range is None
    assert set(np.unique(ds.y_train)) == set(range(10))
    # the global numpy RNG state is untouched
    after = np.random.get_state()
    assert np_state[0] == after[0] and np.array_equal(np_state[1], after[1]) and np_state[2:] == after[2:]
    # same as the package's own generator with seed 42 (the reference)
    ref = m1d.make_dataset(m1d.get_dataset_args())
    np.testing.assert_array_equal(ds.x_train, ref["x"].astype(np.float32))
    np.testing.assert_array_equal(ds.y_test, ref["y_test"])
    assert data.mnist1d().x_train is ds.x_train  # cached per seed

    # kept on disk: a new process (an empty in-process memo) reads the file instead of generating
    path = data.mnist1d_cache_file(42)
    assert path is not None and path.parent.parent == tmp_path / "jtricks" and path.is_file()

    def no_generation(seed: int) -> None:
        raise AssertionError("generated although the cache file is there")

    data.clear_cache()
    with monkeypatch.context() as m:
        m.setattr(data_generated, "generate_mnist1d", no_generation)
        again = data.mnist1d()
    for a, b in zip(
        (again.x_train, again.y_train, again.x_test, again.y_test), (ds.x_train, ds.y_train, ds.x_test, ds.y_test)
    ):
        np.testing.assert_array_equal(a, b)
        assert a.dtype == b.dtype and not a.flags.writeable
    # a damaged file is regenerated (and rewritten)
    path.write_bytes(b"not an npz file")
    data.clear_cache()
    np.testing.assert_array_equal(data.mnist1d().x_test, ds.x_test)
    assert path.stat().st_size > 100_000
    data.clear_cache()


def test_mnist1d_seed_changes_data() -> None:
    a = data.mnist1d(42)
    b = data.mnist1d(7)
    assert b.x_train.shape == a.x_train.shape and not np.array_equal(a.x_train, b.x_train)


def test_digits_split_stratified_and_seeded() -> None:
    from sklearn.datasets import load_digits

    ds = data.digits(seed=0)
    assert ds.x_train.shape == (1437, 8, 8, 1) and ds.x_test.shape == (360, 8, 8, 1)
    assert ds.x_train.dtype == np.uint8 and ds.value_range == (0.0, 16.0)
    assert int(ds.x_train.max()) == 16 and int(ds.x_train.min()) == 0
    ref = load_digits()
    counts = np.bincount(ref.target, minlength=10)
    test_counts = np.bincount(ds.y_test, minlength=10)
    assert np.all(np.abs(test_counts - 360 * counts / counts.sum()) < 1.0)
    # train + test is exactly the full data set (as a multiset of (image, label) rows)
    both = np.concatenate(
        [
            np.concatenate([ds.x_train.reshape(-1, 64), ds.y_train[:, None]], 1),
            np.concatenate([ds.x_test.reshape(-1, 64), ds.y_test[:, None]], 1),
        ]
    )
    full = np.concatenate([ref.images.reshape(-1, 64), ref.target[:, None]], 1).astype(np.int64)
    np.testing.assert_array_equal(both[np.lexsort(both.T[::-1])].astype(np.int64), full[np.lexsort(full.T[::-1])])
    again = data.digits(seed=0)
    np.testing.assert_array_equal(again.x_test, ds.x_test)
    np.testing.assert_array_equal(again.y_train, ds.y_train)
    other = data.digits(seed=1)
    assert not np.array_equal(other.y_test, ds.y_test)
    assert data.digits(test_fraction=0.5).num_test == 899  # ceil(0.5 * 1797)
    with pytest.raises(ValueError, match="test_fraction"):
        data.digits(test_fraction=1.0)
    with pytest.raises(TypeError, match="seed"):
        data.digits(seed=-1)


def test_missing_optional_packages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # no generated MNIST-1D on disk
    data.clear_cache()
    monkeypatch.setitem(sys.modules, "mnist1d.data", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match=r'pip install "jtricks\[data\]"'):
        data.mnist1d()
    with pytest.raises(ImportError, match=r"scikit-learn.*pip install \"jtricks\[data\]\""):
        data.digits()
    data.clear_cache()


def test_load_registry() -> None:
    np.testing.assert_array_equal(data.load("digits", seed=3).y_test, data.digits(seed=3).y_test)
    assert set(data.LOADERS) == {"fashion_mnist", "mnist", "cifar10", "cifar100", "mnist1d", "digits"}
    with pytest.raises(ValueError, match="known: cifar10, cifar100, digits, fashion_mnist, mnist, mnist1d"):
        data.load("imagenet")
    for name in ("cifar10", "cifar100"):
        with pytest.raises(ValueError, match="already registered"):
            data.register_dataset(name, data.digits, overwrite=True)


def test_load_accepts_dash_alias(tmp_path: Path) -> None:
    make_folder(tmp_path / "fm")
    assert data.load("fashion-mnist", path=tmp_path / "fm", cache=False).name == "fashion_mnist"


# ------------------------------------------------------------------------------------------
# Dataset container
# ------------------------------------------------------------------------------------------


def small_ds(n_train: int = 40, n_test: int = 20) -> data.Dataset:
    rng = np.random.default_rng(0)
    return data.Dataset(
        "toy",
        rng.integers(0, 256, (n_train, 2, 2, 1), dtype=np.uint8),
        np.arange(n_train, dtype=np.int32) % 4,
        rng.integers(0, 256, (n_test, 2, 2, 1), dtype=np.uint8),
        np.arange(n_test, dtype=np.int32) % 4,
        4,
        (2, 2, 1),
        (0.0, 255.0),
    )


def test_dataset_validates_shapes() -> None:
    ds = small_ds()
    with pytest.raises(ValueError, match="y_train"):
        data.Dataset("bad", ds.x_train, ds.y_train[:-1], ds.x_test, ds.y_test, 4, (2, 2, 1))
    with pytest.raises(ValueError, match="x_test"):
        data.Dataset("bad", ds.x_train, ds.y_train, ds.x_test[..., 0], ds.y_test, 4, (2, 2, 1))


def test_subset_first_n_and_stratified() -> None:
    ds = small_ds()
    first = ds.subset(10, 5)
    np.testing.assert_array_equal(first.x_train, ds.x_train[:10])
    np.testing.assert_array_equal(first.y_test, ds.y_test[:5])
    s1, s2 = ds.subset(20, seed=3), ds.subset(20, seed=3)
    np.testing.assert_array_equal(s1.x_train, s2.x_train)
    np.testing.assert_array_equal(np.bincount(s1.y_train), [5, 5, 5, 5])  # 40 balanced -> 20 balanced
    assert s1.num_test == 20 and not np.array_equal(s1.y_train, ds.subset(20, seed=4).y_train)
    with pytest.raises(ValueError, match="n_train"):
        ds.subset(41)


# ------------------------------------------------------------------------------------------
# scaling and standardization
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("low,high", [(0.0, 1.0), (-1.0, 1.0), (-0.3, 2.7)])
def test_scale_matches_reference(low: float, high: float) -> None:
    x = np.arange(256, dtype=np.uint8).reshape(16, 16)
    ref = low + (x.astype(np.float64) - 0.0) / 255.0 * (high - low)
    y = data.scale(x, low, high)
    assert isinstance(y, np.ndarray) and y.dtype == np.float32
    np.testing.assert_allclose(y, ref, rtol=0, atol=1e-6 * max(1.0, abs(high)))
    yj = data.scale(jnp.asarray(x), low, high)
    assert isinstance(yj, jax.Array) and yj.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(yj), ref, rtol=0, atol=1e-6 * max(1.0, abs(high)))
    yf = data.scale(x.astype(np.float64), low, high)  # non-uint8 path = lookup-table path
    np.testing.assert_array_equal(yf, y)
    if (low, high) in [(0.0, 1.0), (-1.0, 1.0)]:
        assert y[0, 0] == low and y[-1, -1] == high


def test_scale_other_range_and_jit() -> None:
    x = np.array([0, 4, 8, 16], np.float32)
    np.testing.assert_allclose(data.scale(x, -1, 1, src_range=(0, 16)), [-1, -0.5, 0, 1], atol=1e-7)
    out = jax.jit(lambda v: data.scale(v, 0.0, 1.0, src_range=(0, 16)))(jnp.asarray(x))
    np.testing.assert_allclose(np.asarray(out), [0, 0.25, 0.5, 1], atol=1e-7)
    with pytest.raises(ValueError, match="low < high"):
        data.scale(x, 1.0, 0.0)
    with pytest.raises(ValueError, match="src_range"):
        data.scale(x, src_range=(5, 5))
    with pytest.raises(TypeError, match="src_range"):
        data.scale(x, src_range=(0, 1, 2))


def test_float32_absorbs() -> None:
    assert data.float32_absorbs(1e-10, 1e10) is True  # the guide's example
    assert data.float32_absorbs(1e-10, 1.0) is True
    assert data.float32_absorbs(1e-10, 1.0, np.float64) is False
    assert data.float32_absorbs(1.0, 1e6) is False
    # spacing of float32 at 1e10 is 1024: adding 100 is lost, adding 1024 is not
    assert data.float32_absorbs(100.0, 1e10) is True and data.float32_absorbs(1024.0, 1e10) is False
    assert np.float32(1e-10) + np.float32(1e10) == np.float32(1e10)


def test_standardize_uses_train_statistics_only() -> None:
    rng = np.random.default_rng(0)
    x_tr = rng.integers(0, 256, (50, 3, 3, 1)).astype(np.uint8)
    x_tr[:, 0, 0, 0] = 7  # a constant feature
    x_te = rng.integers(0, 256, (20, 3, 3, 1)).astype(np.uint8)
    a, b, stats = data.standardize(x_tr, x_te)
    mu = x_tr.astype(np.float64).mean(0)
    sd = x_tr.astype(np.float64).std(0)
    np.testing.assert_allclose(stats.mean, mu, rtol=1e-6)
    np.testing.assert_allclose(stats.scale[1:, 1:], sd[1:, 1:], rtol=1e-6)
    assert stats.scale[0, 0, 0] == 1.0  # constant feature: scale 1, not 1/eps
    sd_safe = np.where(sd > 1e-8, sd, 1.0)
    np.testing.assert_allclose(a, (x_tr - mu) / sd_safe, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(b, (x_te - mu) / sd_safe, rtol=1e-5, atol=1e-5)  # train stats on test
    assert a.dtype == b.dtype == np.float32 and a.shape == x_tr.shape
    np.testing.assert_allclose(a.mean(0)[1:, 1:], 0.0, atol=1e-5)
    np.testing.assert_allclose(a.std(0)[1:, 1:], 1.0, atol=1e-5)
    assert np.abs(b.mean(0)).max() > 1e-3  # test split is not re-centred with its own statistics
    np.testing.assert_array_equal(data.apply_standardize(x_te, stats), b)
    bj = data.apply_standardize(jnp.asarray(x_te), stats)
    np.testing.assert_allclose(np.asarray(bj), b, rtol=1e-6, atol=1e-6)
    g_tr, g_te, g = data.standardize(x_tr, None, per_feature=False)
    assert g_te is None and g.mean.shape == () and g.scale.shape == ()
    np.testing.assert_allclose([g.mean, g.scale], [x_tr.mean(), x_tr.astype(np.float64).std()], rtol=1e-6)
    np.testing.assert_allclose(g_tr, (x_tr - x_tr.mean()) / x_tr.astype(np.float64).std(), rtol=1e-5, atol=1e-5)


def test_preprocess_methods() -> None:
    ds = small_ds()
    raw = data.preprocess(ds, "raw")
    assert raw.x_train.dtype == np.float32 and raw.value_range == (0.0, 255.0)
    np.testing.assert_array_equal(raw.x_train, ds.x_train.astype(np.float32))
    unit = data.preprocess(ds, "unit")
    np.testing.assert_allclose(unit.x_train, ds.x_train / 255.0, atol=1e-7)
    assert unit.value_range == (0.0, 1.0)
    sym = data.preprocess(ds, "symmetric")
    np.testing.assert_allclose(sym.x_test, ds.x_test / 127.5 - 1.0, atol=1e-6)
    assert sym.value_range == (-1.0, 1.0)
    std = data.preprocess(ds, "standardize")
    np.testing.assert_allclose(std.x_train.mean(0), 0.0, atol=1e-5)
    assert std.value_range is None and std.y_train is ds.y_train
    with pytest.raises(ValueError, match="known: raw, unit, symmetric, standardize"):
        data.preprocess(ds, "minmax")
    # unknown raw range (like MNIST-1D): the training split's min and max
    f = dataclasses_replace(ds, x_train=np.linspace(-2, 6, 40 * 4).reshape(40, 2, 2, 1), value_range=None)
    u = data.preprocess(f, "unit")
    assert u.x_train.min() == 0.0 and u.x_train.max() == 1.0


def dataclasses_replace(ds: data.Dataset, **kw: object) -> data.Dataset:
    import dataclasses

    return dataclasses.replace(ds, **kw)


# ------------------------------------------------------------------------------------------
# validation split and on-device batching
# ------------------------------------------------------------------------------------------


def test_train_val_split() -> None:
    x = np.arange(50, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32)
    y = np.arange(50, dtype=np.int32)
    key = jax.random.key(3)
    xt, yt, xv, yv = data.train_val_split(key, x, y, val_fraction=0.2)
    assert isinstance(xt, np.ndarray) and xv.shape == (10, 3) and xt.shape == (40, 3)
    perm = np.asarray(jax.random.permutation(key, 50))
    np.testing.assert_array_equal(yv, perm[:10])
    np.testing.assert_array_equal(yt, perm[10:])
    np.testing.assert_array_equal(xv[:, 0], yv.astype(np.float32))
    again = data.train_val_split(key, x, y, n_val=10)
    np.testing.assert_array_equal(again[3], yv)
    xj = data.train_val_split(key, jnp.asarray(x), jnp.asarray(y), n_val=10)
    assert isinstance(xj[0], jax.Array)
    np.testing.assert_array_equal(np.asarray(xj[3]), yv)
    keys = jax.random.split(jax.random.key(8), 3)
    vm = jax.vmap(lambda k: data.train_val_split(k, x, y, n_val=10)[3])(keys)
    for i in range(3):
        np.testing.assert_array_equal(np.asarray(vm[i]), data.train_val_split(keys[i], x, y, n_val=10)[3])
    other = data.train_val_split(jax.random.key(4), x, y, n_val=10)
    assert not np.array_equal(other[3], yv)
    with pytest.raises(ValueError, match="exactly one"):
        data.train_val_split(key, x, y)
    with pytest.raises(ValueError, match="n_val"):
        data.train_val_split(key, x, y, n_val=50)
    with pytest.raises(ValueError, match="val_fraction"):
        data.train_val_split(key, x, y, val_fraction=1.5)
    with pytest.raises(ValueError, match="same number"):
        data.train_val_split(key, x, y[:-1], n_val=3)


def test_epoch_batches_is_a_permutation_prefix() -> None:
    key = jax.random.key(0)
    idx = data.epoch_batches(key, 103, 10)
    assert idx.shape == (10, 10) and idx.dtype == jnp.int32
    flat = np.asarray(idx).ravel()
    assert len(np.unique(flat)) == 100 and flat.min() >= 0 and flat.max() < 103
    np.testing.assert_array_equal(flat, np.asarray(jax.random.permutation(key, 103))[:100])
    np.testing.assert_array_equal(np.asarray(data.epoch_batches(key, 103, 10)), np.asarray(idx))
    assert data.num_batches(103, 10) == 10 and data.num_batches(100, 100) == 1
    # over epochs with fresh keys every example is seen
    keys = jax.random.split(jax.random.key(1), 20)
    seen = np.unique(np.concatenate([np.asarray(data.epoch_batches(k, 10, 3)).ravel() for k in keys]))
    np.testing.assert_array_equal(seen, np.arange(10))


def test_epoch_batches_vmap_equals_separate_calls() -> None:
    keys = jax.random.split(jax.random.key(42), 5)
    batched = jax.jit(jax.vmap(lambda k: data.epoch_batches(k, 37, 8)))(keys)
    assert batched.shape == (5, 4, 8)
    for i in range(5):
        np.testing.assert_array_equal(np.asarray(batched[i]), np.asarray(data.epoch_batches(keys[i], 37, 8)))
    assert not np.array_equal(np.asarray(batched[0]), np.asarray(batched[1]))


def test_epoch_as_one_scan_over_device_arrays() -> None:
    x = jnp.arange(20.0)
    idx = data.epoch_batches(jax.random.key(5), 20, 4)

    def step(total, batch_idx):
        return total + x[batch_idx].sum(), x[batch_idx].mean()

    total, means = jax.jit(lambda i: jax.lax.scan(step, 0.0, i))(idx)
    assert float(total) == float(np.arange(20.0).sum()) and means.shape == (5,)


def test_epoch_batches_validation() -> None:
    key = jax.random.key(0)
    with pytest.raises(ValueError, match=r"`batch_size` \(11\) must be <= `num_examples` \(10\)"):
        data.epoch_batches(key, 10, 11)
    with pytest.raises(ValueError, match="num_examples"):
        data.epoch_batches(key, 0, 1)
    with pytest.raises(ValueError, match="batch_size"):
        data.num_batches(10, 0)
    with pytest.raises(TypeError, match="batch_size"):
        data.epoch_batches(key, 10, 2.0)
    with pytest.raises(TypeError, match="num_examples"):
        data.epoch_batches(key, True, 1)
