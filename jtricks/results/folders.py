"""Safe results folders: one writer at a time, atomic files, and a completeness check before reporting.

* :func:`lock` — the writer holds an OS file lock on ``FOLDER/.lock.held`` (the ``filelock`` package: ``flock``
  on POSIX, ``LockFileEx`` on Windows) for the whole run and names itself in ``FOLDER/.lock`` (``"PID HOST"``,
  written atomically once the lock is held). The OS drops the lock when the holder dies (``kill -9``
  included), so the files a killed run leaves behind are *stale* and the next writer takes them over, and a
  reused PID can never keep a folder locked. A live holder gives :class:`FolderInUseError`
  ``"FOLDER is in use by PID n"``; on release both files are removed.
* :func:`write_manifest` — written **last**: ``manifest.json`` with the run's fingerprint and the sha256 of
  every results file, so a folder with a manifest is a finished run and its files can be checked.
* :func:`check_complete` — what ``jtricks report`` runs first: refuses a folder that is not a finished,
  consistent run, with one line saying why.

Every OS failure is re-raised as an ``OSError`` whose message names the path and the OS error.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import lzma
import os
import socket
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import filelock

from jtricks._core.files import os_error, write_atomic

__all__ = [
    "FolderInUseError",
    "lock",
    "lock_holder",
    "invalidate",
    "write_manifest",
    "check_complete",
    "publish",
    "RESULT_FILES",
    "ResultsExistError",
    "refuse_overwrite",
]

#: Files whose sha256 :func:`write_manifest` records (those present) and :func:`check_complete` verifies.
RESULT_FILES = ("metrics.csv", "members.csv", "arms.json", "lineage.csv")
#: The writer's ``"PID HOST"`` record, and the file the OS lock is held on.
LOCK_NAME = ".lock"
HELD_NAME = ".lock.held"
#: the run's log (``jtricks.engine.runlog``): times and local paths, so neither a result file nor published
LOG_NAME = "run.log"


class FolderInUseError(OSError):
    """Another live process holds the folder's lock."""


class ResultsExistError(FileExistsError):
    """The folder holds a run (finished, or unfinished with checkpoints) that a fresh run would replace."""


# ---------------------------------------------------------------------------------------------- lock
def _read_holder(path: Path) -> tuple[int | None, str]:
    try:
        parts = path.read_text(encoding="utf-8").split()
    except OSError:
        return None, ""
    pid = int(parts[0]) if parts and parts[0].isdigit() else None
    return pid, parts[1] if len(parts) > 1 else ""


def lock_holder(folder: str | os.PathLike) -> int | None:
    """The PID holding ``folder``'s lock, ``-1`` when it is held but its record is unreadable, or ``None`` when no
    live process holds it (a dead writer's OS lock file is removed on the way)."""
    folder = Path(folder)
    if not (folder / HELD_NAME).is_file():
        return None
    try:
        probe = _try_lock(folder)
    except OSError:
        return None
    if probe is None:
        pid, _ = _read_holder(folder / LOCK_NAME)
        return pid if pid is not None else -1
    _release(probe, folder)
    return None


def _try_lock(folder: Path) -> filelock.BaseFileLock | None:
    """The OS lock on ``FOLDER/.lock.held``, held, or ``None`` when another holder has it."""
    held = filelock.FileLock(folder / HELD_NAME)
    try:
        held.acquire(timeout=0)
    except filelock.Timeout:
        return None
    return held


def _release(held: filelock.BaseFileLock, folder: Path) -> None:
    """Remove ``FOLDER/.lock.held`` while still holding it, then let go: a waiter that locked the old file
    sees it unlinked and tries again (``filelock`` checks the link count; on Windows it removes the file itself)."""
    with contextlib.suppress(OSError):
        os.unlink(folder / HELD_NAME)
    held.release()


def _acquire(folder: Path) -> filelock.BaseFileLock:
    """Take the folder's OS lock, or raise :class:`FolderInUseError` naming the holder's PID. A holder that has
    just taken the lock and not yet written its record (or just released it) is waited for a moment."""
    for attempt in range(5):
        held = _try_lock(folder)
        if held is not None:
            return held
        pid, host = _read_holder(folder / LOCK_NAME)
        if pid is not None or attempt == 4:
            break
        time.sleep(0.05)
    where = f" on {host}" if host and host != socket.gethostname() else ""
    raise FolderInUseError(errno.EBUSY, f"{folder} is in use by PID {pid if pid is not None else '?'}{where}")


@contextlib.contextmanager
def lock(folder: str | os.PathLike) -> Iterator[Path]:
    """Hold ``FOLDER``'s lock (creating ``FOLDER``) for the duration of the ``with`` block; yields the path of
    the ``"PID HOST"`` record, ``FOLDER/.lock``.

    Raises:
      FolderInUseError: a live process holds it: ``"FOLDER is in use by PID n"``.
      OSError: ``FOLDER`` cannot be created or written (the message names the path and the OS error).
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, f"cannot use {folder} as the results folder: it is a file")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise os_error(folder, e, "create the results folder") from None
    try:
        held = _acquire(folder)
    except FolderInUseError:
        raise
    except OSError as e:
        raise os_error(folder / HELD_NAME, e, "create the lock file") from None
    record = folder / LOCK_NAME
    try:
        write_atomic(record, f"{os.getpid()} {socket.gethostname()}\n")
    except OSError:
        _release(held, folder)
        raise
    try:
        yield record
    finally:
        with contextlib.suppress(OSError):
            os.unlink(record)  # while still holding the OS lock
        _release(held, folder)


def _sha256_file(path: Path) -> str:
    """sha256 of the file's content (of the decompressed content for ``.xz``: the digest the run recorded)."""
    h = hashlib.sha256()
    with lzma.open(path, "rb") if path.suffix == ".xz" else path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


#: ``metrics.csv`` larger than this is published compressed (xz).
COMPRESS_ABOVE_BYTES = 100_000


def publish(run_dir: str | os.PathLike[str], dest: str | os.PathLike[str]) -> list[Path]:
    """Copy a finished run's results to ``dest``: every file of the folder (summaries, plots, manifest and
    what scripts added) but the run's log (:data:`LOG_NAME`), no sub-folder (models, checkpoints), ``metrics.csv``
    xz-compressed when above :data:`COMPRESS_ABOVE_BYTES` (``lzma`` preset 9e, which stores no time stamp: the
    same bytes for the same rows; a third smaller than gzip -9 on these files). The copy
    passes :func:`check_complete` and ``jtricks report dest`` re-renders its summaries byte for byte.
    Returns the files written."""
    src, out = Path(run_dir), Path(dest)
    check_complete(src)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    metrics = src / "metrics.csv"
    for stale in ("metrics.csv", "metrics.csv.xz"):
        (out / stale).unlink(missing_ok=True)
    if metrics.stat().st_size > COMPRESS_ABOVE_BYTES:
        raw = lzma.compress(metrics.read_bytes(), preset=9 | lzma.PRESET_EXTREME)
        written.append(write_atomic(out / "metrics.csv.xz", raw))
    else:
        written.append(write_atomic(out / "metrics.csv", metrics.read_bytes()))
    for path in sorted(src.iterdir()):
        if (
            path.is_file()
            and path.name not in ("metrics.csv", "metrics.csv.xz", LOCK_NAME, HELD_NAME, LOG_NAME)
            and not path.name.startswith(".")
        ):
            written.append(write_atomic(out / path.name, path.read_bytes()))
    return written


def invalidate(folder: str | os.PathLike) -> None:
    """Remove ``FOLDER/manifest.json``, so results of an earlier run count as unfinished while a new run
    writes the folder (call it before training a fresh, non-resumed run)."""
    path = Path(folder) / "manifest.json"
    try:
        path.unlink(missing_ok=True)
    except OSError as e:
        raise os_error(path, e, "remove") from None


def refuse_overwrite(folder: str | os.PathLike) -> None:
    """Raise :class:`ResultsExistError` (one line: what the folder holds and the ways on) when ``folder`` holds
    a finished run (``manifest.json``), an unfinished one (checkpoints) or results files of one; an empty or
    absent folder, or one holding other files only, passes."""
    folder = Path(folder)
    if (folder / "manifest.json").is_file():
        try:
            man = json.loads((folder / "manifest.json").read_text())
            what = f" ({man.get('experiment', '?')}, {man.get('created', '?')})"
        except (OSError, ValueError):
            what = ""
        raise ResultsExistError(
            errno.EEXIST,
            f"{folder} holds a finished run{what}; pass --overwrite (overwrite=True) to replace it, "
            "or choose another --out",
        )
    checkpoints = folder / "checkpoints"
    if checkpoints.is_dir() and any(checkpoints.iterdir()):
        raise ResultsExistError(
            errno.EEXIST,
            f"{folder} holds an unfinished run (checkpoints); continue it with --resume, "
            "or pass --overwrite (overwrite=True) to start over",
        )
    present = [name for name in RESULT_FILES if (folder / name).is_file()]
    if present:
        raise ResultsExistError(
            errno.EEXIST,
            f"{folder} holds results files of an earlier run ({', '.join(present)}); "
            "pass --overwrite (overwrite=True) to replace them, or choose another --out",
        )


def write_manifest(folder: str | os.PathLike, manifest: Mapping[str, Any], fingerprint: Mapping[str, Any]) -> Path:
    """Write ``FOLDER/manifest.json`` atomically, last: ``manifest`` plus ``"fingerprint"`` and ``"files"``
    (``{name: sha256}`` of the :data:`RESULT_FILES` present). Its presence marks a finished run."""
    folder = Path(folder)
    files = {name: _sha256_file(folder / name) for name in RESULT_FILES if (folder / name).is_file()}
    doc = {**manifest, "fingerprint": dict(fingerprint), "files": files}
    return write_atomic(folder / "manifest.json", json.dumps(doc, indent=2, default=repr) + "\n")


# ------------------------------------------------------------------------------------- completeness
#: What a run leaves in its results folder before its ``manifest.json``: a folder with none of them is no run's.
_RUN_TRACES = ("metrics.csv", "metrics.csv.xz", "members.csv", "arms.json", "checkpoints", "models")


def _load_manifest(folder: Path) -> dict[str, Any]:
    path = folder / "manifest.json"
    if not path.is_file():
        if not any((folder / name).exists() for name in _RUN_TRACES):
            raise ValueError(
                f"{folder} is not a jtricks results folder (no manifest.json, metrics.csv or checkpoints); "
                "give the folder a run wrote (`jtricks run ... --out DIR`)"
            )
        raise ValueError(
            f"{folder} has no manifest.json: the run did not finish (continue it with `jtricks run ... --resume`)"
        )
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path} is unreadable: {e}") from None
    if not isinstance(doc, dict):
        raise ValueError(f"{path} is not a JSON object")
    return doc


def _check_fingerprint_and_files(folder: Path, manifest: Mapping[str, Any]) -> None:
    from jtricks.results import fingerprint as jfp
    from jtricks.results import tables as jtables

    fp = manifest.get("fingerprint")
    if fp is not None:
        if not isinstance(fp, Mapping) or jfp.run_fingerprint(fp.get("settings") or {})["sha256"] != fp.get("sha256"):
            raise ValueError(
                f"{folder}/manifest.json: its fingerprint does not match its settings (the file was edited)"
            )
    for name, digest in (manifest.get("files") or {}).items():
        path = jtables.result_file(folder, name)
        if not path.is_file():
            raise ValueError(f"{path} is missing (listed in manifest.json)")
        try:
            actual = _sha256_file(path)
        except (EOFError, OSError, lzma.LZMAError) as e:  # a damaged compressed stream
            raise ValueError(f"{path} is damaged ({e})") from None
        if actual != digest:
            raise ValueError(f"{path} does not match manifest.json (changed or truncated after the run)")


def _check_rows(folder: Path, manifest: Mapping[str, Any], rows: list[dict[str, Any]]) -> None:
    config = manifest.get("config") or {}
    arms = [a["arm"] for a in manifest.get("arms") or [] if isinstance(a, Mapping) and "arm" in a]
    seeds = manifest.get("seeds")
    if not arms or not isinstance(seeds, list) or not seeds:
        raise ValueError(f"{folder}/manifest.json lists no arms or seeds: cannot check the results are complete")
    required = list(manifest.get("metrics") or config.get("metrics") or [])  # the summarised metrics
    default_epochs = config.get("epochs")
    epochs = {a["arm"]: int((a.get("factors") or {}).get("epochs", default_epochs) or 0) for a in manifest["arms"]}
    epochs.update((manifest.get("search") or {}).get("stop_epoch") or {})  # configurations halted by a search
    part = manifest.get("part")  # a part of a run (jtricks.parts) holds only its members
    expected = None if not isinstance(part, Mapping) else {(str(a), int(s)) for a, s in part.get("members") or []}
    seen: dict[tuple[str, int], dict[str, set[int]]] = {}
    for r in rows:
        if (
            r["arm"] not in epochs
            or r["seed"] not in seeds
            or (expected is not None and (r["arm"], r["seed"]) not in expected)
        ):
            raise ValueError(
                f"{folder}/metrics.csv has rows of arm {r['arm']!r} seed {r['seed']} not in manifest.json (another run)"
            )
        per = seen.setdefault((r["arm"], r["seed"]), {}).setdefault(r["metric"], set())
        if r["epoch"] in per:
            raise ValueError(
                f"{folder}/metrics.csv repeats arm {r['arm']!r} seed {r['seed']} epoch {r['epoch']} {r['metric']}"
            )
        per.add(r["epoch"])
    for arm in arms:
        shapes = None
        for seed in seeds:
            if expected is not None and (arm, seed) not in expected:
                continue
            got = seen.get((arm, seed))
            if got is None:
                raise ValueError(f"{folder}/metrics.csv is incomplete: no rows for arm {arm!r} seed {seed}")
            union = set().union(*got.values())
            if union != set(range(1, epochs[arm] + 1)):
                missing = sorted(set(range(1, epochs[arm] + 1)) - union)
                raise ValueError(
                    f"{folder}/metrics.csv is incomplete: arm {arm!r} seed {seed} lacks epochs {missing[:5]}"
                )
            short = sorted(m for m, e in got.items() if epochs[arm] not in e)
            if short:
                raise ValueError(
                    f"{folder}/metrics.csv is incomplete: arm {arm!r} seed {seed} "
                    f"lacks epoch {epochs[arm]} of {short[:5]}"
                )
            key = {m: frozenset(e) for m, e in got.items()}
            if shapes is not None and key != shapes:
                raise ValueError(
                    f"{folder}/metrics.csv is incomplete: arm {arm!r} seed {seed} "
                    "has other metrics or epochs than its other seeds"
                )
            shapes = key
    # a summarised metric may be measured by some arms only (avg_* of the averaging arms), never by none
    measured = {m for per in seen.values() for m in per}
    absent = [m for m in required if m not in measured]
    if absent:
        raise ValueError(f"{folder}/metrics.csv is incomplete: no rows of {absent}")


def check_complete(folder: str | os.PathLike) -> dict[str, Any]:
    """Check that ``folder`` holds one finished, consistent run; return its manifest.

    Refused (``ValueError`` with one line): no folder; a run writing it (lock held); ``checkpoints/`` left
    by an unfinished run; no or unreadable ``manifest.json``; a manifest fingerprint that does not match
    its settings; a results file whose sha256 differs from the manifest's record (truncated, edited,
    or from another run); a ``metrics.csv`` that is missing, cut inside a row, header-only or malformed; rows missing
    for any arm, seed or epoch of the manifest, or of a metric it summarises (every metric of a member must reach the
    final epoch, and the members of an arm must have the same metrics and epochs), or rows of arms / seeds it does not
    list.
    A part of a run (manifest ``part``, :mod:`jtricks.parts`) is checked against its own members.
    """
    from jtricks.results import tables as jtables

    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder} is not a folder")
    holder = lock_holder(folder)
    if holder is not None:
        raise ValueError(f"{folder} is in use by PID {holder}: a run is writing it")
    if (folder / "checkpoints").exists():
        raise ValueError(
            f"{folder} holds checkpoints of an unfinished run: finish it with `jtricks run ... --resume` "
            f"or delete {folder / 'checkpoints'}"
        )
    manifest = _load_manifest(folder)
    _check_fingerprint_and_files(folder, manifest)
    metrics = jtables.result_file(folder, "metrics.csv")
    if not metrics.is_file():
        raise ValueError(f"{metrics} not found: is {folder} a jtricks results folder?")
    if metrics.suffix != ".xz":  # (a compressed stream detects its own truncation)
        with metrics.open("rb") as f:
            f.seek(max(0, metrics.stat().st_size - 1))
            if f.read(1) != b"\n":  # every row the writer writes ends in a newline: a cut inside a row
                raise ValueError(f"{metrics} is truncated (its last row is cut off)")
    try:
        rows = jtables.read_metrics_csv(metrics)
    except (ValueError, UnicodeDecodeError, EOFError, OSError) as e:
        raise ValueError(f"{metrics} is malformed: {e}") from None
    if not rows:
        raise ValueError(f"{metrics} has a header but no rows")
    _check_rows(folder, manifest, rows)
    return manifest
