"""Callbacks: your tracker (Weights & Biases, MLflow, a database, a file) plugged into a run in a few lines.

A callback is any object with one or both of

* ``on_epoch_end(rows)`` — after every epoch of every population chunk (in the order they run), with the
  tidy rows of that epoch: ``[{"arm", "seed", "epoch", "metric", "value"}, ...]``, one per member and
  metric, exactly the rows ``metrics.csv`` gets (members of the chunk only; padding copies left out);
* ``on_run_end(result)`` — once, after the results folder is written, with the
  :class:`jtricks.runner.RunResult` (``metric_rows``, ``member_rows``, ``summary``, ``out_dir``, ...).

Pass them as ``runner.run(exp, callbacks=[...])``. They run on the host between epochs (the compiled
epoch is unchanged: its metrics are copied out once per epoch anyway). A resumed run calls
``on_epoch_end`` for the epochs it trains, not for those restored from a checkpoint. An exception in a
callback stops the run (checkpoints stay, ``--resume`` continues it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = ["Callback", "check_callbacks", "tidy_rows", "epoch_end", "run_end"]

HOOKS = ("on_epoch_end", "on_run_end")


@runtime_checkable
class Callback(Protocol):
    """The callback protocol (a class need not inherit from it; either method may be absent)."""

    def on_epoch_end(self, rows: list[dict[str, Any]]) -> None:
        """The tidy rows of one finished epoch of one population chunk."""

    def on_run_end(self, result: Any) -> None:
        """The finished run's :class:`jtricks.runner.RunResult`."""


def check_callbacks(callbacks: Sequence[Any] | None) -> tuple[Any, ...]:
    """The callbacks as a tuple; ``TypeError`` (before anything is loaded or compiled) for anything that
    has neither ``on_epoch_end`` nor ``on_run_end``, or a ``callbacks`` that is not a sequence."""
    if callbacks is None:
        return ()
    if isinstance(callbacks, (str, bytes)) or not isinstance(callbacks, Sequence):
        raise TypeError(
            f"`callbacks` must be a list of objects with on_epoch_end(rows) and/or on_run_end(result), "
            f"got {type(callbacks).__name__}"
        )
    for i, cb in enumerate(callbacks):
        if not any(callable(getattr(cb, h, None)) for h in HOOKS):
            raise TypeError(
                f"`callbacks[{i}]` ({type(cb).__name__}) has neither on_epoch_end(rows) nor on_run_end(result)"
            )
    return tuple(callbacks)


def tidy_rows(members: Sequence[tuple[str, int]], epoch: int, metrics: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The rows of one epoch (``epoch``, 1-based) of the population metrics ``metrics`` (``{name: (members,
    ...)}``) for the first ``len(members)`` members: one row per member and metric, in member order.

    A metric ``name`` with one value per member gives the row ``name``. The every-k-steps metrics
    (``log_every``) come as a vector per member under ``"<base>@"`` with their block ends under
    ``"<base>@steps"``; entry ``j`` gives the row ``"<base>@<end_j>"``: the mean of ``<base>`` over the
    block of steps ending at step ``end_j`` (1-based, within the epoch).
    """
    rows: list[dict[str, Any]] = []
    for i, (arm, seed) in enumerate(members):
        for metric, values in metrics.items():
            if metric.endswith("@steps"):
                continue
            if metric.endswith("@"):
                ends = np.asarray(metrics[metric + "steps"])
                for end, x in zip(ends[i] if ends.ndim > 1 else ends, np.asarray(values[i])):
                    rows.append(
                        {"arm": arm, "seed": seed, "epoch": epoch, "metric": f"{metric}{int(end)}", "value": float(x)}
                    )
                continue
            rows.append({"arm": arm, "seed": seed, "epoch": epoch, "metric": metric, "value": float(values[i])})
    return rows


def epoch_end(
    callbacks: Sequence[Any], members: Sequence[tuple[str, int]], epoch: int, metrics: Mapping[str, Any]
) -> None:
    """Call every callback's ``on_epoch_end`` with the epoch's tidy rows (built once, only when needed)."""
    hooks = [cb.on_epoch_end for cb in callbacks if callable(getattr(cb, "on_epoch_end", None))]
    if hooks:
        rows = tidy_rows(members, epoch, metrics)
        for hook in hooks:
            hook([dict(r) for r in rows])


def run_end(callbacks: Sequence[Any], result: Any) -> None:
    """Call every callback's ``on_run_end`` with the run's result."""
    for cb in callbacks:
        hook = getattr(cb, "on_run_end", None)
        if callable(hook):
            hook(result)
