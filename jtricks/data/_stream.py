"""Streamed training data: a training split kept on the host, batches gathered there and prefetched.

* :class:`HostSplit` -- a training split on the host: raw inputs (a numpy array or a read-only memory map of a
  ``.npy`` file, never copied whole), targets, and the preprocessing applied to every gathered batch:
  ``batch = float32(preprocess(x[idx]))``, ``y[idx]``. Preprocessing is elementwise with fixed statistics,
  so a gathered batch holds exactly the values the rows have in the split preprocessed whole.
* :func:`prefetch` -- ``produce(0), ..., produce(n - 1)`` in order, computed up to ``depth`` items ahead by one
  background thread through a bounded queue (``depth = 0``: on demand, in the caller's thread).
* :func:`npy_folder` -- a :class:`Dataset` of ``.npy`` files memory-mapped read-only (``np.load(...,
  mmap_mode="r")``), the form of a data set larger than the device's (or the host's) memory.
"""

from __future__ import annotations

import dataclasses
import os
import queue
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from jtricks.data._dataset import Dataset

__all__ = ["HostSplit", "prefetch", "check_prefetch", "npy_folder", "NPY_SPLITS"]

T = TypeVar("T")

#: The files :func:`npy_folder` reads (``x_val``/``y_val`` optional).
NPY_SPLITS: tuple[str, ...] = ("x_train", "y_train", "x_test", "y_test", "x_val", "y_val")


@dataclasses.dataclass(frozen=True)
class HostSplit:
    """A training split on the host.

    Attributes:
      x: raw inputs ``(N, *input_shape)``: a numpy array or a memory map (read by rows, never copied whole).
      y: targets ``(N,)`` or ``(N, K)``, already in the dtype the loss expects.
      preprocessing: a function of raw inputs giving float32 inputs (:class:`jtricks.data.Preprocessing`).
    """

    x: np.ndarray
    y: np.ndarray
    preprocessing: Callable[[np.ndarray], Any]

    @property
    def num_examples(self) -> int:
        return int(self.x.shape[0])

    def rows(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The examples ``idx`` (any shape of int indices): ``(float32(preprocess(x[idx])), y[idx])`` with
        shapes ``(*idx.shape, *input_shape)`` and ``(*idx.shape, *target_shape)``."""
        idx = np.asarray(idx)
        flat = idx.reshape(-1)
        x = np.asarray(self.preprocessing(np.asarray(self.x[flat])), np.float32)
        y = np.asarray(self.y[flat])
        return x.reshape(idx.shape + x.shape[1:]), y.reshape(idx.shape + y.shape[1:])


class _Failure:
    """An exception raised by the producer thread, handed to the consumer."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


def check_prefetch(depth: Any) -> int:
    """``depth`` as an int >= 0, else ``ValueError`` naming ``prefetch``."""
    if isinstance(depth, bool) or not isinstance(depth, (int, np.integer)) or depth < 0:
        raise ValueError(f"`prefetch` must be an int >= 0 (batches prepared ahead; 0: none), got {depth!r}")
    return int(depth)


def prefetch(produce: Callable[[int], T], count: int, depth: int) -> Iterator[T]:
    """Yield ``produce(0), ..., produce(count - 1)`` in order.

    ``depth > 0``: one background thread computes the items ahead into a queue of at most ``depth`` items (so at
    most ``depth + 1`` items exist at once, the one being consumed included); an exception of ``produce`` is raised
    here, at the item that failed; closing the generator early (``break``, an exception in the consumer) stops the
    thread. ``depth = 0``: each item is produced when it is asked for.
    """
    depth = check_prefetch(depth)
    if depth == 0:
        for i in range(count):
            yield produce(i)
        return
    q: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def work() -> None:
        for i in range(count):
            try:
                item: Any = produce(i)
            except BaseException as e:  # handed to the consumer, raised there
                item = _Failure(e)
            while not stop.is_set():
                try:
                    q.put(item, timeout=0.05)
                    break
                except queue.Full:
                    continue
            if stop.is_set() or isinstance(item, _Failure):
                return

    thread = threading.Thread(target=work, name="jtricks-prefetch", daemon=True)
    thread.start()
    try:
        for _ in range(count):
            item = q.get()
            if isinstance(item, _Failure):
                raise item.error
            yield item
    finally:
        stop.set()
        thread.join()


def npy_folder(
    path: str | os.PathLike,
    *,
    num_classes: int | None,
    name: str | None = None,
    value_range: tuple[float, float] | None = None,
    mmap: bool = True,
) -> Dataset:
    """A :class:`Dataset` of the ``.npy`` files in the folder ``path``: ``x_train.npy``, ``y_train.npy``,
    ``x_test.npy``, ``y_test.npy`` and optionally ``x_val.npy``, ``y_val.npy`` (its own validation split).

    ``mmap=True`` maps every file read-only (``np.load(..., mmap_mode="r")``): nothing is read until used, so with
    ``Experiment(data_placement="stream")`` the training inputs are read batch by batch (docs/streaming.md).
    Targets are small and read into memory (class labels as int32). ``num_classes=None``: regression.

    Raises:
      FileNotFoundError: a required file is missing (named).
      ValueError: only one of ``x_val.npy`` / ``y_val.npy`` exists.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"npy_folder: {folder} is not a folder (expected {', '.join(NPY_SPLITS[:4])} .npy)")
    files = {k: folder / f"{k}.npy" for k in NPY_SPLITS}
    missing = [str(files[k]) for k in NPY_SPLITS[:4] if not files[k].is_file()]
    if missing:
        raise FileNotFoundError(f"npy_folder: missing {', '.join(missing)}")
    if files["x_val"].is_file() != files["y_val"].is_file():
        raise ValueError(f"npy_folder: {folder} holds only one of x_val.npy and y_val.npy; give both or neither")
    mode = "r" if mmap else None
    arrays = {k: np.load(f, mmap_mode=mode, allow_pickle=False) for k, f in files.items() if f.is_file()}
    for k in ("y_train", "y_test", "y_val"):
        if k in arrays:
            y = np.asarray(arrays[k])
            arrays[k] = y.astype(np.int32) if num_classes is not None else y.astype(np.float32)
    x = arrays["x_train"]
    return Dataset(
        name or folder.name,
        x,
        arrays["y_train"],
        arrays["x_test"],
        arrays["y_test"],
        num_classes,
        tuple(x.shape[1:]),
        value_range,
        None,
        arrays.get("x_val"),
        arrays.get("y_val"),
    )
