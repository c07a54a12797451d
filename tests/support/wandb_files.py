"""Read back what Weights & Biases wrote offline: the records of a run's ``run-<id>.wandb`` file.

The file is W&B's transaction log: a 7-byte header (``":W&B"``, magic ``0xBEE1``, version), then LevelDB
log-format records (32 KiB blocks; each record a 7-byte header: CRC-32C, length, type FULL / FIRST / MIDDLE /
LAST) whose payloads are ``wandb_internal_pb2.Record`` messages. ``wandb sync`` uploads these records.
"""

from __future__ import annotations

import dataclasses
import json
import struct
from pathlib import Path
from typing import Any

BLOCK = 32768
HEADER = struct.Struct("<4sHB")
RECORD = struct.Struct("<IHB")
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: Path) -> list[Any]:
    """The ``Record`` messages of a ``.wandb`` file, in order."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    ident, magic, _ = HEADER.unpack_from(data)
    assert (ident, magic) == (b":W&B", 0xBEE1), f"{path} is not a W&B transaction log"
    pos, payload, out = HEADER.size, b"", []
    while pos + RECORD.size <= len(data):
        left = BLOCK - pos % BLOCK
        if left < RECORD.size:  # a block's tail too short for a header is zero padding
            pos += left
            continue
        _, length, kind = RECORD.unpack_from(data, pos)
        if kind == 0:
            break
        payload += data[pos + RECORD.size : pos + RECORD.size + length]
        pos += RECORD.size + length
        if kind in (FULL, LAST):
            record = pb.Record()
            record.ParseFromString(payload)
            out.append(record)
            payload = b""
    return out


def _key(item: Any) -> str:
    return item.key or "/".join(item.nested_key)


@dataclasses.dataclass
class OfflineRun:
    """One offline run: its name, group, job type, final config and summary, history rows and folder."""

    folder: Path
    name: str
    group: str
    job_type: str
    config: dict[str, Any]
    summary: dict[str, Any]
    history: list[dict[str, Any]]


def read_run(folder: Path) -> OfflineRun:
    """The run whose offline folder is ``folder`` (``wandb/offline-run-<time>-<id>``)."""
    (log,) = folder.glob("run-*.wandb")
    run, config, summary, history = None, {}, {}, []
    for record in records(log):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run = record.run
            config.update({_key(u): json.loads(u.value_json) for u in run.config.update})
        elif kind == "config":
            config.update({_key(u): json.loads(u.value_json) for u in record.config.update})
        elif kind == "summary":
            summary.update({_key(u): json.loads(u.value_json) for u in record.summary.update})
        elif kind == "history":
            history.append({_key(i): json.loads(i.value_json) for i in record.history.item})
    assert run is not None, f"{log} has no run record"
    return OfflineRun(folder, run.display_name, run.run_group, run.job_type, config, summary, history)


def read_runs(wandb_dir: Path) -> list[OfflineRun]:
    """Every offline run under ``wandb_dir`` (the ``wandb/`` folder)."""
    return [read_run(f) for f in sorted(wandb_dir.glob("offline-run-*"))]
