"""Population-size independence: member i of a population of any size, on any number of devices, is bit for
bit its standalone run (the same seed alone).

The cases are the shapes that broke it: a 3-class output layer (16 -> 3, and 16 -> 16 -> 3) with Adam, whose
``(S, 3)`` parameter rows XLA vectorizes across the members; the search toy (8 -> 16 -> 10, SGD), whose
population of one once compiled without its member axis; digits with dropout and batch norm; and the
experiments' own models (the main job's MLP on MNIST-1D, the 1-D CNN).
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from jtricks import data, experiment, population, runner

pytestmark = pytest.mark.slow  # real jtricks runs / processes: left out of `-m "not slow"`

SIZES = range(1, 9)
#: the other cases: a population of one, the smallest real one, an odd size and the size where AVX-512 code split
SPOT_SIZES = (1, 2, 5, 8)


def _toy(n_in: int, n_cls: int) -> data.Dataset:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(192, n_in)).astype(np.float32)
    y = np.digitize(x @ rng.normal(size=n_in), np.linspace(-2, 2, n_cls - 1)).astype(np.int32)
    return data.arrays(x[:128], y[:128], x[128:], y[128:], num_classes=n_cls, name=f"toy{n_in}x{n_cls}")


def _case(name: str) -> experiment.Experiment:
    common = dict(name=name, n_val=32, epochs=2, batch_size=32, eval_batch_size=32, seeds=1)
    if name == "three_class_adam":
        return experiment.Experiment(
            dataset=_toy(16, 3),
            preprocess="raw",
            model="mlp",
            model_kwargs={"widths": ()},
            optimizer="adam",
            hparams={"learning_rate": 1e-2},
            **common,
        )
    if name == "hidden_three_class_adam":
        return experiment.Experiment(
            dataset=_toy(16, 3),
            preprocess="raw",
            model="mlp",
            model_kwargs={"widths": (16,)},
            optimizer="adam",
            hparams={"learning_rate": 1e-2},
            **common,
        )
    if name == "search_toy_sgd":
        return experiment.Experiment(
            dataset=_toy(8, 10),
            preprocess="raw",
            model="mlp",
            model_kwargs={"widths": (16,)},
            optimizer="sgd",
            hparams={"learning_rate": 0.1},
            **common,
        )
    if name == "digits_bn_dropout":
        return experiment.Experiment(
            dataset="digits",
            preprocess="unit",
            n_train=256,
            model="mlp",
            model_kwargs={"widths": (32,), "norm": "batch"},
            optimizer="adam",
            hparams={"learning_rate": 3e-3, "dropout_rate": 0.3},
            **common,
        )
    if name == "main_job_mlp":
        return experiment.Experiment(
            dataset="mnist1d",
            n_train=256,
            model="mlp",
            model_kwargs={"widths": (256, 256)},
            optimizer="adam",
            hparams={"learning_rate": 1e-3, "dropout_rate": 0.2},
            **common,
        )
    if name == "cnn1d":
        return experiment.Experiment(
            dataset="mnist1d",
            n_train=128,
            model="cnn1d",
            model_kwargs={"channels": (4, 8), "kernel_sizes": (5, 3)},
            optimizer="adam",
            hparams={"learning_rate": 1e-3},
            **common,
        )
    raise KeyError(name)


def _member_rows(res: runner.RunResult) -> dict[int, list[tuple]]:
    out: dict[int, list[tuple]] = {}
    for r in res.metric_rows:
        out.setdefault(r["seed"], []).append((r["epoch"], r["metric"], r["value"]))
    return out


def _alone(exp: experiment.Experiment, seeds) -> dict[int, list[tuple]]:
    """Each of ``seeds``' rows when it runs alone (a population of one member)."""
    return {
        s: _member_rows(runner.run(dataclasses.replace(exp, seed_offset=s), progress=False, plot=False))[s]
        for s in seeds
    }


def _checked(size: int) -> list[int]:
    """The members of a population of ``size`` compared with their runs alone: the first two and the last (the
    vectorized body's first lanes and its remainder, where a rounding that depends on position shows)."""
    return sorted({0, 1, size - 1} & set(range(size)))


def _assert_independent(exp: experiment.Experiment, sizes, *, every: bool = False) -> None:
    """Members of each population size equal their runs alone: every member (``every``) or :func:`_checked`."""
    checked = (lambda size: list(range(size))) if every else _checked
    alone = _alone(exp, sorted({s for size in sizes for s in checked(size)}))
    # the runs really differ from each other (the test can fail)
    assert alone[0] != alone[1]
    for size in sizes:
        pop = _member_rows(runner.run(dataclasses.replace(exp, seeds=size), progress=False, plot=False))
        for s in checked(size):
            assert pop[s] == alone[s], f"{exp.name}: member {s} of a population of {size} differs from its run alone"


def test_every_member_is_its_standalone_run_for_population_sizes_1_to_8() -> None:
    _assert_independent(_case("three_class_adam"), SIZES, every=True)


@pytest.mark.parametrize("case", ["hidden_three_class_adam", "search_toy_sgd", "digits_bn_dropout"])
def test_members_are_their_standalone_runs_on_the_shapes_that_broke(case: str) -> None:
    _assert_independent(_case(case), SPOT_SIZES)


@pytest.mark.parametrize("case", ["main_job_mlp", "cnn1d"])
def test_the_experiments_models_are_population_size_independent(case: str) -> None:
    _assert_independent(_case(case), SPOT_SIZES)


def test_no_device_runs_a_population_of_one() -> None:
    assert [population.padded_size(n) for n in (1, 2, 3, 8)] == [2, 2, 3, 8]
    assert [population.padded_size(n, devices=4) for n in (1, 4, 8, 9)] == [8, 8, 8, 12]
    assert [population.padded_size(n, devices=2) for n in (1, 3, 5)] == [4, 4, 6]
    with pytest.raises(ValueError, match="members"):
        population.padded_size(0)
    # the plan pads a one-member group to two (the copy is discarded)
    the_plan = runner.plan(_case("three_class_adam"))
    assert the_plan.groups[0].size == 2 and len(the_plan.groups[0].chunks[0]) == 1


_DEVICES_SCRIPT = """
import json, sys
sys.path.insert(0, {tests!r})
from test_population_sizes import _case, _member_rows, SIZES
import dataclasses, jax
from jtricks import runner
exp = _case({case!r})
out = {{str(n): {{str(s): rows for s, rows in _member_rows(runner.run(dataclasses.replace(exp, seeds=n), progress=False,
       plot=False)).items()}} for n in SIZES}}
print(json.dumps({{"devices": jax.local_device_count(), "rows": out}}))
"""


@pytest.mark.parametrize("devices", [2, 4])
def test_members_are_the_same_on_one_two_and_four_devices(devices: int) -> None:
    alone = _alone(_case("three_class_adam"), range(max(SIZES)))
    env = {
        **os.environ,
        "XLA_FLAGS": f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={devices}",
    }
    script = _DEVICES_SCRIPT.format(tests=str(Path(__file__).parent), case="three_class_adam")
    p = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    got = json.loads(p.stdout.strip().splitlines()[-1])
    assert got["devices"] == devices
    for n, members in got["rows"].items():
        for s, rows in members.items():
            assert [tuple(r) for r in rows] == alone[int(s)], f"{devices} devices, population {n}: member {s} differs"
