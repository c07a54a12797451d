"""A run's tidy metric rows as scalar series, the form every experiment tracker takes (TensorBoard, MLflow,
Weights & Biases).

A row ``{"arm", "seed", "epoch", "metric", "value"}`` is one point of the member's series ``metric`` at
step = ``epoch``. The every-k-steps rows (``log_every``: ``"<base>@<end>"``, the mean of ``<base>`` over the
block of steps ending at step ``end`` of the epoch) form the series ``"<base>_steps"`` at the global optimizer
step ``(epoch - 1) * steps_per_epoch + end``, where ``steps_per_epoch`` is the epoch's last block end.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["Scalar", "scalars", "STEPS_SUFFIX"]

#: the suffix of the series of every-k-steps rows: ``train_loss@5`` -> ``train_loss_steps``
STEPS_SUFFIX = "_steps"


@dataclasses.dataclass(frozen=True)
class Scalar:
    """One point of a member's series: ``tag`` at ``step``."""

    arm: str
    seed: int
    tag: str
    value: float
    step: int
    #: what ``step`` counts: ``"epoch"``, or ``"global_step"`` (optimizer steps) for every-k-steps rows
    axis: str = "epoch"

    @property
    def member(self) -> tuple[str, int]:
        """``(arm, seed)``."""
        return (self.arm, self.seed)


def base_metric(metric: str) -> str:
    """The metric a row belongs to: ``"train_loss@5"`` -> ``"train_loss"``, ``"val_acc"`` -> ``"val_acc"``."""
    return metric.split("@")[0]


def scalars(rows: Sequence[dict[str, Any]], metrics: Iterable[str] | None = None) -> list[Scalar]:
    """The points of ``rows`` (tidy rows of whole epochs, in their order), keeping the rows whose metric or
    base metric is in ``metrics`` (``None``: all). See the module docstring for the steps."""
    wanted = None if metrics is None else frozenset(metrics)
    steps_per_epoch: dict[tuple[str, int, int], int] = defaultdict(int)
    for r in rows:  # an epoch's last block end is its number of steps
        if "@" in r["metric"]:
            key = (r["arm"], r["seed"], r["epoch"])
            steps_per_epoch[key] = max(steps_per_epoch[key], int(r["metric"].rsplit("@", 1)[1]))
    out = []
    for r in rows:
        metric = r["metric"]
        if wanted is not None and metric not in wanted and base_metric(metric) not in wanted:
            continue
        if "@" in metric:
            base, end = metric.rsplit("@", 1)
            step = (r["epoch"] - 1) * steps_per_epoch[(r["arm"], r["seed"], r["epoch"])] + int(end)
            out.append(Scalar(r["arm"], int(r["seed"]), base + STEPS_SUFFIX, float(r["value"]), step, "global_step"))
        else:
            out.append(Scalar(r["arm"], int(r["seed"]), metric, float(r["value"]), int(r["epoch"])))
    return out
