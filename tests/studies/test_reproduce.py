"""`jtricks reproduce`: a results folder rerun from its manifest and compared member by member."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from jtricks import experiment as jexp
from jtricks import reproduce, results_io, runner, search

pytestmark = pytest.mark.slow  # real jtricks runs / processes: left out of `-m "not slow"`

REPO = Path(__file__).resolve().parents[2]
TINY = (
    "from jtricks.experiment import Experiment\n"
    "EXPERIMENT = Experiment(name='tinyrep', description='reproduce me', dataset='digits', "
    "preprocess='unit', n_val=100,\n"
    "    n_train=256, model='mlp', model_kwargs={'widths': (16,)}, optimizer='adam', hparams={'learning_rate': 3e-3},\n"
    "    grid={'dropout_rate': [0.0, 0.3]}, epochs=2, batch_size=64, eval_batch_size=100, seeds=2)\n"
)


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "jtricks", *args], cwd=cwd, capture_output=True, text=True, timeout=600
    )


@pytest.fixture(scope="module")
def original(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("reproduce")
    (root / "tinyrep.py").write_text(TINY)
    p = _cli("run", "tinyrep.py", "--out", "orig", "--quiet", "--no-plot", "--no-save-models", cwd=root)
    assert p.returncode == 0, p.stderr
    return root / "orig"


def test_a_run_reproduces_bit_for_bit(original: Path, tmp_path: Path) -> None:
    p = _cli("reproduce", str(original), "--quiet", "--out", str(tmp_path / "again"), cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("bit for bit: 64 of 64 rows identical over 4 members"), p.stdout
    record = json.loads((tmp_path / "again" / "reproduce.json").read_text())
    assert record["verdict"] == "bit for bit" and record["summaries"]["verdicts_agree"]
    assert record["setting_differences"] == []  # the experiment was rebuilt with every setting as run
    assert (tmp_path / "again" / "metrics.csv").read_bytes() == (original / "metrics.csv").read_bytes()


def test_a_sample_of_members_reproduces_its_rows(original: Path) -> None:
    rep = reproduce.reproduce(original, members=3, progress=False)
    # seed 0 of both arms, then seed 1 of the first: each member's rows as in the whole run
    assert rep.members == [("dropout_rate=0", 0), ("dropout_rate=0", 1), ("dropout_rate=0.3", 0)]
    assert rep.verdict == "bit for bit" and rep.rows["rows"] == 3 * 16
    rep = reproduce.reproduce(original, arms=["dropout_rate=0.3"], progress=False)
    assert rep.verdict == "bit for bit" and "skipped" in rep.summaries  # no baseline among them: no summary
    with pytest.raises(ValueError, match="unknown arm"):
        reproduce.reproduce(original, arms=["dropout_rate=0.9"], progress=False)


def _copy_with_edited_values(original: Path, dest: Path, edit) -> Path:
    shutil.copytree(original, dest)
    lines = (dest / "metrics.csv").read_text().splitlines()
    lines = [lines[0]] + [edit(i, line) for i, line in enumerate(lines[1:])]
    (dest / "metrics.csv").write_text("\n".join(lines) + "\n")
    manifest = json.loads((dest / "manifest.json").read_text())
    manifest["files"]["metrics.csv"] = results_io._sha256_file(dest / "metrics.csv")  # a deliberate, consistent edit
    (dest / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return dest


def _bump(line: str, ulps: int) -> str:
    head, value = line.rsplit(",", 1)
    x = np.array(float(value), np.float32).view(np.int32) + ulps
    return f"{head},{float(np.array(x, np.int32).view(np.float32))!r}"


def test_a_tampered_copy_is_caught_with_its_size_in_ulp(original: Path, tmp_path: Path) -> None:
    # one value moved by 3 ULP: not bit for bit; within a tolerance of 3 ULP, but not of 2
    copy = _copy_with_edited_values(original, tmp_path / "tampered", lambda i, v: _bump(v, 3) if i == 5 else v)
    p = _cli("reproduce", str(copy), "--quiet", cwd=tmp_path)
    assert p.returncode == 1 and "63 of 64 rows identical" in p.stdout and "largest difference 3 ULP" in p.stdout, (
        p.stdout
    )
    assert reproduce.reproduce(copy, tolerance=3, progress=False).verdict == "within N ULP"
    assert reproduce.reproduce(copy, tolerance=2, progress=False).verdict in (
        "same verdicts, different numbers",
        "differs",
    )
    # an edit the manifest does not know of is refused before anything runs
    (copy / "metrics.csv").write_text((copy / "metrics.csv").read_text().replace(",1,", ",1, ", 1))
    p = _cli("reproduce", str(copy), "--quiet", cwd=tmp_path)
    assert p.returncode == 2 and "metrics.csv" in p.stderr, p.stderr


def test_a_changed_machine_record_is_named_as_the_likely_cause(original: Path, tmp_path: Path) -> None:
    copy = _copy_with_edited_values(original, tmp_path / "other", lambda i, v: _bump(v, 40) if i % 7 == 0 else v)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["machine"]["cpu"].update(vendor="GenuineIntel", model="Intel Xeon", family=6, isa=["avx", "avx2", "fma"])
    manifest["numerics"]["mode"] = "portable"
    manifest["versions"]["jaxlib"] = "0.0.1"
    (copy / "manifest.json").write_text(json.dumps(manifest, indent=2))
    rep = reproduce.reproduce(copy, progress=False)
    assert rep.verdict != "bit for bit" and not rep.ok
    assert any(m.startswith("CPU: GenuineIntel Intel Xeon (family 6, AVX2") for m in rep.machines), rep.machines
    assert "jaxlib: 0.0.1 -> " in " ".join(rep.machines) and "likely cause" in rep.line


def test_ulp_distance() -> None:
    one = 1.0
    nxt = float(np.nextafter(np.float32(1), np.float32(2)))
    assert reproduce.ulp_distance(one, one) == 0 and reproduce.ulp_distance(one, nxt) == 1
    assert reproduce.ulp_distance(-0.0, 0.0) == 0 and reproduce.ulp_distance(-1e-45, 1e-45) == 2
    assert reproduce.ulp_distance(math.nan, math.nan) == 0 and math.isinf(reproduce.ulp_distance(1.0, math.nan))
    assert math.isinf(reproduce.ulp_distance(math.inf, 1.0)) and reproduce.ulp_distance(math.inf, math.inf) == 0


def test_the_experiment_is_rebuilt_from_the_manifest(original: Path) -> None:
    manifest = json.loads((original / "manifest.json").read_text())
    exp = reproduce.experiment_from_manifest(manifest)
    assert [a.name for a in jexp.validate(exp)] == [a["arm"] for a in manifest["arms"]]
    assert exp.model_kwargs == {"widths": (16,)} and exp.grid == {"dropout_rate": [0.0, 0.3]}
    # search methods and distributions come back from their text; nothing else is evaluated
    assert reproduce._object("Halving(rungs=[1, 2], keep=0.5, metric='val_loss', across=None)") == search.Halving(
        rungs=(1, 2), keep=0.5, metric="val_loss"
    )
    assert str(reproduce._object("loguniform(0.001, 0.1)")) == "loguniform(0.001, 0.1)"
    with pytest.raises(ValueError, match="cannot rebuild"):
        reproduce._object("__import__('os').system('true')")
    bad = {**manifest, "config": {**manifest["config"], "dataset": "Dataset(toy)"}}
    with pytest.raises(ValueError, match="object"):
        reproduce.experiment_from_manifest(bad)


def test_members_filter_of_a_run_is_checked() -> None:
    exp = reproduce.experiment_from_manifest(
        {
            "config": {
                "name": "x",
                "dataset": "digits",
                "model": "mlp",
                "grid": {"dropout_rate": [0.0, 0.3]},
                "seeds": 2,
                "epochs": 1,
            }
        }
    )
    with pytest.raises(ValueError, match="not in it"):
        runner.plan(exp, members=[("dropout_rate=0", 5)])
    the_plan = runner.plan(exp, members=[("dropout_rate=0.3", 1)])
    assert the_plan.members == [("dropout_rate=0.3", 1)] and [len(c) for c in the_plan.groups[0].chunks] == [1]
