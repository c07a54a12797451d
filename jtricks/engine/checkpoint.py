"""Verified checkpoints of one population chunk (orbax ``CheckpointManager``, the last two kept).

``FOLDER/<epoch>/`` holds, committed together by orbax (written to a temporary folder, renamed when
complete, so a killed write leaves no step behind):

* ``state`` — the leaves of the population state (``"0"``, ``"1"``, ... in ``tree_leaves`` order) and the
  per-epoch metric history (``history/<epoch index>/<metric>``), as arrays;
* ``meta`` — JSON: ``epoch``, the run ``fingerprint`` (:mod:`jtricks.fingerprint`) and ``sha256``, the
  checksum of the arrays: ``sha256`` over, for every array in sorted path order, its path, dtype, shape
  and C-order bytes.

:func:`restore` re-computes the checksum of what it read. A damaged newest checkpoint (unreadable, or a
checksum mismatch: a flipped bit, a truncated file, a partly copied folder) is reported on stderr and
the previous one is used (the next save replaces the damaged one); when none is good,
:class:`CheckpointCorruptError` says how to recover. A checkpoint made with other settings gives
:class:`~jtricks.fingerprint.FingerprintMismatchError` naming them. Saving is synchronous (no orbax
background thread is left to hang on a failed write): any write failure raises
:class:`CheckpointWriteError` at once, naming the path and the OS error.
"""

from __future__ import annotations

import contextlib
import errno as _errno
import gc
import hashlib
import logging
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from jtricks.engine import runlog as jrunlog
from jtricks.results import fingerprint as jfp

log = jrunlog.logger(__name__)

__all__ = [
    "save",
    "restore",
    "verify",
    "stored_fingerprint",
    "checksum",
    "CheckpointWriteError",
    "CheckpointCorruptError",
    "KEEP",
]

#: Checkpoints kept per chunk: the newest and the one before it (the fallback when the newest is damaged).
KEEP = 2
_FORMAT = 1


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (the message names the path and the OS error)."""


class CheckpointCorruptError(ValueError):
    """No checkpoint of a chunk is readable and intact."""


def _flat(tree: Mapping[str, Any], prefix: str = "") -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for k, v in tree.items():
        path = f"{prefix}/{k}" if prefix else str(k)
        if isinstance(v, Mapping):
            out.update(_flat(v, path))
        else:
            out[path] = np.asarray(v)
    return out


def checksum(payload: Mapping[str, Any]) -> str:
    """sha256 over every array of the nested mapping ``payload``: ``path | dtype | shape | bytes`` in sorted path
    order."""
    h = hashlib.sha256()
    for path, arr in sorted(_flat(payload).items()):
        a = np.ascontiguousarray(arr)
        h.update(f"{path}:{a.dtype.str}:{a.shape}:".encode())
        h.update(a.tobytes())
    return h.hexdigest()


@contextlib.contextmanager
def _quiet_orbax_warnings() -> Iterator[None]:
    """Orbax logs warnings through absl (``WARNING:absl:Metadata file does not exist: .../_CHECKPOINT_METADATA``
    for a step whose optional metadata file a kill cut off) that say nothing to the user: keep the absl logger at
    ``ERROR`` while orbax reads or writes (what matters is reported in one line)."""
    log = logging.getLogger("absl")
    level = log.level
    log.setLevel(max(level, logging.ERROR))
    try:
        yield
    finally:
        log.setLevel(level)


def _manager(folder: Path, *, create: bool) -> Any:
    import orbax.checkpoint as ocp

    options = ocp.CheckpointManagerOptions(
        max_to_keep=KEEP, create=create, enable_async_checkpointing=False, cleanup_tmp_directories=True
    )
    return ocp.CheckpointManager(folder.resolve(), options=options)


def _write_error(path: Path, e: BaseException) -> CheckpointWriteError:
    """The OS error behind ``e`` (an ``OSError``, or tensorstore's ``[os_error_code='N']`` text) as one line."""
    if isinstance(e, OSError) and e.errno is not None:
        code, reason = e.errno, e.strerror or str(e)
    else:
        m = re.search(r"os_error_code='?(\d+)", str(e))
        code = int(m.group(1)) if m else _errno.EIO
        reason = os.strerror(code) if m else (str(e).splitlines() or [type(e).__name__])[0]
    err = CheckpointWriteError(code, f"cannot write checkpoint {path}: {reason}")
    err.filename = str(path)
    return err


@_quiet_orbax_warnings()
def save(
    folder: str | os.PathLike,
    epoch: int,
    state: Any,
    history: Sequence[Mapping[str, Any]],
    fingerprint: Mapping[str, Any],
) -> Path:
    """Save the state after ``epoch`` finished epochs (``history``: one ``{metric: array}`` per epoch) and
    keep the last :data:`KEEP` checkpoints; checkpoints at ``epoch`` or later (an abandoned future) are
    replaced. Returns the step folder.

    Raises:
      CheckpointWriteError: the folder or a file cannot be written (promptly; nothing is left running).
    """
    import jax

    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 1:
        raise ValueError(f"`epoch` must be a positive int, got {epoch!r}")
    if len(history) != epoch:
        raise ValueError(f"`history` must hold one entry per finished epoch ({epoch}), got {len(history)}")
    folder = Path(folder)
    payload = {
        "state": {str(i): np.asarray(leaf) for i, leaf in enumerate(jax.tree_util.tree_leaves(state))},
        "history": {str(e): {k: np.asarray(v) for k, v in h.items()} for e, h in enumerate(history)},
    }
    meta = {"format": _FORMAT, "epoch": epoch, "fingerprint": dict(fingerprint), "sha256": checksum(payload)}
    import orbax.checkpoint as ocp

    try:
        if folder.exists() and not folder.is_dir():
            raise NotADirectoryError(_errno.ENOTDIR, "not a folder (it is a file)")
        mngr = _manager(folder, create=True)
        try:
            for step in mngr.all_steps():
                if step >= epoch:
                    mngr.delete(step)
            saved = mngr.save(
                epoch, args=ocp.args.Composite(state=ocp.args.StandardSave(payload), meta=ocp.args.JsonSave(meta))
            )
            mngr.wait_until_finished()
        finally:
            mngr.close()
    except Exception as e:
        raise _write_error(folder / str(epoch), e) from None
    if not saved:
        raise CheckpointWriteError(
            _errno.EIO, f"cannot write checkpoint {folder / str(epoch)}: orbax declined to save step {epoch}"
        )
    return folder / str(epoch)


def _read_step(mngr: Any, step: int) -> tuple[dict[str, Any], dict[str, Any]]:
    import orbax.checkpoint as ocp

    meta = mngr.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
    if not isinstance(meta, Mapping) or meta.get("format") != _FORMAT or meta.get("epoch") != step:
        raise ValueError("its metadata is not a jtricks checkpoint of this step")
    return dict(meta), mngr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))["state"]


def verify(folder: str | os.PathLike, epoch: int) -> bool:
    """Whether the checkpoint of ``epoch`` in ``folder`` reads back intact: its metadata is this step's and its
    arrays match the recorded checksum (what :func:`restore` checks, without a template)."""
    folder = Path(folder)
    if not (folder / str(epoch)).is_dir():
        return False
    mngr = _manager(folder, create=False)
    try:
        if epoch not in mngr.all_steps():
            return False
        with _quiet_asyncio():
            meta, payload = _read_step(mngr, epoch)
        return checksum(payload) == meta.get("sha256")
    except Exception:  # unreadable files: orbax / tensorstore raise many types
        return False
    finally:
        mngr.close()


@_quiet_orbax_warnings()
def stored_fingerprint(folder: str | os.PathLike) -> dict[str, Any] | None:
    """The run fingerprint recorded in the newest checkpoint of ``folder`` whose metadata reads (only the
    metadata is read: no arrays, no checksum); ``None`` when there is none."""
    import orbax.checkpoint as ocp

    folder = Path(folder)
    if not folder.is_dir():
        return None
    mngr = _manager(folder, create=False)
    try:
        for step in sorted(mngr.all_steps(), reverse=True):
            try:
                meta = mngr.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
            except Exception:  # damaged metadata: restore() reports it; try the previous step
                continue
            if isinstance(meta, Mapping) and isinstance(meta.get("fingerprint"), Mapping):
                return dict(meta["fingerprint"])
    finally:
        mngr.close()
    return None


def _unpack(payload: Mapping[str, Any], template: Any, epoch: int) -> tuple[Any, list[dict[str, np.ndarray]]]:
    import jax
    import jax.numpy as jnp

    leaves, treedef = jax.tree_util.tree_flatten(template)
    stored = payload.get("state", {})
    if len(stored) != len(leaves):
        raise jfp.FingerprintMismatchError(f"the checkpoint holds {len(stored)} arrays, this run's state {len(leaves)}")
    new = []
    for i, leaf in enumerate(leaves):
        arr = np.asarray(stored[str(i)])
        if arr.shape != tuple(np.shape(leaf)):
            raise jfp.FingerprintMismatchError(
                f"checkpoint array {i} has shape {arr.shape}, this run's {np.shape(leaf)}"
            )
        new.append(jnp.asarray(arr, dtype=leaf.dtype))
    hist = payload.get("history", {})
    history = [{k: np.asarray(v) for k, v in hist[str(e)].items()} for e in range(epoch)]
    return jax.tree_util.tree_unflatten(treedef, new), history


@contextlib.contextmanager
def _quiet_asyncio() -> Iterator[None]:
    """A failed orbax read leaves asyncio tasks whose exceptions asyncio logs, with tracebacks, whenever they are
    garbage-collected; collect them here with that logger silenced (the damage is reported in one line)."""
    log = logging.getLogger("asyncio")
    level = log.level
    log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        gc.collect()
        log.setLevel(level)


@_quiet_orbax_warnings()
def restore(
    folder: str | os.PathLike, template: Any, fingerprint: Mapping[str, Any]
) -> tuple[int, Any, list[dict[str, np.ndarray]]] | None:
    """The newest intact checkpoint in ``folder`` as ``(epoch, state, history)``; ``None`` when there is none.

    ``template`` is a state of this run (its tree structure, shapes and dtypes are reused). A damaged
    checkpoint is reported on stderr and the previous one is tried (the next :func:`save` replaces it).

    Raises:
      FingerprintMismatchError: the newest intact checkpoint was made with other settings (they are named).
      CheckpointCorruptError: checkpoints exist but none is intact (the message says how to recover).
    """
    folder = Path(folder)
    if not folder.is_dir():
        return None
    mngr = _manager(folder, create=False)
    try:
        steps = sorted(mngr.all_steps(), reverse=True)
        problems = []
        for step in steps:
            where = folder / str(step)
            try:
                with _quiet_asyncio():
                    meta, payload = _read_step(mngr, step)
                ok = checksum(payload) == meta.get("sha256")
                why = "checksum mismatch"
            except Exception as e:  # unreadable files: orbax / tensorstore raise many types
                ok, why = False, f"unreadable: {(str(e).splitlines() or [type(e).__name__])[0][:200]}"
            if not ok:
                problems.append(f"{where} ({why})")
                log.warning("jtricks: warning: checkpoint %s is damaged (%s); trying the previous one", where, why)
                continue
            jfp.check_same(meta["fingerprint"], fingerprint, f"the checkpoint {where}")
            state, history = _unpack(payload, template, step)
            return step, state, history
    finally:
        mngr.close()
    if problems:
        raise CheckpointCorruptError(
            f"no intact checkpoint in {folder}: {'; '.join(problems)}; start over without --resume (or delete {folder})"
        )
    return None
