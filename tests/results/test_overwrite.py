"""A results folder that holds a run is refused unless ``overwrite`` (or ``resume``) says what to do with it."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from jtricks import data as jdata
from jtricks.engine import runner
from jtricks.engine.experiment import Experiment
from jtricks.engine.parts import Part, merge
from jtricks.results import folders

pytestmark = pytest.mark.slow  # real jtricks runs / processes: left out of `-m "not slow"`


def test_refuse_overwrite_names_what_the_folder_holds(tmp_path):
    folders.refuse_overwrite(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    folders.refuse_overwrite(tmp_path / "empty")
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    folders.refuse_overwrite(other)  # files that are no results files are not a run
    done = tmp_path / "done"
    done.mkdir()
    (done / "manifest.json").write_text(json.dumps({"experiment": "e1", "created": "2026-12-08T00:00:00"}))
    with pytest.raises(
        folders.ResultsExistError, match=r"holds a finished run \(e1, 2026-12-08T00:00:00\); pass --overwrite"
    ):
        folders.refuse_overwrite(done)
    half = tmp_path / "half"
    (half / "checkpoints" / "group0_chunk0").mkdir(parents=True)
    with pytest.raises(folders.ResultsExistError, match=r"unfinished run \(checkpoints\); continue it with --resume"):
        folders.refuse_overwrite(half)
    (half / "checkpoints" / "group0_chunk0").rmdir()
    folders.refuse_overwrite(half)  # an empty checkpoints folder holds nothing
    (half / "metrics.csv").write_text("")
    with pytest.raises(folders.ResultsExistError, match=r"results files of an earlier run \(metrics.csv\)"):
        folders.refuse_overwrite(half)
    assert issubclass(folders.ResultsExistError, FileExistsError)


def _tiny() -> Experiment:
    x = np.random.default_rng(0).normal(size=(96, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int32)
    return Experiment(
        name="tiny",
        dataset=jdata.arrays(x[:64], y[:64], x[64:], y[64:], num_classes=2),
        n_val=16,
        model="mlp",
        model_kwargs={"widths": (8,)},
        epochs=1,
        batch_size=16,
        seeds=1,
    )


def test_runner_refuses_before_training_and_overwrite_replaces(tmp_path):
    exp, out = _tiny(), tmp_path / "o"
    first = runner.run(exp, out_dir=out, progress=False, plot=False, save_models=False)
    manifest = (out / "manifest.json").read_bytes()
    with pytest.raises(folders.ResultsExistError, match="holds a finished run"):
        runner.run(dataclasses.replace(exp, epochs=2), out_dir=out, progress=False, plot=False)
    assert (out / "manifest.json").read_bytes() == manifest
    again = runner.run(exp, out_dir=out, progress=False, plot=False, save_models=False, overwrite=True)
    assert again.member_rows == first.member_rows
    parts = [tmp_path / f"part{i}" for i in (1, 2)]
    for i, folder in enumerate(parts, 1):
        runner.run(dataclasses.replace(exp, seeds=2), out_dir=folder, progress=False, plot=False, part=Part(i, 2))
    with pytest.raises(folders.ResultsExistError, match="holds a finished run"):
        merge(out, parts, plot=False)
    assert (out / "manifest.json").read_bytes() != b"" and merge(out, parts, plot=False, overwrite=True).manifest
