"""Data-parallel members (``data_parallel`` K, :mod:`jtricks.engine.mesh`): each member's batch split over K host
devices gives the single-device run within a stated tolerance, on the meshes members x data = 1x2 (2 devices),
2x2 and 1x4 (4 devices), with batch norm (whose statistics must be the whole batch's) and dropout, in both
execution modes, and through ``jtricks run --data-parallel 2`` (the manifest's mesh, the fingerprint); the split
really happens (the compiled step reduces across the data shards, a members-only mesh never communicates).

Not bit for bit, measured (jax 0.10.2, XLA CPU, portable numerics): the forward pass of an MLP without batch norm
is (logits, per-example and mean losses), but a weight gradient is a matrix product contracted over the batch,
which the partitioner computes as per-shard partial products summed by an all-reduce, so about a third of a
kernel's gradient elements round differently (by up to ~3e-7 of the leaf's largest); with batch norm the forward
pass differs too (docs/distributed.md). The
runs below then differ from the single-device run by at most ~2.3e-7 relatively (3 epochs); the tolerance
:data:`RTOL` keeps a margin above that and far below what statistics per data shard or a gradient of half the
batch would give.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from support import processes
from support.experiments import small_digits_mlp

from jtricks import runner
from jtricks.results import tables

pytestmark = pytest.mark.slow  # subprocesses on 2 and 4 host devices, several compiled runs

#: relative tolerance of a data-parallel run's metric rows against the single-device run's
RTOL = 1e-5


def _case(execution: str):
    return small_digits_mlp(
        epochs=2,
        n_train=256,
        model_kwargs={"widths": (32,), "norm": "batch"},
        hparams={"learning_rate": 3e-3, "dropout_rate": 0.2},
        execution=execution,
    )


def _keyed(rows) -> dict[str, float]:
    return {f"{r['arm']}/{r['seed']}/{r['epoch']}/{r['metric']}": r["value"] for r in rows}


def _rows(res: runner.RunResult) -> dict[str, float]:
    return _keyed(res.metric_rows)


_SCRIPT = """
import json, re, sys
sys.path[:0] = [{tests!r}, {support!r}]
import jax
from test_data_parallel import _case, _rows
from jtricks import runner
from jtricks.results import tables
from jtricks.engine import build, execute, plan, programs

def collectives(execution, k):
    the_plan = plan.plan(_case(execution), data_parallel=k)
    setup = build.build(the_plan, programs.TraceCounter())[0]
    g = the_plan.groups[0]
    keys, hp = execute.population_inputs(g.chunks[0], g.size, setup.config)
    name = "step" if execution == "loop" else "epoch"
    text = setup.programs.lower(keys, hp)[name].compile().as_text()
    return len(re.findall(r"= \\S+ all-reduce\\(", text))

out = {{"rows": {{}}, "mesh": {{}}, "all_reduce": {{}}}}
for execution, k in {runs!r}:
    key, folder = f"{{execution}}/{{k}}", {out!r} + f"/{{execution}}{{k}}"
    res = runner.run(_case(execution), progress=False, plot=False, data_parallel=k, out_dir=folder)
    out["rows"][key] = _rows(res)
    out["mesh"][key] = json.load(open(folder + "/manifest.json"))["device"]["mesh"]
for execution, k in {probe!r}:
    out["all_reduce"][f"{{execution}}/{{k}}"] = collectives(execution, k)
out["devices"] = jax.local_device_count()  # after the runs: JAX starts in the numerics mode they pin
print(json.dumps(out))
"""


def _on_devices(devices: int, runs: list[tuple[str, int]], probe: list[tuple[str, int]], tmp: Path) -> dict:
    env = {
        **os.environ,
        "XLA_FLAGS": f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={devices}",
    }
    here = Path(__file__)
    script = _SCRIPT.format(tests=str(here.parent), support=str(here.parents[1]), runs=runs, probe=probe, out=str(tmp))
    p = processes.run([sys.executable, "-c", script], env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    got = json.loads(p.stdout.strip().splitlines()[-1])
    assert got["devices"] == devices
    return got


def _assert_close(got: dict[str, float], ref: dict[str, float], what: str) -> int:
    """Every row within :data:`RTOL` of the reference; returns how many rows are bit for bit the reference's."""
    assert got.keys() == ref.keys(), what
    names = sorted(ref)
    a, b = np.array([got[n] for n in names]), np.array([ref[n] for n in names])
    assert np.all(np.isfinite(a)) and np.all(np.isfinite(b)), what
    np.testing.assert_allclose(a, b, rtol=RTOL, atol=1e-7, err_msg=what)
    return int(np.sum(a == b))


@pytest.fixture(scope="module")
def single_device() -> dict[str, dict[str, float]]:
    """The single-device runs (this test process has one CPU device)."""
    return {ex: _rows(runner.run(_case(ex), progress=False, plot=False)) for ex in ("scan", "loop")}


def test_data_parallel_on_four_devices_is_the_single_device_run_within_tolerance(
    single_device: dict[str, dict[str, float]], tmp_path: Path
) -> None:
    got = _on_devices(4, [("scan", 1), ("scan", 2), ("scan", 4), ("loop", 2)], [("loop", 1), ("loop", 2)], tmp_path)
    # members only (K = 1): bit for bit the single-device run, as every member sharding is
    assert got["rows"]["scan/1"] == single_device["scan"]
    assert got["mesh"] == {
        "scan/1": {"pop": 4, "data": 1},
        "scan/2": {"pop": 2, "data": 2},
        "scan/4": {"pop": 1, "data": 4},
        "loop/2": {"pop": 2, "data": 2},
    }
    for key in ("scan/2", "scan/4", "loop/2"):
        _assert_close(got["rows"][key], single_device[key.split("/")[0]], f"4 devices, {key}")
    # the batch is split: the step reduces across the data shards; the members-only mesh never communicates
    assert got["all_reduce"]["loop/1"] == 0 and got["all_reduce"]["loop/2"] > 0


def test_jtricks_run_data_parallel_on_two_devices_is_the_single_device_run_within_tolerance(
    single_device: dict[str, dict[str, float]], tmp_path: Path
) -> None:
    """``jtricks run --cpu-devices 2 --data-parallel 2``: the 1x2 mesh, through the command line."""
    here = Path(__file__)
    f = tmp_path / "case.py"
    f.write_text(
        f"import sys\nsys.path[:0] = [{str(here.parent)!r}, {str(here.parents[1])!r}]\n"
        "from test_data_parallel import _case\nEXPERIMENT = _case('scan')\n"
    )
    out = tmp_path / "run"
    cmd = ["run", str(f), "--out", str(out), "--quiet", "--no-plot", "--cpu-devices", "2", "--data-parallel", "2"]
    p = processes.run([sys.executable, "-m", "jtricks", *cmd], cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["device"]["count"] == 2 and manifest["device"]["mesh"] == {"pop": 1, "data": 2}
    assert manifest["fingerprint"]["settings"]["data_parallel"] == 2
    rows = {
        f"{r['arm']}/{r['seed']}/{r['epoch']}/{r['metric']}": r["value"]
        for r in tables.read_metrics_csv(out / "metrics.csv")
    }
    _assert_close(rows, single_device["scan"], "jtricks run, 2 devices, 1x2")


def test_statistics_per_data_shard_would_fail_the_tolerance(single_device: dict[str, dict[str, float]]) -> None:
    """The tolerance can tell a wrong split: a batch of half the size (what one data shard alone sees) is far
    outside it."""
    half = _rows(runner.run(dataclasses.replace(_case("scan"), batch_size=32), progress=False, plot=False))
    with pytest.raises(AssertionError):
        _assert_close(half, single_device["scan"], "half batch")
