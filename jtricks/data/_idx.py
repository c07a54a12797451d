"""The IDX data sets: :func:`read_idx` (the file format), finding the four files, and the loaders
:func:`fashion_mnist` and :func:`mnist`.

IDX format (LeCun et al., MNIST): a big-endian header ``magic = 0x0000 08 D`` (two zero bytes, the type code
``0x08`` = unsigned byte, the number of dimensions ``D``), then ``D`` big-endian uint32 sizes, then
``prod(sizes)`` bytes in C order; images are ``0x00000803`` (count, rows, cols), labels ``0x00000801`` (count).
Gzip is detected by the magic bytes ``1f 8b``, not the file name.

A data set is the four files ``{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]``, read from the first folder
that holds them (none downloads anything unless explicitly asked):

* :func:`fashion_mnist` -- ``path``, else ``$JTRICKS_DATA/fashion-mnist/``, else
  ``/usr/share/datasets/fashion-mnist/`` (Debian package ``dataset-fashion-mnist``; :data:`FASHION_MNIST_SYSTEM_DIRS`,
  read at call time).
* :func:`mnist` -- ``path``, else ``$JTRICKS_DATA/mnist/``, else the download cache (``~/.cache/jtricks/mnist``);
  ``download=True`` fetches the files there (:func:`jtricks.data.download_mnist`, verified by SHA-256).

A folder holding only some of the four files is an error, not a reason to fall back to a later folder. Both
loaders return raw uint8 pixels in ``[0, 255]`` of shape ``(N, 28, 28, 1)`` (NHWC) and int32 labels; with
``cache=True`` the parsed arrays are kept in process (:data:`parse_idx_dataset_cached`) keyed by the files' resolved
paths, sizes and modification times.
"""

from __future__ import annotations

import functools
import math
import os
import tempfile
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from jtricks._core import files as jfiles
from jtricks.data._dataset import Dataset, readonly
from jtricks.data._download import MNIST_MIRRORS, default_mnist_cache, download_mnist
from jtricks.data._paths import DATA_ENV, env_folder, search_folders

__all__ = [
    "read_idx",
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_SYSTEM_DIRS",
    "fashion_mnist",
    "mnist",
    "parse_idx_dataset_cached",
]


_IDX_UBYTE = 0x08
_GZIP_MAGIC = b"\x1f\x8b"


def read_idx(path: str | os.PathLike[str], *, expected_ndim: int | None = None) -> np.ndarray:
    """Read an IDX file of unsigned bytes (the MNIST / Fashion-MNIST format), gzipped or not.

    Format (LeCun et al., MNIST): a big-endian header ``magic = 0x0000 08 D`` (two zero bytes, the
    type code ``0x08`` = unsigned byte, the number of dimensions ``D``), then ``D`` big-endian
    uint32 sizes, then ``prod(sizes)`` bytes in C order. Images are ``0x00000803`` (count, rows,
    cols), labels ``0x00000801`` (count). Gzip is detected by the magic bytes ``1f 8b``, not the
    file name.

    Args:
      path: the file.
      expected_ndim: if given, the number of dimensions the file must declare (3 for images,
        1 for labels).

    Returns:
      A read-only uint8 array of shape ``sizes``.

    Raises:
      ValueError: naming the file, when it is not a valid IDX file: bad gzip stream, bad magic
        number, unsupported type code, unexpected number of dimensions, or a length that does not
        match the declared sizes (truncated or with trailing bytes).
    """
    path = Path(path)
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == _GZIP_MAGIC:
        try:
            raw = zlib.decompress(raw, 16 + zlib.MAX_WBITS)
        except zlib.error as e:
            raise ValueError(f"IDX file {str(path)!r}: corrupt or truncated gzip stream ({e})") from None
    if len(raw) < 4:
        raise ValueError(f"IDX file {str(path)!r}: only {len(raw)} bytes, too short for the 4-byte magic number")
    magic = int.from_bytes(raw[:4], "big")
    if raw[0] != 0 or raw[1] != 0:
        raise ValueError(
            f"IDX file {str(path)!r}: bad magic number 0x{magic:08x}; an IDX file starts with two zero "
            "bytes (images 0x00000803, labels 0x00000801)"
        )
    if raw[2] != _IDX_UBYTE:
        raise ValueError(
            f"IDX file {str(path)!r}: unsupported type code 0x{raw[2]:02x} in magic number 0x{magic:08x}; "
            "only 0x08 (unsigned byte) is supported"
        )
    ndim = raw[3]
    if ndim == 0 or (expected_ndim is not None and ndim != expected_ndim):
        want = f"0x{0x800 + expected_ndim:08x} ({expected_ndim}-d)" if expected_ndim is not None else "D >= 1"
        raise ValueError(
            f"IDX file {str(path)!r}: magic number 0x{magic:08x} declares {ndim} dimensions, expected {want}"
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(
            f"IDX file {str(path)!r}: truncated header: {len(raw)} bytes, the {ndim}-d header needs {header}"
        )
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = math.prod(shape)
    actual = len(raw) - header
    if actual != expected:
        what = "truncated" if actual < expected else "trailing bytes"
        raise ValueError(
            f"IDX file {str(path)!r}: {what}: header declares shape {shape} = {expected} bytes of data, "
            f"the file holds {actual}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)  # read-only (bytes)


_IDX_STEMS = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)

FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip

# System-wide locations (module constants, read at call time).
FASHION_MNIST_SYSTEM_DIRS: tuple[str, ...] = ("/usr/share/datasets/fashion-mnist",)


def _find_files(folder: Path) -> tuple[list[Path] | None, list[str]]:
    """The four IDX files in ``folder`` (``stem`` or ``stem.gz``), or None and the missing names (all four
    when none is there)."""
    found: list[Path] = []
    missing: list[str] = []
    for stem in _IDX_STEMS:
        for name in (stem + ".gz", stem):
            p = folder / name
            if p.is_file():
                found.append(p)
                break
        else:
            missing.append(stem + "[.gz]")
    return (found if not missing else None), missing


def _search(
    candidates: Sequence[tuple[str, Path | None]], what: str, *, completable: Sequence[str] = ()
) -> tuple[list[Path] | None, list[str]]:
    """The first folder of ``candidates`` holding the four IDX files (:func:`jtricks.data._paths.search_folders`)."""
    return search_folders(
        candidates, what, _find_files, total=len(_IDX_STEMS), files="the four IDX files", completable=completable
    )


def _file_key(files: Sequence[Path]) -> tuple[tuple[str, int, int], ...]:
    out = []
    for p in files:
        st = p.stat()
        out.append((str(p.resolve()), st.st_mtime_ns, st.st_size))
    return tuple(out)


def _parse_idx_dataset(files_key: tuple[tuple[str, int, int], ...], num_classes: int) -> tuple[np.ndarray, ...]:
    """Parse and check the four IDX files: (x_train, y_train, x_test, y_test), all read-only."""
    paths = [Path(k[0]) for k in files_key]
    out: list[np.ndarray] = []
    for split in range(2):
        img_path, lab_path = paths[2 * split], paths[2 * split + 1]
        images = read_idx(img_path, expected_ndim=3)
        labels = read_idx(lab_path, expected_ndim=1)
        if images.shape[0] != labels.shape[0]:
            raise ValueError(
                f"IDX files {str(img_path)!r} and {str(lab_path)!r}: {images.shape[0]} images but "
                f"{labels.shape[0]} labels"
            )
        if labels.size and int(labels.max()) >= num_classes:
            raise ValueError(f"IDX file {str(lab_path)!r}: label {int(labels.max())} out of range [0, {num_classes})")
        out.append(images[..., None])  # NHWC, a read-only view
        out.append(readonly(labels.astype(np.int32)))
    return tuple(out)


parse_idx_dataset_cached = functools.lru_cache(maxsize=4)(_parse_idx_dataset)


def _load_idx(
    files: Sequence[Path], name: str, num_classes: int, cache: bool, class_names: tuple[str, ...] | None
) -> Dataset:
    key = _file_key(files)
    parse = parse_idx_dataset_cached if cache else _parse_idx_dataset
    x_tr, y_tr, x_te, y_te = parse(key, num_classes)
    return Dataset(
        name=name,
        x_train=x_tr,
        y_train=y_tr,
        x_test=x_te,
        y_test=y_te,
        num_classes=num_classes,
        input_shape=tuple(x_tr.shape[1:]),
        value_range=(0.0, 255.0),
        class_names=class_names,
    )


def fashion_mnist(path: str | os.PathLike[str] | None = None, *, cache: bool = True) -> Dataset:
    """Fashion-MNIST (Xiao, Rasul & Vollgraf, 2017): 60,000 + 10,000 28x28 grey images, 10 classes.

    The four IDX files ``{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]`` are read from the
    first of:

    1. ``path``, when given (then only there);
    2. ``$JTRICKS_DATA/fashion-mnist/``;
    3. ``/usr/share/datasets/fashion-mnist/`` (Debian package ``dataset-fashion-mnist``).

    Returns raw uint8 pixels in ``[0, 255]``, ``x`` of shape ``(N, 28, 28, 1)`` (NHWC), int32
    labels. With ``cache=True`` a second call with unchanged files (same resolved paths, sizes and
    modification times) returns the same read-only arrays without parsing again.

    Raises:
      FileNotFoundError: listing the places searched and how to get the data; or naming the files
        missing from a folder that holds only some of the four (no fall-back to a later folder).
      ValueError: a corrupt file (see :func:`read_idx`), or image/label counts that disagree.
    """
    if path is not None:
        candidates: list[tuple[str, Path | None]] = [("path", Path(path).expanduser())]
    else:
        candidates = [(f"${DATA_ENV}/fashion-mnist", env_folder("fashion-mnist"))]
        candidates += [("system data set", Path(d)) for d in FASHION_MNIST_SYSTEM_DIRS]
    files, log = _search(candidates, "Fashion-MNIST")
    if files is None:
        raise FileNotFoundError(
            "Fashion-MNIST not found. Searched:\n  - "
            + "\n  - ".join(log)
            + "\nTo get it offline: `apt-get install dataset-fashion-mnist` (Debian/Ubuntu; installs "
            "/usr/share/datasets/fashion-mnist/), or put the four files "
            + ", ".join(s + ".gz" for s in _IDX_STEMS)
            + f" into ${DATA_ENV}/fashion-mnist/ (or pass path=...)."
        )
    return _load_idx(files, "fashion_mnist", 10, cache, FASHION_MNIST_CLASSES)


def mnist(
    path: str | os.PathLike[str] | None = None,
    *,
    download: bool = False,
    cache_dir: str | os.PathLike[str] | None = None,
    mirrors: Sequence[str] = MNIST_MIRRORS,
    cache: bool = True,
) -> Dataset:
    """MNIST (LeCun et al., 1998): 60,000 + 10,000 28x28 grey digit images, 10 classes.

    The four IDX files ``{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]`` are read from the
    first of: ``path`` when given (then only there); ``$JTRICKS_DATA/mnist/``; the download cache
    ``cache_dir`` (default ``~/.cache/jtricks/mnist``). Nothing is downloaded unless
    ``download=True``: then, if no folder has the files, :func:`download_mnist` fetches them into
    the cache, verified by SHA-256. A default cache folder that cannot take files (below a regular file,
    read-only, a full disk) gives one warning line on stderr and the files are fetched into a temporary
    folder, read and removed.

    Returns raw uint8 pixels in ``[0, 255]``, ``(N, 28, 28, 1)`` NHWC, int32 labels; cached in
    process like :func:`fashion_mnist`.

    Raises:
      FileNotFoundError: listing the places searched and how to get the data; or naming the files
        missing from ``path`` or ``$JTRICKS_DATA/mnist/`` when it holds only some of the four.
      ValueError: a corrupt file or a download whose checksum does not match.
    """
    if not isinstance(download, (bool, np.bool_)):
        raise TypeError(f"`download` must be a bool, got {type(download).__name__}")
    cache_folder = Path(cache_dir).expanduser() if cache_dir is not None else default_mnist_cache()
    if path is not None:
        candidates: list[tuple[str, Path | None]] = [("path", Path(path).expanduser())]
    else:
        candidates = [(f"${DATA_ENV}/mnist", env_folder("mnist")), ("download cache", cache_folder)]
    files, log = _search(candidates, "MNIST", completable=("download cache",))
    if files is None and download and path is None:
        why = jfiles.unusable_reason(cache_folder) if cache_dir is None else None
        if why is not None:  # the default cache is an optimization: fetch into a temporary folder instead
            jfiles.warn_unusable("data cache", cache_folder, why)
            with tempfile.TemporaryDirectory(prefix="jtricks-mnist-") as tmp:
                files, _ = _search([("download", download_mnist(tmp, mirrors=mirrors))], "MNIST")
                assert files is not None  # a download completes the four files or raises
                return _load_idx(files, "mnist", 10, False, tuple(str(i) for i in range(10)))
        download_mnist(cache_folder, mirrors=mirrors)
        files, log = _search([("download cache", cache_folder)], "MNIST", completable=("download cache",))
    if files is None:
        raise FileNotFoundError(
            "MNIST not found. Searched:\n  - "
            + "\n  - ".join(log)
            + "\nTo get it: put the four files "
            + ", ".join(s + ".gz" for s in _IDX_STEMS)
            + f" into ${DATA_ENV}/mnist/ (or pass path=...), or, when online, call "
            "jtricks.data.mnist(download=True) to fetch them (SHA-256 verified) into "
            f"{cache_folder}."
        )
    return _load_idx(files, "mnist", 10, cache, tuple(str(i) for i in range(10)))
