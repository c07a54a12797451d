"""A results folder as pandas DataFrames, for notebooks: :func:`read` (``metrics.csv``, one row per member and
epoch) and :func:`read_summary` (``summary.csv``), each with one column per factor of the arm (``arms.json``).

Both are attributes of the package (``jtricks.read(run_dir)``, ``jtricks.read_summary(run_dir)``) and need pandas
(``pip install "jtricks[notebook]"``). The values are the files' float64 values bit for bit (``metrics.csv`` is read
by :func:`jtricks.results.tables.read_metrics_csv`, the numbers of ``summary.csv`` by :func:`float`), so a statistic
recomputed from a DataFrame equals the summary's.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from jtricks.results.summary import arm_names, ci_clipped
from jtricks.results.tables import SUMMARY_COLUMNS, read_metrics_csv, result_file

__all__ = ["read", "read_summary", "arm_factors", "FACTOR_PREFIX"]

#: Prefix of a factor column whose name is taken (by ``arm``, ``seed``, ``epoch``, a metric or a summary column).
FACTOR_PREFIX = "factor."

#: The text columns of ``summary.csv``; the others hold numbers.
_SUMMARY_TEXT = frozenset({"metric", "arm", "baseline", "verdict", "test", "adjust", "div_verdict", "ci_clipped"})


def _pandas() -> Any:
    try:
        import pandas
    except ImportError:
        raise ImportError('jtricks.read needs pandas: pip install "jtricks[notebook]"') from None
    return pandas


def _folder(run_dir: str | os.PathLike[str]) -> Path:
    if not isinstance(run_dir, (str, os.PathLike)):
        raise TypeError(f"run_dir must be a path, got {type(run_dir).__name__} {run_dir!r}")
    folder = Path(run_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"run_dir {folder} is not a folder")
    return folder


def _cell(value: Any) -> Any:
    """A factor value as a DataFrame cell: lists become tuples (hashable, so the column can be grouped by)."""
    if isinstance(value, list):
        return tuple(_cell(v) for v in value)
    return value


def arm_factors(run_dir: str | os.PathLike[str]) -> list[tuple[str, dict[str, Any]]]:
    """The arms of a results folder in ``arms.json`` order, each with its factors ``{name: value}``; ``[]`` when the
    folder has no ``arms.json``."""
    path = _folder(run_dir) / "arms.json"
    if not path.is_file():
        return []
    doc = json.loads(path.read_text(encoding="utf-8"))
    arms = doc["arms"] if isinstance(doc, Mapping) and "arms" in doc else doc
    out = []
    for a in arms:
        if isinstance(a, str):
            out.append((a, {}))
        else:
            out.append((a["arm"], dict(a.get("factors") or {})))
    return out


def _factor_columns(arms: Sequence[tuple[str, Mapping[str, Any]]], taken: set[str]) -> dict[str, str]:
    """Factor name -> its column name (``factor.NAME`` when ``NAME`` is taken), in order of first appearance."""
    names = list(dict.fromkeys(name for _, factors in arms for name in factors))
    return {name: FACTOR_PREFIX + name if name in taken else name for name in names}


def _with_factors(frame: Any, arms: Sequence[tuple[str, Mapping[str, Any]]], columns: Mapping[str, str]) -> Any:
    """``frame`` with one column per factor, inserted after ``arm`` (a factor an arm lacks is missing there; pandas
    infers the column's dtype: numbers with a missing value become float64)."""
    factors = {arm: f for arm, f in arms}
    at = list(frame.columns).index("arm") + 1
    for i, (name, column) in enumerate(columns.items()):
        frame.insert(at + i, column, [_cell(factors.get(arm, {}).get(name)) for arm in frame["arm"]])
    return frame


def _summary_column(pd: Any, cells: Any, text: bool) -> Any:
    """One column of ``summary.csv`` from its cells: text as written (empty: missing), integers as int64, other
    numbers as float64 parsed by :func:`float` (bit for bit the written ``repr``; empty: missing)."""
    if text:
        return cells.mask(cells == "")
    if len(cells) and cells.str.fullmatch(r"-?[0-9]+").all():
        return cells.astype("int64")
    return pd.Series([float(c) if c else float("nan") for c in cells], index=cells.index, dtype="float64")


def read(run_dir: str | os.PathLike[str]) -> Any:
    """``metrics.csv`` of a results folder as a tidy pandas DataFrame: one row per member (arm, seed) and epoch.

    Columns: ``arm``, one column per factor of the arm (``arms.json``: ``dropout_rate``, ``learning_rate``, ...;
    a list value as a tuple; missing where an arm does not set the factor), ``seed``, ``epoch``, then one float64
    column per metric in order of first appearance in the file (``train_loss``, ``val_acc``, ...; missing where a
    member has no row, e.g. ``test_acc`` before the last epoch). Rows are in ``arms.json`` order, then by seed and
    epoch. A factor named like ``arm``, ``seed``, ``epoch`` or a metric is given as ``factor.NAME``.

    Reads ``metrics.csv`` or its published ``metrics.csv.xz``; an unfinished run's folder is read as it is (use
    ``jtricks report`` to check a folder).

    Raises:
      ImportError: pandas is not installed (``pip install "jtricks[notebook]"``).
      FileNotFoundError: ``run_dir`` is not a folder, or holds no ``metrics.csv``.
    """
    pd = _pandas()
    folder = _folder(run_dir)
    path = result_file(folder, "metrics.csv")
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: is run_dir {folder} a jtricks results folder?")
    rows = read_metrics_csv(path)
    arms = arm_factors(folder)
    long = pd.DataFrame.from_records(rows, columns=["arm", "seed", "epoch", "metric", "value"])
    metrics = list(dict.fromkeys(long["metric"]))
    wide = long.pivot(index=["arm", "seed", "epoch"], columns="metric", values="value").reset_index()
    wide = wide[["arm", "seed", "epoch", *metrics]]
    wide.columns.name = None
    order = {name: i for i, name in enumerate(arm_names([a for a, _ in arms] or None, [(r["arm"],) for r in rows]))}
    wide = wide.sort_values(["arm", "seed", "epoch"], key=lambda c: c.map(order) if c.name == "arm" else c)
    wide = wide.reset_index(drop=True).astype({"seed": "int64", "epoch": "int64"})
    return _with_factors(wide, arms, _factor_columns(arms, {"arm", "seed", "epoch", *metrics}))


def read_summary(run_dir: str | os.PathLike[str]) -> Any:
    """``summary.csv`` of a results folder as a pandas DataFrame: one row per metric and arm, the columns of
    :data:`jtricks.results.tables.SUMMARY_COLUMNS` (docs/results-format.md) with one column per factor of the arm
    inserted after ``arm`` (as in :func:`read`; ``factor.NAME`` for a factor named like a summary column).

    Numbers are int64 or float64 as written (bit for bit; ``nan``, ``inf`` as such), an empty cell is missing, text
    (``verdict``: ``n.s.``, ``n/a``, ...) stays as written.

    Raises:
      ImportError: pandas is not installed (``pip install "jtricks[notebook]"``).
      FileNotFoundError: ``run_dir`` is not a folder, or holds no ``summary.csv``.
    """
    pd = _pandas()
    folder = _folder(run_dir)
    path = folder / "summary.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: is run_dir {folder} a finished jtricks results folder?")
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)  # every cell as written; numbers parsed below
    if tuple(frame.columns) == SUMMARY_COLUMNS[:-1]:  # written before `ci_clipped` was a column: derived here
        number = lambda text: float(text) if text else float("nan")  # noqa: E731
        frame["ci_clipped"] = [
            ci_clipped(m, number(lo), number(hi)) for m, lo, hi in zip(frame["metric"], frame["ci_lo"], frame["ci_hi"])
        ]
    if tuple(frame.columns) != SUMMARY_COLUMNS:
        raise ValueError(f"{path} is not a summary file: its columns are not jtricks.report.SUMMARY_COLUMNS")
    for column in frame.columns:
        frame[column] = _summary_column(pd, frame[column], column in _SUMMARY_TEXT)
    arms = arm_factors(folder)
    return _with_factors(frame, arms, _factor_columns(arms, set(SUMMARY_COLUMNS)))
