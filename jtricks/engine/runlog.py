"""The log of a run: the engine's messages through Python :mod:`logging`, to the terminal and to ``run.log``.

The engine logs to the logger ``jtricks`` (and its children, ``jtricks.engine.runner``, ...). For the duration of
one run, :func:`run_log` attaches two handlers to it and removes them afterwards (in a ``finally``, so two runs in
sequence never write into each other's file):

* the terminal (stderr): records of level ``INFO`` and above, as their bare message: what the engine printed
  before (``compiling 2 static groups ahead of time, 2 at once``, ``jtricks: resumed from epoch 2``, warnings).
  Messages meant for an interactive run only are logged at ``INFO`` when progress is on and at ``DEBUG`` when
  it is off (``--quiet``), so a quiet run stays quiet;
* with a results folder, ``FOLDER/run.log``: every record from ``DEBUG`` up, each line
  ``<time> <LEVEL> <logger>: <message>``: the settings, the static groups and their chunks, compile times,
  one line per epoch (the progress line's numbers, written whether or not the bar is shown), warnings, and
  the summary table. A fresh run starts the file anew; a resumed run appends to it.

The logger's own level is lowered to ``DEBUG`` and its propagation to the root logger turned off for the run
(both restored after): a handler on the root logger (``logging.basicConfig``, or the one importing orbax's absl
logging installs) would otherwise print every ``DEBUG`` record on the terminal. Handlers you add to the
``jtricks`` logger itself see every record. ``run.log`` holds times: it is never one of the
result files compared byte for byte (:data:`jtricks.results.folders.RESULT_FILES`), nor copied by
``jtricks publish``.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

from jtricks.results import folders as jfolders

__all__ = ["LOGGER", "FILE", "FILE_FORMAT", "run_log", "logger", "shown_if"]

#: the name of the logger the engine logs to (its modules log to children of it)
LOGGER = "jtricks"
#: the file of a results folder the run log goes to
FILE = jfolders.LOG_NAME
#: the format of a line of ``run.log``
FILE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def logger(name: str) -> logging.Logger:
    """The logger of the engine module ``name`` (``__name__``): a child of :data:`LOGGER`."""
    return logging.getLogger(name if name.startswith(LOGGER + ".") or name == LOGGER else f"{LOGGER}.{name}")


def shown_if(progress: bool) -> int:
    """The level of a message shown on the terminal only when progress is on: ``INFO``, else ``DEBUG``."""
    return logging.INFO if progress else logging.DEBUG


@contextlib.contextmanager
def run_log(out: Path | None, *, append: bool = False) -> Iterator[logging.Logger]:
    """The handlers of one run on the :data:`LOGGER` logger (module docstring): the terminal, and
    ``out/run.log`` when ``out`` is given (appended to when ``append``, else written anew). Yields the logger;
    both handlers are removed and closed, and the logger's level and propagation restored, however the run
    ends."""
    log = logging.getLogger(LOGGER)
    terminal = logging.StreamHandler(sys.stderr)
    terminal.setLevel(logging.INFO)
    terminal.setFormatter(logging.Formatter("%(message)s"))
    handlers: list[logging.Handler] = [terminal]
    if out is not None:
        file = logging.FileHandler(out / FILE, mode="a" if append else "w", encoding="utf-8")
        file.setLevel(logging.DEBUG)
        file.setFormatter(logging.Formatter(FILE_FORMAT))
        handlers.append(file)
    level, propagate = log.level, log.propagate
    for h in handlers:
        log.addHandler(h)
    log.setLevel(logging.DEBUG)
    log.propagate = False
    try:
        yield log
    finally:
        for h in handlers:
            log.removeHandler(h)
            h.close()
        log.setLevel(level)
        log.propagate = propagate
