"""The progress lines: compile phases, an ETA from measured epochs only, heartbeats inside long epochs (a fake
clock and stream, no sleeps). What real runs print: test_progress_runs.py."""

from __future__ import annotations

import io

import pytest

from jtricks.engine.progress import Progress


class _Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def _bar(total: int = 4, **kw) -> tuple[Progress, io.StringIO, _Clock]:
    out, clock = io.StringIO(), _Clock()
    return Progress(total, stream=out, clock=clock, **kw), out, clock


def test_compile_phase_is_shown_with_its_seconds() -> None:
    bar, out, _ = _bar()
    bar.compiling("group 1/2")
    bar.compiled("group 1/2", 3.24)
    assert out.getvalue() == "compiling group 1/2 ...\ncompiling group 1/2 ... 3.2 s\n"


def test_no_eta_before_a_measured_epoch_then_the_mean_of_the_measured_ones() -> None:
    bar, out, clock = _bar(total=5)
    clock.t += 30.0  # the first epoch: 28 s of compiling + 2 s
    bar.update("epoch 1/5", 0.5, 0, seconds=30.0, measured=False)
    assert "ETA" not in out.getvalue() and bar.eta() is None
    clock.t += 2.0
    bar.update("epoch 2/5", 0.6, 0, seconds=2.0)
    clock.t += 4.0
    bar.update("epoch 3/5", 0.7, 0, seconds=4.0)
    lines = out.getvalue().splitlines()
    assert lines[1].endswith("|  32.0s ETA   6.0s")  # 2 s per measured epoch x 3 left
    assert lines[2].endswith("|  36.0s ETA   6.0s")  # (2 + 4) / 2 x 2 left
    assert bar.measured == [2.0, 4.0]


def test_an_epoch_without_seconds_is_not_measured() -> None:
    bar, out, _ = _bar(total=3)
    bar.update("a", 0.1, 0)
    assert bar.measured == [] and "ETA" not in out.getvalue()


def test_heartbeat_counts_steps_only_after_heartbeat_seconds() -> None:
    bar, out, clock = _bar(heartbeat_s=5.0)
    bar.start_epoch("epoch 3/4")
    waited = []
    clock.t += 4.9
    assert not bar.beat((10, 500), wait=lambda: waited.append(10))  # too early: no line, no wait
    clock.t += 0.2
    assert bar.beat((12, 500), wait=lambda: waited.append(12))
    clock.t += 1.0
    assert not bar.beat((20, 500), wait=lambda: waited.append(20))  # the last line is 1 s old
    clock.t += 5.0
    assert bar.beat((130, 500), wait=lambda: waited.append(130))
    assert waited == [12, 130]  # the device is waited for only when a line is printed
    assert out.getvalue().splitlines() == ["epoch 3/4 running 5 s, step 12/500", "epoch 3/4 running 11 s, step 130/500"]


def test_wait_prints_a_heartbeat_per_timeout_of_a_one_program_epoch() -> None:
    bar, out, clock = _bar(heartbeat_s=5.0)
    bar.start_epoch("epoch 2/4")
    calls = []

    def wait_for(timeout: float) -> bool:  # the epoch program finishes on the third wait
        calls.append(timeout)
        clock.t += timeout
        return len(calls) == 3

    bar.wait(wait_for)
    assert calls == [5.0, 5.0, 5.0]
    assert out.getvalue().splitlines() == ["epoch 2/4 running 5 s", "epoch 2/4 running 10 s"]


def test_terminal_heartbeats_redraw_the_epoch_line() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    out, clock = Tty(), _Clock()
    bar = Progress(2, stream=out, clock=clock, heartbeat_s=1.0)
    bar.start_epoch("epoch 1/2")
    clock.t += 2.0
    bar.beat()
    bar.update("epoch 1/2", 0.5, 0, seconds=2.0, measured=False)
    epoch_line = "[############------------] 1/2 epoch 1/2 val_acc 0.5000 |   2.0s"
    assert out.getvalue() == "\r\033[Kepoch 1/2 running 2 s" + "\r\033[K" + epoch_line


def test_disabled_and_bad_heartbeat() -> None:
    bar, out, clock = _bar(enabled=False)
    bar.start_epoch("e")
    clock.t += 100
    assert not bar.beat()
    bar.compiled("g", 1.0)
    assert out.getvalue() == ""
    with pytest.raises(ValueError, match="heartbeat_s"):
        Progress(1, heartbeat_s=0)
