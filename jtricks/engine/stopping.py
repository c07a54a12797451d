"""Stopping a run cleanly at an epoch boundary: a :class:`StopRequest` that signal handlers and a time limit set,
which :func:`jtricks.engine.execute.execute` polls between epochs (never an exception thrown from inside JAX).

The first stop signal (``SIGINT``, ``SIGTERM``, ``SIGHUP``, ``SIGUSR1``) only sets the request: the engine finishes
the epoch in flight, makes sure a verified checkpoint of that epoch is on disk and raises :class:`RunStopped`. A
second signal raises :class:`Interrupted` (a ``KeyboardInterrupt``) from the handler: the epoch in flight is
abandoned as soon as Python code runs again, and the newest checkpoint already on disk is where a resumed run
continues. A time limit stops the run before an epoch that would not finish in time (:meth:`StopRequest.due`).
"""

from __future__ import annotations

import contextlib
import re
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

__all__ = [
    "StopRequest",
    "RunStopped",
    "Interrupted",
    "handle_signals",
    "parse_duration",
    "format_duration",
    "signal_name",
    "STOP_SIGNALS",
    "EX_TEMPFAIL",
    "WRITE_MARGIN_S",
]

#: The signals that ask a run to stop: Ctrl-C, ``kill`` / a scheduler's preemption, a closed terminal, and SLURM's
#: warning before the end of a job (``sbatch --signal=USR1@SECONDS``).
STOP_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1)

#: Exit code of a run stopped by its time limit: ``EX_TEMPFAIL`` of ``sysexits.h``, "try again later".
EX_TEMPFAIL = 75

#: Seconds kept free under a time limit for writing the results, on top of the next epoch and its checkpoint.
WRITE_MARGIN_S = 10.0


def signal_name(signum: int) -> str:
    """``"SIGTERM"`` for 15 (the number itself when it names no signal)."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


class StopRequest:
    """Whether a run has been asked to stop: by a signal (:meth:`request`) or by its time limit (:meth:`due`).

    Args:
      time_limit_s: seconds the run may take, counted from ``started`` (``None``: no limit).
      started: the ``time.monotonic()`` the limit counts from (default: now).
    """

    def __init__(self, time_limit_s: float | None = None, started: float | None = None) -> None:
        self.signum: int | None = None
        self.signals = 0
        self.time_limit_s = time_limit_s
        start = time.monotonic() if started is None else started
        self.deadline = None if time_limit_s is None else start + float(time_limit_s)

    def request(self, signum: int) -> None:
        """Ask the run to stop (what a signal handler calls); the first signal is the one that is reported."""
        self.signals += 1
        if self.signum is None:
            self.signum = signum

    def due(self, next_epoch_s: float | None, save_s: float = 0.0) -> str | None:
        """``"signal"`` when a stop was requested; ``"time-limit"`` when the next epoch (``next_epoch_s``), its
        checkpoint (``save_s``) and the writing of the results (:data:`WRITE_MARGIN_S` plus ``save_s``) would not
        finish within the limit; else ``None``. Without an estimate (no epoch run yet) the limit never stops a
        run, so every invocation makes progress."""
        if self.signum is not None:
            return "signal"
        if self.deadline is None or next_epoch_s is None:
            return None
        needed = next_epoch_s + 2.0 * save_s + WRITE_MARGIN_S
        return "time-limit" if time.monotonic() + needed > self.deadline else None


class RunStopped(Exception):
    """A run stopped at an epoch boundary (by a signal or its time limit).

    Attributes:
      reason: ``"signal"``, ``"time-limit"``, or ``"peers"`` (other processes of a multi-process run stopped).
      signum: the signal, for ``"signal"``.
      epoch: the last finished epoch of the running chunk (its checkpoint verified when ``resumable``).
      epochs: the epochs of a chunk.
      where: ``"chunk c/C"`` when the run has several chunks, else ``""``.
      resumable: whether ``--resume`` continues from ``epoch``; else ``not_resumable`` says why not.
      next_epoch_s: the estimated seconds of the next epoch, for ``"time-limit"``.
    """

    def __init__(
        self,
        reason: str,
        *,
        signum: int | None = None,
        epoch: int = 0,
        epochs: int = 0,
        where: str = "",
        resumable: bool = True,
        not_resumable: str = "",
        next_epoch_s: float | None = None,
    ) -> None:
        self.reason, self.signum, self.epoch, self.epochs, self.where = reason, signum, epoch, epochs, where
        self.resumable, self.not_resumable, self.next_epoch_s = resumable, not_resumable, next_epoch_s
        by = signal_name(signum) if signum is not None else reason
        super().__init__(f"run stopped ({by}) after epoch {epoch}/{epochs}")

    @property
    def exit_code(self) -> int:
        """128 + the signal number for a signal, :data:`EX_TEMPFAIL` otherwise."""
        return 128 + self.signum if self.reason == "signal" and self.signum is not None else EX_TEMPFAIL


class Interrupted(KeyboardInterrupt):
    """A second stop signal: the epoch in flight is abandoned. ``epoch`` (the newest checkpointed epoch of the
    running chunk) and ``epochs`` are attached on the way out of the epoch loop."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal_name(signum))
        self.signum = signum
        self.epoch: int | None = None
        self.epochs: int | None = None


@contextlib.contextmanager
def handle_signals(stop: StopRequest, signals: Sequence[int] = STOP_SIGNALS) -> Iterator[StopRequest]:
    """Within the block, the first of ``signals`` sets ``stop`` and a second raises :class:`Interrupted`; the
    previous handlers are restored on the way out. A signal the process ignores (``nohup`` ignores ``SIGHUP``)
    stays ignored; outside the main thread (where Python cannot install handlers) nothing is installed."""
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def on_signal(signum: int, frame: Any) -> None:
        stop.request(signum)
        if stop.signals > 1:
            raise Interrupted(signum)

    previous = {}
    try:
        for s in signals:
            if signal.getsignal(s) is not signal.SIG_IGN:
                previous[s] = signal.signal(s, on_signal)
        yield stop
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)


_DURATION = re.compile(r"(?:(?:(?P<d>\d+)-)?(?P<h>\d+):)?(?P<m>\d+):(?P<s>\d+)")


def parse_duration(text: str, flag: str = "--time-limit") -> float:
    """Seconds from ``SECONDS`` (``3600``, ``90.5``) or ``[[D-]HH:]MM:SS`` (``59:00``, ``04:00:00``,
    ``1-12:00:00``, as SLURM's ``--time`` writes them); a bare number counts seconds, not SLURM's minutes.

    Raises:
      ValueError: one line naming ``flag`` and the accepted forms.
    """
    value = str(text).strip()
    seconds: float | None = None
    m = _DURATION.fullmatch(value)
    if m is not None:
        d, h, mi, s = (int(m.group(k) or 0) for k in ("d", "h", "m", "s"))
        fields_ok = s < 60 and (m.group("h") is None or mi < 60) and (m.group("d") is None or h < 24)
        seconds = float(((d * 24 + h) * 60 + mi) * 60 + s) if fields_ok else None
    elif re.fullmatch(r"\d+(\.\d*)?|\.\d+", value):
        seconds = float(value)
    if seconds is None or not seconds > 0:
        raise ValueError(
            f"{flag} must be a positive number of seconds or [[D-]HH:]MM:SS (e.g. 3600, 59:00, 04:00:00, "
            f"1-00:00:00), got {text!r}"
        )
    return seconds


def format_duration(seconds: float) -> str:
    """``H:MM:SS`` (``D-HH:MM:SS`` from a day on) of a whole number of seconds, rounded up."""
    total = int(-(-float(seconds) // 1))
    d, rest = divmod(total, 86400)
    h, rest = divmod(rest, 3600)
    text = f"{h}:{rest // 60:02d}:{rest % 60:02d}"
    return f"{d}-{h:02d}:{rest // 60:02d}:{rest % 60:02d}" if d else text
