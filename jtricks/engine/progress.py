"""The progress line of a run: one line per epoch with the elapsed time, an ETA and the current mean of the
validation metric over the members."""

from __future__ import annotations

import sys
import time
from typing import Any

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
        self.done += 1
        if not self.enabled:
            return
        elapsed = time.perf_counter() - self.t0
        eta = elapsed / self.done * (self.total - self.done)
        width = 24
        fill = int(width * self.done / self.total)
        bar = "#" * fill + "-" * (width - fill)
        div = f" diverged {n_diverged}" if n_diverged else ""
        line = (
            f"[{bar}] {self.done}/{self.total} {label} {metric} {mean_value:.4f}{div} | {elapsed:5.1f}s ETA {eta:5.1f}s"
        )
        end = "\r" if self.tty and self.done < self.total else "\n"
        self.stream.write(("\r" if self.tty else "") + line + end)
        self.stream.flush()
