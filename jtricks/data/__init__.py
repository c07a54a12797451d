"""Data sets, input scaling and on-device shuffling / batching.

Loaders (all offline; none downloads anything unless explicitly asked): :func:`fashion_mnist`, :func:`mnist`
(``download=True`` fetches it, verified by SHA-256), :func:`cifar10`, :func:`cifar100`, :func:`mnist1d`,
:func:`digits`, and :func:`load` by name.
Every loader returns a :class:`Dataset` holding the *raw* values, so that the scaling trick is an explicit,
visible step: :func:`preprocess` (``"unit"``, ``"symmetric"``, ``"standardize"``), :func:`scale`,
:func:`standardize` (statistics from the training split only). :func:`epoch_batches` gives one epoch of shuffled
mini-batch indices as a device array, so an epoch runs as one ``lax.scan`` over device-resident data.

The parts, one job each (their docstrings hold the details):

* ``_dataset`` -- the :class:`Dataset` container and :func:`arrays` (your own arrays);
* ``_registry`` -- the loader registry: :func:`load`, :func:`register_dataset`, :data:`LOADERS`, ...;
* ``_idx`` -- the IDX format (:func:`read_idx`) and the IDX loaders :func:`fashion_mnist`, :func:`mnist`;
* ``_cifar`` -- CIFAR's python format (:func:`read_cifar_pickle`, a restricted unpickler) and :func:`cifar10`,
  :func:`cifar100`;
* ``_download`` -- :func:`download_mnist` (mirrors, SHA-256, atomic moves);
* ``_generated`` -- :func:`mnist1d` (with its disk cache) and :func:`digits`, from optional packages;
* ``_paths`` -- ``$JTRICKS_DATA``, the cache folder ``~/.cache/jtricks`` and the folder search of every loader;
* ``_preprocess`` -- keeping values in range: :func:`scale`, :func:`standardize`, :func:`preprocess`;
* ``_stream`` -- streamed training data: :class:`HostSplit` (a split on the host, batches gathered and
  preprocessed there), :func:`prefetch` (a background thread, a bounded queue), :func:`npy_folder` (memory maps);
* ``_batching`` -- key-driven order: :func:`train_val_split`, :func:`num_batches`, :func:`epoch_batches`.

Use them through this package (``jtricks.data.X``): rebinding a name here (``monkeypatch.setattr(jtricks.data,
"read_idx", spy)``) rebinds it where the parts look it up too, as when this package was one module.

Example::

    import jax
    from jtricks import data

    ds = data.preprocess(data.digits(seed=0), "unit")        # float32 in [0, 1]
    idx = data.epoch_batches(jax.random.key(0), ds.num_train, 32)   # (44, 32) int32
    xb = ds.x_train[idx[0]]                                  # one mini-batch, (32, 8, 8, 1)
"""

from __future__ import annotations

from jtricks.data._batching import epoch_batches, num_batches, train_val_split
from jtricks.data._cifar import CIFAR10_CLASSES as CIFAR10_CLASSES  # public, not in __all__
from jtricks.data._cifar import CIFAR10_URL, CIFAR100_URL, cifar10, cifar100, parse_cifar_cached, read_cifar_pickle
from jtricks.data._dataset import Array as Array  # public, not in __all__ (as before the split)
from jtricks.data._dataset import Dataset, arrays, warn_float32_targets
from jtricks.data._download import MNIST_FILES, MNIST_MIRRORS, download_mnist
from jtricks.data._download import Opener as Opener  # public, not in __all__
from jtricks.data._generated import digits, digits_arrays, mnist1d, mnist1d_arrays, mnist1d_cache_file
from jtricks.data._idx import FASHION_MNIST_CLASSES as FASHION_MNIST_CLASSES  # public, not in __all__
from jtricks.data._idx import fashion_mnist, mnist, parse_idx_dataset_cached, read_idx
from jtricks.data._preprocess import (
    PREPROCESS_METHODS,
    Preprocessing,
    StandardizeStats,
    apply_standardize,
    fit_preprocessing,
    float32_absorbs,
    preprocess,
    scale,
    standardize,
)
from jtricks.data._registry import LOADERS, load, loader, names, register_dataset, unregister_dataset
from jtricks.data._shapes import DatasetShape, known_shape
from jtricks.data._stream import NPY_SPLITS, HostSplit, check_prefetch, npy_folder, prefetch

__all__ = [
    "Dataset",
    "StandardizeStats",
    "read_idx",
    "fashion_mnist",
    "mnist",
    "download_mnist",
    "cifar10",
    "cifar100",
    "read_cifar_pickle",
    "CIFAR10_URL",
    "CIFAR100_URL",
    "mnist1d",
    "mnist1d_cache_file",
    "digits",
    "load",
    "known_shape",
    "DatasetShape",
    "LOADERS",
    "register_dataset",
    "unregister_dataset",
    "names",
    "loader",
    "arrays",
    "warn_float32_targets",
    "clear_cache",
    "scale",
    "standardize",
    "apply_standardize",
    "preprocess",
    "fit_preprocessing",
    "Preprocessing",
    "PREPROCESS_METHODS",
    "float32_absorbs",
    "train_val_split",
    "epoch_batches",
    "num_batches",
    "MNIST_MIRRORS",
    "MNIST_FILES",
    "HostSplit",
    "prefetch",
    "check_prefetch",
    "npy_folder",
    "NPY_SPLITS",
]


def clear_cache() -> None:
    """Drop the in-process memo of parsed / generated data sets (they are reloaded on next use)."""
    parse_idx_dataset_cached.cache_clear()
    parse_cifar_cached.cache_clear()
    mnist1d_arrays.cache_clear()
    digits_arrays.cache_clear()
