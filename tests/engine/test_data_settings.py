"""The data settings of streaming, per-seed splits and the test-set bootstrap: checked before anything loads or
compiles, and left out of the run's fingerprint at their defaults; the default data path is the published one."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import jax
import numpy as np
import pytest
from support.experiments import small_digits_mlp

from jtricks import data as jdata
from jtricks import experiment as jexp
from jtricks import prepare
from jtricks.engine import options as joptions
from jtricks.engine import search as jsearch

NEW = ("data_placement", "vary_split", "test_bootstrap", "precision")
PUBLISHED = Path(__file__).resolve().parents[2] / "docs" / "results"


def test_new_settings_at_their_defaults_stay_out_of_the_fingerprint():
    exp = small_digits_mlp()
    fields = jexp.fingerprint_fields(exp)
    expected = {f.name for f in dataclasses.fields(exp) if f.name not in jexp.REPORT_ONLY and f.name not in NEW}
    assert set(fields) == expected
    changed = jexp.fingerprint_fields(small_digits_mlp(vary_split=True, data_placement="stream"))
    assert (changed["vary_split"], changed["data_placement"]) == (True, "stream")
    assert "test_bootstrap" in jexp.REPORT_ONLY  # it adds a file and columns, no number of the run changes


def test_default_data_path_gives_the_published_checksum():
    manifest = json.loads((PUBLISHED / "pbt_digits" / "manifest.json").read_text())
    c = manifest["config"]
    exp = jexp.Experiment(
        name="x",
        dataset=c["dataset"],
        preprocess=c["preprocess"],
        n_val=c["n_val"],
        eval_batch_size=c["eval_batch_size"],
        batch_size=c["batch_size"],
    )
    assert prepare.prepare_data(exp).checksum == manifest["data"][0][1]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (dict(data_placement="disk"), r"'data_placement' must be one of \['device', 'stream'\]"),
        (dict(data_placement="stream", execution="scan"), "needs execution 'loop' or 'auto'"),
        (dict(vary_split=1), "'vary_split' must be True or False"),
        (dict(vary_split=True, data_placement="stream"), "vary_split=True needs data_placement='device'"),
        (dict(test_bootstrap="yes"), "'test_bootstrap' must be True or False"),
    ],
)
def test_bad_settings_are_refused_before_anything_loads(changes, message):
    with pytest.raises(ValueError, match=message):
        jexp.validate(small_digits_mlp(**changes))


def test_test_bootstrap_is_refused_with_a_search():
    exp = small_digits_mlp(
        test_bootstrap=True, grid={"learning_rate": [1e-3, 1e-2]}, search=jsearch.Halving(rungs=(1,), keep=0.5)
    )
    with pytest.raises(ValueError, match="test_bootstrap=True records the test outcomes"):
        jexp.validate(exp)


def test_vary_split_needs_a_data_set_without_its_own_validation_split():
    x = np.zeros((40, 3), np.float32)
    y = np.arange(40, dtype=np.int32) % 2
    ds = jdata.arrays(x, y, x[:8], y[:8], num_classes=2, x_val=x[:8], y_val=y[:8])
    with pytest.raises(ValueError, match="has its own validation split; use vary_split=False"):
        prepare.prepare_data(small_digits_mlp(dataset=ds, n_train=None, vary_split=True, batch_size=8))


@pytest.mark.parametrize("bad", [-1, True, 1.0])
def test_prefetch_option_is_checked(bad):
    with pytest.raises(ValueError, match="`prefetch` must be an int >= 0"):
        joptions.RunOptions(prefetch=bad)


@pytest.mark.parametrize("preprocess", ["unit", "standardize"])
def test_a_streamed_split_stays_on_the_host_with_the_on_device_checksum(preprocess):
    device = prepare.prepare_data(small_digits_mlp(preprocess=preprocess, train_eval=30))
    streamed = prepare.prepare_data(small_digits_mlp(preprocess=preprocess, train_eval=30, data_placement="stream"))
    assert streamed.checksum == device.checksum
    assert isinstance(streamed.device.x_train, jax.ShapeDtypeStruct) and device.stream is None
    assert streamed.device.x_train.shape == device.device.x_train.shape == (640, 8, 8, 1)
    assert streamed.num_train == device.num_train == 640
    for name in ("x_val", "y_val", "val_mask", "x_test", "x_train_eval", "y_train_eval"):
        np.testing.assert_array_equal(getattr(streamed.device, name), getattr(device.device, name))
    xb, yb = streamed.stream.rows(np.array([[5, 0], [639, 17]]))
    np.testing.assert_array_equal(xb, np.asarray(device.device.x_train)[[[5, 0], [639, 17]]])
    np.testing.assert_array_equal(yb, np.asarray(device.device.y_train)[[[5, 0], [639, 17]]])
