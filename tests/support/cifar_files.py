"""Small CIFAR-10 / CIFAR-100 folders in the real "python version" format, for the tests.

Each file is a pickled dict (protocol 2, as the originals) with ``data``: uint8 ``(N, 3072)`` rows in CHW order
and the labels as a list of ints; the images carry a class-dependent bright block so that a model can learn them.
Load it with ``importlib`` (the tests are not a package): ``tests/support/cifar_files.py``.
"""

from __future__ import annotations

import pickle
import struct
from pathlib import Path
from typing import Any

import numpy as np


def images(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``(N, 32, 32, 3)`` uint8 NHWC images: noise plus a bright 4x4 block at a place set by the label."""
    x = rng.integers(0, 100, size=(len(labels), 32, 32, 3), dtype=np.uint8)
    for i, k in enumerate(labels):
        r, c = divmod(int(k) % 49, 7)
        x[i, 4 * r : 4 * r + 4, 4 * c : 4 * c + 4, int(k) % 3] = 250
    return x


class Python2Pickler(pickle._Pickler):
    """Pickles ``bytes`` as Python 2's ``str`` (``SHORT_BINSTRING`` / ``BINSTRING``), as the original files hold
    their keys and the arrays' data (protocol 2 in Python 3 spells bytes as ``_codecs.encode`` instead)."""

    def save_bytes(self, obj: bytes) -> None:
        n = len(obj)
        self.write((pickle.SHORT_BINSTRING + bytes([n]) if n < 256 else pickle.BINSTRING + struct.pack("<i", n)) + obj)
        self.memoize(obj)

    dispatch = dict(pickle._Pickler.dispatch)
    dispatch[bytes] = save_bytes


def dump(path: Path, obj: Any, *, style: str = "str") -> None:
    """Pickle ``obj`` (protocol 2) with ``str`` keys (``style="str"``), ``bytes`` keys (``"bytes"``), or as
    Python 2 wrote it (``"python2"``: keys and array data as Python 2 ``str``)."""
    if style != "str" and isinstance(obj, dict):
        obj = {k.encode(): v for k, v in obj.items()}
    with open(path, "wb") as f:
        (Python2Pickler(f, protocol=2) if style == "python2" else pickle.Pickler(f, protocol=2)).dump(obj)


def write_file(path: Path, x: np.ndarray, labels: dict[str, list[int]], *, style: str = "str") -> None:
    """One data file: ``{"data": CHW rows, **labels, "batch_label": ..., "filenames": [...]}``."""
    entries = {
        "batch_label": "testing batch",
        "data": np.ascontiguousarray(x.transpose(0, 3, 1, 2).reshape(len(x), 3072)),
        **labels,
        "filenames": [f"img_{i}.png" for i in range(len(x))],
    }
    dump(path, entries, style=style)


def write_cifar10(
    root: Path, *, per_batch: int = 20, n_test: int = 20, seed: int = 0, style: str = "str"
) -> dict[str, np.ndarray]:
    """``root/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}``; returns the arrays written (NHWC)."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for b in range(1, 6):
        y = (np.arange(per_batch) + b) % 10
        x = images(y, rng)
        write_file(folder / f"data_batch_{b}", x, {"labels": y.tolist()}, style=style)
        xs.append(x)
        ys.append(y)
    y_te = np.arange(n_test) % 10
    x_te = images(y_te, rng)
    write_file(folder / "test_batch", x_te, {"labels": y_te.tolist()}, style=style)
    dump(folder / "batches.meta", {"label_names": [f"class{k}" for k in range(10)], "num_vis": 3072}, style=style)
    return {"x_train": np.concatenate(xs), "y_train": np.concatenate(ys), "x_test": x_te, "y_test": y_te}


def write_cifar100(root: Path, *, n_train: int = 100, n_test: int = 20, seed: int = 0) -> dict[str, np.ndarray]:
    """``root/cifar-100-python/{train, test, meta}``; returns the arrays written (NHWC, fine and coarse labels)."""
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    for split, n in (("train", n_train), ("test", n_test)):
        fine = (np.arange(n) * 7) % 100
        x = images(fine, rng)
        write_file(folder / split, x, {"fine_labels": fine.tolist(), "coarse_labels": (fine // 5).tolist()})
        out.update({f"x_{split}": x, f"fine_{split}": fine, f"coarse_{split}": fine // 5})
    dump(
        folder / "meta",
        {"fine_label_names": [f"f{k}" for k in range(100)], "coarse_label_names": [f"c{k}" for k in range(20)]},
    )
    return out
