"""The members x data mesh (:mod:`jtricks.engine.mesh`): which ``data_parallel`` values a device count allows, the
errors that name them (raised before anything loads or compiles), and the batch split check. The runs on several
host devices are in ``test_data_parallel.py``."""

from __future__ import annotations

import dataclasses

import jax
import pytest
from support.experiments import small_digits_mlp

from jtricks import cli
from jtricks import fingerprint as jfp
from jtricks.engine import build as jbuild
from jtricks.engine import mesh as jmesh
from jtricks.engine import plan as jplan
from jtricks.engine import write as jwrite
from jtricks.engine.configure import build_config, build_model
from jtricks.engine.options import RunOptions
from jtricks.studies import reproduce as jreproduce


def test_the_allowed_values_are_the_divisors_of_the_device_count() -> None:
    assert [jmesh.check_data_parallel(k, 8) for k in (1, 2, 4, 8)] == [1, 2, 4, 8]
    for bad in (3, 5, 16, 0, -2):
        message = r"`data_parallel` must divide this process's 8 device\(s\).*allowed: 1, 2, 4, 8; got"
        with pytest.raises(ValueError, match=message):
            jmesh.check_data_parallel(bad, 8)
    with pytest.raises(ValueError, match=r"allowed: 1, 2, 3, 6; got True"):
        jmesh.check_data_parallel(True, 6)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_run_options_refuse_a_data_parallel_that_is_no_positive_int(bad: object) -> None:
    with pytest.raises(ValueError, match=rf"`data_parallel` must be a positive int, got {bad!r}"):
        RunOptions(data_parallel=bad)  # type: ignore[arg-type]


def test_the_plan_refuses_a_split_the_devices_do_not_allow() -> None:
    devices = jax.local_device_count()  # the plan loads and compiles nothing: the error comes before both
    with pytest.raises(ValueError, match=rf"must divide this process's {devices} device"):
        jplan.plan(small_digits_mlp(), data_parallel=devices + 1)


def test_one_device_has_no_mesh_and_the_member_axis_spans_the_devices_over_k() -> None:
    devices = jax.local_device_count()
    assert jmesh.member_devices(1) == devices
    if devices == 1:
        assert jmesh.device_mesh(1) is None and jbuild.population_sharding() is None
    the_plan = jplan.plan(small_digits_mlp(seeds=1), data_parallel=1)
    assert the_plan.data_parallel == 1 and the_plan.groups[0].size == 2 * devices


def test_each_step_s_examples_must_split_evenly() -> None:
    the_plan = jplan.plan(small_digits_mlp(batch_size=60))
    config = build_config(the_plan.groups[0].experiment, build_model(the_plan.experiment, 10), 640)
    jbuild.check_batch_split(config, 4)  # 60 = 4 x 15
    message = r"`data_parallel`=8 must divide each step's 60 examples .*"
    message += r"allowed: 1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30, 60$"
    with pytest.raises(ValueError, match=message):
        jbuild.check_batch_split(config, 8)


def test_the_cli_refuses_a_data_parallel_below_one(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["run", "tiny_does_not_matter", "--data-parallel", "0"]) == 2
    assert capsys.readouterr().err.strip() == "jtricks run: --data-parallel must be a positive int, got 0"


def test_a_split_batch_is_part_of_the_fingerprint_and_no_split_leaves_it_as_it_was() -> None:
    """A run split over K > 1 data shards rounds differently, so its checkpoints resume only with the same K (and its
    parts merge only with parts of the same K); K = 1 adds nothing, so earlier fingerprints stay valid."""
    the_plan = jplan.plan(small_digits_mlp())
    one = jwrite.fingerprint(the_plan, [], None)
    two = jwrite.fingerprint(dataclasses.replace(the_plan, data_parallel=2), [], None)
    assert "data_parallel" not in one["settings"] and two["settings"]["data_parallel"] == 2
    assert jfp.diff(two, one) == ["data_parallel: 2 -> <absent>"]
    with pytest.raises(jfp.FingerprintMismatchError, match=r"data_parallel: 2 -> <absent>"):
        jfp.check_same(two, one, "the checkpoint")


def test_reproduce_names_a_different_split_and_nothing_for_records_without_a_mesh() -> None:
    base = {"numerics": {"mode": "portable"}, "device": {"backend": "cpu", "kind": "cpu", "count": 4}}
    split = {**base, "device": {**base["device"], "mesh": {"pop": 2, "data": 2}}}
    unsplit = {**base, "device": {**base["device"], "mesh": {"pop": 4, "data": 1}}}
    assert jreproduce.machine_differences(split, unsplit) == ["data parallel (devices per member's batch): 2 -> 1"]
    assert jreproduce.machine_differences(base, unsplit) == []  # an older record: no mesh means no split
