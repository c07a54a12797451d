"""``run.log``: the engine's log of a run through Python ``logging``: what it holds, that the handlers leave with
the run (two runs in sequence never write into each other's file), that a quiet run's terminal stays quiet,
and that the log is neither a result file nor published."""

from __future__ import annotations

import io
import logging
import re

import numpy as np
import pytest

from jtricks.engine import runlog as jrunlog
from jtricks.engine import runner
from jtricks.results import folders as jfolders
from jtricks.results import rendering as jrendering
from tests.support import experiments as support

pytestmark = pytest.mark.slow  # three whole (tiny) runs

LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR) jtricks(\.[\w.]+)?: ")


def _run(out, **changes):
    exp = support.small_digits_mlp(epochs=2, **changes)
    return runner.run(exp, out_dir=out, progress=False, plot=False, save_models=False, overwrite=True)


def _messages(path):
    """The log's records: ``(logger, message)``; a record's continuation lines belong to its message."""
    records = []
    for line in path.read_text().splitlines():
        m = LINE.match(line)
        if m:
            records.append([line.split(" ", 4)[3].rstrip(":"), line.split(": ", 1)[1]])
        else:
            records[-1][1] += "\n" + line
    return [tuple(r) for r in records]


def test_run_log_holds_settings_groups_epochs_and_the_summary(tmp_path, capsys):
    log = logging.getLogger(jrunlog.LOGGER)
    handlers, level = list(log.handlers), log.level
    root = logging.StreamHandler(io.StringIO())  # a root handler (basicConfig, orbax's absl) sees no run record
    logging.getLogger().addHandler(root)
    try:
        res = _run(tmp_path / "a", name="first", grid={"dropout_rate": [0.0, 0.5]})
    finally:
        logging.getLogger().removeHandler(root)
    assert root.stream.getvalue() == ""
    assert capsys.readouterr().err == ""  # progress off: the terminal stays quiet
    assert (log.handlers, log.level, log.propagate) == (handlers, level, True)  # the run's handlers left with it

    records = _messages(tmp_path / "a" / jrunlog.FILE)
    messages = [m for _, m in records]
    assert messages[0] == f"first: 2 arms x 2 seeds, 2 epochs -> {tmp_path / 'a'}"
    assert any(m.startswith("settings optimizer: {") and "'adam'" in m for m in messages)
    assert "group 0: 2 arms (dropout_rate=0, dropout_rate=0.5), 4 members in chunks of [4], population size 4" in (
        messages
    )
    progress = [m for logger, m in records if logger == "jtricks.engine.progress"]
    assert progress[0].startswith("compiling group 1/1 ... ")  # the compile phase with its time
    epochs = [m for m in progress if m.startswith("epoch ")]
    assert [e.split(" val_acc ")[0] for e in epochs] == [f"epoch {i}/2 group 1/1 chunk 1/1 epoch {i}/2" for i in (1, 2)]
    for i, line in enumerate(epochs):  # the mean over the 4 members, rounded to 4 decimals in the line
        want = np.mean([r["value"] for r in res.metric_rows if r["metric"] == "val_acc" and r["epoch"] == i + 1])
        assert abs(float(line.split(" val_acc ")[1].split(" ")[0]) - want) <= 5e-5 + 1e-7
    metric = res.metrics[0]  # the table `jtricks run` prints
    assert f"summary of {metric}:\n{jrendering.format_summary_table(res.summary, metric, res.directions)}" in messages
    assert f"wrote {tmp_path / 'a'}: arms.json, manifest.json, members.csv, metrics.csv, summary.csv, summary.md" in (
        messages
    )
    # not a result file: the folder is complete, and publishing leaves the log behind
    jfolders.check_complete(tmp_path / "a")
    assert jrunlog.FILE not in {p.name for p in jfolders.publish(tmp_path / "a", tmp_path / "pub")}
    assert (tmp_path / "pub" / "metrics.csv").read_bytes() == (tmp_path / "a" / "metrics.csv").read_bytes()


def test_two_runs_in_sequence_write_their_own_logs(tmp_path):
    _run(tmp_path / "a", name="first")
    first = (tmp_path / "a" / jrunlog.FILE).read_bytes()
    _run(tmp_path / "b", name="second")
    assert (tmp_path / "a" / jrunlog.FILE).read_bytes() == first
    second = (tmp_path / "b" / jrunlog.FILE).read_text()
    assert "second: 1 arms x 2 seeds" in second and "'name': 'second'" in second
    assert "'name': 'first'" not in second and f"{tmp_path / 'a'}" not in second
    _run(tmp_path / "a", name="again")  # a fresh run into the same folder starts the log anew
    again = [m for _, m in _messages(tmp_path / "a" / jrunlog.FILE)]
    assert again[0].startswith("again: ") and not any(m.startswith("first: ") for m in again)
