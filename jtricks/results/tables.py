"""The tidy tables of a results folder: their columns and their CSV files, read and written the same way everywhere.

* ``metrics.csv`` -- one row per member, epoch and metric: ``arm,seed,epoch,metric,value``;
* ``members.csv`` -- one row per member: ``arm,seed,diverged_epoch,stopped_epoch,best_epoch`` (``-1`` = never);
* ``summary.csv`` -- one row per arm and metric (:data:`SUMMARY_COLUMNS`, :mod:`jtricks.results.summary`).

A published folder may hold ``metrics.csv.xz`` instead: :func:`result_file` finds either, :func:`open_text` reads
either. Writing is deterministic: the same rows give byte-identical files.
"""

from __future__ import annotations

import csv
import lzma
import operator
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "METRICS_COLUMNS",
    "MEMBERS_COLUMNS",
    "SUMMARY_COLUMNS",
    "write_csv",
    "result_file",
    "open_text",
    "write_metrics_csv",
    "read_metrics_csv",
    "write_members_csv",
    "read_members_csv",
    "as_float",
    "normalize_rows",
]


METRICS_COLUMNS: tuple[str, ...] = ("arm", "seed", "epoch", "metric", "value")

MEMBERS_COLUMNS: tuple[str, ...] = ("arm", "seed", "diverged_epoch", "stopped_epoch", "best_epoch")

SUMMARY_COLUMNS: tuple[str, ...] = (
    "metric",
    "arm",
    "baseline",
    "n_members",
    "n",
    "diverged",
    "mean",
    "std",
    "ci_lo",
    "ci_hi",
    "confidence",
    "best_epoch",
    "best_mean",
    "diff",
    "diff_std",
    "diff_lo",
    "diff_hi",
    "diff_n",
    "p_value",
    "verdict",
    "seeds_needed",
    "power",
    "target",
    "epochs_to_target",
    "at_best_mean",
    "div_rate",
    "div_lo",
    "div_hi",
    "itt_n",
    "itt_w",
    "itt_p",
    "test",
    "p_adjusted",
    "adjust",
    "family",
    "adj_lo",
    "adj_hi",
    "iqm",
    "iqm_lo",
    "iqm_hi",
    "poi",
    "poi_lo",
    "poi_hi",
    "div_arm_only",
    "div_base_only",
    "div_p",
    "div_p_adjusted",
    "div_family",
    "div_verdict",
    "eq_margin",
    "eq_lo",
    "eq_hi",
    "eq_p",
    "eq_p_adjusted",
    "eq_family",
    "ci_clipped",
)

_INT_COLUMNS = {"seed", "epoch", "diverged_epoch", "stopped_epoch", "best_epoch"}


def _as_int(column: str, value: Any) -> int:
    if isinstance(value, bool):
        raise TypeError(f"{column} must be an int, got bool {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        pass
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            pass
    raise TypeError(f"{column} must be an int, got {type(value).__name__} {value!r}")


def as_float(column: str, value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{column} must be a float, got {type(value).__name__} {value!r}") from e


def _fmt_float(value: float) -> str:
    """Shortest repr that round-trips the float64 exactly (``nan``, ``inf``, ``-inf`` included)."""
    return repr(float(value))


def _cell(value: Any) -> str:
    """Deterministic CSV cell for a summary value."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return _fmt_float(value)
    return str(value)


def normalize_rows(rows: Iterable[Any], columns: tuple[str, ...], what: str) -> list[tuple]:
    out = []
    for i, row in enumerate(rows):
        if isinstance(row, Mapping):
            missing = [c for c in columns if c not in row]
            if missing:
                raise ValueError(f"{what} row {i} lacks column(s) {missing}; expected columns {list(columns)}")
            vals = [row[c] for c in columns]
        elif isinstance(row, Sequence) and not isinstance(row, (str, bytes)):
            if len(row) != len(columns):
                raise ValueError(f"{what} row {i} has {len(row)} fields; expected {len(columns)}: {list(columns)}")
            vals = list(row)
        else:
            raise TypeError(
                f"{what} row {i} must be a mapping or a sequence of {list(columns)}, got {type(row).__name__}"
            )
        typed: list[Any] = []
        for c, v in zip(columns, vals):
            if c in _INT_COLUMNS:
                typed.append(_as_int(c, v))
            elif c == "value":
                typed.append(as_float(c, v))
            else:
                if not isinstance(v, str):
                    raise TypeError(f"{what} row {i}: {c} must be a str, got {type(v).__name__}")
                typed.append(v)
        out.append(tuple(typed))
    return out


def write_csv(path: str | Path, columns: tuple[str, ...], rows: list[tuple]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(columns)
        for row in rows:
            w.writerow([_cell(v) for v in row])
    return path


def result_file(folder: str | Path, name: str) -> Path:
    """``folder/name``, or its compressed copy ``folder/name.xz`` when only that exists (published folders,
    :func:`jtricks.jfolders.publish`); ``folder/name`` when neither does."""
    plain = Path(folder) / name
    packed = plain.with_name(plain.name + ".xz")
    return packed if not plain.exists() and packed.is_file() else plain


def open_text(path: str | Path) -> Any:
    """A text stream of ``path`` (decompressed when it ends in ``.xz``)."""
    path = Path(path)
    if path.suffix == ".xz":
        return lzma.open(path, "rt", newline="", encoding="utf-8")
    return path.open(newline="", encoding="utf-8")


def _read_csv(path: str | Path, columns: tuple[str, ...], what: str) -> list[dict[str, Any]]:
    path = Path(path)
    with open_text(path) as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or tuple(header) != columns:
            raise ValueError(f"{path} is not a {what} file: header {header} != expected {list(columns)}")
        out = []
        for lineno, rec in enumerate(reader, start=2):
            if len(rec) != len(columns):
                raise ValueError(f"{path}:{lineno}: expected {len(columns)} fields, got {len(rec)}")
            row: dict[str, Any] = {}
            for c, v in zip(columns, rec):
                if c in _INT_COLUMNS:
                    row[c] = int(v)
                elif c == "value":
                    row[c] = float(v)
                else:
                    row[c] = v
            out.append(row)
    return out


def write_metrics_csv(path: str | Path, rows: Iterable[Any]) -> Path:
    """Write the tidy per-member metrics table ``arm,seed,epoch,metric,value``.

    One row per member (arm, seed), epoch (1-based) and metric. Rows are written in the order
    given; floats are written as ``repr(float(v))`` (shortest exact round trip of the float64,
    so float32 values survive exactly; ``nan``/``inf`` as such) and lines end in ``\\n``, so the
    same rows always give byte-identical files.

    Args:
      path: file to write (parent folders are created).
      rows: mappings with keys ``arm, seed, epoch, metric, value`` or 5-sequences in that order.

    Returns:
      The path written.
    """
    return write_csv(path, METRICS_COLUMNS, normalize_rows(rows, METRICS_COLUMNS, "metrics"))


def read_metrics_csv(path: str | Path) -> list[dict[str, Any]]:
    """Read ``metrics.csv`` into dicts ``{arm: str, seed: int, epoch: int, metric: str, value: float}``.

    Inverse of :func:`write_metrics_csv` (exact for every float, ``nan``/``inf`` included).
    A file whose header is not exactly ``arm,seed,epoch,metric,value`` raises ``ValueError``.
    """
    return _read_csv(path, METRICS_COLUMNS, "metrics")


def write_members_csv(path: str | Path, rows: Iterable[Any]) -> Path:
    """Write the member table ``arm,seed,diverged_epoch,stopped_epoch,best_epoch`` (ints, ``-1`` = never).

    ``diverged_epoch`` is the first epoch with a non-finite loss, ``stopped_epoch`` the epoch early
    stopping halted the member, ``best_epoch`` the epoch whose weights were kept. Same
    deterministic formatting as :func:`write_metrics_csv`.
    """
    return write_csv(path, MEMBERS_COLUMNS, normalize_rows(rows, MEMBERS_COLUMNS, "members"))


def read_members_csv(path: str | Path) -> list[dict[str, Any]]:
    """Read ``members.csv`` into dicts with ``arm: str`` and int ``seed, diverged_epoch,
    stopped_epoch, best_epoch``. Inverse of :func:`write_members_csv`."""
    return _read_csv(path, MEMBERS_COLUMNS, "members")
