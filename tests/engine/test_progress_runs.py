"""What real runs print as progress: the compile phase (on first use, or ahead of time for several static groups)
and no ETA before a measured epoch. Slow: each trains a small model."""

from __future__ import annotations

import dataclasses
import re

import jax
import pytest
from support.experiments import small_digits_mlp

from jtricks.engine import runner
from jtricks.engine.programs import PROGRAMS

pytestmark = pytest.mark.slow


def test_a_run_shows_the_compile_phase_and_no_eta_on_its_first_epoch(capsys: pytest.CaptureFixture[str]) -> None:
    exp = dataclasses.replace(small_digits_mlp(), execution="loop", epochs=2)
    res = runner.run(exp, compile_workers=1)
    # the programs the dry run names for the mode are those the run compiled
    assert {name.split("/")[1] for name in res.compiles} == set(PROGRAMS["loop"]) - {"early_stop"}
    lines = capsys.readouterr().err.splitlines()
    beats = [line for line in lines if " running " in line]  # a slow machine: a heartbeat while compiling
    assert all(re.fullmatch(r"group 1/1 chunk 1/1 epoch [12]/2 running \d+ s, step \d+/10", b) for b in beats)
    lines = [line for line in lines if line not in beats]
    assert lines[0] == "compiling group 1/1 ..."
    assert lines[1].startswith("compiling group 1/1 ... ") and lines[1].endswith(" s (on first use)")
    epochs = [line for line in lines if line.startswith("[")]
    assert len(epochs) == 2 and "ETA" not in epochs[0] and epochs[1].endswith("ETA   0.0s")


@pytest.mark.skipif(jax.local_device_count() != 1, reason="programs are compiled ahead of time on one device only")
def test_groups_compiled_ahead_of_time_show_each_group(capsys: pytest.CaptureFixture[str]) -> None:
    exp = dataclasses.replace(small_digits_mlp(), epochs=1, grid={"model.norm": [None, "batch"]})
    res = runner.run(exp, compile_workers=2)
    lines = [line for line in capsys.readouterr().err.splitlines() if " running " not in line]
    assert lines[0] == "compiling 2 static groups ahead of time, 2 at once ..."
    done = sorted(line for line in lines if re.fullmatch(r"compiling group [12]/2 \.\.\. \d+\.\d s", line))
    assert len(done) == 2
    for t in res.timing:  # the seconds shown are the timing record's
        assert f"compiling group {t['group'] + 1}/2 ... {t['compile_s']:.1f} s" in done
    assert not any("on first use" in line for line in lines)
