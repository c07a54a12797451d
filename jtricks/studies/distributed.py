"""One grid over several processes (hosts) with JAX's distributed runtime.

Members never communicate, so a multi-process run is the split of :mod:`jtricks.parts` done by the
processes themselves: process ``p`` of ``P`` (``jax.process_index()``, ``jax.process_count()``) trains part
``p + 1`` of ``P`` of the members on its own devices (the population sharded over
``jax.local_devices()``, never over another process's devices), into ``OUT/parts/{p+1}-of-{P}`` (its
checkpoints, so ``--resume`` works per process). Then the part folders' files are gathered to every
process (``jax.experimental.multihost_utils.process_allgather`` of their bytes: no shared file system
needed), process 0 merges them into ``OUT`` with :func:`jtricks.parts.merge` (the folder a single run
would write, byte for byte), and every process removes its part folder.

A stop signal or a time limit (:mod:`jtricks.engine.stopping`) acts on each process by itself (SLURM signals
every task of a step): a process stops at its own epoch boundary with its part's checkpoint, still reaches the
gather, and every process raises :class:`~jtricks.engine.stopping.RunStopped` (those whose part finished with
reason ``"peers"``); ``--resume`` continues every part (a part that had finished is trained again: its
checkpoints are removed when it finishes).

Where the processes come from (:func:`resolve`), first match wins:

1. ``--processes N --coordinator HOST:PORT --process-id I`` (each flag falls back to its environment
   variable below); ``--processes auto``: JAX detects the cluster itself (SLURM, Open MPI, Cloud TPU pods,
   Kubernetes), as ``jax.distributed.initialize()`` without arguments;
2. ``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES``, ``JAX_PROCESS_ID``;
3. a SLURM step of several tasks (``srun``: ``SLURM_STEP_NUM_TASKS`` > 1, with ``SLURM_JOB_ID``,
   ``SLURM_STEP_NODELIST``, ``SLURM_PROCID``): process ``SLURM_PROCID`` of ``SLURM_STEP_NUM_TASKS``, the
   coordinator on the step's first node at port ``JAX_COORDINATOR_PORT`` or, as JAX chooses it,
   ``61440 + SLURM_JOB_ID mod 4096``.

Except with ``auto``, JAX's own cluster detection is switched off, so each process uses every device it
sees (``JAX_LOCAL_DEVICE_IDS`` restricts them); JAX's SLURM detection would give each task a single
device, ``SLURM_LOCALID``. One process (none of these, or a count of 1) is the ordinary single-process run.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["Cluster", "resolve", "initialize", "run", "first_host", "ENV_VARS"]

#: flag -> environment variable it falls back to
ENV_VARS = {
    "--processes": "JAX_NUM_PROCESSES",
    "--coordinator": "JAX_COORDINATOR_ADDRESS",
    "--process-id": "JAX_PROCESS_ID",
}
_SLURM_VARS = ("SLURM_JOB_ID", "SLURM_STEP_NODELIST", "SLURM_PROCID", "SLURM_STEP_NUM_TASKS")
_PART_FILES = ("manifest.json", "metrics.csv", "members.csv", "arms.json")


@dataclasses.dataclass(frozen=True)
class Cluster:
    """The processes of a run: ``None`` fields are detected by JAX (``jax.distributed.initialize``)."""

    coordinator: str | None
    processes: int | None
    process_id: int | None
    source: str


def _int(value: Any, name: str, minimum: int) -> int:
    text = str(value).strip()
    if not re.fullmatch(r"\d+", text) or int(text) < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(text)


def _address(value: str, name: str) -> str:
    m = re.fullmatch(r"(\[[0-9a-fA-F:]+\]|[^:\s]+):(\d+)", str(value).strip())
    if not m or not 1 <= int(m.group(2)) <= 65535:
        raise ValueError(f"{name} must be HOST:PORT (e.g. node001:12345), got {value!r}")
    return str(value).strip()


def resolve(
    processes: str | int | None = None,
    coordinator: str | None = None,
    process_id: str | int | None = None,
    environ: Mapping[str, str] | None = None,
) -> Cluster | None:
    """The cluster from the flags, else ``JAX_*`` variables, else a SLURM step (module docstring); ``None``
    for a single process. Checked before JAX starts.

    Raises:
      ValueError: a value that is not an int / ``HOST:PORT``, a process id not in ``[0, processes)``, or
        only some of the three given (naming the missing flag and its variable).
    """
    env = os.environ if environ is None else environ
    if isinstance(processes, str) and processes.strip() == "auto":
        pid = None if process_id is None else _int(process_id, "--process-id", 0)
        return Cluster(None if coordinator is None else _address(coordinator, "--coordinator"), None, pid, "auto")
    given = {"--processes": processes, "--coordinator": coordinator, "--process-id": process_id}
    source = "flags" if any(v is not None for v in given.values()) else "environment"
    values = {flag: v if v is not None else env.get(ENV_VARS[flag]) for flag, v in given.items()}
    if any(v is not None for v in values.values()):
        missing = [f"{flag} (or {ENV_VARS[flag]})" for flag, v in values.items() if v is None]
        count = None if values["--processes"] is None else _int(values["--processes"], "--processes", 1)
        if count == 1:
            return None
        if missing:
            raise ValueError(f"a run over several processes needs {', '.join(missing)}")
        pid = _int(values["--process-id"], "--process-id", 0)
        if pid >= count:  # type: ignore[operator]
            raise ValueError(f"--process-id must be in [0, {count}), got {pid}")
        return Cluster(_address(values["--coordinator"], "--coordinator"), count, pid, source)
    if all(v in env for v in _SLURM_VARS):
        count = _int(env["SLURM_STEP_NUM_TASKS"], "SLURM_STEP_NUM_TASKS", 1)
        if count > 1:
            port = env.get("JAX_COORDINATOR_PORT") or str(61440 + _int(env["SLURM_JOB_ID"], "SLURM_JOB_ID", 0) % 4096)
            coordinator = _address(f"{first_host(env['SLURM_STEP_NODELIST'])}:{port}", "the SLURM coordinator")
            return Cluster(coordinator, count, _int(env["SLURM_PROCID"], "SLURM_PROCID", 0), "SLURM")
    return None


def first_host(nodelist: str) -> str:
    """The first host of a SLURM node list: ``node001``, ``node[001-016],gpu7`` and ``node[003,007-015]``
    all start with ``node001`` / ``node001`` / ``node003``."""
    m = re.match(r"([^,\[]+)(?:\[([^,\-\]]+))?", nodelist.strip())
    if not m:
        raise ValueError(f"SLURM_STEP_NODELIST {nodelist!r} names no host")
    return m.group(1) + (m.group(2) or "")


def initialize(cluster: Cluster) -> None:
    """``jax.distributed.initialize`` for ``cluster`` (before anything else touches a JAX backend)."""
    import jax

    jax.distributed.initialize(
        coordinator_address=cluster.coordinator,
        num_processes=cluster.processes,
        process_id=cluster.process_id,
        cluster_detection_method=None if cluster.source == "auto" else "deactivate",
    )


#: What a process that stopped at an epoch boundary (a signal, its time limit) sends instead of its part folder.
_STOPPED = b"stopped"


def _encode(folder: Path) -> bytes:
    return json.dumps(
        {n: base64.b64encode((folder / n).read_bytes()).decode("ascii") for n in _PART_FILES if (folder / n).is_file()}
    ).encode("ascii")


def _allgather_bytes(payload: bytes) -> list[bytes]:
    """Every process's ``payload``, in process order (two ``process_allgather`` calls: lengths, then bytes)."""
    import numpy as np
    from jax.experimental import multihost_utils

    lengths = np.asarray(multihost_utils.process_allgather(np.array([len(payload)], np.int64))).reshape(-1)
    buf = np.zeros(max(1, int(lengths.max())), np.uint8)
    buf[: len(payload)] = np.frombuffer(payload, np.uint8)
    rows = np.asarray(multihost_utils.process_allgather(buf))
    return [rows[i, : int(n)].tobytes() for i, n in enumerate(lengths)]


def _all_ok(ok: bool) -> list[bool]:
    import numpy as np
    from jax.experimental import multihost_utils

    return [bool(v) for v in np.asarray(multihost_utils.process_allgather(np.array([int(ok)], np.int32))).reshape(-1)]


def run(exp: Any, out: Path, *, options: Any = None, **option_changes: Any) -> tuple[Any, Any]:
    """This process's part of ``exp`` (:func:`jtricks.engine.runner.run` with ``part``), then the gather and, on
    process 0, the merge into ``out``. Returns ``(RunResult of this part, Merged or None)`` (``Merged`` on
    process 0). Every process reaches every collective even when its part fails, so a failure stops all of
    them instead of leaving the others waiting; the failing process re-raises its error.
    """
    import jax

    from jtricks.engine import parts as jparts
    from jtricks.engine import runner as jrunner
    from jtricks.engine import stopping as jstop
    from jtricks.engine.options import options_from
    from jtricks.results import folders as jfolders

    opts = options_from(options, **option_changes)
    index, count = jax.process_index(), jax.process_count()
    part_dir = out / "parts" / f"{index + 1}-of-{count}"
    result, error, payload = None, None, b""
    try:
        if not (opts.resume or opts.overwrite):
            jfolders.refuse_overwrite(out)
        result = jrunner.run(
            exp, out_dir=part_dir, options=opts.replace(part=jparts.Part(index + 1, count), plot=False)
        )
        payload = _encode(part_dir)
    except Exception as e:  # reported after the gather, so no process waits for this one forever
        error = e
        payload = _STOPPED if isinstance(e, jstop.RunStopped) else b""
    blobs = _allgather_bytes(payload)
    if error is not None:
        raise error
    failed = [i for i, b in enumerate(blobs) if not b]
    if failed:
        raise RuntimeError(
            f"process(es) {failed} of {count} failed (see their output); this part is kept in {part_dir}"
        )
    stopped = [i for i, b in enumerate(blobs) if b == _STOPPED]
    if stopped:  # this part is done, others stopped at an epoch boundary: the run as a whole is to be continued
        raise jstop.RunStopped(
            "peers",
            where=f"process(es) {stopped} of {count} stopped",
            resumable=opts.checkpoint,
            not_resumable="" if opts.checkpoint else "checkpoints are off",
        )
    merged, error = None, None
    if index == 0:
        try:
            merged = _merge(out, blobs, opts.plot)
        except Exception as e:
            error = e
    ok = _all_ok(error is None)
    if error is not None:
        raise error
    if not all(ok):
        raise RuntimeError(
            f"process 0 could not merge the parts into {out} (see its output); this part is kept in {part_dir}"
        )
    shutil.rmtree(part_dir, ignore_errors=True)
    _all_ok(True)  # every part folder is gone before process 0 removes their parent
    if index == 0:
        with contextlib.suppress(OSError):
            (out / "parts").rmdir()
    return result, merged


def _merge(out: Path, blobs: list[bytes], plot: bool) -> Any:
    """Write the gathered part folders to a temporary folder and merge them into ``out``."""
    from jtricks.engine import parts as jparts

    with tempfile.TemporaryDirectory(prefix="jtricks-parts-") as tmp:
        folders = []
        for i, blob in enumerate(blobs):
            folder = Path(tmp) / f"part{i + 1}"
            folder.mkdir()
            for name, data in json.loads(blob).items():
                (folder / name).write_bytes(base64.b64decode(data))
            folders.append(folder)
        return jparts.merge(out, folders, plot=plot, overwrite=True)  # checked before the parts ran
