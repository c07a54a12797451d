"""The progress line of a run: one line per epoch with the elapsed time, an ETA and the current mean of the
validation metric over the members.

The bar is drawn on the terminal stream (rewritten in place on a TTY) when progress is on; every epoch's
numbers also go to the run log (``DEBUG``: ``run.log``, :mod:`jtricks.engine.runlog`) whether or not the bar
is shown."""

from __future__ import annotations

import sys
import time
from typing import Any

from jtricks.engine import runlog as jrunlog

log = jrunlog.logger(__name__)

__all__ = ["Progress"]


# ----------------------------------------------------------------------------------------- progress
class Progress:
    """A one-line progress bar per epoch with ETA and the current mean of a validation metric."""

    def __init__(self, total_epochs: int, *, enabled: bool = True, stream: Any = None) -> None:
        self.total = max(1, total_epochs)
        self.done = 0
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.t0 = time.perf_counter()
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def update(self, label: str, mean_value: float, n_diverged: int, *, metric: str = "val_acc") -> None:
        """One more epoch done: ``label`` (the group / chunk / epoch), the members' mean ``metric``, how many
        diverged. Logged to the run log; drawn as the bar when enabled."""
        self.done += 1
        elapsed = time.perf_counter() - self.t0
        eta = elapsed / self.done * (self.total - self.done)
        div = f" diverged {n_diverged}" if n_diverged else ""
        numbers = f"{self.done}/{self.total} {label} {metric} {mean_value:.4f}{div} | {elapsed:5.1f}s ETA {eta:5.1f}s"
        log.debug("epoch %s", numbers)
        if not self.enabled:
            return
        width = 24
        fill = int(width * self.done / self.total)
        line = f"[{'#' * fill + '-' * (width - fill)}] {numbers}"
        end = "\r" if self.tty and self.done < self.total else "\n"
        self.stream.write(("\r" if self.tty else "") + line + end)
        self.stream.flush()
