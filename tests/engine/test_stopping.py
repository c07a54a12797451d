"""The stop request (jtricks.engine.stopping): durations, the time-limit rule, signal handlers, exit codes."""

from __future__ import annotations

import os
import signal
import time

import pytest

from jtricks.cli import _command, _with_auto
from jtricks.engine import stopping as jstop
from jtricks.engine.options import RunOptions


@pytest.mark.parametrize(
    "text, seconds",
    [
        ("3600", 3600.0),
        ("90.5", 90.5),
        ("59:00", 3540.0),
        ("90:00", 5400.0),
        ("04:00:00", 14400.0),
        ("1-00:00:00", 86400.0),
        ("2-12:30:15", 2 * 86400 + 12 * 3600 + 30 * 60 + 15.0),
    ],
)
def test_parse_duration(text, seconds):
    assert jstop.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "0", "-5", "abc", "1h", "1:60", "1:60:00", "1-24:00:00", "1-2", "00:00"])
def test_parse_duration_refuses_other_forms_in_one_line_naming_the_flag(text):
    with pytest.raises(ValueError, match=r"^--time-limit must be a positive number of seconds or \[\[D-\]HH:\]MM:SS"):
        jstop.parse_duration(text)


def test_format_duration():
    assert jstop.format_duration(59.2) == "0:01:00"
    assert jstop.format_duration(3 * 3600 + 61) == "3:01:01"
    assert jstop.format_duration(86400 + 5) == "1-00:00:05"


def test_time_limit_waits_for_an_estimate_then_keeps_room_for_the_next_epoch_and_the_writing():
    stop = jstop.StopRequest(time_limit_s=100.0, started=time.monotonic())
    assert stop.due(None) is None  # no epoch run yet: always run one
    assert stop.due(1.0, save_s=1.0) is None  # 1 + 2*1 + margin well within 100 s
    assert stop.due(95.0) == "time-limit"
    late = jstop.StopRequest(time_limit_s=5.0, started=time.monotonic())
    assert late.due(0.01) == "time-limit"  # the writing margin alone does not fit
    assert jstop.StopRequest().due(1e9) is None  # no limit


def test_a_signal_request_wins_and_keeps_the_first_signal():
    stop = jstop.StopRequest(time_limit_s=1e6)
    stop.request(signal.SIGUSR1)
    stop.request(signal.SIGTERM)
    assert stop.due(None) == "signal" and stop.signum == signal.SIGUSR1 and stop.signals == 2


def test_exit_codes():
    assert jstop.RunStopped("signal", signum=signal.SIGTERM).exit_code == 143
    assert jstop.RunStopped("signal", signum=signal.SIGHUP).exit_code == 129
    assert jstop.RunStopped("signal", signum=signal.SIGUSR1).exit_code == 138
    assert jstop.RunStopped("signal", signum=signal.SIGINT).exit_code == 130
    assert jstop.RunStopped("time-limit").exit_code == jstop.EX_TEMPFAIL == 75


def test_handlers_set_the_request_then_raise_on_a_second_signal_and_are_restored():
    before = {s: signal.getsignal(s) for s in jstop.STOP_SIGNALS}
    stop = jstop.StopRequest()
    with jstop.handle_signals(stop):
        os.kill(os.getpid(), signal.SIGUSR1)
        time.sleep(0.01)  # the handler runs at the next bytecode boundary
        assert stop.signum == signal.SIGUSR1
        with pytest.raises(jstop.Interrupted) as e:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.01)
        assert e.value.signum == signal.SIGTERM and isinstance(e.value, KeyboardInterrupt)
    assert {s: signal.getsignal(s) for s in jstop.STOP_SIGNALS} == before


def test_an_ignored_signal_stays_ignored():
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)  # as under nohup
    try:
        with jstop.handle_signals(jstop.StopRequest()):
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
            assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    finally:
        signal.signal(signal.SIGHUP, previous)


def test_checkpoint_every_must_be_positive():
    with pytest.raises(ValueError, match="`checkpoint_every` must be a positive int, got 0"):
        RunOptions(checkpoint_every=0)


def test_resume_auto_on_the_command_line():
    assert _with_auto(["run", "x.py", "--resume", "auto"]) == ["run", "x.py", "--resume-auto"]
    assert _with_auto(["run", "--resume=auto", "x.py"]) == ["run", "--resume-auto", "x.py"]
    assert _with_auto(["run", "--resume", "x.py"]) == ["run", "--resume", "x.py"]  # still a flag
    assert _command(["run", "x.py", "--out", "a b"], resume=True) == "jtricks run x.py --out 'a b' --resume"
    assert _command(["run", "x.py", "--resume", "auto"], resume=True) == "jtricks run x.py --resume auto"
    assert _command(["run", "x.py", "--no-checkpoint"], resume=False) == "jtricks run x.py --no-checkpoint"


@pytest.mark.slow
def test_a_run_stopped_by_its_time_limit_checkpoints_and_resumes_to_the_same_rows(tmp_path):
    """In process: after the first epoch the limit is spent; the stop writes the checkpoint that
    ``checkpoint_every`` skipped, verifies it, and the resumed run gives the uninterrupted run's rows."""
    from jtricks.engine import checkpoint as jckpt
    from jtricks.engine import runner
    from jtricks.engine.experiment import Experiment

    exp = Experiment(
        name="tiny",
        dataset="digits",
        preprocess="unit",
        n_val=100,
        n_train=256,
        model="mlp",
        model_kwargs={"widths": (16,)},
        epochs=2,
        batch_size=64,
        eval_batch_size=256,
        seeds=2,
    )
    quiet = dict(progress=False, plot=False, save_models=False)
    full = runner.run(exp, out_dir=tmp_path / "full", **quiet)
    out = tmp_path / "o"
    with pytest.raises(jstop.RunStopped) as e:
        runner.run(exp, out_dir=out, checkpoint_every=5, stop=jstop.StopRequest(time_limit_s=1e-3), **quiet)
    assert (e.value.reason, e.value.epoch, e.value.epochs, e.value.resumable) == ("time-limit", 1, 2, True)
    assert e.value.exit_code == 75 and e.value.next_epoch_s is not None
    assert jckpt.verify(out / "checkpoints" / "group0_chunk0", 1)
    resumed = runner.run(exp, out_dir=out, resume=True, stop=jstop.StopRequest(time_limit_s=1e-3), **quiet)
    assert resumed.metric_rows == full.metric_rows
    assert (out / "metrics.csv").read_bytes() == (tmp_path / "full" / "metrics.csv").read_bytes()
