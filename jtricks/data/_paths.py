"""Where data sets are looked for and kept on disk.

* :data:`DATA_ENV` names the environment variable ``$JTRICKS_DATA``: a folder the user fills, one sub-folder per
  data set (``$JTRICKS_DATA/fashion-mnist/``, ``$JTRICKS_DATA/mnist/``); :func:`env_folder` gives that sub-folder.
* :func:`cache_root` is ``$XDG_CACHE_HOME/jtricks`` (``~/.cache/jtricks``): what jtricks downloads or generates
  (``mnist/``, ``mnist1d/``).

Both are read at call time, so a changed environment takes effect on the next load.

:func:`search_folders` is the one rule of every loader that reads files: the first folder holding all of them
wins, and a folder holding only some of them is an error, never a reason to fall back to a later folder.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

__all__ = ["DATA_ENV", "env_folder", "cache_root", "search_folders"]

#: ``find(folder) -> (files or None, the names missing there)``
Finder = Callable[[Path], tuple[list[Path] | None, list[str]]]

DATA_ENV = "JTRICKS_DATA"


def env_folder(sub: str) -> Path | None:
    """``$JTRICKS_DATA/<sub>``, or ``None`` when the variable is not set (or empty)."""
    root = os.environ.get(DATA_ENV)
    return Path(root).expanduser() / sub if root else None


def cache_root() -> Path:
    """``$XDG_CACHE_HOME/jtricks`` (``~/.cache/jtricks``): downloaded and generated data sets."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    return Path(base).expanduser() / "jtricks"


def search_folders(
    candidates: Sequence[tuple[str, Path | None]],
    what: str,
    find: Finder,
    *,
    total: int,
    files: str,
    completable: Sequence[str] = (),
) -> tuple[list[Path] | None, list[str]]:
    """Try each ``(description, folder)`` with ``find``; return the first complete set of files and a search log.

    A folder holding some but not all of the ``total`` files (``files`` describes them in messages) is an
    error (``FileNotFoundError`` naming the missing ones), not a reason to fall back to a later folder (a copy
    the user did not mean); except the folders whose description is in ``completable`` (a download cache that
    a download completes).
    """
    log: list[str] = []
    for desc, folder in candidates:
        if folder is None:
            log.append(f"{desc}: not set")
            continue
        if not folder.is_dir():
            log.append(f"{desc} = {folder}: no such directory")
            continue
        found, missing = find(folder)
        if found is not None:
            return found, log
        if len(missing) < total and desc not in completable:
            raise FileNotFoundError(
                f"{what}: {desc} = {folder} holds only some of {files}, missing {', '.join(missing)}; "
                "add them, or remove the partial folder to use another copy",
            )
        log.append(f"{desc} = {folder}: missing {', '.join(missing)}")
    return None, log
