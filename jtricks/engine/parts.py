"""Split a run into parts (one slice of its members each) and merge the part folders into one results folder.

A run's *members* are its (arm, seed) pairs, in the order the runner trains them: static group by group
(groups in order of their first arm), arms in declaration order within a group, seeds ascending. Part
``i`` of ``n`` (1-based) is the contiguous slice

    members[floor((i - 1) · M / n) : floor(i · M / n)]        (M = arms × seeds)

so the parts are disjoint, cover every member, differ in size by at most one, and each touches as few
static groups (compilations) as a contiguous slice can. A member gives bit-for-bit the same numbers in a
population of any size (docs/engine.md), so the merged folder is byte-identical to the folder of one
run of the whole grid: ``metrics.csv``, ``members.csv``, ``arms.json``, ``summary.csv``, ``summary.md``.

* :func:`parse_part` / :func:`select` — the slicing (``jtricks run NAME --part i/n``);
* :func:`part_record` — what a part folder's ``manifest.json`` adds under ``"part"``;
* :func:`load_part`, :func:`check_parts`, :func:`merge` — ``jtricks merge OUT PART_DIRS...``: the parts
  must be finished part folders of one run (same fingerprint apart from the part), complete (every part
  ``1..n`` once) and disjoint; the merged manifest carries the whole run's fingerprint and seeds, the
  parts (``split``) and the machines they ran on (``machines``).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import re
import shutil
import socket
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from jtricks._core import files as jfiles

__all__ = [
    "Part",
    "parse_part",
    "select",
    "part_record",
    "PartRun",
    "load_part",
    "check_parts",
    "merge",
    "Merged",
    "MergeError",
]

T = TypeVar("T")


class MergeError(ValueError):
    """The folders given to :func:`merge` are not the complete, disjoint parts of one run."""


@dataclasses.dataclass(frozen=True)
class Part:
    """Part ``index`` (1-based) of ``count``."""

    index: int
    count: int

    def __post_init__(self) -> None:
        for name in ("index", "count"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int):
                raise TypeError(f"part {name} must be an int, got {v!r}")
        if not 1 <= self.index <= self.count:
            raise ValueError(f"part must be i/n with 1 <= i <= n, got {self.index}/{self.count}")

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_part(text: str) -> Part:
    """``"i/n"`` -> :class:`Part` (``1 <= i <= n``); anything else is a ``ValueError`` naming ``--part``."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if not m:
        raise ValueError(f"--part must be i/n (part i of n, 1 <= i <= n, e.g. 1/4), got {text!r}")
    index, count = int(m.group(1)), int(m.group(2))
    if not 1 <= index <= count:
        raise ValueError(f"--part must be i/n with 1 <= i <= n, got {text!r}")
    return Part(index, count)


def select(members: Sequence[T], part: Part) -> list[T]:
    """Part ``part`` of the ordered ``members``: ``members[floor((i-1)·M/n) : floor(i·M/n)]``.

    Raises:
      ValueError: the slice would be empty (more parts than members).
    """
    m = len(members)
    if part.count > m:
        raise ValueError(f"--part {part}: the run has {m} members (arms x seeds); split it into at most {m} parts")
    lo, hi = (part.index - 1) * m // part.count, part.index * m // part.count
    return list(members[lo:hi])


def part_record(part: Part, members: Sequence[tuple[str, int]], static_groups: int) -> dict[str, Any]:
    """The ``"part"`` entry of a part folder's manifest: which part, its members ``[[arm, seed], ...]`` in
    training order, the whole run's number of static groups, and the host it ran on."""
    return {
        "index": part.index,
        "count": part.count,
        "members": [[a, int(s)] for a, s in members],
        "static_groups": int(static_groups),
        "host": socket.gethostname(),
    }


# -------------------------------------------------------------------------------------------- merge
@dataclasses.dataclass
class PartRun:
    """A finished part folder: its manifest and rows."""

    folder: Path
    manifest: dict[str, Any]
    metric_rows: list[dict[str, Any]]
    member_rows: list[dict[str, Any]]
    arms_json: bytes

    @property
    def part(self) -> Part:
        p = self.manifest["part"]
        return Part(int(p["index"]), int(p["count"]))


def load_part(folder: str | Path) -> PartRun:
    """Read a finished part folder (checked by :func:`jtricks.jfolders.check_complete` against its own
    members). ``MergeError`` when it is unfinished, damaged, or a whole run rather than a part."""
    from jtricks.results import folders as jfolders
    from jtricks.results import tables as jtables

    folder = Path(folder)
    try:
        manifest = jfolders.check_complete(folder)
    except ValueError as e:
        raise MergeError(str(e)) from None
    if not isinstance(manifest.get("part"), Mapping):
        raise MergeError(f"{folder} is not a part of a run (it was not run with --part i/n)")
    members = jtables.read_members_csv(folder / "members.csv") if (folder / "members.csv").is_file() else []
    return PartRun(
        folder,
        manifest,
        jtables.read_metrics_csv(jtables.result_file(folder, "metrics.csv")),
        members,
        (folder / "arms.json").read_bytes(),
    )


def _without_part(fingerprint: Mapping[str, Any]) -> dict[str, Any]:
    """The settings of a part's fingerprint that every part of one run shares (all but ``part``, ``data``)."""
    return {k: v for k, v in (fingerprint.get("settings") or {}).items() if k not in ("part", "data")}


def _check_same_run(parts: Sequence[PartRun]) -> None:
    from jtricks.results import fingerprint as jfp

    first = parts[0]
    for p in parts[1:]:
        if p.part.count != first.part.count:
            raise MergeError(
                f"{p.folder} is part {p.part} but {first.folder} is part {first.part}: parts of different splits"
            )
        changes = jfp.diff(_without_part(first.manifest["fingerprint"]), _without_part(p.manifest["fingerprint"]))
        if changes:
            shown = "; ".join(changes[:8]) + (f"; and {len(changes) - 8} more" if len(changes) > 8 else "")
            raise MergeError(f"{p.folder} is not a part of the same run as {first.folder} ({shown})")
        if p.arms_json != first.arms_json:
            raise MergeError(f"{p.folder}/arms.json differs from {first.folder}/arms.json: not parts of one run")
    checksums: dict[str, tuple[str, Path]] = {}
    for p in parts:
        for description, checksum in p.manifest.get("data") or []:
            seen = checksums.setdefault(description, (checksum, p.folder))
            if seen[0] != checksum:
                raise MergeError(
                    f"{p.folder} and {seen[1]} prepared different data for {description} (checksums differ)"
                )


def check_parts(parts: Sequence[PartRun]) -> list[PartRun]:
    """Check the parts belong to one run, are complete and disjoint; return them in part order.

    Raises:
      MergeError: no parts; parts of different runs or splits (naming the differing settings); a part
        given twice; a missing part; a member in two parts or in none.
    """
    if not parts:
        raise MergeError("no part folders given")
    _check_same_run(parts)
    by_index: dict[int, PartRun] = {}
    for p in parts:
        if p.part.index in by_index:
            raise MergeError(f"{by_index[p.part.index].folder} and {p.folder} are both part {p.part}")
        by_index[p.part.index] = p
    n = parts[0].part.count
    missing = [f"{i}/{n}" for i in range(1, n + 1) if i not in by_index]
    if missing:
        raise MergeError(
            f"incomplete: part {', '.join(missing)} missing "
            f"(given: {', '.join(str(p.part) for p in sorted(parts, key=lambda p: p.part.index))})"
        )
    ordered = [by_index[i] for i in range(1, n + 1)]
    settings = ordered[0].manifest["fingerprint"]["settings"]
    owner: dict[tuple[str, int], Path] = {}
    for p in ordered:
        for arm, seed in p.manifest["part"]["members"]:
            if (arm, seed) in owner:
                raise MergeError(
                    f"{owner[(arm, seed)]} and {p.folder} both hold arm {arm!r} seed {seed}: the parts overlap"
                )
            owner[(arm, seed)] = p.folder
    for arm in (a["arm"] for a in settings["arms"]):
        for seed in settings["seeds"]:
            if (arm, seed) not in owner:
                raise MergeError(f"incomplete: no part holds arm {arm!r} seed {seed}")
    return ordered


def _merged_manifest(parts: Sequence[PartRun], fingerprint: Mapping[str, Any]) -> dict[str, Any]:
    """Part 1's manifest (it holds the run's first member, so its summarised ``metrics`` are the run's),
    with the whole run's seeds, data, directions and static groups; ``split`` (one record per part) and
    ``machines`` (the distinct hosts and devices); ``compiles`` and ``timing`` of every part (prefixed /
    tagged with the part); ``wall_time_s`` the longest part's."""
    skip = {"part", "fingerprint", "files"}
    man = {k: v for k, v in parts[0].manifest.items() if k not in skip}
    data = sorted({tuple(d) for p in parts for d in p.manifest.get("data") or []})
    directions: dict[str, str] = {}
    for p in parts:
        directions.update(p.manifest.get("directions") or {})
    machines = []
    for p in parts:
        m = {"host": p.manifest["part"].get("host"), **(p.manifest.get("device") or {})}
        if m not in machines:
            machines.append(m)
    man.update(
        {
            "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "seeds": list(fingerprint["settings"]["seeds"]),
            "data": [list(d) for d in data],
            "directions": dict(sorted(directions.items())),
            "static_groups": parts[0].manifest["part"]["static_groups"],
            "compiles": {
                f"part{p.part.index}/{k}": v for p in parts for k, v in (p.manifest.get("compiles") or {}).items()
            },
            "timing": [{"part": p.part.index, **t} for p in parts for t in p.manifest.get("timing") or []],
            "wall_time_s": max(float(p.manifest.get("wall_time_s") or 0.0) for p in parts),
            "split": {
                "count": len(parts),
                "parts": [
                    {
                        "index": p.part.index,
                        "members": len(p.manifest["part"]["members"]),
                        "host": p.manifest["part"].get("host"),
                        "device": p.manifest.get("device"),
                        "created": p.manifest.get("created"),
                        "wall_time_s": p.manifest.get("wall_time_s"),
                    }
                    for p in parts
                ],
            },
            "machines": machines,
        }
    )
    return man


@dataclasses.dataclass
class Merged:
    """What :func:`merge` wrote: the folder, its manifest (with ``fingerprint``) and the summary rows."""

    out: Path
    manifest: dict[str, Any]
    summary: list[dict[str, Any]]


def merge(out: str | Path, folders: Sequence[str | Path], *, plot: bool = True, overwrite: bool = False) -> Merged:
    """Merge the part folders ``folders`` into the results folder ``out``.

    ``out`` gets what one run of the whole grid would write (``docs/results-format.md``): the rows of every
    part in the runner's order, ``arms.json``, the summaries and the plot, then ``manifest.json`` with the
    whole run's fingerprint (the parts' settings without the part; the data checksums of all parts).
    ``out`` is locked while it is written, its old manifest removed first.

    Raises:
      MergeError: the folders are not the complete, disjoint, finished parts of one run (nothing is written).
      OSError: ``out`` cannot be written (the message names the path).
    """
    from jtricks.results import fingerprint as jfp
    from jtricks.results import folders as jfolders
    from jtricks.results import rendering as jrendering
    from jtricks.results import tables as jtables

    parts = check_parts([load_part(f) for f in folders])
    out = Path(out)
    resolved = {Path(f).resolve() for f in folders}
    if out.resolve() in resolved:
        raise MergeError(f"the merged folder {out} must not be one of the parts")
    if not overwrite:
        jfolders.refuse_overwrite(out)
    settings = {
        **_without_part(parts[0].manifest["fingerprint"]),
        "data": sorted({c for p in parts for c in p.manifest["fingerprint"]["settings"].get("data") or []}),
    }
    fingerprint = jfp.run_fingerprint(settings)
    manifest = _merged_manifest(parts, fingerprint)
    arm_order = {a["arm"]: i for i, a in enumerate(settings["arms"])}
    metric_rows = sorted(
        (r for p in parts for r in p.metric_rows),
        key=lambda r: (arm_order[r["arm"]], r["seed"], r["epoch"], r["metric"]),
    )
    member_rows = sorted((r for p in parts for r in p.member_rows), key=lambda r: (arm_order[r["arm"]], r["seed"]))
    with jfolders.lock(out):
        jfolders.invalidate(out)
        shutil.rmtree(out / "checkpoints", ignore_errors=True)
        with jfiles.atomic_file(out / "metrics.csv") as tmp:
            jtables.write_metrics_csv(tmp, metric_rows)
        with jfiles.atomic_file(out / "members.csv") as tmp:
            jtables.write_members_csv(tmp, member_rows)
        jfiles.write_atomic(out / "arms.json", parts[0].arms_json)
        jfolders.write_manifest(out, manifest, fingerprint)
        # the summaries and the plot as `jtricks report` renders them (the same bytes as the whole run's)
        summary = jrendering.render(out, plot=plot)
    return Merged(out, {**manifest, "fingerprint": fingerprint}, summary)
