"""Build a planned run: per static group, its prepared data (shared by groups with the same data settings), its
checked targets, its configuration and its jitted population programs (not compiled yet).

With several devices every group's population axis is sharded over this process's devices (the mesh of
:mod:`jtricks.engine.mesh`: ``("pop",)``, or ``("pop", "data")`` with data parallelism), an explicit output
sharding on every program, so each device holds only its members' state; with data parallelism each member's
batch is split over the ``"data"`` axis.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from jtricks import losses as jlosses
from jtricks.engine import grid as jgrid
from jtricks.engine import mesh as jmesh
from jtricks.engine import prepare as jprep
from jtricks.engine import programs as jprog
from jtricks.engine import train as jtrain
from jtricks.engine.configure import build_config, build_model
from jtricks.engine.plan import Plan

__all__ = ["GroupSetup", "build", "population_sharding", "check_batch_split"]


@dataclasses.dataclass
class GroupSetup:
    """A group's prepared data, configuration and programs."""

    programs: jprog.GroupPrograms
    config: jtrain.TrainConfig
    data: jprep.PreparedData
    sharding: Any


def population_sharding(data_parallel: int = 1) -> Any:
    """The population axis split over this process's devices / ``data_parallel`` (``None`` with one device)."""
    mesh = jmesh.device_mesh(data_parallel)
    return None if mesh is None else mesh.members


def check_batch_split(config: jtrain.TrainConfig, data_parallel: int) -> None:
    """A ``ValueError`` unless each step's examples (``batch_size / accumulate``) split evenly over
    ``data_parallel`` devices."""
    per_step = jtrain.micro_batch(config)
    if per_step % data_parallel:
        allowed = [k for k in range(1, per_step + 1) if per_step % k == 0]
        raise ValueError(
            f"`data_parallel`={data_parallel} must divide each step's {per_step} examples (batch_size / accumulate); "
            f"allowed: {', '.join(map(str, allowed))}"
        )


def build(the_plan: Plan, counter: jprog.TraceCounter, *, prefetch: int = 2) -> list[GroupSetup]:
    """Per group: the prepared data (shared by groups with the same data settings), the checked targets,
    the configuration and the jitted programs (not compiled yet). ``prefetch``: the batches a streamed group
    (``data_placement="stream"``) prepares ahead."""
    cache: dict[tuple, jprep.PreparedData] = {}
    mesh = jmesh.device_mesh(the_plan.data_parallel)
    setups = []
    for g in the_plan.groups:
        e0 = g.experiment
        loss = jlosses.get(e0.loss)
        key = jgrid.data_key(e0) + (("targets", loss.targets),)
        if key not in cache:
            cache[key] = jprep.prepare_data(e0, loss)
        prepared = cache[key]
        jprep.check_batch_size(prepared, e0.batch_size)
        model = build_model(e0, prepared.num_outputs)
        jprep.check_targets(prepared, loss, model)
        config = build_config(
            e0,
            model,
            prepared.num_train,
            traced=jgrid.traced_hparams(a.hparams for a in g.arms),
            member_split=prepared.member_split,
        )
        jtrain.check_inputs(config, prepared.input_shape)
        check_batch_split(config, the_plan.data_parallel)
        sharding = None if mesh is None else mesh.members
        progs = jprog.GroupPrograms(
            config,
            prepared.device,
            prepared.input_shape,
            counter,
            f"group{g.index}",
            e0.population,
            sharding=sharding,
            stream=prepared.stream,
            prefetch=prefetch,
            batch_sharding=None if mesh is None else mesh.batch,
        )
        setups.append(GroupSetup(progs, config, prepared, sharding))
    return setups
