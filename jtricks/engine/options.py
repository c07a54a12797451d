"""How a run is carried out: one :class:`RunOptions` value handed from the entry point (``jtricks run``,
:func:`jtricks.engine.runner.run`, the studies) down to the step that reads each option.

Only ``numerics`` and ``data_parallel`` change numbers (the portable or native XLA settings; a member's batch
split over devices, whose partitioned reductions may round differently: docs/distributed.md); ``members`` and
``part`` choose which members run, and every member computes what it would in the whole run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from jtricks.engine.parts import Part
from jtricks.engine.stopping import StopRequest

__all__ = ["RunOptions", "options_from"]


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """The options of one run.

    Attributes:
      resume: continue from the checkpoints in the results folder (refused when they were made with other settings).
      max_members: the largest population compiled at once (chunks; default: the experiment's ``max_members``).
      progress: print a progress line per epoch to stderr.
      checkpoint: save the population state after every epoch (needs a results folder).
      checkpoint_every: with ``checkpoint``, save every this many epochs, after a chunk's last epoch and when the
        run stops (resumed runs are bit for bit the same whichever epoch they continue from).
      plot: write ``curves.png``.
      compile_workers: compile the static groups' programs ahead of time, this many at once (``None``:
        ``min(groups, cores // 2)``; 1: each program on its first call).
      save_models: save every member's weights to ``models/`` (:mod:`jtricks.engine.saved`).
      callbacks: objects with ``on_epoch_end(rows)`` and/or ``on_run_end(result)`` (:mod:`jtricks.engine.callbacks`).
      part: train only this slice of the members (:mod:`jtricks.engine.parts`).
      numerics: ``"portable"`` or ``"native"`` (:func:`jtricks.engine.runtime.pin_numerics`).
      members: train only these ``(arm, seed)`` pairs (a sample; each gives the rows it gives in the whole run).
      overwrite: replace a results folder that already holds a run; without it (and without ``resume``) such a
        folder is refused (:func:`jtricks.results.folders.refuse_overwrite`).
      prefetch: with ``Experiment.data_placement="stream"``, the training batches a background thread gathers and
        puts on the device ahead of the step that uses them (0: each batch when its step comes; docs/streaming.md).
      data_parallel: split each member's batch over this many devices (a mesh of local devices / K member
        shards x K data shards, :mod:`jtricks.engine.mesh`); it must divide the local device count.
      stop: polled between epochs (:mod:`jtricks.engine.stopping`): when a signal or the time limit asks for it,
        the run checkpoints the last finished epoch and raises :class:`~jtricks.engine.stopping.RunStopped`.
    """

    resume: bool = False
    max_members: int | None = None
    progress: bool = True
    checkpoint: bool = True
    plot: bool = True
    compile_workers: int | None = None
    save_models: bool = True
    callbacks: Sequence[Any] = ()
    part: Part | None = None
    numerics: str = "portable"
    members: tuple[tuple[str, int], ...] | None = None
    overwrite: bool = False
    checkpoint_every: int = 1
    stop: StopRequest | None = None
    prefetch: int = 2
    data_parallel: int = 1

    def __post_init__(self) -> None:
        if isinstance(self.prefetch, bool) or not isinstance(self.prefetch, int) or self.prefetch < 0:
            raise ValueError(f"`prefetch` must be an int >= 0 (batches prepared ahead; 0: none), got {self.prefetch!r}")
        for name in ("checkpoint_every", "data_parallel"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be a positive int, got {value!r}")

    def replace(self, **changes: Any) -> RunOptions:
        """A copy with ``changes`` (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)


def options_from(options: RunOptions | None, **changes: Any) -> RunOptions:
    """``options`` (default :class:`RunOptions()`) with keyword ``changes``; an unknown option is a ``TypeError``
    naming it and the known ones."""
    base = options if options is not None else RunOptions()
    if not isinstance(base, RunOptions):
        raise TypeError(f"`options` must be a jtricks.engine.options.RunOptions, got {type(base).__name__}")
    known = {f.name for f in dataclasses.fields(RunOptions)}
    unknown = sorted(set(changes) - known)
    if unknown:
        raise TypeError(f"unknown run option(s) {unknown}; the options are {sorted(known)}")
    if changes.get("callbacks") is None and "callbacks" in changes:
        changes["callbacks"] = ()
    if changes.get("members") is not None:
        changes["members"] = tuple((str(a), int(s)) for a, s in changes["members"])
    return dataclasses.replace(base, **changes)
