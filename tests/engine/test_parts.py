"""Split a run into parts (``jtricks run --part i/n``) and merge them (``jtricks merge``): the merged folder is
byte-identical to one run of the whole grid; foreign, missing and overlapping parts are refused by name."""

from __future__ import annotations

import copy
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from support import processes

from jtricks import cli, experiment, results_io, runner
from jtricks import fingerprint as jfp
from jtricks import parts as jparts
from jtricks import report as jreport

pytestmark = pytest.mark.slow  # real jtricks runs / processes: left out of `-m "not slow"`

#: 3 arms x 2 seeds = 6 members, parts of 3 that split an arm's seeds; chunks of 2 members (the last of a part
#: padded), so the whole run and every part run the same two programs (compiled once: the test run's cache)
TINY = """
from jtricks.experiment import Experiment
EXPERIMENT = Experiment(name='tiny_split', dataset='digits', preprocess='unit', n_val=100, n_train=256,
    model='mlp', model_kwargs={'widths': (8,)}, grid={'learning_rate': [1e-3, 2e-3, 3e-3]},
    epochs=1, batch_size=64, eval_batch_size=256, seeds=2, max_members=2)
"""
REPO = Path(__file__).resolve().parents[2]
SAME_BYTES = ("metrics.csv", "members.csv", "arms.json", "summary.csv", "summary.md")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The whole run, its three parts and their merge (in-process CLI calls)."""
    root = tmp_path_factory.mktemp("split")
    f = root / "tiny_split.py"
    f.write_text(TINY)
    common = ["--quiet", "--no-plot", "--no-checkpoint"]
    assert cli.main(["run", str(f), "--out", str(root / "whole"), *common]) == 0
    for i in (1, 2):
        assert cli.main(["run", str(f), "--out", str(root / f"p{i}"), "--part", f"{i}/2", *common]) == 0
    assert cli.main(["merge", str(root / "merged"), str(root / "p2"), str(root / "p1"), "--no-plot"]) == 0
    return root


def test_select_is_a_contiguous_balanced_partition():
    for m in range(1, 13):
        members = list(range(m))
        for n in range(1, m + 1):
            slices = [jparts.select(members, jparts.Part(i, n)) for i in range(1, n + 1)]
            assert sum(slices, []) == members  # disjoint, complete, in order
            assert max(map(len, slices)) - min(map(len, slices)) <= 1 and min(map(len, slices)) >= 1
    with pytest.raises(ValueError, match="the run has 3 members .* at most 3 parts"):
        jparts.select([0, 1, 2], jparts.Part(4, 4))


@pytest.mark.parametrize("text", ["0/2", "3/2", "1", "a/b", "1/0", "-1/2"])
def test_parse_part_rejects(text):
    with pytest.raises(ValueError, match="--part must be i/n"):
        jparts.parse_part(text)
    assert jparts.parse_part(" 2 / 5 ") == jparts.Part(2, 5)


def test_plan_of_a_part_keeps_group_order_and_chunking():
    """Members are sliced in training order (group by group); a part spanning two groups runs both."""
    exp = experiment.Experiment(
        name="x",
        dataset="digits",
        model="mlp",
        seeds=2,
        max_members=2,
        grid={"learning_rate": [1e-3, 3e-3], "optimizer": ["sgd", "adam"]},
    )
    names = lambda g: [[(a.name, s) for a, s in c] for c in g.chunks]  # noqa: E731
    p2 = runner.plan(exp, part=jparts.Part(2, 3))
    assert [names(g) for g in p2.groups] == [
        [[("learning_rate=0.003,optimizer=sgd", 0), ("learning_rate=0.003,optimizer=sgd", 1)]],
        [[("learning_rate=0.001,optimizer=adam", 0)]],
    ]
    assert [g.index for g in p2.groups] == [0, 1] and p2.part == jparts.Part(2, 3)
    whole = [m for g in runner.plan(exp).groups for c in names(g) for m in c]
    parts = [m for i in (1, 2, 3) for g in runner.plan(exp, part=jparts.Part(i, 3)).groups for c in names(g) for m in c]
    assert parts == whole and len(whole) == 8
    with pytest.raises(ValueError, match="the run has 8 members"):
        runner.plan(exp, part=jparts.Part(9, 9))


def test_parts_hold_their_slice_and_merge_byte_identical(runs):
    parts = [json.loads((runs / f"p{i}" / "manifest.json").read_text()) for i in (1, 2)]
    assert [[tuple(m) for m in p["part"]["members"]] for p in parts] == [
        [("learning_rate=0.001", 0), ("learning_rate=0.001", 1), ("learning_rate=0.002", 0)],
        [("learning_rate=0.002", 1), ("learning_rate=0.003", 0), ("learning_rate=0.003", 1)],
    ]
    assert parts[0]["fingerprint"]["settings"]["part"] == {"index": 1, "count": 2}
    assert [t["members"] for t in parts[0]["timing"]] == [2]  # chunks of 2: [m0, m1], [m2, padding]
    assert not (runs / "p1" / "summary.csv").exists()  # a part holds rows only
    for name in SAME_BYTES:
        assert (runs / "merged" / name).read_bytes() == (runs / "whole" / name).read_bytes(), name
    whole = json.loads((runs / "whole" / "manifest.json").read_text())
    merged = json.loads((runs / "merged" / "manifest.json").read_text())
    for key in (
        "seeds",
        "fingerprint",
        "files",
        "config",
        "arms",
        "metrics",
        "directions",
        "data",
        "static_groups",
        "baseline",
    ):
        assert merged[key] == whole[key], key
    assert "part" not in merged and merged["split"]["count"] == 2
    assert [(p["index"], p["members"]) for p in merged["split"]["parts"]] == [(1, 3), (2, 3)]
    assert len(merged["machines"]) == 1 and merged["machines"][0]["backend"] == "cpu"
    assert sorted(merged["compiles"]) == [
        "part1/group0/epoch",
        "part1/group0/init",
        "part2/group0/epoch",
        "part2/group0/init",
    ]
    assert results_io.check_complete(runs / "merged")["fingerprint"] == whole["fingerprint"]
    jreport.render(runs / "merged", plot=False)  # what `jtricks report` re-derives
    assert (runs / "merged" / "summary.csv").read_bytes() == (runs / "whole" / "summary.csv").read_bytes()


def test_merge_refuses_missing_duplicate_and_foreign_parts(runs, tmp_path):
    p1, p2 = runs / "p1", runs / "p2"
    with pytest.raises(jparts.MergeError, match=r"incomplete: part 2/2 missing \(given: 1/2\)"):
        jparts.merge(tmp_path / "m", [p1])
    with pytest.raises(jparts.MergeError, match=r"p1 and .*p1 are both part 1/2"):
        jparts.merge(tmp_path / "m", [p1, p2, p1])
    with pytest.raises(jparts.MergeError, match="whole is not a part of a run"):
        jparts.merge(tmp_path / "m", [runs / "whole", p1])
    foreign = tmp_path / "foreign"
    shutil.copytree(p2, foreign)
    other_split = tmp_path / "other_split"
    shutil.copytree(p2, other_split)
    man = json.loads((foreign / "manifest.json").read_text())
    settings = copy.deepcopy(man["fingerprint"]["settings"])
    settings["experiment"]["epochs"] = 2  # as if run with --epochs 2
    man["fingerprint"] = jfp.run_fingerprint(settings)
    (foreign / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(
        jparts.MergeError, match=r"foreign is not a part of the same run as .*p1 \(experiment.epochs: 1 -> 2\)"
    ):
        jparts.merge(tmp_path / "m", [p1, foreign])
    man = json.loads((other_split / "manifest.json").read_text())
    man["part"]["count"] = 3
    (other_split / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(
        jparts.MergeError, match=r"other_split is part 2/3 but .*p1 is part 1/2: parts of different splits"
    ):
        jparts.merge(tmp_path / "m", [p1, other_split])
    (p2 / "metrics.csv").rename(tmp_path / "metrics.csv")
    try:
        with pytest.raises(jparts.MergeError, match="p2/metrics.csv is missing"):
            jparts.merge(tmp_path / "m", [p1, p2])
    finally:
        (tmp_path / "metrics.csv").rename(p2 / "metrics.csv")
    assert not (tmp_path / "m").exists()  # nothing written by a refused merge


def test_merge_refuses_overlapping_members_and_report_refuses_a_part(runs, capsys):
    loaded = [jparts.load_part(runs / f"p{i}") for i in (1, 2)]
    loaded[1].manifest["part"]["members"].append(loaded[0].manifest["part"]["members"][0])
    with pytest.raises(
        jparts.MergeError, match=r"p1 and .*p2 both hold arm 'learning_rate=0.001' seed 0: the parts overlap"
    ):
        jparts.check_parts(loaded)
    loaded = [jparts.load_part(runs / f"p{i}") for i in (1, 2)]
    loaded[1].manifest["part"]["members"].pop()
    with pytest.raises(jparts.MergeError, match=r"incomplete: no part holds arm 'learning_rate=0.003' seed 1"):
        jparts.check_parts(loaded)
    assert cli.main(["report", str(runs / "p1")]) == 2
    assert "is part 1/2 of a run: merge the parts with `jtricks merge" in capsys.readouterr().err


def test_cli_merge_of_bad_parts_is_one_line(runs, tmp_path, capsys):
    assert cli.main(["merge", str(tmp_path / "m"), str(runs / "p1")]) == 2
    assert "jtricks merge: incomplete: part 2/2 missing (given: 1/2)" in capsys.readouterr().err


# ------------------------------------------------------------------------------ several processes
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def test_two_processes_write_the_single_run_folder(runs, tmp_path):
    """Two real processes under jax.distributed (CPU, gloo), each training its part on its own device (2
    global devices, 1 local each); process 0 gathers and merges: the folder of the single-process run."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "JAX_PLATFORMS": "cpu"}
    port = _free_port()
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jtricks",
                "run",
                str(runs / "tiny_split.py"),
                "--out",
                str(tmp_path / "out"),
                "--quiet",
                "--no-plot",
                "--processes",
                "2",
                "--coordinator",
                f"localhost:{port}",
                "--process-id",
                str(i),
            ],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in (0, 1)
    ]
    outs = [processes.communicate(p) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert "done: 3 arms x 2 seeds over 2 processes on 1 machine(s)" in outs[0][0]
    assert "process 1 of 2: done" in outs[1][0]
    for name in SAME_BYTES:
        assert (tmp_path / "out" / name).read_bytes() == (runs / "whole" / name).read_bytes(), name
    merged = json.loads((tmp_path / "out" / "manifest.json").read_text())
    whole = json.loads((runs / "whole" / "manifest.json").read_text())
    assert merged["fingerprint"] == whole["fingerprint"] and merged["seeds"] == whole["seeds"]
    assert [p["members"] for p in merged["split"]["parts"]] == [3, 3]
    assert [p["device"]["count"] for p in merged["split"]["parts"]] == [1, 1]  # each process: its own device
    assert sorted(os.listdir(tmp_path / "out")) == [
        "arms.json",
        "manifest.json",
        "members.csv",
        "metrics.csv",
        "summary.csv",
        "summary.md",
    ]


def test_init_state_is_sharded_over_the_devices(runs, tmp_path):
    """With several devices every leaf of the initial population state is split over them (no replicated
    copy of the population on any device)."""
    script = f"""
import jax
from jtricks import experiment, programs, runner
from jtricks.engine import execute
exp = experiment.load_experiment({str(runs / "tiny_split.py")!r})
plan = runner.plan(exp, max_members=4)
setup = runner.build(plan, programs.TraceCounter())[0]
keys, hp = execute.population_inputs(plan.groups[0].chunks[0], plan.groups[0].size, setup.config)
state = setup.programs.init(*jax.device_put((keys, hp), setup.sharding))
leaves = jax.tree_util.tree_leaves(state)
assert plan.groups[0].size == 4 and len(leaves) > 5
bad = [l.shape for l in leaves if l.sharding.is_fully_replicated or \
{{s.data.shape[0] for s in l.addressable_shards}} != {{2}}]
assert not bad, bad
print("sharded", len(leaves))
"""
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "JAX_PLATFORMS": "cpu",
        "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
    }
    p = processes.run([sys.executable, "-c", script], env=env, cwd=tmp_path)
    assert p.returncode == 0 and "sharded" in p.stdout, p.stderr
