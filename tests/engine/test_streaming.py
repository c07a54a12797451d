"""Streamed training data (``data_placement="stream"``): the training split stays on the host (in memory or
memory-mapped), each member's batches are gathered there from the same epoch indices as on the device, and a run
gives the on-device run's metrics bit for bit (the host-loop execution on both sides), with or without prefetching."""

from __future__ import annotations

import numpy as np
import pytest
from support.experiments import small_digits_mlp

from jtricks import data as jdata
from jtricks import runner

pytestmark = pytest.mark.slow


def _rows(result):
    return [(r["arm"], r["seed"], r["epoch"], r["metric"], r["value"]) for r in result.metric_rows]


def test_streamed_run_equals_the_on_device_run_bit_for_bit():
    kw = dict(execution="loop", epochs=2, grid={"learning_rate": [1e-3, 3e-3]}, train_eval=40, preprocess="standardize")
    device = runner.run(small_digits_mlp(**kw), progress=False)
    streamed = runner.run(small_digits_mlp(data_placement="stream", **kw), progress=False)
    assert _rows(streamed) == _rows(device)
    assert [r for r in streamed.member_rows] == [r for r in device.member_rows]
    assert streamed.compiles == device.compiles  # one step program per group, as on the device


def test_memory_mapped_files_stream_to_the_same_numbers(tmp_path):
    ds = jdata.digits()
    x, y = np.asarray(ds.x_train), np.asarray(ds.y_train)
    splits = {"x_train": x[:320], "y_train": y[:320], "x_val": x[320:400], "y_val": y[320:400]}
    splits |= {"x_test": np.asarray(ds.x_test)[:100], "y_test": np.asarray(ds.y_test)[:100]}
    for k, a in splits.items():
        np.save(tmp_path / f"{k}.npy", a)
    mapped = jdata.npy_folder(tmp_path, num_classes=10, value_range=(0, 16))
    in_memory = jdata.arrays(**splits, num_classes=10, value_range=(0, 16))
    kw = dict(n_train=None, execution="loop", epochs=2, batch_size=32, eval_batch_size=50, accumulate=2)
    device = runner.run(small_digits_mlp(dataset=in_memory, **kw), progress=False)
    streamed = runner.run(small_digits_mlp(dataset=mapped, data_placement="stream", **kw), progress=False, prefetch=0)
    assert isinstance(mapped.x_train, np.memmap)
    assert _rows(streamed) == _rows(device)
