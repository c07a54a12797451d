"""Streamed training data on the host: batches gathered from a split (in memory or memory-mapped) equal the rows
of the split preprocessed whole, bit for bit; the prefetching thread keeps order, bounds what it holds, hands its
errors over and stops when the consumer does; npy_folder maps its files."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from jtricks import data as jdata


def _raw(n: int = 50) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(n, 4, 3, 1)).astype(np.uint8), rng.integers(0, 5, size=n).astype(np.int32)


@pytest.mark.parametrize("method", ["raw", "unit", "symmetric", "standardize"])
def test_gathered_rows_equal_the_split_preprocessed_whole(method):
    x, y = _raw()
    ds = jdata.arrays(x, y, x[:5], y[:5], num_classes=5, value_range=(0, 255))
    pre = jdata.fit_preprocessing(ds, method)
    split = jdata.HostSplit(x, y, pre)
    idx = np.array([[7, 3, 3, 49], [0, 1, 2, 48]])
    xb, yb = split.rows(idx)
    whole = np.asarray(pre(x), np.float32)
    assert xb.dtype == np.float32 and xb.shape == (2, 4, 4, 3, 1) and yb.shape == (2, 4)
    np.testing.assert_array_equal(xb, whole[idx])  # exact: preprocessing is elementwise with fixed statistics
    np.testing.assert_array_equal(yb, y[idx])


def test_rows_of_a_memory_map_equal_those_in_memory(tmp_path):
    x, y = _raw()
    np.save(tmp_path / "x.npy", x)
    mm = np.load(tmp_path / "x.npy", mmap_mode="r")
    pre = jdata.Preprocessing("unit", src_range=(0.0, 255.0))
    idx = np.array([4, 9, 0])
    np.testing.assert_array_equal(jdata.HostSplit(mm, y, pre).rows(idx)[0], jdata.HostSplit(x, y, pre).rows(idx)[0])


@pytest.mark.parametrize("depth", [0, 1, 3])
def test_prefetch_yields_every_item_in_order(depth):
    assert list(jdata.prefetch(lambda i: i * i, 7, depth)) == [i * i for i in range(7)]


def test_prefetch_holds_at_most_depth_items_ahead():
    produced = []
    gen = jdata.prefetch(lambda i: produced.append(i) or i, 20, 2)
    assert next(gen) == 0
    time.sleep(0.3)  # the thread fills the queue and waits
    # item 0 consumed, items 1 and 2 queued, item 3 produced and waiting for room: never more
    assert len(produced) <= 4
    assert list(gen) == list(range(1, 20))


def test_prefetch_raises_the_producers_error_at_its_item():
    def produce(i: int) -> int:
        if i == 3:
            raise OSError("disk read failed")
        return i

    got = []
    with pytest.raises(OSError, match="disk read failed"):
        for v in jdata.prefetch(produce, 6, 2):
            got.append(v)
    assert got == [0, 1, 2]


def test_closing_the_consumer_stops_the_thread():
    before = threading.active_count()
    gen = jdata.prefetch(lambda i: i, 1000, 2)
    next(gen)
    gen.close()
    assert threading.active_count() == before
    assert not any(t.name == "jtricks-prefetch" for t in threading.enumerate())


@pytest.mark.parametrize("bad", [-1, 1.5, True, "2"])
def test_prefetch_depth_is_checked(bad):
    with pytest.raises(ValueError, match="`prefetch` must be an int >= 0"):
        list(jdata.prefetch(lambda i: i, 2, bad))


def test_npy_folder_maps_the_inputs(tmp_path):
    x, y = _raw()
    for k, a in {"x_train": x, "y_train": y, "x_test": x[:8], "y_test": y[:8]}.items():
        np.save(tmp_path / f"{k}.npy", a)
    ds = jdata.npy_folder(tmp_path, num_classes=5, value_range=(0, 255))
    assert isinstance(ds.x_train, np.memmap) and not ds.x_train.flags.writeable
    np.testing.assert_array_equal(np.asarray(ds.x_train), x)
    assert ds.y_train.dtype == np.int32 and ds.x_val is None and ds.input_shape == (4, 3, 1)
    assert not isinstance(jdata.npy_folder(tmp_path, num_classes=5, mmap=False).x_train, np.memmap)


def test_npy_folder_names_what_is_missing(tmp_path):
    np.save(tmp_path / "x_train.npy", np.zeros((2, 1)))
    with pytest.raises(FileNotFoundError, match="y_train.npy"):
        jdata.npy_folder(tmp_path, num_classes=2)
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        jdata.npy_folder(tmp_path / "x_train.npy", num_classes=2)
    for k in ("y_train", "x_test", "y_test", "x_val"):
        np.save(tmp_path / f"{k}.npy", np.zeros((2, 1)) if k.startswith("x") else np.zeros(2, np.int32))
    with pytest.raises(ValueError, match="only one of x_val.npy and y_val.npy"):
        jdata.npy_folder(tmp_path, num_classes=2)
