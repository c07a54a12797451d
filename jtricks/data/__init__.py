"""Data sets, input scaling and on-device shuffling / batching.

Loaders (all offline; none downloads anything unless explicitly asked):

* :func:`fashion_mnist` -- the four IDX files from ``path``, else ``$JTRICKS_DATA/fashion-mnist/``,
  else ``/usr/share/datasets/fashion-mnist/`` (Debian package ``dataset-fashion-mnist``).
* :func:`mnist` -- the four IDX files from ``path``, else ``$JTRICKS_DATA/mnist/``, else the download
  cache (``~/.cache/jtricks/mnist``); ``download=True`` fetches them, verified by SHA-256.
* :func:`mnist1d` -- generated locally by the ``mnist1d`` package (Greydanus, 2020).
* :func:`digits` -- scikit-learn's 8x8 digits with a seeded stratified split.
* :func:`load` -- the same by name.

Every loader returns a :class:`Dataset` holding the *raw* values (uint8 pixels in ``[0, 255]`` for
IDX data, ``[0, 16]`` for digits) so that the scaling trick is an explicit, visible step:
:func:`preprocess` (``"unit"``, ``"symmetric"``, ``"standardize"``), :func:`scale`,
:func:`standardize` (statistics from the training split only).

:func:`epoch_batches` gives one epoch of shuffled mini-batch indices as a device array, so an epoch
runs as one ``lax.scan`` over device-resident data (``x[idx]``), with no host round trip, and it
vmaps over keys (one data order per population member).

Example::

    import jax
    from jtricks import data

    ds = data.preprocess(data.digits(seed=0), "unit")        # float32 in [0, 1]
    idx = data.epoch_batches(jax.random.key(0), ds.num_train, 32)   # (44, 32) int32
    xb = ds.x_train[idx[0]]                                  # one mini-batch, (32, 8, 8, 1)
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import http.client
import importlib.metadata
import math
import numbers
import os
import random
import tempfile
import types
import urllib.request
import zlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jtricks._core import checks
from jtricks._core import files as jfiles

__all__ = [
    "Dataset",
    "StandardizeStats",
    "read_idx",
    "fashion_mnist",
    "mnist",
    "download_mnist",
    "mnist1d",
    "mnist1d_cache_file",
    "digits",
    "load",
    "LOADERS",
    "register_dataset",
    "unregister_dataset",
    "names",
    "loader",
    "arrays",
    "clear_cache",
    "scale",
    "standardize",
    "apply_standardize",
    "preprocess",
    "PREPROCESS_METHODS",
    "float32_absorbs",
    "train_val_split",
    "epoch_batches",
    "num_batches",
    "MNIST_MIRRORS",
    "MNIST_FILES",
]

Array = Any  # a numpy array or a jax array

# --------------------------------------------------------------------------------------------
# Container
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """A train/test data set held as host (numpy) arrays: classification, or regression.

    Attributes:
      name: the data set's name (``"fashion_mnist"``, ...).
      x_train, x_test: inputs, ``(N, *input_shape)``. Loaders keep the *raw* values (uint8 pixels
        for image data) so that scaling is an explicit step (:func:`preprocess`).
      y_train, y_test: classification: int labels in ``[0, num_classes)``, ``(N,)``; regression
        (``num_classes=None``): float targets ``(N,)`` or ``(N, K)``.
      num_classes: number of classes, or ``None`` for a regression task.
      input_shape: the shape of one example: ``(28, 28, 1)`` (NHWC) for MNIST-like images,
        ``(8, 8, 1)`` for digits, ``(40,)`` for MNIST-1D.
      value_range: ``(low, high)`` of the raw values when known (``(0, 255)`` for IDX images,
        ``(0, 16)`` for digits; ``(0, 1)`` / ``(-1, 1)`` after scaling), else ``None``.
      class_names: optional human-readable class names.
      x_val, y_val: an optional validation split of the data set's own (otherwise the experiment holds
        ``n_val`` examples out of the training split).

    Loaders return arrays marked read-only (they may be shared with an in-process cache); derive
    new arrays (``preprocess``, ``np.array(x)``) instead of writing into them. Build one from your own
    arrays with :func:`arrays`.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int | None
    input_shape: tuple[int, ...]
    value_range: tuple[float, float] | None = None
    class_names: tuple[str, ...] | None = None
    x_val: np.ndarray | None = None
    y_val: np.ndarray | None = None

    def __post_init__(self) -> None:
        shape = tuple(int(s) for s in self.input_shape)
        object.__setattr__(self, "input_shape", shape)
        if (self.x_val is None) != (self.y_val is None):
            raise ValueError(f"Dataset {self.name!r}: give both x_val and y_val, or neither")
        splits = ("train", "val", "test") if self.x_val is not None else ("train", "test")
        for split in splits:
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if tuple(x.shape[1:]) != shape:
                raise ValueError(
                    f"Dataset {self.name!r}: x_{split} has shape {tuple(x.shape)}, expected (N, *{shape})"
                )
            ok_ndim = y.ndim == 1 or (self.num_classes is None and y.ndim == 2)
            if not ok_ndim or y.shape[0] != x.shape[0]:
                raise ValueError(
                    f"Dataset {self.name!r}: y_{split} has shape {tuple(y.shape)}, expected ({x.shape[0]},) "
                    f"to match x_{split}" + ("" if self.num_classes is not None else f" or ({x.shape[0]}, K)")
                )
        if self.num_classes is not None and (not isinstance(self.num_classes, numbers.Integral) or self.num_classes < 1):
            raise ValueError(f"Dataset {self.name!r}: `num_classes` must be a positive int (or None for "
                             f"regression), got {self.num_classes!r}")

    def __repr__(self) -> str:
        task = f"num_classes={self.num_classes}" if self.num_classes is not None else "regression"
        val = f", n_val={len(self.x_val)}" if self.x_val is not None else ""
        return (f"Dataset({self.name!r}, n_train={self.num_train}{val}, n_test={self.num_test}, "
                f"input_shape={self.input_shape}, {task})")

    @property
    def num_outputs(self) -> int:
        """Outputs a model needs: the class count, or the regression target width (1 for ``(N,)`` targets)."""
        if self.num_classes is not None:
            return int(self.num_classes)
        return 1 if self.y_train.ndim == 1 else int(self.y_train.shape[1])

    @property
    def num_train(self) -> int:
        """Number of training examples."""
        return int(self.x_train.shape[0])

    @property
    def num_test(self) -> int:
        """Number of test examples."""
        return int(self.x_test.shape[0])

    def subset(self, n_train: int, n_test: int | None = None, *, seed: int | None = None) -> Dataset:
        """A smaller copy: ``n_train`` training and ``n_test`` (default: all) test examples.

        ``seed=None`` takes the first ``n`` examples of each split (the files' order; deterministic,
        not stratified). An int ``seed`` draws a stratified random sample instead: class ``k`` with
        ``c_k`` of the ``N`` examples gets ``floor(n·c_k/N)`` places plus one of the leftover places
        by largest remainder, drawn with ``numpy.random.default_rng(seed)``; the result is in random
        order.
        """
        n_train = _check_count("n_train", n_train, self.num_train)
        n_test = self.num_test if n_test is None else _check_count("n_test", n_test, self.num_test)
        if seed is None:
            tr, te = np.arange(n_train), np.arange(n_test)
        else:
            rng = np.random.default_rng(_check_seed(seed))
            tr = _stratified_choice(self.y_train, n_train, rng)
            te = _stratified_choice(self.y_test, n_test, rng)
        return dataclasses.replace(
            self,
            x_train=_readonly(self.x_train[tr]),
            y_train=_readonly(self.y_train[tr]),
            x_test=_readonly(self.x_test[te]),
            y_test=_readonly(self.y_test[te]),
        )


# --------------------------------------------------------------------------------------------
# Small validation helpers
# --------------------------------------------------------------------------------------------


def _check_count(name: str, n: Any, maximum: int) -> int:
    if not checks.is_python_int(n):
        raise TypeError(f"`{name}` must be a Python int, got {type(n).__name__}")
    if not 1 <= int(n) <= maximum:
        raise ValueError(f"`{name}` must satisfy 1 <= {name} <= {maximum}, got {n}")
    return int(n)


def _check_seed(seed: Any) -> int:
    if not checks.is_python_int(seed) or int(seed) < 0:
        raise TypeError(f"`seed` must be a non-negative Python int, got {seed!r}")
    return int(seed)


def _readonly(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


def _stratified_choice(y: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of a stratified random sample of size ``n`` from labels ``y`` (random order).

    Class ``k`` with ``c_k`` of the ``N`` labels gets ``floor(n·c_k/N)`` places; the remaining
    places go to the classes with the largest remainders ``n·c_k/N - floor(n·c_k/N)`` (ties: the
    smaller class index).
    """
    y = np.asarray(y)
    classes, counts = np.unique(y, return_counts=True)
    exact = n * counts / y.shape[0]
    quota = np.floor(exact).astype(np.int64)
    leftover = n - int(quota.sum())
    order = np.lexsort((classes, -(exact - quota)))  # largest remainder first, then class index
    quota[order[:leftover]] += 1
    chosen = [rng.permutation(np.flatnonzero(y == c))[:q] for c, q in zip(classes, quota)]
    return rng.permutation(np.concatenate(chosen))


# --------------------------------------------------------------------------------------------
# IDX reader
# --------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------
# IDX data sets (Fashion-MNIST, MNIST)
# --------------------------------------------------------------------------------------------

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

_DATA_ENV = "JTRICKS_DATA"
# System-wide locations (module constants, read at call time).
_FASHION_MNIST_SYSTEM_DIRS: tuple[str, ...] = ("/usr/share/datasets/fashion-mnist",)


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
    """Try each ``(description, folder)``; return the first complete set of files and a search log.

    A folder holding some but not all of the four files is an error (``FileNotFoundError`` naming the
    missing ones), not a reason to fall back to a later folder (a copy the user did not mean); except the
    folders whose description is in ``completable`` (a download cache that a download completes).
    """
    log: list[str] = []
    for desc, folder in candidates:
        if folder is None:
            log.append(f"{desc}: not set")
            continue
        if not folder.is_dir():
            log.append(f"{desc} = {folder}: no such directory")
            continue
        files, missing = _find_files(folder)
        if files is not None:
            return files, log
        if len(missing) < len(_IDX_STEMS) and desc not in completable:
            raise FileNotFoundError(
                f"{what}: {desc} = {folder} holds only some of the four IDX files, missing {', '.join(missing)}; "
                "add them, or remove the partial folder to use another copy",
            )
        log.append(f"{desc} = {folder}: missing {', '.join(missing)}")
    return None, log


def _env_folder(sub: str) -> Path | None:
    root = os.environ.get(_DATA_ENV)
    return Path(root).expanduser() / sub if root else None


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
            raise ValueError(
                f"IDX file {str(lab_path)!r}: label {int(labels.max())} out of range [0, {num_classes})"
            )
        out.append(images[..., None])  # NHWC, a read-only view
        out.append(_readonly(labels.astype(np.int32)))
    return tuple(out)


_parse_idx_dataset_cached = functools.lru_cache(maxsize=4)(_parse_idx_dataset)


def _load_idx(
    files: Sequence[Path], name: str, num_classes: int, cache: bool, class_names: tuple[str, ...] | None
) -> Dataset:
    key = _file_key(files)
    parse = _parse_idx_dataset_cached if cache else _parse_idx_dataset
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
        candidates = [(f"${_DATA_ENV}/fashion-mnist", _env_folder("fashion-mnist"))]
        candidates += [("system data set", Path(d)) for d in _FASHION_MNIST_SYSTEM_DIRS]
    files, log = _search(candidates, "Fashion-MNIST")
    if files is None:
        raise FileNotFoundError(
            "Fashion-MNIST not found. Searched:\n  - "
            + "\n  - ".join(log)
            + "\nTo get it offline: `apt-get install dataset-fashion-mnist` (Debian/Ubuntu; installs "
            "/usr/share/datasets/fashion-mnist/), or put the four files "
            + ", ".join(s + ".gz" for s in _IDX_STEMS)
            + f" into ${_DATA_ENV}/fashion-mnist/ (or pass path=...)."
        )
    return _load_idx(files, "fashion_mnist", 10, cache, FASHION_MNIST_CLASSES)


class _MnistFile(NamedTuple):
    name: str
    sha256: str
    size: int


# SHA-256 of the canonical gzipped MNIST files (the checksums used by tensorflow-datasets and
# many other projects; the same bytes are served by both mirrors below). torchvision's MD5 values
# for the same files: f68b3c2dcbeaaa9fbdd348bbdeb94873, d53e105ee54ea40749a09fcbcd1e9432,
# 9fb629c4189551a2d022fa330f9573f3, ec29112dd5afa0611ce80d1b7f02629c.
MNIST_FILES: tuple[_MnistFile, ...] = (
    _MnistFile("train-images-idx3-ubyte.gz", "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609", 9912422),
    _MnistFile("train-labels-idx1-ubyte.gz", "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c", 28881),
    _MnistFile("t10k-images-idx3-ubyte.gz", "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6", 1648877),
    _MnistFile("t10k-labels-idx1-ubyte.gz", "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6", 4542),
)  # fmt: skip

MNIST_MIRRORS: tuple[str, ...] = (
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
)

Opener = Callable[[str, float], BinaryIO]


def _urlopen(url: str, timeout: float) -> BinaryIO:
    return urllib.request.urlopen(url, timeout=timeout)  # noqa: S310 (https mirrors only)


def _cache_root() -> Path:
    """``$XDG_CACHE_HOME/jtricks`` (``~/.cache/jtricks``): downloaded and generated data sets."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    return Path(base).expanduser() / "jtricks"


def _default_mnist_cache() -> Path:
    return _cache_root() / "mnist"


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _fetch_verified(url: str, dest: Path, sha256: str, opener: Opener, timeout: float) -> None:
    """Stream ``url`` into a temp file next to ``dest``, check SHA-256, then ``os.replace``.

    On any failure the temp file is removed, so ``dest`` is either absent or complete and verified.
    """
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        h = hashlib.sha256()
        with os.fdopen(fd, "wb") as out, opener(url, timeout) as resp:
            for chunk in iter(lambda: resp.read(1 << 20), b""):
                h.update(chunk)
                out.write(chunk)
        digest = h.hexdigest()
        if digest != sha256:
            raise ValueError(f"checksum mismatch for {url}: SHA-256 {digest}, expected {sha256}")
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def download_mnist(
    cache_dir: str | os.PathLike[str] | None = None,
    *,
    mirrors: Sequence[str] = MNIST_MIRRORS,
    files: Sequence[tuple[str, str, int]] = MNIST_FILES,
    opener: Opener | None = None,
    timeout: float = 60.0,
) -> Path:
    """Download the four MNIST IDX files into ``cache_dir``, verified by SHA-256; return the folder.

    For each file (``(name, sha256, size)`` in ``files``, default :data:`MNIST_FILES`): a file
    already in ``cache_dir`` with the right SHA-256 is kept; otherwise each mirror URL
    ``mirror + name`` is tried in turn. The bytes stream into a temporary file in ``cache_dir`` and
    only a file whose SHA-256 matches is moved into place with ``os.replace`` (atomic), so an
    interrupted or corrupt download never leaves a partial file under the final name.

    Args:
      cache_dir: target folder (created); default ``$XDG_CACHE_HOME/jtricks/mnist``, i.e.
        ``~/.cache/jtricks/mnist``.
      mirrors: base URLs ending in ``/``, tried in order (default :data:`MNIST_MIRRORS`).
      files: ``(file name, sha256 hex digest, size)`` triples.
      opener: ``opener(url, timeout)`` returning a binary file-like context manager (default
        ``urllib.request.urlopen``); injectable so that the download logic is testable offline.
      timeout: seconds per request.

    Raises:
      ValueError: a file whose SHA-256 did not match on any mirror (no file is left behind).
      OSError: when no mirror could be reached for a file (the last error is chained).
    """
    if isinstance(mirrors, str):
        raise TypeError("`mirrors` must be a sequence of base URLs, not a single string")
    if not mirrors:
        raise ValueError("`mirrors` must name at least one base URL")
    folder = Path(cache_dir).expanduser() if cache_dir is not None else _default_mnist_cache()
    folder.mkdir(parents=True, exist_ok=True)
    opener = _urlopen if opener is None else opener
    for name, sha256, _size in files:
        dest = folder / name
        if dest.is_file() and _sha256_file(dest) == sha256:
            continue
        mismatches: list[str] = []
        last_error: BaseException | None = None
        for base in mirrors:
            url = base.rstrip("/") + "/" + name
            try:
                _fetch_verified(url, dest, sha256, opener, timeout)
                break
            except ValueError as e:
                mismatches.append(str(e))
            except (OSError, http.client.HTTPException) as e:
                last_error = e
        else:
            if mismatches:
                raise ValueError(f"could not download a verified {name}: " + "; ".join(mismatches))
            raise OSError(
                f"could not download {name} from any mirror ({', '.join(mirrors)}); "
                f"put the four MNIST files into ${_DATA_ENV}/mnist/ instead"
            ) from last_error
    return folder


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
    the cache, verified by SHA-256.

    Returns raw uint8 pixels in ``[0, 255]``, ``(N, 28, 28, 1)`` NHWC, int32 labels; cached in
    process like :func:`fashion_mnist`.

    Raises:
      FileNotFoundError: listing the places searched and how to get the data; or naming the files
        missing from ``path`` or ``$JTRICKS_DATA/mnist/`` when it holds only some of the four.
      ValueError: a corrupt file or a download whose checksum does not match.
    """
    if not isinstance(download, (bool, np.bool_)):
        raise TypeError(f"`download` must be a bool, got {type(download).__name__}")
    cache_folder = Path(cache_dir).expanduser() if cache_dir is not None else _default_mnist_cache()
    if path is not None:
        candidates: list[tuple[str, Path | None]] = [("path", Path(path).expanduser())]
    else:
        candidates = [(f"${_DATA_ENV}/mnist", _env_folder("mnist")), ("download cache", cache_folder)]
    files, log = _search(candidates, "MNIST", completable=("download cache",))
    if files is None and download and path is None:
        download_mnist(cache_folder, mirrors=mirrors)
        files, log = _search([("download cache", cache_folder)], "MNIST", completable=("download cache",))
    if files is None:
        raise FileNotFoundError(
            "MNIST not found. Searched:\n  - "
            + "\n  - ".join(log)
            + "\nTo get it: put the four files "
            + ", ".join(s + ".gz" for s in _IDX_STEMS)
            + f" into ${_DATA_ENV}/mnist/ (or pass path=...), or, when online, call "
            "jtricks.data.mnist(download=True) to fetch them (SHA-256 verified) into "
            f"{cache_folder}."
        )
    return _load_idx(files, "mnist", 10, cache, tuple(str(i) for i in range(10)))


# --------------------------------------------------------------------------------------------
# MNIST-1D and scikit-learn digits
# --------------------------------------------------------------------------------------------


def _missing_extra(loader: str, package: str, e: ImportError) -> ImportError:
    err = ImportError(
        f"jtricks.data.{loader}() needs the optional package {package!r} ({e}); "
        'install it with: pip install "jtricks[data]"'
    )
    err.__cause__ = e
    return err


_MNIST1D_FIELDS = (("x", np.float32), ("y", np.int32), ("x_test", np.float32), ("y_test", np.int32))


def _generate_mnist1d(seed: int) -> tuple[np.ndarray, ...]:
    try:
        import mnist1d.data as m1d
    except ImportError as e:
        raise _missing_extra("mnist1d", "mnist1d", e) from e
    args = m1d.get_dataset_args()
    args.seed = seed
    # make_dataset seeds the global `random` and `numpy.random` generators; restore them so that
    # loading data has no effect on anyone else's randomness.
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        d = m1d.make_dataset(args)
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
    return tuple(np.ascontiguousarray(np.asarray(d[k], dtype=dt)) for k, dt in _MNIST1D_FIELDS)


def mnist1d_cache_file(seed: int = 42) -> Path | None:
    """Where the generated MNIST-1D of ``seed`` is kept: ``~/.cache/jtricks/mnist1d/mnist1d-<version>-seed<seed>.npz``
    (``$XDG_CACHE_HOME`` respected; the generator package's version is part of the name); ``None``
    when the package is not installed."""
    try:
        version = importlib.metadata.version("mnist1d")
    except importlib.metadata.PackageNotFoundError:
        return None
    return _cache_root() / "mnist1d" / f"mnist1d-{version}-seed{_check_seed(seed)}.npz"


def _read_cached(path: Path) -> tuple[np.ndarray, ...] | None:
    """The arrays of a complete, well-formed cache file, or ``None`` (missing or damaged: regenerate)."""
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = tuple(np.ascontiguousarray(f[k]) for k, _ in _MNIST1D_FIELDS)
    except (OSError, KeyError, ValueError, zlib.error):
        return None
    ok = all(a.dtype == dt for a, (_, dt) in zip(arrays, _MNIST1D_FIELDS)) and arrays[0].ndim == 2
    return arrays if ok and len(arrays[0]) == len(arrays[1]) and len(arrays[2]) == len(arrays[3]) else None


def _write_cached(path: Path, arrays: tuple[np.ndarray, ...]) -> None:
    """Best effort, atomic (:func:`jtricks._core.files.atomic_file`); an unwritable cache is skipped."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with jfiles.atomic_file(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, **{k: a for (k, _), a in zip(_MNIST1D_FIELDS, arrays)})
    except OSError:
        return


@functools.lru_cache(maxsize=8)
def _mnist1d_arrays(seed: int) -> tuple[np.ndarray, ...]:
    path = mnist1d_cache_file(seed)
    arrays = _read_cached(path) if path is not None else None
    if arrays is None:
        arrays = _generate_mnist1d(seed)
        if path is not None:
            _write_cached(path, arrays)
    return tuple(_readonly(a) for a in arrays)


def mnist1d(seed: int = 42) -> Dataset:
    """MNIST-1D (Greydanus, 2020): 4,000 + 1,000 procedurally generated 1-D digit signals, length 40.

    Generated locally with ``mnist1d.data.make_dataset(get_dataset_args())`` and
    ``args.seed = seed`` (42 reproduces the published data set); the package's download path is
    never used. The generator already centres and scales the signals (``(x - mean) / std`` over
    the whole generated set), so ``value_range`` is ``None`` and inputs are float32; labels int32.
    Generation (about 3 s with the package's import) happens once per seed and generator version: the
    arrays are kept in :func:`mnist1d_cache_file` (a damaged file is regenerated; delete the folder to
    empty it) and in process. The global ``random`` / ``numpy.random`` states the generator seeds are
    restored afterwards.

    Raises:
      ImportError: when the optional package ``mnist1d`` is missing (``pip install "jtricks[data]"``).
    """
    seed = _check_seed(seed)
    x_tr, y_tr, x_te, y_te = _mnist1d_arrays(seed)
    return Dataset("mnist1d", x_tr, y_tr, x_te, y_te, 10, (40,), None, tuple(str(i) for i in range(10)))


@functools.lru_cache(maxsize=1)
def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:
        raise _missing_extra("digits", "scikit-learn", e) from e
    bunch = load_digits()
    images = np.asarray(bunch.images)
    if images.min() < 0 or images.max() > 16:
        raise ValueError("sklearn digits: pixel values outside the documented range [0, 16]")
    x = _readonly(images.astype(np.uint8)[..., None])
    y = _readonly(np.asarray(bunch.target, dtype=np.int32))
    return x, y


def digits(seed: int = 0, test_fraction: float = 0.2) -> Dataset:
    """scikit-learn's handwritten digits: 1,797 8x8 images, values 0..16, 10 classes.

    A seeded stratified split: ``n_test = ceil(test_fraction · N)`` (scikit-learn's convention),
    shared among the classes in proportion to their counts (largest remainder), drawn with
    ``numpy.random.default_rng(seed)``; the rest is the training split. Both splits come in random
    order. Images are raw uint8 in ``[0, 16]`` of shape ``(8, 8, 1)``; labels int32.

    Raises:
      ImportError: when scikit-learn is missing (``pip install "jtricks[data]"``).
    """
    seed = _check_seed(seed)
    if not checks.is_python_number(test_fraction) or not 0.0 < float(test_fraction) < 1.0:
        raise ValueError(f"`test_fraction` must satisfy 0 < test_fraction < 1, got {test_fraction!r}")
    x, y = _digits_arrays()
    n = y.shape[0]
    n_test = min(max(math.ceil(float(test_fraction) * n), 1), n - 1)
    rng = np.random.default_rng(seed)
    test_idx = _stratified_choice(y, n_test, rng)
    train_mask = np.ones(n, dtype=bool)
    train_mask[test_idx] = False
    train_idx = rng.permutation(np.flatnonzero(train_mask))
    return Dataset(
        "digits",
        _readonly(x[train_idx]),
        _readonly(y[train_idx]),
        _readonly(x[test_idx]),
        _readonly(y[test_idx]),
        10,
        (8, 8, 1),
        (0.0, 16.0),
        tuple(str(i) for i in range(10)),
    )


_LOADERS: dict[str, Callable[..., Dataset]] = {"fashion_mnist": fashion_mnist, "mnist": mnist, "mnist1d": mnist1d, "digits": digits}

#: Data set name → loader (a read-only view; add entries with :func:`register_dataset`).
LOADERS: Mapping[str, Callable[..., Dataset]] = types.MappingProxyType(_LOADERS)


def _normalize_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise TypeError(f"a data set name must be a non-empty str, got {name!r}")
    return name.strip().lower().replace("-", "_")


def register_dataset(name: str, loader: Callable[..., Dataset], *, overwrite: bool = False) -> None:
    """Make ``loader`` (``loader(**kwargs) -> Dataset``) available as ``dataset=name`` in experiments, in
    :func:`load` and in ``jtricks run --set dataset=name``. Register it in the experiment file (it runs
    before the experiment is validated).

    Raises:
      ValueError: ``name`` is taken (pass ``overwrite=True`` to replace a user entry; built-in data sets
        cannot be replaced).
      TypeError: ``loader`` is not callable.
    """
    key = _normalize_name(name)
    if not callable(loader):
        raise TypeError(f"`loader` must be callable (loader(**kwargs) -> Dataset), got {type(loader).__name__}")
    builtin = {"fashion_mnist", "mnist", "mnist1d", "digits"}
    if key in _LOADERS and (key in builtin or not overwrite):
        raise ValueError(f"data set {key!r} is already registered" + ("" if key in builtin else "; pass overwrite=True"))
    _LOADERS[key] = loader


def unregister_dataset(name: str) -> None:
    """Remove a data set registered with :func:`register_dataset` (built-in data sets stay).

    Raises:
      ValueError: ``name`` is built in or not registered.
    """
    key = _normalize_name(name)
    if key in {"fashion_mnist", "mnist", "mnist1d", "digits"} or key not in _LOADERS:
        raise ValueError(f"{name!r} is not a user-registered data set; registered: {sorted(_LOADERS)}")
    del _LOADERS[key]


def names() -> tuple[str, ...]:
    """The registered data set names."""
    return tuple(_LOADERS)


def loader(name: str) -> Callable[..., Dataset]:
    """The loader registered as ``name``.

    Raises:
      ValueError: an unknown name (the message lists the known ones).
    """
    key = _normalize_name(name)
    if key not in _LOADERS:
        raise ValueError(f"unknown data set {name!r}; known: {', '.join(sorted(_LOADERS))} "
                         "(register your own with jtricks.data.register_dataset)")
    return _LOADERS[key]


def arrays(
    x_train: Array, y_train: Array, x_test: Array, y_test: Array, *, num_classes: int | None,
    x_val: Array | None = None, y_val: Array | None = None, name: str = "arrays",
    value_range: tuple[float, float] | None = None,
) -> Dataset:
    """A :class:`Dataset` from your own numpy / JAX arrays (``num_classes=None``: regression targets).

    Classification labels are kept as integers and regression targets as float32; nothing is cast
    silently: float labels for a classification task raise ``ValueError``.
    """
    def host(a: Array, what: str) -> np.ndarray:
        out = np.asarray(a)
        if out.ndim == 0:
            raise ValueError(f"`{what}` must have a leading example axis, got a scalar")
        return out

    xs = {k: host(v, k) for k, v in (("x_train", x_train), ("x_test", x_test), ("x_val", x_val)) if v is not None}
    ys = {k: host(v, k) for k, v in (("y_train", y_train), ("y_test", y_test), ("y_val", y_val)) if v is not None}
    for k, y in ys.items():
        if num_classes is not None and not np.issubdtype(y.dtype, np.integer):
            if not np.all(np.isfinite(y)) or not np.all(y == np.round(y)):
                raise ValueError(f"`{k}` holds non-integer values but num_classes={num_classes} (classification); "
                                 "pass num_classes=None for regression targets")
            ys[k] = y.astype(np.int32)
        elif num_classes is None:
            ys[k] = y.astype(np.float32)
    return Dataset(name, xs["x_train"], ys["y_train"], xs["x_test"], ys["y_test"], num_classes,
                   tuple(xs["x_train"].shape[1:]), value_range, None, xs.get("x_val"), ys.get("y_val"))


def load(name: str, **kwargs: Any) -> Dataset:
    """Load a data set by name (``"fashion_mnist"``, ``"mnist"``, ``"mnist1d"``, ``"digits"``).

    ``-`` is accepted for ``_`` (``"fashion-mnist"``). Keyword arguments go to the loader.

    Raises:
      ValueError: an unknown name (the message lists the known ones).
    """
    if not isinstance(name, str):
        raise TypeError(f"`name` must be a str, got {type(name).__name__}")
    return loader(name)(**kwargs)


def clear_cache() -> None:
    """Drop the in-process memo of parsed / generated data sets (they are reloaded on next use)."""
    _parse_idx_dataset_cached.cache_clear()
    _mnist1d_arrays.cache_clear()
    _digits_arrays.cache_clear()


# --------------------------------------------------------------------------------------------
# Keeping values in range: scaling and standardization
# --------------------------------------------------------------------------------------------


def _check_range(name: str, r: Any) -> tuple[float, float]:
    try:
        a, b = r
    except (TypeError, ValueError):
        raise TypeError(f"`{name}` must be a pair (low, high) of numbers, got {r!r}") from None
    if not (checks.is_python_number(a) and checks.is_python_number(b)):
        raise TypeError(f"`{name}` must be a pair (low, high) of Python numbers, got {r!r}")
    a, b = float(a), float(b)
    if not (math.isfinite(a) and math.isfinite(b) and a < b):
        raise ValueError(f"`{name}` must satisfy low < high (finite), got {r!r}")
    return a, b


def _as_float32(x: Array) -> Array:
    if isinstance(x, jax.Array):
        return x.astype(jnp.float32)
    return np.asarray(x, dtype=np.float32)


def scale(
    x: Array, low: float = 0.0, high: float = 1.0, *, src_range: tuple[float, float] = (0.0, 255.0)
) -> Array:
    """Affine map of ``src_range = (a, b)`` onto ``[low, high]``, in float32.

    ``y = low + (x - a) / (b - a) · (high - low)``; e.g. pixels ``[0, 255] -> [0, 1]``
    (``low=0, high=1``) or ``-> [-1, 1]`` (``low=-1, high=1``); for these two targets the end
    points map exactly (``a -> low``, ``b -> high``) on numpy input. Values outside ``src_range``
    map outside ``[low, high]`` (no clipping). Works on numpy arrays (returns numpy; uint8 input
    goes through a 256-entry lookup table of the same float32 arithmetic) and jax arrays (returns
    jax, jittable; XLA may fuse the ops, so results can differ from numpy's in the last bit).

    This is the guide's first trick, *keep values in range*: inputs of order 1 keep the first
    layer's pre-activations of order 1 (no saturated sigmoid/tanh, no huge first-layer gradients,
    no float32 absorption; see :func:`float32_absorbs`).
    """
    lo, hi = _check_range("(low, high)", (low, high))
    a, b = _check_range("src_range", src_range)
    if isinstance(x, jax.Array):
        return (x.astype(jnp.float32) - a) / (b - a) * (hi - lo) + lo
    x = np.asarray(x)
    if x.dtype == np.uint8:
        # Same float32 arithmetic on the 256 possible values, then one gather (fast for images).
        return _scale_np(np.arange(256, dtype=np.float32), a, b, lo, hi)[x]
    return _scale_np(x.astype(np.float32), a, b, lo, hi)


def _scale_np(xf: np.ndarray, a: float, b: float, lo: float, hi: float) -> np.ndarray:
    xf -= np.float32(a)
    xf /= np.float32(b - a)
    xf *= np.float32(hi - lo)
    xf += np.float32(lo)
    return xf


class StandardizeStats(NamedTuple):
    """Training-split statistics: ``mean`` and the divisor ``scale`` (float32, per feature or scalar)."""

    mean: np.ndarray
    scale: np.ndarray


def _moments(x: np.ndarray, per_feature: bool, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (population) std in float64, two passes in chunks (no full float64 copy)."""
    n = x.shape[0]
    flat = x.reshape(n, -1)  # (N, F): contiguous inner loops (a trailing axis of 1 is slow)
    axis = 0 if per_feature else None
    count = n if per_feature else flat.size
    mean = np.add.reduce(flat, axis=axis, dtype=np.float64) / count
    ss = np.zeros(flat.shape[1] if per_feature else (), np.float64)
    for i in range(0, n, chunk):
        d = flat[i : i + chunk].astype(np.float64)
        d -= mean
        ss += np.einsum("ij,ij->j", d, d) if per_feature else np.vdot(d, d)
    shape = x.shape[1:] if per_feature else ()
    return np.reshape(mean, shape), np.reshape(np.sqrt(ss / count), shape)


def standardize(
    x_train: Array, x_test: Array | None = None, *, per_feature: bool = True, eps: float = 1e-8
) -> tuple[Array, Array | None, StandardizeStats]:
    """Standardize with statistics of the *training split only*: ``x̂ = (x − μ) / s``.

    ``μ`` and ``σ`` are the mean and population standard deviation of ``x_train`` (computed in
    float64 on the host), per feature (pixel) when ``per_feature`` else one scalar over all values;
    ``s = σ`` where ``σ > eps`` and ``s = 1`` elsewhere (constant features, e.g. always-black
    border pixels, are centred but not blown up; scikit-learn's ``StandardScaler`` convention).
    The same ``μ, s`` are applied to ``x_test`` (never its own statistics: that would leak test
    information and shift the two splits differently).

    Returns:
      ``(x_train_std, x_test_std or None, stats)``, float32; reuse ``stats`` with
      :func:`apply_standardize`.
    """
    if not isinstance(per_feature, (bool, np.bool_)):
        raise TypeError(f"`per_feature` must be a bool, got {type(per_feature).__name__}")
    if not checks.is_python_number(eps) or not float(eps) >= 0.0:
        raise ValueError(f"`eps` must be a number >= 0, got {eps!r}")
    xs = np.asarray(x_train)
    if xs.ndim < 1 or xs.shape[0] < 1:
        raise ValueError(f"`x_train` must have at least one example, got shape {xs.shape}")
    mean, std = _moments(xs, bool(per_feature))
    scale_ = np.where(std > float(eps), std, 1.0)
    stats = StandardizeStats(mean.astype(np.float32), scale_.astype(np.float32))
    x_tr = apply_standardize(x_train, stats)
    x_te = None if x_test is None else apply_standardize(x_test, stats)
    return x_tr, x_te, stats


def apply_standardize(x: Array, stats: StandardizeStats) -> Array:
    """``x̂ = (x − μ) / s`` with saved training statistics (numpy in -> numpy out; jax -> jax)."""
    if isinstance(x, jax.Array):
        return (x.astype(jnp.float32) - jnp.asarray(stats.mean)) / jnp.asarray(stats.scale)
    x = np.asarray(x)
    mean, scale_ = np.asarray(stats.mean, np.float32), np.asarray(stats.scale, np.float32)
    if x.ndim >= 1 and x.shape[1:] == mean.shape and mean.ndim >= 1:
        # Same arithmetic on an (N, F) view: contiguous inner loops are much faster in numpy.
        out = x.reshape(x.shape[0], -1).astype(np.float32)
        out -= mean.reshape(-1)
        out /= scale_.reshape(-1)
        return out.reshape(x.shape)
    return (x.astype(np.float32) - mean) / scale_


PREPROCESS_METHODS = ("raw", "unit", "symmetric", "standardize")


def preprocess(ds: Dataset, method: str, *, per_feature: bool = True) -> Dataset:
    """A float32 copy of ``ds`` with inputs brought into range.

    * ``"raw"``: the raw values as float32 (``value_range`` unchanged).
    * ``"unit"``: :func:`scale` of ``ds.value_range`` onto ``[0, 1]``: ``(x − a) / (b − a)``.
    * ``"symmetric"``: onto ``[-1, 1]``: ``2 (x − a) / (b − a) − 1``.
    * ``"standardize"``: :func:`standardize` with training statistics
      (``per_feature`` selects per-pixel or global statistics); ``value_range`` becomes ``None``.

    When ``ds.value_range`` is ``None`` (MNIST-1D), ``"unit"`` and ``"symmetric"`` use the
    training split's ``(min, max)``, so test values may fall slightly outside.
    """
    if method not in PREPROCESS_METHODS:
        raise ValueError(f"unknown preprocessing method {method!r}; known: {', '.join(PREPROCESS_METHODS)}")
    rng: tuple[float, float] | None = ds.value_range
    x_va = ds.x_val
    if method == "raw":
        x_tr, x_te = _as_float32(ds.x_train), _as_float32(ds.x_test)
        x_va = None if x_va is None else _as_float32(x_va)
    elif method == "standardize":
        x_tr, x_te, stats = standardize(ds.x_train, ds.x_test, per_feature=per_feature)
        x_va = None if x_va is None else apply_standardize(x_va, stats)
        rng = None
    else:
        src = ds.value_range
        if src is None:
            src = (float(np.min(ds.x_train)), float(np.max(ds.x_train)))
        rng = (0.0, 1.0) if method == "unit" else (-1.0, 1.0)
        x_tr = scale(ds.x_train, *rng, src_range=src)
        x_te = scale(ds.x_test, *rng, src_range=src)
        x_va = None if x_va is None else scale(x_va, *rng, src_range=src)
    return dataclasses.replace(ds, x_train=x_tr, x_test=x_te, x_val=x_va, value_range=rng)


def float32_absorbs(small: float = 1e-10, big: float = 1e10, dtype: Any = np.float32) -> bool:
    """Whether ``small + big == big`` in ``dtype``: the guide's precision example.

    float32 has a 24-bit significand, so near ``big`` the spacing of representable numbers is
    ``2^(floor(log2 big) - 23)`` (``2^10 = 1024`` at ``1e10``); any ``|small|`` below half of that
    vanishes:
    ``float32_absorbs(1e-10, 1e10)`` is ``True``, as is ``float32_absorbs(100.0, 1e10)``. Keeping
    values of order 1 keeps such sums meaningful.
    """
    dt = np.dtype(dtype)
    if dt.kind != "f":
        raise TypeError(f"`dtype` must be a floating dtype, got {dt}")
    s, b = dt.type(small), dt.type(big)
    return bool(dt.type(s + b) == b)


# --------------------------------------------------------------------------------------------
# Validation split and on-device shuffling / batching
# --------------------------------------------------------------------------------------------


def _check_positive_int(name: str, v: Any) -> int:
    return checks.check_positive_int(v, name, hint=" (it fixes array shapes, so it is static)", type_error=TypeError)


def train_val_split(
    key: jax.Array, x: Array, y: Array, *, val_fraction: float | None = None, n_val: int | None = None
) -> tuple[Array, Array, Array, Array]:
    """Random train/validation split by key: ``p = permutation(key, N)``; val ``= p[:n_val]``.

    Give exactly one of ``val_fraction`` (``n_val = round(val_fraction · N)``, at least 1) or
    ``n_val``. The permutation is ``jax.random.permutation(key, N)``, so the split is a
    deterministic function of the key (use a named key stream, e.g. ``"data"``). numpy inputs are
    indexed on the host and stay numpy; jax inputs (or a traced key, e.g. under ``jax.vmap`` over
    keys) give jax arrays.

    Returns:
      ``(x_train, y_train, x_val, y_val)``.
    """
    n = int(np.shape(x)[0]) if np.ndim(x) else 0
    if np.ndim(y) < 1 or int(np.shape(y)[0]) != n:
        raise ValueError(f"`x` and `y` must have the same number of examples, got {np.shape(x)} and {np.shape(y)}")
    if n < 2:
        raise ValueError(f"need at least 2 examples to split, got {n}")
    if (val_fraction is None) == (n_val is None):
        raise ValueError("give exactly one of `val_fraction` or `n_val`")
    if val_fraction is not None:
        if not checks.is_python_number(val_fraction) or not 0.0 < float(val_fraction) < 1.0:
            raise ValueError(f"`val_fraction` must satisfy 0 < val_fraction < 1, got {val_fraction!r}")
        k = min(max(int(round(float(val_fraction) * n)), 1), n - 1)
    else:
        if not checks.is_python_int(n_val):
            raise TypeError(f"`n_val` must be a Python int, got {type(n_val).__name__}")
        k = int(n_val)
        if not 1 <= k <= n - 1:
            raise ValueError(f"`n_val` must satisfy 1 <= n_val <= {n - 1}, got {n_val}")
    perm = jax.random.permutation(key, n)
    if isinstance(x, jax.Array) or isinstance(y, jax.Array) or isinstance(perm, jax.core.Tracer):
        x, y = jnp.asarray(x), jnp.asarray(y)
    else:
        perm = np.asarray(perm)
    val, tr = perm[:k], perm[k:]
    return x[tr], y[tr], x[val], y[val]


def num_batches(num_examples: int, batch_size: int) -> int:
    """Mini-batches per epoch with drop-remainder: ``floor(num_examples / batch_size)``."""
    num_examples = _check_positive_int("num_examples", num_examples)
    batch_size = _check_positive_int("batch_size", batch_size)
    if batch_size > num_examples:
        raise ValueError(f"`batch_size` ({batch_size}) must be <= `num_examples` ({num_examples})")
    return num_examples // batch_size


def epoch_batches(key: jax.Array, num_examples: int, batch_size: int) -> jax.Array:
    """One epoch of shuffled mini-batch indices: ``permutation(key, N)[:B·K].reshape(K, B)``.

    ``K = floor(N / B)`` batches of ``B`` indices each (int32). Drop-remainder: the last
    ``N mod B`` entries of this epoch's permutation are left out; a new key each epoch gives a new
    permutation, so every example is still seen (each is left out with probability
    ``(N mod B) / N`` per epoch), and every batch has the same static shape, so an epoch is one
    ``lax.scan`` over ``idx`` with ``x[idx[i]]`` gathered from device-resident arrays (no host
    round trip). Under ``jax.vmap`` over keys each member gets its own order, equal to the
    separate call with its key.

    ``num_examples`` and ``batch_size`` are static Python ints (they fix the shape).
    """
    k = num_batches(num_examples, batch_size)
    perm = jax.random.permutation(key, int(num_examples))
    return perm[: k * int(batch_size)].reshape(k, int(batch_size)).astype(jnp.int32)
