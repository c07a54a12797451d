"""Build a planned run: per static group, its prepared data (shared by groups with the same data settings), its
checked targets, its configuration and its jitted population programs (not compiled yet).

With several devices every group's population axis is sharded over this process's devices (a 1-D mesh
``("pop",)``), an explicit output sharding on every program, so each device holds only its members' state.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import numpy as np

from jtricks import losses as jlosses
from jtricks.engine import grid as jgrid
from jtricks.engine import prepare as jprep
from jtricks.engine import programs as jprog
from jtricks.engine import train as jtrain
from jtricks.engine.configure import build_config, build_model
from jtricks.engine.plan import Plan

__all__ = ["GroupSetup", "build", "population_sharding"]


@dataclasses.dataclass
class GroupSetup:
    """A group's prepared data, configuration and programs."""

    programs: jprog.GroupPrograms
    config: jtrain.TrainConfig
    data: jprep.PreparedData
    sharding: Any


def population_sharding() -> Any:
    """The population axis split over this process's devices (``None`` with one device)."""
    devices = jax.local_devices()
    if len(devices) <= 1:
        return None
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    return NamedSharding(Mesh(np.array(devices), ("pop",)), PartitionSpec("pop"))


def build(the_plan: Plan, counter: jprog.TraceCounter, *, prefetch: int = 2) -> list[GroupSetup]:
    """Per group: the prepared data (shared by groups with the same data settings), the checked targets,
    the configuration and the jitted programs (not compiled yet). ``prefetch``: the batches a streamed group
    (``data_placement="stream"``) prepares ahead."""
    cache: dict[tuple, jprep.PreparedData] = {}
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
        sharding = population_sharding()
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
        )
        setups.append(GroupSetup(progs, config, prepared, sharding))
    return setups
