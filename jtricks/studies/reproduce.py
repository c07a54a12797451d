"""Rerun a results folder from its manifest and compare the rerun with the original, member by member.

``jtricks reproduce FOLDER`` (:func:`reproduce`) rebuilds the experiment from ``manifest.json`` (the whole
configuration as run, after ``--set``), reruns it with the seeds and the numerics mode of the record (all of
it, or a sample of members: population-size independence makes a member's rows the same in any
population), and compares:

* every row ``(arm, seed, epoch, metric)`` of the rerun with the original's: identical bits, or the
  difference in units in the last place of float32 (``ulp``) and in absolute value, per metric;
* the summaries of the same members recomputed from both row sets: each comparison's verdict, the best arm,
  every mean and confidence interval;
* the two machines: what differs between the original manifest's machine, numerics and versions and this
  process's, named as the likely cause when the numbers differ.

The one-line verdict (:data:`VERDICTS`): ``"bit for bit"`` (every row identical), ``"within N ULP"`` (every
row within ``tolerance`` ULP), ``"same verdicts, different numbers"`` or ``"differs"``.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import math
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from jtricks._core import files as jfiles
from jtricks.engine import experiment as jexp
from jtricks.engine import provenance as jprov
from jtricks.engine import search as jsearch
from jtricks.results import folders as jfolders
from jtricks.results import summary as jsummary
from jtricks.results import tables as jtables
from jtricks.studies import run as run_study

__all__ = [
    "VERDICTS",
    "Reproduction",
    "experiment_from_manifest",
    "sample_members",
    "ulp_distance",
    "compare_rows",
    "compare_summaries",
    "machine_differences",
    "reproduce",
]

#: The verdicts of :func:`reproduce`, strongest first.
VERDICTS: tuple[str, ...] = ("bit for bit", "within N ULP", "same verdicts, different numbers", "differs")

# fields whose value in a manifest is a name that a registry resolves again (an object there cannot be rebuilt)
_NAMED = ("dataset", "model", "loss", "optimizer", "schedule")


@dataclasses.dataclass
class Reproduction:
    """What :func:`reproduce` found."""

    folder: Path
    rerun_dir: Path
    members: list[tuple[str, int]]
    verdict: str
    line: str
    rows: dict[str, Any]
    summaries: dict[str, Any]
    machines: list[str]
    settings: list[str]

    @property
    def ok(self) -> bool:
        """Bit for bit, or within the tolerance asked for."""
        return self.verdict in VERDICTS[:2]

    def to_json(self) -> dict[str, Any]:
        return {
            "folder": jprov.shareable_path(self.folder),
            "members": [[a, s] for a, s in self.members],
            "verdict": self.verdict,
            "line": self.line,
            "rows": self.rows,
            "summaries": self.summaries,
            "machine_differences": self.machines,
            "setting_differences": self.settings,
        }


# ------------------------------------------------------------------------------------------ rebuild
def _object(text: str) -> Any:
    """A search method, tuning plan or distribution from its text in a manifest (``"Halving(rungs=[1, 2], ...)"``):
    a call of one of the known constructors with literal arguments; nothing else is evaluated."""
    from jtricks.studies import tuning as jtuning

    known = {"Halving": jsearch.Halving, "PBT": jsearch.PBT, "Tune": jtuning.Tune}
    tree = ast.parse(text, mode="eval").body
    if not (isinstance(tree, ast.Call) and isinstance(tree.func, ast.Name) and tree.func.id in known):
        dist = jsearch.parse_distribution(text)
        if dist is None:
            raise ValueError(f"cannot rebuild {text!r} from the manifest")
        return dist
    kwargs = {}
    for kw in tree.keywords:
        value = _object(ast.unparse(kw.value)) if isinstance(kw.value, ast.Call) else ast.literal_eval(kw.value)
        if isinstance(value, list):
            value = tuple(value)
        if kw.arg == "factors" and isinstance(value, dict):
            value = {k: jsearch.parse_distribution(v) or v if isinstance(v, str) else v for k, v in value.items()}
        kwargs[kw.arg] = value
    return known[tree.func.id](*[ast.literal_eval(a) for a in tree.args], **kwargs)


def _tuples(v: Any) -> Any:
    """JSON lists back to the tuples the experiment was written with (values of factors and model arguments)."""
    if isinstance(v, list):
        return tuple(_tuples(x) for x in v)
    if isinstance(v, dict):
        return {k: _tuples(x) for k, x in v.items()}
    return v


def _grid_values(values: Any) -> Any:
    if isinstance(values, str):
        return _object(values)
    return [_tuples(v) if isinstance(v, list) else v for v in values]


def experiment_from_manifest(manifest: Mapping[str, Any]) -> jexp.Experiment:
    """The :class:`jtricks.experiment.Experiment` a results folder was made with, from its manifest's ``config``.

    Raises:
      ValueError: the run used an object that a manifest records only by its description (your own data
        arrays, model, loss or optimizer factory): rerun it from the script that made it.
    """
    config = dict(manifest["config"])
    for name in _NAMED:
        value = config.get(name)
        if isinstance(value, str) and name in jexp.SETTINGS and jexp.SETTINGS[name]["choices"] is not None:
            if value not in jexp.SETTINGS[name]["choices"]():
                raise ValueError(
                    f"the run's {name} was an object ({value}), which a manifest cannot rebuild; rerun it "
                    "from the script that made it and compare the folders with `jtricks reproduce`'s "
                    "row comparison (jtricks.reproduce.compare_rows)"
                )
    config["model_kwargs"] = _tuples(config.get("model_kwargs") or {})
    config["grid"] = {k: _grid_values(v) for k, v in (config.get("grid") or {}).items()}
    config["arms"] = [_tuples(a) for a in config.get("arms") or []]
    for name in ("search", "tune"):
        if isinstance(config.get(name), str):
            config[name] = _object(config[name])
    for name in ("metrics", "eval_metrics"):
        if isinstance(config.get(name), list):
            config[name] = tuple(config[name])
    known = {f.name for f in dataclasses.fields(jexp.Experiment)}
    return jexp.Experiment(**{k: v for k, v in config.items() if k in known})


def sample_members(
    arms: Sequence[str], seeds: Sequence[int], *, members: int | None = None, only_arms: Sequence[str] | None = None
) -> list[tuple[str, int]]:
    """The members to rerun: every ``(arm, seed)``, or those of ``only_arms``, or the first ``members`` of them
    taken seed by seed across the arms (seed 0 of every arm, then seed 1, ...), so a sample covers every arm.

    Raises:
      ValueError: an unknown arm, or ``members`` not a positive int.
    """
    chosen = list(arms)
    if only_arms is not None:
        unknown = [a for a in only_arms if a not in arms]
        if unknown:
            raise ValueError(f"--arms: unknown arm(s) {unknown}; the run's arms are {list(arms)}")
        chosen = [a for a in arms if a in set(only_arms)]
    order = [(a, s) for s in seeds for a in chosen]
    if members is None:
        return sorted(order, key=lambda m: (chosen.index(m[0]), m[1]))
    if isinstance(members, bool) or not isinstance(members, int) or members < 1:
        raise ValueError(f"--members must be a positive int, got {members!r}")
    return sorted(order[:members], key=lambda m: (chosen.index(m[0]), m[1]))


# ------------------------------------------------------------------------------------------ compare
def ulp_distance(a: float, b: float) -> float:
    """How many float32 values lie between ``a`` and ``b`` (0: the same float32; ``inf``: one is NaN, or
    they differ in finiteness). Both NaN counts as equal."""
    fa, fb = np.float32(a), np.float32(b)
    if math.isnan(fa) or math.isnan(fb):
        return 0.0 if math.isnan(fa) and math.isnan(fb) else math.inf
    if math.isinf(fa) or math.isinf(fb):
        return 0.0 if fa == fb else math.inf

    def ordered(x: np.float32) -> int:
        i = int(np.array(x, np.float32).view(np.int32))
        return i if i >= 0 else -(i & 0x7FFFFFFF)

    return float(abs(ordered(fa) - ordered(fb)))


def _key(r: Mapping[str, Any]) -> tuple[str, int, int, str]:
    return (str(r["arm"]), int(r["seed"]), int(r["epoch"]), str(r["metric"]))


def compare_rows(original: Sequence[Mapping[str, Any]], rerun: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Row by row over the rerun's rows: ``rows`` compared, ``identical`` (same bits), ``missing`` (rows of the
    rerun the original lacks, and the reverse for the rerun's members), and per metric ``rows``,
    ``identical``, ``max_ulp`` and ``max_abs``; ``max_ulp`` over all rows."""
    orig = {_key(r): float(r["value"]) for r in original}
    mine = {_key(r): float(r["value"]) for r in rerun}
    members = {(k[0], k[1]) for k in mine}
    lost = [k for k in orig if (k[0], k[1]) in members and k not in mine]
    per: dict[str, dict[str, Any]] = {}
    missing = 0
    for key, value in sorted(mine.items()):
        if key not in orig:
            missing += 1
            continue
        m = per.setdefault(key[3], {"rows": 0, "identical": 0, "max_ulp": 0.0, "max_abs": 0.0})
        other = orig[key]
        m["rows"] += 1
        same = (value == other) or (math.isnan(value) and math.isnan(other))
        m["identical"] += int(same)
        if not same:
            m["max_ulp"] = max(m["max_ulp"], ulp_distance(value, other))
            m["max_abs"] = max(m["max_abs"], abs(value - other) if math.isfinite(value - other) else math.inf)
    return {
        "rows": sum(m["rows"] for m in per.values()),
        "identical": sum(m["identical"] for m in per.values()),
        "missing": missing + len(lost),
        "max_ulp": max((m["max_ulp"] for m in per.values()), default=0.0),
        "metrics": per,
    }


def _summary_key(r: Mapping[str, Any]) -> tuple[str, str]:
    return (str(r["arm"]), str(r["metric"]))


def compare_summaries(
    original: Sequence[Mapping[str, Any]], rerun: Sequence[Mapping[str, Any]], metric: str
) -> dict[str, Any]:
    """The two summaries of the same members: whether every verdict, the best arm on ``metric`` and every
    mean and interval agree; the comparisons whose verdicts differ are listed."""
    a = {_summary_key(r): r for r in original}
    b = {_summary_key(r): r for r in rerun}
    shared = sorted(set(a) & set(b))
    verdicts = [k for k in shared if a[k].get("verdict") != b[k].get("verdict")]
    numbers = [
        k for k in shared if any(_differs(a[k].get(c), b[k].get(c)) for c in ("mean", "ci_lo", "ci_hi", "delta"))
    ]

    def best(rows: Mapping[tuple[str, str], Mapping[str, Any]]) -> str | None:
        cand = [
            (r["mean"], arm)
            for (arm, m), r in rows.items()
            if m == metric and r.get("mean") is not None and math.isfinite(r["mean"])
        ]
        if not cand:
            return None
        sign = jsummary.metric_direction(metric)
        return max(cand, key=lambda t: (sign * t[0], t[1]))[1]

    return {
        "comparisons": len(shared),
        "verdicts_agree": not verdicts,
        "verdicts_differ": [
            f"{arm} / {m}: {a[(arm, m)].get('verdict')} -> {b[(arm, m)].get('verdict')}" for arm, m in verdicts
        ],
        "numbers_agree": not numbers,
        "best_arm": [best(a), best(b)],
        "best_arm_agrees": best(a) == best(b),
    }


def _differs(x: Any, y: Any) -> bool:
    if isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y):
        return False
    return x != y


def _cpu_text(m: Mapping[str, Any] | None) -> str:
    if not m:
        return "not recorded"
    cpu = m.get("cpu") or {}
    wide = [f for f in cpu.get("isa", []) if f.startswith(("avx512f", "amx"))]
    isa = (
        "AVX-512"
        if any(f.startswith("avx512") for f in wide)
        else ("AVX2" if "avx2" in cpu.get("isa", []) else "no AVX2")
    )
    return f"{cpu.get('vendor')} {cpu.get('model')} (family {cpu.get('family')}, {isa}, {cpu.get('cores')} cores)"


def machine_differences(original: Mapping[str, Any], rerun: Mapping[str, Any]) -> list[str]:
    """What differs between two manifests' machines, numerics and software, most likely cause first."""
    out: list[str] = []
    num_a = (original.get("numerics") or {}).get("mode", "native (not recorded)")
    num_b = (rerun.get("numerics") or {}).get("mode", "native (not recorded)")
    if num_a != num_b:
        out.append(f"numerics mode: {num_a} -> {num_b}")
    dev_a, dev_b = original.get("device") or {}, rerun.get("device") or {}
    if (dev_a.get("backend"), dev_a.get("kind")) != (dev_b.get("backend"), dev_b.get("kind")):
        out.append(f"device: {dev_a.get('backend')} {dev_a.get('kind')} -> {dev_b.get('backend')} {dev_b.get('kind')}")
    split_a, split_b = ((m.get("device") or {}).get("mesh", {}).get("data", 1) for m in (original, rerun))
    if split_a != split_b:
        out.append(f"data parallel (devices per member's batch): {split_a} -> {split_b}")
    cpu_a, cpu_b = _cpu_text(original.get("machine")), _cpu_text(rerun.get("machine"))
    if cpu_a != cpu_b:
        native = "native" in (num_a, num_b) or num_a.startswith("native")
        out.append(
            f"CPU: {cpu_a} -> {cpu_b}" + ("" if not native else " (under native numerics the code follows the CPU)")
        )
    va, vb = original.get("versions") or {}, rerun.get("versions") or {}
    for lib in ("jax", "jaxlib", "optax", "flax", "numpy", "jtricks"):
        if va.get(lib) != vb.get(lib):
            out.append(f"{lib}: {va.get(lib)} -> {vb.get(lib)}")
    build_a = (original.get("machine") or {}).get("jaxlib_build")
    build_b = (rerun.get("machine") or {}).get("jaxlib_build")
    if build_a and build_b and build_a != build_b:
        out.append(f"jaxlib build: {build_a[:12]} -> {build_b[:12]}")
    code_a, code_b = original.get("code") or {}, rerun.get("code") or {}
    if code_a.get("commit") != code_b.get("commit") or code_b.get("dirty"):
        out.append(
            f"code: {str(code_a.get('commit'))[:12]} -> {str(code_b.get('commit'))[:12]}"
            + (" with uncommitted changes" if code_b.get("dirty") else "")
        )
    flags_a = (original.get("numerics") or {}).get(
        "xla_flags", (original.get("environment") or {}).get("XLA_FLAGS", "")
    )
    flags_b = (rerun.get("numerics") or {}).get("xla_flags", "")
    strip = lambda f: sorted(x for x in f.split() if not x.startswith("--xla_force_host_platform_device_count"))  # noqa: E731
    if strip(flags_a) != strip(flags_b):
        out.append(f"XLA flags: {' '.join(strip(flags_a)) or '(none)'} -> {' '.join(strip(flags_b)) or '(none)'}")
    return out


# ------------------------------------------------------------------------------------------ run
def _verdict(rows: Mapping[str, Any], summaries: Mapping[str, Any], tolerance: float) -> str:
    if rows["rows"] and rows["identical"] == rows["rows"] and not rows["missing"]:
        return "bit for bit"
    if rows["rows"] and not rows["missing"] and rows["max_ulp"] <= tolerance:
        return "within N ULP"
    if summaries.get("verdicts_agree") and summaries.get("best_arm_agrees"):
        return "same verdicts, different numbers"
    return "differs"


def _line(
    verdict: str, rows: Mapping[str, Any], summaries: Mapping[str, Any], machines: Sequence[str], n_members: int
) -> str:
    what = f"{rows['identical']} of {rows['rows']} rows identical over {n_members} members"
    if verdict == "bit for bit":
        return f"bit for bit: {what}"
    ulp = rows["max_ulp"]
    worst = "inf" if math.isinf(ulp) else f"{ulp:.0f}"
    text = (
        f"{verdict.replace('N', worst) if verdict == 'within N ULP' else verdict}: {what}, "
        f"largest difference {worst} ULP"
    )
    if summaries.get("verdicts_differ"):
        text += f"; verdicts differ: {'; '.join(summaries['verdicts_differ'][:3])}"
    if machines:
        text += f"; likely cause: {machines[0]}"
    return text


def reproduce(
    folder: str | Path,
    *,
    members: int | None = None,
    arms: Sequence[str] | None = None,
    out_dir: str | Path | None = None,
    tolerance: float = 0.0,
    progress: bool = True,
) -> Reproduction:
    """Rerun ``folder`` (a finished or published results folder) from its manifest and compare (module doc).

    Args:
      folder: the results folder (``metrics.csv`` plain or xz-compressed).
      members: rerun only this many members, seed by seed across the arms (:func:`sample_members`).
      arms: rerun only these arms.
      out_dir: where the rerun's results folder goes (default: a temporary folder, removed afterwards).
      tolerance: the largest difference in float32 ULP that still counts as reproduced (``"within N ULP"``).
      progress: show the rerun's progress.

    Raises:
      ValueError: the folder is not a complete run, its experiment cannot be rebuilt, or a bad argument.
    """
    folder = Path(folder)
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not tolerance >= 0:
        raise ValueError(f"--tolerance must be a number of ULP >= 0, got {tolerance!r}")
    original = jfolders.check_complete(folder)
    if original.get("part") is not None:
        raise ValueError(
            f"{folder} is one part of a run; merge the parts (`jtricks merge`) and reproduce the merged folder"
        )
    exp = experiment_from_manifest(original)
    arm_names = [a["arm"] for a in original["arms"]]
    chosen = sample_members(arm_names, original["seeds"], members=members, only_arms=arms)
    numerics = (original.get("numerics") or {}).get("mode", "native")
    with tempfile.TemporaryDirectory(prefix="jtricks-reproduce-") as tmp:
        out = Path(out_dir) if out_dir is not None else Path(tmp) / "rerun"
        res = run_study(
            exp,
            out_dir=out,
            progress=progress,
            plot=False,
            save_models=False,
            checkpoint=False,
            numerics=numerics,
            members=chosen if len(chosen) < len(arm_names) * len(original["seeds"]) else None,
        )
        if [a.name for a in res.arms] != arm_names:
            raise ValueError(
                f"the rebuilt experiment has other arms than the record: {[a.name for a in res.arms]} vs {arm_names}"
            )
        rerun_manifest = json.loads((out / "manifest.json").read_text())
        o_rows = [
            r
            for r in jtables.read_metrics_csv(jtables.result_file(folder, "metrics.csv"))
            if (r["arm"], int(r["seed"])) in set(chosen)
        ]
        rows = compare_rows(o_rows, res.metric_rows)
        summaries = _summaries(folder, original, chosen, o_rows, res)
        machines = machine_differences(original, rerun_manifest)
        settings = _setting_differences(original, rerun_manifest)
        verdict = _verdict(rows, summaries, float(tolerance))
        line = _line(verdict, rows, summaries, machines if verdict != "bit for bit" else [], len(chosen))
        report = Reproduction(
            folder, out if out_dir is not None else folder, chosen, verdict, line, rows, summaries, machines, settings
        )
        if out_dir is not None:
            jfiles.write_atomic(out / "reproduce.json", json.dumps(report.to_json(), indent=2, default=str) + "\n")
    return report


def _summaries(
    folder: Path,
    original: Mapping[str, Any],
    chosen: Sequence[tuple[str, int]],
    o_rows: Sequence[Mapping[str, Any]],
    res: Any,
) -> dict[str, Any]:
    """Both summaries of the rerun's members, computed the same way (the run's baseline must be among them)."""
    arm_dicts = [a for a in original["arms"] if a["arm"] in {m[0] for m in chosen}]
    baseline = original.get("baseline") or original["arms"][0]["arm"]
    if baseline not in {a["arm"] for a in arm_dicts}:
        return {"skipped": f"the baseline arm {baseline} is not among the rerun's members"}
    wanted = set(chosen)
    o_members = [
        m
        for m in jtables.read_members_csv(jtables.result_file(folder, "members.csv"))
        if (m["arm"], int(m["seed"])) in wanted
    ]
    kw = dict(
        metrics=original["metrics"],
        baseline=baseline,
        target=original.get("target"),
        directions=original.get("directions"),
        adjust=original["config"].get("adjust", "holm"),
        equivalence_margin=original["config"].get("equivalence_margin"),
    )
    a = jsummary.summarize(o_rows, o_members, arm_dicts, **kw)
    b = jsummary.summarize(res.metric_rows, res.member_rows, arm_dicts, **kw)
    return compare_summaries(a, b, original["metrics"][0])


def _setting_differences(original: Mapping[str, Any], rerun: Mapping[str, Any]) -> list[str]:
    """Where the rerun's fingerprint settings differ from the record (none when the experiment was rebuilt
    faithfully; a sample of members adds ``members``)."""
    from jtricks.results import fingerprint as jfp

    a = (original.get("fingerprint") or {}).get("settings") or {}
    b = dict((rerun.get("fingerprint") or {}).get("settings") or {})
    b.pop("members", None)
    return jfp.diff(a, b) if a else ["the original manifest has no fingerprint"]
