"""The shapes of the built-in data sets, known without loading them (what ``jtricks run --dry-run`` estimates
memory from): one example's shape, the classes and the split sizes as the loaders return them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

__all__ = ["DatasetShape", "known_shape"]


class DatasetShape(NamedTuple):
    """A data set's shapes: ``input_shape`` of one example, ``num_classes`` (``None``: regression), the
    examples of its training and test splits (``num_val``: of its own validation split, ``0`` when it has none)."""

    input_shape: tuple[int, ...]
    num_classes: int | None
    num_train: int
    num_test: int
    num_val: int = 0


_SHAPES: Mapping[str, DatasetShape] = {
    "mnist": DatasetShape((28, 28, 1), 10, 60_000, 10_000),
    "fashion_mnist": DatasetShape((28, 28, 1), 10, 60_000, 10_000),
    "cifar10": DatasetShape((32, 32, 3), 10, 50_000, 10_000),
    "cifar100": DatasetShape((32, 32, 3), 100, 50_000, 10_000),
    "mnist1d": DatasetShape((40,), 10, 4_000, 1_000),
    "digits": DatasetShape((8, 8, 1), 10, 1_437, 360),  # 1,797 images, test_fraction 0.2 (ceil)
}


def known_shape(dataset: Any, kwargs: Mapping[str, Any] | None = None) -> DatasetShape | None:
    """The shapes of ``dataset``: a :class:`jtricks.data.Dataset` (read from its arrays), a built-in name
    (from the table above, ``dataset_kwargs`` that change them applied: ``cifar100(labels="coarse")`` has 20
    classes, ``digits(test_fraction=f)`` other split sizes), else ``None`` (a registered loader: only loading it
    tells)."""
    import math

    from jtricks.data._dataset import Dataset

    if isinstance(dataset, Dataset):
        val = 0 if dataset.x_val is None else int(dataset.x_val.shape[0])
        return DatasetShape(dataset.input_shape, dataset.num_classes, dataset.num_train, dataset.num_test, val)
    if not isinstance(dataset, str):
        return None
    name = dataset.strip().lower().replace("-", "_")
    shape = _SHAPES.get(name)
    kwargs = dict(kwargs or {})
    if shape is None:
        return None
    if name == "cifar100" and kwargs.get("labels") == "coarse":
        shape = shape._replace(num_classes=20)
    if name == "digits" and "test_fraction" in kwargs:
        n_test = min(max(math.ceil(float(kwargs["test_fraction"]) * 1797), 1), 1796)
        shape = shape._replace(num_train=1797 - n_test, num_test=n_test)
    return shape
