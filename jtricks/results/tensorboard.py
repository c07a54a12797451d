"""TensorBoard event files of a run, as a callback (:mod:`jtricks.callbacks`), written with tensorboardX.

``pip install 'jtricks[tensorboard]'`` installs the writer (``tensorboardX``: numpy and protobuf, no
TensorFlow). Two layouts of ``log_dir``, each folder one TensorBoard run:

* ``mode="member"`` (the default): ``log_dir/<arm>/seed=<s>/``, every metric of the member as a scalar at
  step = epoch, written after every epoch (watch the run live). The every-k-steps training loss
  (``log_every``) is the tag ``<base>_steps`` (``train_loss_steps``) at step = the global optimizer step
  ``(epoch - 1) · steps_per_epoch + end``.
* ``mode="arm"``: ``log_dir/<arm>/``, per metric the mean over seeds and its Student-t confidence band
  (:func:`jtricks.stats.mean_ci`) as ``<metric>/mean``, ``<metric>/ci_lo``, ``<metric>/ci_hi``, plus a
  Custom Scalars layout that draws each as a band (a "Margin" chart); written when the run ends (an arm's
  seeds may run in several chunks).

Files are written synchronously (no background thread) and closed at the end of the run; open them with
``tensorboard --logdir LOG_DIR``.
"""

from __future__ import annotations

import math
import os
import shutil
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from jtricks.results import scalars as jscalars

__all__ = ["TensorBoard", "MODES"]

MODES = ("member", "arm")


def _writer_module() -> Any:
    try:
        from tensorboardX import event_file_writer, summary
        from tensorboardX.proto import event_pb2
    except ImportError as e:
        raise ModuleNotFoundError(
            "TensorBoard logging needs tensorboardX: pip install 'jtricks[tensorboard]' (or tensorboardX)"
        ) from e
    return event_file_writer, summary, event_pb2


def _folder_name(text: str) -> str:
    return text.replace(os.sep, "_").replace("\0", "_") or "_"


class TensorBoard:
    """Write a run's metrics as TensorBoard event files under ``log_dir`` (see the module docstring).

    Args:
      log_dir: the folder of the TensorBoard runs (created).
      mode: ``"member"`` (one run per member, live) or ``"arm"`` (one run per arm: mean and band, at the end).
      metrics: the metrics to write (``None``: all).
      overwrite: remove what ``log_dir`` holds before the first write (a fresh run into an old folder),
        so TensorBoard does not mix the old run's curves with the new one's.

    Raises:
      ValueError: an unknown ``mode`` or an empty ``metrics``.
      ModuleNotFoundError: tensorboardX is not installed (the message says how to install it).
    """

    def __init__(
        self,
        log_dir: str | os.PathLike,
        *,
        mode: Literal["member", "arm"] = "member",
        metrics: Sequence[str] | None = None,
        overwrite: bool = False,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"`mode` must be one of {list(MODES)}, got {mode!r}")
        if metrics is not None and (isinstance(metrics, str) or not list(metrics)):
            raise ValueError(f"`metrics` must be None or a non-empty list of metric names, got {metrics!r}")
        self._fw, self._summary, self._pb = _writer_module()
        self.log_dir = Path(log_dir)
        self.mode = mode
        self.metrics = None if metrics is None else frozenset(metrics)
        self._writers: dict[Path, Any] = {}
        self._clear = overwrite

    # ------------------------------------------------------------------------------------ writing
    def _writer(self, folder: Path) -> Any:
        if self._clear:
            shutil.rmtree(self.log_dir, ignore_errors=True)
            self._clear = False
        if folder not in self._writers:
            folder.mkdir(parents=True, exist_ok=True)
            self._writers[folder] = self._fw.EventsWriter(str(folder / "events"))
        return self._writers[folder]

    def _scalar(self, folder: Path, tag: str, value: float, step: int) -> None:
        event = self._pb.Event(summary=self._summary.scalar(tag, value), step=int(step), wall_time=time.time())
        self._writer(folder).write_event(event)

    def _wanted(self, metric: str) -> bool:
        return self.metrics is None or jscalars.base_metric(metric) in self.metrics or metric in self.metrics

    def close(self) -> None:
        """Flush and close every event file (the run's end does it)."""
        for w in self._writers.values():
            w.close()
        self._writers.clear()

    # ---------------------------------------------------------------------------------- callbacks
    def on_epoch_end(self, rows: list[dict[str, Any]]) -> None:
        """``mode="member"``: every row as a scalar of its member's run."""
        if self.mode != "member":
            return
        touched = set()
        for point in jscalars.scalars(rows, self.metrics):
            folder = self.log_dir / _folder_name(point.arm) / f"seed={point.seed}"
            self._scalar(folder, point.tag, point.value, point.step)
            touched.add(folder)
        for folder in touched:
            self._writers[folder].flush()

    def on_run_end(self, result: Any) -> None:
        """``mode="arm"``: per arm and metric the mean over seeds and its band; then close every file."""
        try:
            if self.mode == "arm":
                self._write_arms(result.metric_rows)
        finally:
            self.close()

    def _write_arms(self, metric_rows: Sequence[dict[str, Any]]) -> None:
        from jtricks.results import stats as jstats

        values: dict[tuple[str, str, int], list[float]] = defaultdict(list)
        for r in metric_rows:
            if "@" not in r["metric"] and self._wanted(r["metric"]):
                values[(r["arm"], r["metric"], r["epoch"])].append(r["value"])
        layout: dict[str, dict[str, list[Any]]] = defaultdict(dict)
        for (arm, metric, epoch), vals in sorted(values.items()):
            folder = self.log_dir / _folder_name(arm)
            ci = jstats.mean_ci(vals)
            for name, v in (("mean", ci.mean), ("ci_lo", ci.lo), ("ci_hi", ci.hi)):
                if math.isfinite(v):
                    self._scalar(folder, f"{metric}/{name}", v, epoch)
            layout[metric.split("_")[0]][metric] = ["Margin", [f"{metric}/mean", f"{metric}/ci_lo", f"{metric}/ci_hi"]]
        if layout:
            event = self._pb.Event(summary=self._summary.custom_scalars(dict(layout)), step=0, wall_time=time.time())
            for folder in {self.log_dir / _folder_name(arm) for arm, _, _ in values}:
                self._writer(folder).write_event(event)
