"""Downloading MNIST: :func:`download_mnist` fetches the four gzipped IDX files into a cache folder, each verified
by SHA-256 (:data:`MNIST_FILES`) and tried on every mirror (:data:`MNIST_MIRRORS`) in turn.

A download streams into a temporary file beside its target and only a file whose SHA-256 matches is moved into
place with ``os.replace`` (atomic), so an interrupted or corrupt download never leaves a partial file under the
final name. The default folder is :func:`default_mnist_cache` (``$XDG_CACHE_HOME/jtricks/mnist``, i.e.
``~/.cache/jtricks/mnist``), where :func:`jtricks.data.mnist` looks for the files. Requests go through
:func:`open_url` (``urllib.request.urlopen``) unless an ``opener`` is given, so the logic is testable offline.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO, NamedTuple

from jtricks.data._paths import DATA_ENV, cache_root

__all__ = ["MNIST_FILES", "MNIST_MIRRORS", "Opener", "open_url", "default_mnist_cache", "download_mnist"]


class _MnistFile(NamedTuple):
    name: str
    sha256: str
    size: int


# SHA-256 of the canonical gzipped MNIST files (the checksums used by tensorflow-datasets and
# many other projects; the same bytes are served by both mirrors below). torchvision's MD5 values
# for the same files: f68b3c2dcbeaaa9fbdd348bbdeb94873, d53e105ee54ea40749a09fcbcd1e9432,
# 9fb629c4189551a2d022fa330f9573f3, ec29112dd5afa0611ce80d1b7f02629c.
MNIST_FILES: tuple[_MnistFile, ...] = (
    _MnistFile(
        "train-images-idx3-ubyte.gz", "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609", 9912422
    ),
    _MnistFile("train-labels-idx1-ubyte.gz", "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c", 28881),
    _MnistFile(
        "t10k-images-idx3-ubyte.gz", "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6", 1648877
    ),
    _MnistFile("t10k-labels-idx1-ubyte.gz", "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6", 4542),
)  # fmt: skip

MNIST_MIRRORS: tuple[str, ...] = (
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
)

Opener = Callable[[str, float], BinaryIO]


def open_url(url: str, timeout: float) -> BinaryIO:
    """The default :data:`Opener`: ``urllib.request.urlopen(url, timeout=timeout)``."""
    return urllib.request.urlopen(url, timeout=timeout)


def default_mnist_cache() -> Path:
    """``$XDG_CACHE_HOME/jtricks/mnist`` (``~/.cache/jtricks/mnist``): where MNIST is downloaded by default."""
    return cache_root() / "mnist"


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
    folder = Path(cache_dir).expanduser() if cache_dir is not None else default_mnist_cache()
    folder.mkdir(parents=True, exist_ok=True)
    opener = open_url if opener is None else opener
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
                f"put the four MNIST files into ${DATA_ENV}/mnist/ instead"
            ) from last_error
    return folder
