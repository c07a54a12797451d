"""Bad values in jtricks.data: non-finite features and targets and out-of-range labels are refused in one line
when a data set is made, unless non-finite values are allowed explicitly."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest

from jtricks import data


def _splits(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "x_train": rng.normal(size=(40, 3, 2)).astype(np.float32),
        "y_train": rng.integers(0, 4, 40),
        "x_test": rng.normal(size=(30, 3, 2)).astype(np.float32),
        "y_test": rng.integers(0, 4, 30),
        "x_val": rng.normal(size=(20, 3, 2)).astype(np.float32),
        "y_val": rng.integers(0, 4, 20),
    }


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_nonfinite_features_are_refused_naming_split_count_and_first_example(split: str) -> None:
    a = _splits()
    x = a[f"x_{split}"]
    x[17, 1, 0] = np.nan
    x[17, 2, 1] = np.inf
    x[19, 0, 0] = -np.inf
    x[25 if split != "val" else 18, 0, 1] = np.nan
    want = (
        f"Dataset 'arrays': the {split} features hold 4 non-finite values (NaN/Inf), first at example 17; "
        "clean them or pass allow_nonfinite=True"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(want)}$"):
        data.arrays(**a, num_classes=4)
    ds = data.arrays(**a, num_classes=4, allow_nonfinite=True)
    assert ds.allow_nonfinite and np.isnan(getattr(ds, f"x_{split}")[17, 1, 0])


def test_one_nonfinite_value_in_a_large_split_and_integer_inputs() -> None:
    a = _splits()
    a["x_train"] = np.zeros((20_000, 3, 2), np.float32)  # more rows than one checking pass
    a["y_train"] = np.zeros(20_000, np.int64)
    a["x_train"][19_999, 2, 1] = np.inf
    with pytest.raises(
        ValueError, match=r"the train features hold 1 non-finite value \(NaN/Inf\), first at example 19999;"
    ):
        data.arrays(**a, num_classes=4)
    a["x_train"] = np.full((20_000, 3, 2), 255, np.uint8)  # integers cannot hold NaN/Inf
    assert data.arrays(**a, num_classes=4).num_train == 20_000


def test_regression_targets_and_labels() -> None:
    a = _splits()
    y = np.linspace(0, 1, 30, dtype=np.float64)
    y[[5, 9]] = [np.nan, np.inf]
    with pytest.raises(
        ValueError, match=r"^Dataset 'toy': the test targets hold 2 non-finite values \(NaN/Inf\), first at example 5;"
    ):
        data.arrays(a["x_train"], np.ones(40), a["x_test"], y, num_classes=None, name="toy")
    assert data.arrays(a["x_train"], np.ones(40), a["x_test"], y, num_classes=None, allow_nonfinite=True).num_test == 30
    a["y_val"][[3, 7, 8]] = [4, -1, 9]
    with pytest.raises(
        ValueError,
        match=r"^Dataset 'arrays': the val labels hold 3 values outside \[0, 4\), first at example 3; "
        r"labels are class indices 0\.\.3$",
    ):
        data.arrays(**a, num_classes=4, allow_nonfinite=True)  # labels are checked either way
    with pytest.raises(TypeError, match="`allow_nonfinite` must be a bool, got str"):
        data.arrays(**_splits(), num_classes=4, allow_nonfinite="yes")


def test_a_dataset_made_directly_and_its_copies_are_checked_too() -> None:
    a = _splits()
    ds = data.arrays(**a, num_classes=4)
    bad = np.array(ds.x_test)
    bad[3, 0, 0] = np.nan
    with pytest.raises(ValueError, match="the test features hold 1 non-finite value"):
        data.Dataset("mine", ds.x_train, ds.y_train, bad, ds.y_test, 4, (3, 2))
    with pytest.raises(ValueError, match="Dataset 'arrays': the test features hold 1 non-finite value"):
        dataclasses.replace(ds, x_test=bad)
    assert dataclasses.replace(ds, x_test=bad, allow_nonfinite=True).num_test == 30
    assert data.preprocess(data.arrays(**a, num_classes=4), "standardize").x_train.dtype == np.float32
