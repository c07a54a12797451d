"""Write a run: its results folder (``docs/results-format.md``), every file atomically, ``manifest.json`` last.

:func:`fingerprint` is the run's identity (the settings its numbers depend on: :mod:`jtricks.results.fingerprint`),
:func:`manifest` its record (versions, device, machine and numerics, configuration, data checksums, timing,
provenance), :func:`write` the folder. A folder with a manifest is a finished run.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import platform
import shutil
from collections.abc import Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import jax
import numpy as np

import jtricks
from jtricks import metrics as jmetrics
from jtricks._core import files as jfiles
from jtricks.engine import experiment as jexp
from jtricks.engine import pbt as jpbt
from jtricks.engine import provenance as jprov
from jtricks.engine import runtime as jruntime
from jtricks.engine import saved as jsaved
from jtricks.engine.build import GroupSetup
from jtricks.engine.execute import Collected
from jtricks.engine.plan import Plan
from jtricks.results import bootstrap as jboot
from jtricks.results import fingerprint as jfp
from jtricks.results import folders as jfolders
from jtricks.results import rendering as jrendering
from jtricks.results import tables as jtables

__all__ = ["fingerprint", "manifest", "directions", "write", "write_fresh"]


def _version(dist: str) -> str:
    try:
        return version(dist)
    except PackageNotFoundError:
        return "unknown"


def fingerprint(the_plan: Plan, setups: Sequence[GroupSetup], max_members: int | None) -> dict[str, Any]:
    """The run's fingerprint (:mod:`jtricks.fingerprint`): the settings its numbers depend on, the seeds,
    the chunking, the data checksums, the package version and a data-parallel split (``data_parallel`` > 1)."""
    exp = the_plan.experiment
    fields = jexp.fingerprint_fields(exp)
    as_json = jexp.to_json
    settings = {
        "experiment": as_json(fields),
        "arms": [{"arm": a.name, "factors": as_json(dict(a.factors))} for a in the_plan.arms],
        "seeds": list(the_plan.seeds),
        "max_members": max_members or exp.max_members,
        "data": sorted({s.data.checksum for s in setups}),
        "jtricks": jtricks.__version__,
        "numerics": jruntime.numerics_in_force(),
    }
    if the_plan.part is not None:  # a part's checkpoints and folder are its own; jtricks.parts.merge drops it
        settings["part"] = {"index": the_plan.part.index, "count": the_plan.part.count}
    if the_plan.data_parallel > 1:  # a split batch rounds its partitioned reductions differently (distributed.md)
        settings["data_parallel"] = the_plan.data_parallel
    if the_plan.members is not None:  # a sample of the members (jtricks reproduce)
        settings["members"] = [[a, s] for a, s in the_plan.members]
    return jfp.run_fingerprint(settings)


def manifest(
    the_plan: Plan,
    setups: Sequence[GroupSetup],
    compiles: Mapping[str, int],
    wall: float,
    timing: Sequence[Mapping[str, Any]],
    metrics: Sequence[str],
    directions: Mapping[str, bool],
) -> dict[str, Any]:
    exp, arms = the_plan.experiment, the_plan.arms
    as_json = jexp.to_json
    return {
        "experiment": exp.name,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "versions": {
            "python": platform.python_version(),
            "jax": jax.__version__,
            "jaxlib": _version("jaxlib"),
            "optax": _version("optax"),
            "flax": _version("flax"),
            "numpy": np.__version__,
            "jtricks": jtricks.__version__,
        },
        "device": {
            "backend": jax.default_backend(),
            "kind": jax.devices()[0].device_kind,
            "count": jax.local_device_count(),
            # the members x data mesh (jtricks.engine.mesh): member shards and the devices each batch is split over
            "mesh": {"pop": jax.local_device_count() // the_plan.data_parallel, "data": the_plan.data_parallel},
            "platform": platform.platform(),
            "processor": platform.machine(),
        },
        "prng_impl": str(jax.config.jax_default_prng_impl),
        "numerics": jruntime.numerics_record(),
        "runtime": jruntime.current(),
        "seeds": list(the_plan.seeds),
        "config": as_json({f.name: getattr(exp, f.name) for f in dataclasses.fields(exp)}),
        "sections": {section: sorted(fields) for section, fields in jexp.sections(exp).items()},
        "data": sorted({(s.data.description, s.data.checksum) for s in setups}),
        "arms": [{"arm": a.name, "factors": as_json(dict(a.factors))} for a in arms],
        "baseline": exp.baseline or arms[0].name,
        "metrics": list(metrics),
        "directions": {k: ("higher" if v else "lower") for k, v in sorted(directions.items())},
        "target": exp.target,
        "static_groups": len(the_plan.groups),
        "compiles": dict(compiles),
        "timing": list(timing),
        "wall_time_s": round(wall, 3),
        **jprov.manifest_entries(the_plan.groups, [s.config for s in setups], [s.data.num_outputs for s in setups]),
    }


def directions(setups: Sequence[GroupSetup], collected: Collected) -> dict[str, bool]:
    """Whether higher is better, for every metric the run wrote (from the metrics' declarations)."""
    custom = {m.name: m for s in setups for m in s.config.metrics}  # type: ignore[union-attr]
    names = {r["metric"] for r in collected.metric_rows if "@" not in r["metric"]}  # train_loss@<step>: as train_loss
    return {name: jmetrics.higher_is_better(name, custom) for name in sorted(names)}


def write(
    out: Path,
    the_plan: Plan,
    collected: Collected,
    summary: list[dict[str, Any]],
    manifest: Mapping[str, Any],
    fingerprint: Mapping[str, Any],
    *,
    plot: bool = True,
) -> None:
    """Write the results folder, every file atomically (temporary file + rename): metrics.csv, members.csv,
    arms.json, summary.md/csv, curves.png, and last manifest.json with the fingerprint and the files' hashes
    (its presence marks a finished run)."""
    exp = the_plan.experiment
    with jfiles.atomic_file(out / "metrics.csv") as tmp:
        jtables.write_metrics_csv(tmp, collected.metric_rows)
    with jfiles.atomic_file(out / "members.csv") as tmp:
        jtables.write_members_csv(tmp, collected.member_rows)
    arm_dicts = [{"arm": a.name, "factors": dict(a.factors)} for a in the_plan.arms]
    jfiles.write_atomic(out / "arms.json", json.dumps(jexp.to_json(arm_dicts), indent=2) + "\n")
    if the_plan.part is not None:  # a part: the raw rows only; `jtricks merge` writes the summaries
        jfolders.write_manifest(out, manifest, fingerprint)
        return
    jrendering.write_summary(
        out,
        summary,
        title=f"{exp.name}: {exp.description}".strip(": "),
        notes=jrendering.skipped_steps_notes(collected.metric_rows),
        directions=manifest["directions"],
        arms=arm_dicts,
    )
    lineage = [r for rec in collected.search for r in rec.get("lineage", ())]
    if lineage:  # population-based training: who copied whom, each member's hyperparameter schedule
        explored = collected.search[0]["explored"]
        with jfiles.atomic_file(out / "lineage.csv") as tmp:
            jpbt.write_lineage(tmp, lineage, explored)
        jfiles.write_atomic(out / "pbt.md", jpbt.markdown(collected.search))
        jrendering.append_sections(out, ("pbt.md",))
        if plot:
            with jfiles.atomic_file(out / "lineage.png") as tmp:
                jpbt.plot_lineage(tmp, lineage, explored, epochs=exp.epochs, title=f"{exp.name}: PBT lineage")
    if plot:
        with jfiles.atomic_file(out / "curves.png") as tmp:
            jrendering.plot_folder(
                out,
                tmp,
                rows=collected.metric_rows,
                members=collected.member_rows,
                arms=arm_dicts,
                manifest=manifest,
            )
    if collected.models:
        jsaved.write_index(out / jsaved.FOLDER, collected.models)
    if collected.outcomes is not None:
        jboot.write_outcomes(out, collected.outcomes)
    jfolders.write_manifest(out, manifest, fingerprint)


def write_fresh(
    out: Path,
    the_plan: Plan,
    collected: Collected,
    summary: list[dict[str, Any]],
    record: Mapping[str, Any],
    fp: Mapping[str, Any],
    *,
    plot: bool = True,
) -> None:
    """:func:`write` into ``out`` as a new run: under the folder's lock, after removing an earlier run's manifest
    and checkpoints (so stale results never count as this run's)."""
    with jfolders.lock(out):
        jfolders.invalidate(out)
        shutil.rmtree(out / "checkpoints", ignore_errors=True)
        write(out, the_plan, collected, summary, record, fp, plot=plot)
