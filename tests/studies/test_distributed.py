"""Where the processes of a multi-process run come from: flags, JAX_* variables, a SLURM step; bad values are
one-line errors naming the flag, raised before JAX starts. (The run itself: tests/engine/test_parts.py.)"""

from __future__ import annotations

import pytest

from jtricks import cli
from jtricks.distributed import Cluster, first_host, resolve

SLURM = {
    "SLURM_JOB_ID": "4242",
    "SLURM_STEP_NODELIST": "node[001-004]",
    "SLURM_NTASKS": "4",
    "SLURM_PROCID": "2",
    "SLURM_LOCALID": "0",
    "SLURM_STEP_NUM_TASKS": "4",
}


def test_flags_then_environment_then_slurm():
    assert resolve("2", "localhost:1234", "1", environ={}) == Cluster("localhost:1234", 2, 1, "flags")
    env = {"JAX_COORDINATOR_ADDRESS": "10.0.0.1:999", "JAX_NUM_PROCESSES": "3", "JAX_PROCESS_ID": "0"}
    assert resolve(environ=env) == Cluster("10.0.0.1:999", 3, 0, "environment")
    assert resolve(process_id="2", environ=env) == Cluster(
        "10.0.0.1:999", 3, 2, "flags"
    )  # a flag overrides its variable
    assert resolve(environ=SLURM) == Cluster(
        "node001:61586", 4, 2, "SLURM"
    )  # port as JAX picks it: 61440 + 4242 % 4096
    assert resolve(environ={**SLURM, "JAX_COORDINATOR_PORT": "5555"}).coordinator == "node001:5555"
    assert resolve(environ={**SLURM, **env}).source == "environment"
    assert resolve("auto", environ={}) == Cluster(None, None, None, "auto")


def test_first_host_of_a_slurm_node_list():
    assert [
        first_host(x) for x in ("node001", "node001,gpu2", "node[001-016],gpu7", "node[003,007-015]", "gpu-a[12]")
    ] == ["node001", "node001", "node001", "node003", "gpu-a12"]


def test_single_process_cases():
    assert resolve(environ={}) is None
    assert resolve("1", environ={}) is None  # one process: the ordinary run, no coordinator needed
    assert resolve(environ={**SLURM, "SLURM_STEP_NUM_TASKS": "1"}) is None  # one task per job (a job array)
    assert (
        resolve(environ={k: v for k, v in SLURM.items() if k != "SLURM_STEP_NUM_TASKS"}) is None
    )  # the batch script, not srun


@pytest.mark.parametrize(
    "args, message",
    [
        (("2", None, "0"), r"a run over several processes needs --coordinator \(or JAX_COORDINATOR_ADDRESS\)$"),
        ((None, "h:1", None), r"needs --processes \(or JAX_NUM_PROCESSES\), --process-id \(or JAX_PROCESS_ID\)$"),
        (("2", "h:1", "2"), r"--process-id must be in \[0, 2\), got 2"),
        (("two", "h:1", "0"), "--processes must be an int >= 1, got 'two'"),
        (("0", "h:1", "0"), "--processes must be an int >= 1, got '0'"),
        (("2", "h:1", "-1"), "--process-id must be an int >= 0, got '-1'"),
        (("2", "localhost", "0"), "--coordinator must be HOST:PORT"),
        (("2", "h:70000", "0"), "--coordinator must be HOST:PORT"),
    ],
)
def test_bad_values_name_the_flag(args, message):
    with pytest.raises(ValueError, match=message):
        resolve(*args, environ={})


def test_cli_refuses_before_starting_jax(tmp_path, capsys):
    assert cli.main(["run", "nonexistent", "--processes", "2", "--process-id", "0"]) == 2
    assert "needs --coordinator (or JAX_COORDINATOR_ADDRESS)" in capsys.readouterr().err
    argv = ["run", "nonexistent", "--processes", "2", "--coordinator", "h:1", "--process-id", "0", "--part", "1/2"]
    assert cli.main(argv) == 2
    assert "--part cannot be combined with several processes" in capsys.readouterr().err
