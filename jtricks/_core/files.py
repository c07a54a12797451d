"""Files written whole or not at all: a reader (or a crash) sees the old file or the new one, never a part.

:func:`atomic_file` yields a temporary path beside the target; when the block succeeds the file is ``fsync``-ed
and ``os.replace``-d onto the target (then the folder is ``fsync``-ed); on any exception the temporary file is
removed and the target is left as it was. :func:`write_atomic` writes bytes or text that way. Every OS failure is
re-raised by :func:`os_error` as an ``OSError`` of the same type whose message names the path.

Caches are an optimization: :func:`unusable_reason` says why a cache folder cannot take new files (created when
missing; a probe file is written and removed), and :func:`warn_unusable` prints the one warning line of a cache
that is skipped (``jtricks: warning: compile cache PATH unusable (REASON); running without it``).
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_file", "write_atomic", "os_error", "reason", "unusable_reason", "warn_unusable"]


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


def reason(e: OSError) -> str:
    """The OS's words for ``e`` (``"No space left on device"``), without a path or ``[Errno n]``."""
    if e.errno:
        return os.strerror(e.errno)
    return e.strerror or str(e) or type(e).__name__


def _probe_write(folder: Path) -> None:
    """Write one byte to a new file in ``folder`` and remove it (``OSError`` when the folder cannot take it)."""
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".jtricks-probe-")
    try:
        os.write(fd, b"\0")
    finally:
        os.close(fd)
        os.unlink(tmp)


def unusable_reason(folder: str | os.PathLike) -> str | None:
    """Why ``folder`` cannot hold new files (``"Not a directory"``, ``"Read-only file system"``, ``"No space left
    on device"``), or ``None`` when it can: it is created when missing, then a probe file is written and removed."""
    folder = Path(folder)
    try:
        if folder.exists() and not folder.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))
        folder.mkdir(parents=True, exist_ok=True)
        _probe_write(folder)
    except OSError as e:
        return reason(e)
    return None


def warn_unusable(kind: str, folder: str | os.PathLike, why: str) -> None:
    """The one stderr line of a cache that is skipped: ``jtricks: warning: KIND FOLDER unusable (WHY); running
    without it``."""
    print(f"jtricks: warning: {kind} {folder} unusable ({why}); running without it", file=sys.stderr, flush=True)
