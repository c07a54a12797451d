"""CIFAR-10 and CIFAR-100 (Krizhevsky, 2009) from a local copy in the "python version" format: :func:`cifar10`,
:func:`cifar100`, and :func:`read_cifar_pickle` (one file, unpickled with a restricted unpickler).

The format (https://www.cs.toronto.edu/~kriz/cifar.html): each file is a pickled dict with ``data``, a uint8
array ``(N, 3072)`` whose rows are one 32x32 colour image in CHW order (1024 red, then 1024 green, then 1024
blue values, rows top to bottom), and the labels as a list of ints: ``labels`` in CIFAR-10
(``cifar-10-batches-py/{data_batch_1..5, test_batch}``, class names in ``batches.meta``), ``fine_labels`` and
``coarse_labels`` in CIFAR-100 (``cifar-100-python/{train, test}``, class names in ``meta``). The files were
written by Python 2, so keys may load as ``bytes`` or ``str`` (both accepted).

Nothing is downloaded; the folder is searched like Fashion-MNIST's (:func:`jtricks.data._paths.search_folders`):
``path`` when given (the unpacked folder itself, or the folder holding it), else ``$JTRICKS_DATA/<folder>``.
A pickle can run any code it names, so the files are read by an unpickler whose ``find_class`` allows only
numpy's array and dtype reconstruction (and ``_codecs.encode``, how protocol-2 pickles spell bytes): a file that
names anything else is refused before it is built.
"""

from __future__ import annotations

import codecs
import functools
import os
import pickle
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from jtricks.data._dataset import Dataset, readonly
from jtricks.data._paths import DATA_ENV, env_folder, search_folders

__all__ = [
    "CIFAR10_CLASSES",
    "CIFAR10_URL",
    "CIFAR100_URL",
    "read_cifar_pickle",
    "cifar10",
    "cifar100",
    "parse_cifar_cached",
]

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR100_URL = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip


def _numpy_global(name: str) -> Any:
    """``numpy._core.multiarray.<name>`` (numpy 2), else ``numpy.core.multiarray.<name>`` (numpy 1)."""
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 2
        from numpy.core import multiarray  # type: ignore[no-redef]
    return getattr(multiarray, name)


#: The only globals a CIFAR pickle may name: numpy array and scalar reconstruction, and bytes.
_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    **{
        (m, n): _numpy_global(n)
        for m in ("numpy.core.multiarray", "numpy._core.multiarray")
        for n in ("_reconstruct", "scalar")
    },
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): codecs.encode,
}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load the global {module}.{name}: a CIFAR file holds only numpy arrays, lists and numbers"
            ) from None


def read_cifar_pickle(path: str | os.PathLike[str]) -> dict[str, Any]:
    """One CIFAR file as a dict with ``str`` keys, unpickled by a restricted unpickler (see the module docstring).

    Raises:
      ValueError: naming the file, when it is not a pickled dict (truncated, corrupt, another format) or names
        a global other than numpy's array reconstruction.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            obj = _RestrictedUnpickler(f, encoding="latin1").load()
    except OSError:
        raise
    except Exception as e:  # a corrupt pickle can fail in many ways; each is the file's fault
        raise ValueError(f"CIFAR file {str(path)!r}: not a readable CIFAR pickle ({type(e).__name__}: {e})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"CIFAR file {str(path)!r}: holds a {type(obj).__name__}, expected a dict")
    return {k.decode("latin1") if isinstance(k, bytes) else str(k): v for k, v in obj.items()}


def _images_and_labels(path: Path, label_key: str, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """``(x (N, 32, 32, 3) uint8 NHWC, y (N,) int32)`` of one data file, checked."""
    d = read_cifar_pickle(path)
    for key in ("data", label_key):
        if key not in d:
            raise ValueError(f"CIFAR file {str(path)!r}: no {key!r} entry (it has {sorted(d)})")
    data = d["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        got = f"{data.dtype} array of shape {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise ValueError(f"CIFAR file {str(path)!r}: 'data' must be a uint8 array of shape (N, 3072), got a {got}")
    labels = np.asarray(d[label_key])
    labels = labels.astype(np.int64) if labels.size == 0 else labels
    if labels.ndim != 1 or labels.shape[0] != data.shape[0] or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"CIFAR file {str(path)!r}: {label_key!r} must be {data.shape[0]} integer labels (one per image), "
            f"got {labels.dtype} of shape {labels.shape}"
        )
    if labels.size and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        bad = int(labels.min()) if int(labels.min()) < 0 else int(labels.max())
        raise ValueError(f"CIFAR file {str(path)!r}: label {bad} out of range [0, {num_classes})")
    x = np.ascontiguousarray(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))  # CHW rows -> NHWC
    return x, labels.astype(np.int32)


class _Layout(NamedTuple):
    """One data set's files: the folder the archive unpacks to, the data files, the meta file and its names."""

    what: str
    folder: str
    train: tuple[str, ...]
    test: str
    meta: str
    url: str


_CIFAR10 = _Layout(
    "CIFAR-10",
    "cifar-10-batches-py",
    tuple(f"data_batch_{i}" for i in range(1, 6)),
    "test_batch",
    "batches.meta",
    CIFAR10_URL,
)
_CIFAR100 = _Layout("CIFAR-100", "cifar-100-python", ("train",), "test", "meta", CIFAR100_URL)

#: (label key in the data files, the meta entry of the class names, number of classes)
_LABELS: dict[str, tuple[str, str, int]] = {
    "cifar10": ("labels", "label_names", 10),
    "fine": ("fine_labels", "fine_label_names", 100),
    "coarse": ("coarse_labels", "coarse_label_names", 20),
}


def _finder(layout: _Layout) -> Any:
    names = (*layout.train, layout.test)

    def find(folder: Path) -> tuple[list[Path] | None, list[str]]:
        missing = [n for n in names if not (folder / n).is_file()]
        return ([folder / n for n in names] if not missing else None), missing

    return find


def _class_names(meta: Path, entry: str) -> tuple[str, ...] | None:
    if not meta.is_file():
        return None
    names = read_cifar_pickle(meta).get(entry)
    if not isinstance(names, (list, tuple)):
        raise ValueError(f"CIFAR file {str(meta)!r}: no list {entry!r} of class names")
    return tuple(n.decode("latin1") if isinstance(n, bytes) else str(n) for n in names)


def _parse(files_key: tuple[tuple[str, int, int], ...], labels: str) -> tuple[Any, ...]:
    """(x_train, y_train, x_test, y_test, class names or None) of the files (the last one the test file)."""
    paths = [Path(k[0]) for k in files_key]
    label_key, names_entry, k = _LABELS[labels]
    parts = [_images_and_labels(p, label_key, k) for p in paths]
    x_tr = readonly(np.concatenate([x for x, _ in parts[:-1]]))
    y_tr = readonly(np.concatenate([y for _, y in parts[:-1]]))
    meta = paths[0].parent / (_CIFAR10.meta if labels == "cifar10" else _CIFAR100.meta)
    names = _class_names(meta, names_entry)
    if names is not None and len(names) != k:
        raise ValueError(f"CIFAR file {str(meta)!r}: {len(names)} names in {names_entry!r}, expected {k}")
    return x_tr, y_tr, readonly(parts[-1][0]), readonly(parts[-1][1]), names


parse_cifar_cached = functools.lru_cache(maxsize=4)(_parse)


def _candidates(layout: _Layout, path: str | os.PathLike[str] | None) -> list[tuple[str, Path | None]]:
    if path is None:
        return [(f"${DATA_ENV}/{layout.folder}", env_folder(layout.folder))]
    p = Path(path).expanduser()
    return [("path", p / layout.folder if (p / layout.folder).is_dir() else p)]


def _load(layout: _Layout, path: Any, labels: str, cache: bool, name: str) -> Dataset:
    files, log = search_folders(
        _candidates(layout, path),
        layout.what,
        _finder(layout),
        total=len(layout.train) + 1,
        files=f"the {len(layout.train) + 1} {layout.what} files",
    )
    if files is None:
        archive = layout.url.rsplit("/", 1)[1]
        raise FileNotFoundError(
            f"{layout.what} not found. Searched:\n  - "
            + "\n  - ".join(log)
            + f"\nTo get it: download {layout.url} and unpack it into ${DATA_ENV} "
            f'(`tar -xzf {archive} -C "${DATA_ENV}"` makes ${DATA_ENV}/{layout.folder}/ with '
            f"{', '.join((*layout.train, layout.test, layout.meta))}), or pass path=... (that folder or the one "
            'holding it; in an experiment dataset_kwargs={"path": ...}).'
        )
    key = tuple((str(p.resolve()), p.stat().st_mtime_ns, p.stat().st_size) for p in files)
    x_tr, y_tr, x_te, y_te, names = (parse_cifar_cached if cache else _parse)(key, labels)
    num_classes = _LABELS[labels][2]
    if names is None and labels == "cifar10":
        names = CIFAR10_CLASSES
    return Dataset(name, x_tr, y_tr, x_te, y_te, num_classes, (32, 32, 3), (0.0, 255.0), names)


def cifar10(path: str | os.PathLike[str] | None = None, *, cache: bool = True) -> Dataset:
    """CIFAR-10 (Krizhevsky, 2009): 50,000 + 10,000 32x32 colour images, 10 classes.

    Reads ``cifar-10-batches-py/{data_batch_1..5, test_batch}`` (class names from ``batches.meta`` when
    present) from ``path`` when given (that folder, or the folder holding it; then only there), else from
    ``$JTRICKS_DATA/cifar-10-batches-py/``. Returns raw uint8 pixels in ``[0, 255]``, ``x`` of shape
    ``(N, 32, 32, 3)`` (NHWC, converted from the files' CHW rows), int32 labels; with ``cache=True`` a second
    call with unchanged files returns the same read-only arrays without parsing again.

    Raises:
      FileNotFoundError: listing the folders searched, the download URL (:data:`CIFAR10_URL`) and where to
        unpack it; or naming the files missing from a folder that holds only some of them.
      ValueError: a corrupt file (not a pickle, a refused global, a wrong shape or dtype, labels out of range).
    """
    return _load(_CIFAR10, path, "cifar10", cache, "cifar10")


def cifar100(path: str | os.PathLike[str] | None = None, *, labels: str = "fine", cache: bool = True) -> Dataset:
    """CIFAR-100 (Krizhevsky, 2009): 50,000 + 10,000 32x32 colour images, 100 fine classes in 20 coarse ones.

    Reads ``cifar-100-python/{train, test}`` (class names from ``meta`` when present) from ``path`` (that folder
    or the one holding it) or ``$JTRICKS_DATA/cifar-100-python/``, like :func:`cifar10`. ``labels``:
    ``"fine"`` (100 classes, ``fine_labels``) or ``"coarse"`` (20 superclasses, ``coarse_labels``).

    Raises:
      ValueError: an unknown ``labels``; a corrupt file as in :func:`cifar10`.
      FileNotFoundError: as in :func:`cifar10`, with :data:`CIFAR100_URL`.
    """
    if labels not in ("fine", "coarse"):
        raise ValueError(f"`labels` must be one of 'fine', 'coarse'; got {labels!r}")
    return _load(_CIFAR100, path, labels, cache, "cifar100")
