"""Plan a run: validate the experiment, group its arms by static configuration and cut each group's members
(arms x seeds) into chunks of one population size. Nothing is loaded or compiled.

A group's chunks all have its population size (:func:`jtricks.engine.population.padded_size`: a multiple of the
member devices, at least two members per device; with ``data_parallel`` K the member axis spans local devices /
K); the last chunk is padded with copies of its first member, so no chunk recompiles. With ``part`` or
``members`` (:class:`jtricks.engine.options.RunOptions`) only those members are planned; a group keeps all its
arms, which decide its program (e.g. whether dropout is traced).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from jtricks.engine import experiment as jexp
from jtricks.engine import grid as jgrid
from jtricks.engine import mesh as jmesh
from jtricks.engine import parts as jparts
from jtricks.engine import population as jpop
from jtricks.engine import validation as jvalidation
from jtricks.engine.options import RunOptions, options_from

__all__ = ["Group", "Plan", "plan"]


# --------------------------------------------------------------------------------------------- plan
@dataclasses.dataclass(frozen=True)
class Group:
    """The arms of one static configuration and their members, cut into chunks of ``size``."""

    index: int
    arms: list[jexp.Arm]
    chunks: list[list[tuple[jexp.Arm, int]]]
    size: int

    @property
    def experiment(self) -> jexp.Experiment:
        return self.arms[0].experiment


@dataclasses.dataclass(frozen=True)
class Plan:
    """What a run will do, before anything is loaded or compiled."""

    experiment: jexp.Experiment
    arms: list[jexp.Arm]
    seeds: list[int]
    groups: list[Group]
    #: the slice of the members this run trains (``--part i/n``, :mod:`jtricks.parts`); ``None``: all
    part: jparts.Part | None = None
    #: the ``(arm, seed)`` pairs this run trains when a sample was asked for; ``None``: all
    members: list[tuple[str, int]] | None = None
    #: the devices each member's batch is split over (:mod:`jtricks.engine.mesh`)
    data_parallel: int = 1

    @property
    def total_epochs(self) -> int:
        return sum(len(g.chunks) * g.experiment.epochs for g in self.groups)


def _wanted(
    arms: list[jexp.Arm], groups: list[list[jexp.Arm]], seeds: list[int], opts: RunOptions
) -> set[tuple[str, int]] | None:
    """The ``(arm, seed)`` pairs to train: all (``None``), the ``part``'s slice, the ``members`` asked for, or both."""
    wanted = None
    if opts.part is not None:
        ordered = [(arm.name, s) for group_arms in groups for arm in group_arms for s in seeds]
        wanted = set(jparts.select(ordered, opts.part))
    if opts.members is not None:
        asked = set(opts.members)
        unknown = sorted(asked - {(arm.name, s) for arm in arms for s in seeds})
        if unknown or not asked:
            raise ValueError(
                f"`members` must be (arm, seed) pairs of the run; not in it: {unknown[:5] or 'none given'}"
            )
        wanted = asked if wanted is None else wanted & asked
    return wanted


def plan(exp: jexp.Experiment, options: RunOptions | None = None, **changes: Any) -> Plan:
    """Validate ``exp``, group its arms by static configuration and chunk each group's members (module docstring).

    ``options`` (:class:`jtricks.engine.options.RunOptions`, or its fields as keywords) supplies ``max_members``,
    ``part`` and ``members``; groups left without members are dropped. ``data_parallel`` must divide the local
    device count (checked here, before anything loads).
    """
    opts = options_from(options, **changes)
    devices = jmesh.member_devices(opts.data_parallel)
    arms = jvalidation.validate(exp)
    max_members = opts.max_members or exp.max_members
    seeds = list(range(exp.seed_offset, exp.seed_offset + exp.seeds))
    by_signature: dict[tuple, list[jexp.Arm]] = {}
    for arm in arms:
        by_signature.setdefault(jgrid.static_signature(arm.experiment), []).append(arm)
    if opts.part is not None and (exp.search is not None or exp.tune is not None):
        raise ValueError(
            "a part (--part, several processes) cannot be combined with 'search' or 'tune': they rank "
            "members against each other, so every member must be in one run"
        )
    if max_members and exp.search is not None:
        raise ValueError(
            "max_members cannot be combined with 'search' (successive halving and PBT run each "
            "static group as one population)"
        )
    wanted = _wanted(arms, list(by_signature.values()), seeds, opts)
    groups = []
    for group_arms in by_signature.values():
        mine = [(arm, s) for arm in group_arms for s in seeds if wanted is None or (arm.name, s) in wanted]
        if not mine:
            continue
        size = jpop.padded_size(len(mine) if not max_members else min(max_members, len(mine)), devices)
        # all the group's arms, even in a part: they decide the program (e.g. whether dropout is traced)
        groups.append(Group(len(groups), group_arms, [mine[i : i + size] for i in range(0, len(mine), size)], size))
    names = [a.name for a in arms]
    chosen = None if opts.members is None else sorted(wanted or (), key=lambda m: (names.index(m[0]), m[1]))
    return Plan(exp, arms, seeds, groups, opts.part, chosen, opts.data_parallel)
