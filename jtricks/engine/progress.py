"""The progress lines of a run on stderr: the compile phase of each static group with its time, one line per
epoch (elapsed time, an ETA, the current mean of the validation metric over the members) and, inside a long
epoch, a heartbeat.

* **Compiling.** ``compiling group 1/2 ... 3.2 s``: the XLA compile seconds of the group's programs (compiled
  ahead of time, or on their first call, i.e. with the group's first epoch).
* **ETA.** ``ETA = mean(measured epoch seconds) x epochs left``, from measured epochs only: the first epoch of
  every group (which includes compiling on first use, and warms the caches) is never measured, so before a
  measured epoch no ETA is printed.
* **Inside an epoch.** Once an epoch has run ``heartbeat_s`` (default 5 s), a line every ``heartbeat_s``:
  in the host-loop mode ``epoch 3/10 running 12 s, step 120/500`` (the step count waits for that step to
  finish on the device, so it is the number done, not the number dispatched); in the scan mode the epoch is one
  program, so only ``epoch 3/10 running 12 s`` (the device reports no step count from inside it).

The clock and the stream are injected (``clock``, ``stream``): nothing here sleeps or reads the wall clock by
itself, so the lines are tested with a fake clock.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["Progress", "waiter"]

#: seconds an epoch runs before its first heartbeat line, and between heartbeat lines
HEARTBEAT_S = 5.0


def waiter(tree: Any) -> Callable[[float], bool]:
    """A ``wait(timeout) -> done`` for arrays still computing: a helper thread blocks until every array of
    ``tree`` is ready (``jax.block_until_ready``); ``wait(t)`` returns ``True`` once it is, else after ``t``
    seconds ``False``. (An error of the computation is raised later, where the arrays are read.)"""
    import jax

    done = threading.Event()

    def block() -> None:
        try:
            jax.block_until_ready(tree)
        except Exception:
            pass
        done.set()

    threading.Thread(target=block, daemon=True, name="jtricks-epoch-wait").start()
    return done.wait


# ----------------------------------------------------------------------------------------- progress
class Progress:
    """Progress lines: compile phases, one line per epoch with an ETA from measured epochs, heartbeats.

    Args:
      total_epochs: epochs of the whole run (every chunk of every group).
      enabled: print anything at all (the counts are kept either way).
      stream: where the lines go (default ``sys.stderr``); a terminal gets one redrawn line (``\\r``).
      clock: seconds, monotonic (default ``time.perf_counter``).
      heartbeat_s: seconds an epoch runs before its first heartbeat, and between heartbeats.
    """

    def __init__(
        self,
        total_epochs: int,
        *,
        enabled: bool = True,
        stream: Any = None,
        clock: Callable[[], float] = time.perf_counter,
        heartbeat_s: float = HEARTBEAT_S,
    ) -> None:
        if not heartbeat_s > 0:
            raise ValueError(f"`heartbeat_s` must be a positive number of seconds, got {heartbeat_s!r}")
        self.total = max(1, total_epochs)
        self.done = 0
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.clock = clock
        self.heartbeat_s = float(heartbeat_s)
        self.t0 = clock()
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        #: seconds of every measured epoch (not the first of a group)
        self.measured: list[float] = []
        self._epoch: tuple[str, float] | None = None  # (label, start) of the epoch running
        self._beat = 0.0  # when the last heartbeat was printed

    # ------------------------------------------------------------------------------------ output
    def _write(self, line: str, *, final: bool) -> None:
        """A line: on a terminal redrawn in place (``\\r``) and ended only when ``final``; else one per line."""
        if not self.enabled:
            return
        end = "\n" if final or not self.tty else ""
        self.stream.write(("\r\033[K" if self.tty else "") + line + end)
        self.stream.flush()

    def eta(self) -> float | None:
        """Seconds left: the mean measured epoch times the epochs left; ``None`` before a measured epoch."""
        if not self.measured:
            return None
        return sum(self.measured) / len(self.measured) * max(0, self.total - self.done)

    # ------------------------------------------------------------------------------------ compiling
    def compiling(self, label: str) -> None:
        """``compiling LABEL ...`` (the compile starts; on a pipe a line of its own)."""
        self._write(f"compiling {label} ...", final=False)

    def compiled(self, label: str, seconds: float, note: str = "") -> None:
        """``compiling LABEL ... S s`` (the compile of ``label`` took ``seconds``)."""
        self._write(f"compiling {label} ... {seconds:.1f} s{note}", final=True)

    # ------------------------------------------------------------------------------------ epochs
    def start_epoch(self, label: str) -> None:
        """An epoch labelled ``label`` starts now (the reference of its heartbeats)."""
        now = self.clock()
        self._epoch, self._beat = (label, now), now

    def beat(self, steps: tuple[int, int] | None = None, wait: Callable[[], Any] | None = None) -> bool:
        """A heartbeat inside the running epoch, printed when the last line is ``heartbeat_s`` old:
        ``LABEL running S s[, step d/n]``. ``wait`` (called only when a line is printed) waits until step ``d``
        is done on the device, so the count is honest. Returns whether a line was printed."""
        if self._epoch is None or not self.enabled or self.clock() - self._beat < self.heartbeat_s:
            return False
        if wait is not None:
            wait()
        label, start = self._epoch
        now = self.clock()
        self._beat = now
        where = f", step {steps[0]}/{steps[1]}" if steps else ""
        self._write(f"{label} running {now - start:.0f} s{where}", final=False)
        return True

    def wait(self, wait_for: Callable[[float], bool]) -> None:
        """Wait for the running epoch's results (``wait_for(timeout) -> done``, e.g. :func:`waiter`), with a
        heartbeat every ``heartbeat_s``."""
        if not self.enabled:
            return
        while not wait_for(self.heartbeat_s):
            self.beat()

    def update(
        self,
        label: str,
        mean_value: float,
        n_diverged: int,
        *,
        metric: str = "val_acc",
        seconds: float | None = None,
        measured: bool = True,
    ) -> None:
        """The line of a finished epoch. ``seconds`` (the epoch's) counts toward the ETA when ``measured``
        (not the first epoch of a group)."""
        self.done += 1
        self._epoch = None
        if seconds is not None and measured:
            self.measured.append(float(seconds))
        if not self.enabled:
            return
        elapsed = self.clock() - self.t0
        eta = self.eta()
        width = 24
        fill = int(width * self.done / self.total)
        bar = "#" * fill + "-" * (width - fill)
        div = f" diverged {n_diverged}" if n_diverged else ""
        tail = f" ETA {eta:5.1f}s" if eta is not None else ""
        line = f"[{bar}] {self.done}/{self.total} {label} {metric} {mean_value:.4f}{div} | {elapsed:5.1f}s{tail}"
        self._write(line, final=self.done >= self.total)
