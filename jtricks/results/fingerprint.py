"""Run fingerprints: what a run's numbers depend on, as one stable hash.

A fingerprint is ``{"sha256": HEX, "settings": SETTINGS}`` where ``SETTINGS`` is the canonical JSON form
of the resolved settings of a run (experiment fields, arms, seeds, chunking, a checksum of the data,
the package version) and ``HEX`` is ``sha256(json.dumps(SETTINGS, sort_keys=True, separators=(",", ":")))``.
It is stored with every checkpoint and with the results, so resuming with other settings, or reporting a
folder whose files come from different runs, is detected and the differing settings are named
(:func:`diff`).

Canonical form: mappings become dicts with string keys, tuples and lists become lists, NumPy scalars and
arrays become Python numbers and nested lists, non-finite floats become the strings ``"nan"``,
``"inf"``, ``"-inf"``. Anything else (a function, an object) raises ``TypeError`` naming where it sits:
a fingerprint must not depend on memory addresses.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["run_fingerprint", "diff", "data_checksum", "FingerprintMismatchError"]


class FingerprintMismatchError(ValueError):
    """The settings of this command differ from those a checkpoint or results folder was made with."""


def _canonical(value: Any, where: str) -> Any:
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)) and not isinstance(value, np.bool_):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (float, np.floating)):
        f = float(value)
        return f if math.isfinite(f) else repr(f)
    if isinstance(value, np.ndarray):
        return _canonical(value.tolist(), where)
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"fingerprint setting keys must be str, got {k!r} at {where or '<root>'}")
            out[k] = _canonical(v, f"{where}.{k}" if where else k)
        return out
    if isinstance(value, (list, tuple)):
        return [_canonical(v, f"{where}[{i}]") for i, v in enumerate(value)]
    raise TypeError(
        f"fingerprint setting {where or '<root>'} must be JSON-like (None, bool, int, float, str, list, dict), "
        f"got {type(value).__name__}"
    )


def _digest(settings: Mapping[str, Any]) -> str:
    text = json.dumps(settings, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def run_fingerprint(settings: Mapping[str, Any]) -> dict[str, Any]:
    """``{"sha256": hex, "settings": canonical(settings)}`` (see the module docstring).

    Raises:
      TypeError: ``settings`` is not a mapping, or holds a value with no canonical JSON form.
    """
    if not isinstance(settings, Mapping):
        raise TypeError(f"`settings` must be a mapping, got {type(settings).__name__}")
    canon = _canonical(settings, "")
    return {"sha256": _digest(canon), "settings": canon}


def _flatten(value: Any, prefix: str, out: dict[str, Any]) -> dict[str, Any]:
    if isinstance(value, dict) and value:
        for k, v in value.items():
            _flatten(v, f"{prefix}.{k}" if prefix else k, out)
    else:
        out[prefix] = value
    return out


def _settings_of(fp: Mapping[str, Any]) -> Mapping[str, Any]:
    inner = fp.get("settings") if isinstance(fp, Mapping) and "sha256" in fp else fp
    if not isinstance(inner, Mapping):
        raise TypeError(f"expected a fingerprint or a settings mapping, got {type(fp).__name__}")
    return _canonical(inner, "")


def diff(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    """The settings that differ between fingerprints (or settings mappings) ``a`` and ``b``.

    Nested settings are named by dotted paths; each entry reads ``"path: A -> B"`` (``<absent>`` where one
    side lacks it), sorted by path. Lists are compared whole. Empty when the settings are equal.
    """
    fa, fb = _flatten(_settings_of(a), "", {}), _flatten(_settings_of(b), "", {})
    absent = "<absent>"
    out = []
    for key in sorted(set(fa) | set(fb)):
        va, vb = fa.get(key, absent), fb.get(key, absent)
        if va != vb or type(va) is not type(vb):
            show = lambda v: v if v is absent else json.dumps(v, sort_keys=True)  # noqa: E731
            out.append(f"{key}: {show(va)} -> {show(vb)}")
    return out


def check_same(stored: Mapping[str, Any], current: Mapping[str, Any], what: str) -> None:
    """Raise :class:`FingerprintMismatchError` (one line naming the differing settings) unless the two
    fingerprints have the same hash. ``what`` names the stored side (e.g. ``"the checkpoint in runs/x"``)."""
    if stored.get("sha256") == current.get("sha256"):
        return
    changes = diff(stored, current) or ["(settings equal, hash differs: the stored fingerprint was edited)"]
    shown = "; ".join(changes[:8]) + (f"; and {len(changes) - 8} more" if len(changes) > 8 else "")
    raise FingerprintMismatchError(f"{what} was made with other settings ({shown})")


def data_checksum(*arrays: Any) -> str:
    """sha256 hex over the arrays, each as ``dtype, shape, C-order bytes`` (so a reshape or a cast changes it).

    Formula: ``sha256(b"".join(dtype.str | shape | bytes for each array))`` with a separator between fields.
    """
    h = hashlib.sha256()
    for i, arr in enumerate(arrays):
        a = np.ascontiguousarray(np.asarray(arr))
        h.update(f"{i}:{a.dtype.str}:{a.shape}:".encode("ascii"))
        h.update(a.tobytes())
    return h.hexdigest()
