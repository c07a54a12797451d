"""Experiment trackers as run callbacks (:mod:`jtricks.callbacks`): MLflow and Weights & Biases.

Both log the same things, in the layout each tool's users expect:

* every member's metrics, per epoch, at step = epoch (the every-k-steps rows of ``log_every`` as the series
  ``<base>_steps`` at the global optimizer step: :mod:`jtricks.results.scalars`), after every epoch;
* the arm's factors (``{"dropout_rate": 0.3}``) as parameters / config, and the seed;
* at the end, the summary (per arm and metric: ``mean``, ``ci_lo``, ``ci_hi``, ``diff`` against the baseline,
  ``p_value``, as ``<metric>/<statistic>``) and the results folder's ``summary.md`` and ``curves.png``.

:class:`MLflowTracker` (``pip install 'jtricks[mlflow]'``) nests runs in three levels: one parent run for the
whole run (named after the experiment; the summary files as artifacts), one child run per arm (its factors
as parameters, its summary as metrics: the arms side by side in MLflow's run table), and one grandchild run
per member (factors and seed as parameters, the per-epoch metrics). :class:`WandbTracker`
(``pip install 'jtricks[wandb]'``) makes one W&B run per member, grouped by arm (``group=<arm>``, the
factors and seed as config, the epoch as the x-axis of every metric), plus one run (``job_type="summary"``)
holding the summary as ``<arm>/<metric>/<statistic>`` and the summary files.

Both talk to their tool through explicit objects (an ``MlflowClient``, the ``Run`` objects ``wandb.init``
returns), never through a process-wide active run. The end of a run ends its tracker runs, so one tracker
may serve several jtricks runs in turn (each gets runs of its own).
"""

from __future__ import annotations

import math
import os
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from jtricks.results import scalars as jscalars

__all__ = ["MLflowTracker", "WandbTracker", "SUMMARY_STATS", "ARTIFACTS"]

#: the columns of a summary row a tracker logs, as ``<metric>/<column>``
SUMMARY_STATS = ("mean", "ci_lo", "ci_hi", "diff", "p_value")
#: the files of the results folder a tracker uploads at the end (those present)
ARTIFACTS = ("summary.md", "curves.png")
#: MLflow's limits per ``log_batch`` call
_MLFLOW_BATCH_METRICS, _MLFLOW_BATCH_PARAMS = 1000, 100


def _import(module: str, extra: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ModuleNotFoundError(
            f"this tracker needs {module.split('.')[0]}: pip install 'jtricks[{extra}]' ({e})"
        ) from e


def _check_metrics(metrics: Sequence[str] | None) -> frozenset[str] | None:
    if metrics is not None and (isinstance(metrics, str) or not list(metrics)):
        raise ValueError(f"`metrics` must be None or a non-empty list of metric names, got {metrics!r}")
    return None if metrics is None else frozenset(metrics)


def summary_values(summary: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """``{arm: {"<metric>/<stat>": value}}`` of the summary rows: the finite numbers of :data:`SUMMARY_STATS`."""
    out: dict[str, dict[str, float]] = defaultdict(dict)
    for row in summary:
        for stat in SUMMARY_STATS:
            v = row.get(stat)
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                out[row["arm"]][f"{row['metric']}/{stat}"] = float(v)
    return dict(out)


def artifacts(result: Any) -> list[Path]:
    """The :data:`ARTIFACTS` that the run's results folder holds (none without a folder)."""
    if result.out_dir is None:
        return []
    return [Path(result.out_dir) / name for name in ARTIFACTS if (Path(result.out_dir) / name).is_file()]


def _factors(result: Any) -> dict[str, dict[str, str]]:
    """``{arm: {factor: value as text}}`` of the run's arms."""
    return {a.name: {k: str(v) for k, v in a.factors.items()} for a in result.arms}


def _new_members(rows: Sequence[Mapping[str, Any]], seen: Iterable[tuple[str, int]]) -> list[dict[str, Any]]:
    """The rows of members no epoch callback saw (runs with ``search``: only the run end is called)."""
    known = set(seen)
    return [dict(r) for r in rows if (r["arm"], r["seed"]) not in known]


# ------------------------------------------------------------------------------------------- MLflow
class MLflowTracker:
    """Log a run to MLflow: a parent run, a child run per arm, a grandchild run per member (module docstring).

    Args:
      tracking_uri: where MLflow stores runs (``None``: MLflow's default, ``$MLFLOW_TRACKING_URI``): a local
        folder as ``Path("mlruns").resolve().as_uri()`` (MLflow 3 refuses a file store unless
        ``MLFLOW_ALLOW_FILE_STORE=true``), ``sqlite:///mlflow.db`` (needs the full ``mlflow`` package) or a server.
      experiment: the MLflow experiment (created when absent).
      run_name: the parent run's name (``None``: the jtricks experiment's name).
      metrics: the metrics to log (``None``: all).

    Raises:
      ValueError: an empty ``metrics``.
      ModuleNotFoundError: MLflow is not installed (the message names the extra).
    """

    def __init__(
        self,
        tracking_uri: str | None = None,
        *,
        experiment: str = "jtricks",
        run_name: str | None = None,
        metrics: Sequence[str] | None = None,
    ) -> None:
        self.metrics = _check_metrics(metrics)
        tracking = _import("mlflow.tracking", "mlflow")
        self._entities = _import("mlflow.entities", "mlflow")
        self.client = tracking.MlflowClient(tracking_uri=tracking_uri)
        self.experiment, self.run_name = experiment, run_name
        self.experiment_id: str | None = None
        self.parent_id: str | None = None
        self.arm_ids: dict[str, str] = {}
        self.member_ids: dict[tuple[str, int], str] = {}

    def _experiment_id(self) -> str:
        if self.experiment_id is None:
            found = self.client.get_experiment_by_name(self.experiment)
            self.experiment_id = (
                found.experiment_id if found is not None else self.client.create_experiment(self.experiment)
            )
        return self.experiment_id

    def _run(self, name: str, parent: str | None, tags: Mapping[str, str]) -> str:
        all_tags = {**tags, **({"mlflow.parentRunId": parent} if parent else {})}
        return self.client.create_run(self._experiment_id(), run_name=name, tags=all_tags).info.run_id

    def _member(self, arm: str, seed: int) -> str:
        if self.parent_id is None:
            self.parent_id = self._run(self.run_name or "jtricks", None, {"jtricks.level": "run"})
        if arm not in self.arm_ids:
            self.arm_ids[arm] = self._run(arm, self.parent_id, {"jtricks.level": "arm", "jtricks.arm": arm})
        if (arm, seed) not in self.member_ids:
            tags = {"jtricks.level": "member", "jtricks.arm": arm, "jtricks.seed": str(seed)}
            self.member_ids[(arm, seed)] = self._run(f"{arm}/seed={seed}", self.arm_ids[arm], tags)
        return self.member_ids[(arm, seed)]

    def _log(
        self, run_id: str, metrics: Sequence[tuple[str, float, int]] = (), params: Mapping[str, str] | None = None
    ) -> None:
        now = int(time.time() * 1000)
        ms = [self._entities.Metric(k, v, now, step) for k, v, step in metrics]
        ps = [self._entities.Param(k, v) for k, v in (params or {}).items()]
        for i in range(0, len(ms), _MLFLOW_BATCH_METRICS):
            self.client.log_batch(run_id, metrics=ms[i : i + _MLFLOW_BATCH_METRICS])
        for i in range(0, len(ps), _MLFLOW_BATCH_PARAMS):
            self.client.log_batch(run_id, params=ps[i : i + _MLFLOW_BATCH_PARAMS])

    def on_epoch_end(self, rows: list[dict[str, Any]]) -> None:
        """Every member's metrics of the epoch, on the member's run at step = epoch."""
        points: dict[tuple[str, int], list[tuple[str, float, int]]] = defaultdict(list)
        for p in jscalars.scalars(rows, self.metrics):
            points[p.member].append((p.tag, p.value, p.step))
        for (arm, seed), metrics in points.items():
            self._log(self._member(arm, seed), metrics)

    def on_run_end(self, result: Any) -> None:
        """Members no epoch saw, the parameters, the summary, the artifacts; then every run is ended."""
        missed = _new_members(result.metric_rows, self.member_ids)
        if missed:
            self.on_epoch_end(missed)
        for arm, seed in sorted({(r["arm"], r["seed"]) for r in result.member_rows}):
            self._member(arm, seed)  # members without metric rows still get their run
        factors = _factors(result)
        for arm, run_id in self.arm_ids.items():
            self._log(run_id, [(k, v, 0) for k, v in summary_values(result.summary).get(arm, {}).items()])
            self._log(run_id, params=factors.get(arm, {}))
        for (arm, seed), run_id in self.member_ids.items():
            self._log(run_id, params={**factors.get(arm, {}), "seed": str(seed)})
        if self.parent_id is None:
            return
        if self.run_name is None and result.arms:
            self.client.update_run(self.parent_id, name=result.arms[0].experiment.name)
        for path in artifacts(result):
            self.client.log_artifact(self.parent_id, str(path))
        for run_id in [*self.member_ids.values(), *self.arm_ids.values(), self.parent_id]:
            self.client.set_terminated(run_id)
        self.parent_id, self.arm_ids, self.member_ids = None, {}, {}  # a next run gets runs of its own


# --------------------------------------------------------------------------------- Weights & Biases
class WandbTracker:
    """Log a run to Weights & Biases: one run per member grouped by arm, one summary run (module docstring).

    Args:
      project: the W&B project.
      dir: the folder under which W&B writes its ``wandb/`` files (``None``: W&B's default, ``$WANDB_DIR``).
      mode: ``"online"``, ``"offline"`` or ``"disabled"`` (``None``: W&B's default, ``$WANDB_MODE``).
      metrics: the metrics to log (``None``: all).
      init_kwargs: more arguments of every ``wandb.init`` (``entity``, ``tags``, ``settings``, ...).

    Raises:
      ValueError: an empty ``metrics`` or an unknown ``mode``.
      ModuleNotFoundError: wandb is not installed (the message names the extra).
    """

    MODES = ("online", "offline", "disabled")

    def __init__(
        self,
        project: str = "jtricks",
        *,
        dir: str | os.PathLike | None = None,
        mode: str | None = None,
        metrics: Sequence[str] | None = None,
        init_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        if mode is not None and mode not in self.MODES:
            raise ValueError(f"`mode` must be None or one of {list(self.MODES)}, got {mode!r}")
        self.metrics = _check_metrics(metrics)
        self._wandb = _import("wandb", "wandb")
        self.project, self.mode = project, mode
        self.dir = None if dir is None else Path(dir)
        self.init_kwargs = dict(init_kwargs or {})
        self.runs: dict[tuple[str, int], Any] = {}
        self._defined: dict[tuple[str, int], set[str]] = {}

    def _init(self, **kwargs: Any) -> Any:
        if self.dir is not None:
            self.dir.mkdir(parents=True, exist_ok=True)
        return self._wandb.init(
            project=self.project,
            dir=None if self.dir is None else str(self.dir),
            mode=self.mode,
            reinit="create_new",
            **{**self.init_kwargs, **kwargs},
        )

    def _member(self, arm: str, seed: int) -> Any:
        if (arm, seed) not in self.runs:
            run = self._init(name=f"{arm}/seed={seed}", group=arm, job_type="member", config={"arm": arm, "seed": seed})
            run.define_metric("epoch")
            run.define_metric("global_step")
            self.runs[(arm, seed)] = run
            self._defined[(arm, seed)] = set()
        return self.runs[(arm, seed)]

    def on_epoch_end(self, rows: list[dict[str, Any]]) -> None:
        """Every member's metrics of the epoch: one ``log`` with ``epoch``, the every-k-steps points with
        ``global_step``."""
        per_step: dict[tuple[str, int], dict[tuple[str, int], dict[str, float]]] = defaultdict(dict)
        for p in jscalars.scalars(rows, self.metrics):
            per_step[p.member].setdefault((p.axis, p.step), {})[p.tag] = p.value
        for (arm, seed), points in per_step.items():
            run = self._member(arm, seed)
            defined = self._defined[(arm, seed)]
            for (axis, step), values in sorted(points.items(), key=lambda kv: (kv[0][0] != "epoch", kv[0][1])):
                for tag in set(values) - defined:  # each series' x-axis, declared once
                    run.define_metric(tag, step_metric=axis)
                    defined.add(tag)
                run.log({**values, axis: step})

    def on_run_end(self, result: Any) -> None:
        """Members no epoch saw, the config, the summary run with the artifacts; then every run is finished."""
        missed = _new_members(result.metric_rows, self.runs)
        if missed:
            self.on_epoch_end(missed)
        factors = _factors(result)
        for (arm, _), run in self.runs.items():
            run.config.update(factors.get(arm, {}), allow_val_change=True)
        name = result.arms[0].experiment.name if result.arms else "jtricks"
        summary = self._init(name=name, job_type="summary", config={"experiment": name})
        try:
            values = summary_values(result.summary)
            summary.summary.update({f"{arm}/{key}": v for arm, stats in values.items() for key, v in stats.items()})
            for path in artifacts(result):
                summary.save(str(path), base_path=str(path.parent), policy="now")
        finally:
            for run in [*self.runs.values(), summary]:
                run.finish()
            self.runs, self._defined = {}, {}  # a next run gets runs of its own
