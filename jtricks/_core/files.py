"""Files written whole or not at all: a reader (or a crash) sees the old file or the new one, never a part.

:func:`atomic_file` yields a temporary path beside the target; when the block succeeds the file is ``fsync``-ed
and ``os.replace``-d onto the target (then the folder is ``fsync``-ed); on any exception the temporary file is
removed and the target is left as it was. :func:`write_atomic` writes bytes or text that way. Every OS failure is
re-raised by :func:`os_error` as an ``OSError`` of the same type whose message names the path.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_file", "write_atomic", "os_error"]


def os_error(path: Path | str, e: OSError, doing: str) -> OSError:
    """``OSError`` of the same type and errno, message ``"cannot DOING PATH: STRERROR"``."""
    reason = e.strerror or str(e)
    err = type(e) if type(e) is not OSError and issubclass(type(e), OSError) else OSError
    try:
        out = err(e.errno, f"cannot {doing} {path}: {reason}")
    except TypeError:  # a subclass with another constructor
        out = OSError(e.errno, f"cannot {doing} {path}: {reason}")
    out.filename = str(path)
    return out


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block succeeds, ``fsync`` it and ``os.replace`` it
    onto ``path`` (then ``fsync`` the folder). On any exception the temporary file is removed and
    ``path`` is left as it was. For writers that take a path (``write_metrics_csv``, ``savefig``)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        try:
            yield tmp
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
        except OSError as e:
            raise os_error(path, e, "write") from None
        with contextlib.suppress(OSError):
            dfd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def write_atomic(path: str | os.PathLike, data: str | bytes) -> Path:
    """Write ``data`` (``str`` as UTF-8) to ``path`` atomically (see :func:`atomic_file`); return ``path``."""
    if not isinstance(data, (str, bytes)):
        raise TypeError(f"`data` must be str or bytes, got {type(data).__name__}")
    raw = data.encode("utf-8") if isinstance(data, str) else data
    with atomic_file(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(raw)
    return Path(path)
