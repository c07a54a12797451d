"""Where data sets are looked for and kept on disk.

* :data:`DATA_ENV` names the environment variable ``$JTRICKS_DATA``: a folder the user fills, one sub-folder per
  data set (``$JTRICKS_DATA/fashion-mnist/``, ``$JTRICKS_DATA/mnist/``); :func:`env_folder` gives that sub-folder.
* :func:`cache_root` is ``$XDG_CACHE_HOME/jtricks`` (``~/.cache/jtricks``): what jtricks downloads or generates
  (``mnist/``, ``mnist1d/``).

Both are read at call time, so a changed environment takes effect on the next load.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["DATA_ENV", "env_folder", "cache_root"]

DATA_ENV = "JTRICKS_DATA"


def env_folder(sub: str) -> Path | None:
    """``$JTRICKS_DATA/<sub>``, or ``None`` when the variable is not set (or empty)."""
    root = os.environ.get(DATA_ENV)
    return Path(root).expanduser() / sub if root else None


def cache_root() -> Path:
    """``$XDG_CACHE_HOME/jtricks`` (``~/.cache/jtricks``): downloaded and generated data sets."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    return Path(base).expanduser() / "jtricks"
