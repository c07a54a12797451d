"""Test-set bootstrap: an interval that counts the finite test set as well as the seeds.

The seed interval of a summary (:func:`jtricks.stats.mean_ci`) measures how much an arm's result moves when it is
trained again (another initialization, data order, dropout masks) on the *same* test set: it is the training-only
interval. A second source of variance is the test set itself, a sample of ``N`` examples. With each member's
per-example outcomes ``O[s, n]`` (1 when member ``s`` classifies example ``n`` correctly, or its loss on it;
``test_outcomes.npy``, docs/results-format.md) the two-level bootstrap resamples both:

    for b = 1..B:   seeds  s*_1..s*_S  drawn with replacement from the S seeds,
                    examples n*_1..n*_N drawn with replacement from the N examples,
                    T_b = (1/S) Σ_i (1/N) Σ_j O[s*_i, n*_j]

and the total interval is the percentile interval ``[q_{α/2}(T), q_{1-α/2}(T)]``. For a paired comparison the
*same* seeds and the *same* examples are drawn for both arms: ``D_b = T_b(arm) - T_b(baseline)``. The draws are
``numpy.random.default_rng(seed)``: ``integers(0, S, (B, S))`` for the seeds, then ``integers(0, N, (B, N))`` for
the examples. For one seed-level mean ``p`` with no training variance the example level alone gives the binomial
variance ``p (1 - p) / N`` (tested against it); with no example variance, the seed bootstrap alone.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from jtricks._core import files as jfiles
from jtricks.results import stats as jstats

__all__ = [
    "OUTCOMES_FILE",
    "OUTCOMES_INDEX",
    "TotalCI",
    "Outcomes",
    "bootstrap_means",
    "total_ci",
    "paired_total_ci",
    "write_outcomes",
    "read_outcomes",
    "add_total_intervals",
    "TOTAL_COLUMNS",
]

#: The per-example test outcomes of every member, and their index (docs/results-format.md).
OUTCOMES_FILE = "test_outcomes.npy"
OUTCOMES_INDEX = "test_outcomes.json"

#: The summary columns :func:`add_total_intervals` adds (only on request: ``Experiment.test_bootstrap``).
TOTAL_COLUMNS: tuple[str, ...] = ("total_ci_low", "total_ci_high", "total_diff_low", "total_diff_high")


class TotalCI(NamedTuple):
    """A mean (or paired difference) with its training-only and its total interval.

    Attributes:
      mean: the observed mean over seeds of the members' test means (or the mean paired difference).
      train_lo, train_hi: the Student-t interval over seeds (:func:`jtricks.stats.mean_ci`): training variance only.
      lo, hi: the two-level bootstrap percentile interval: seeds and test examples resampled.
      seeds, examples, resamples: ``S``, ``N`` and ``B``.
    """

    mean: float
    train_lo: float
    train_hi: float
    lo: float
    hi: float
    seeds: int
    examples: int
    resamples: int


class Outcomes(NamedTuple):
    """Per-example test outcomes of a run's members.

    Attributes:
      metric: the summary metric they make up by their mean over examples (``"test_acc"`` or ``"test_loss"``).
      members: ``(arm, seed)`` of each row.
      values: ``(members, N)`` float64: 0/1 correctness, or the per-example loss.
    """

    metric: str
    members: list[tuple[str, int]]
    values: np.ndarray


def _draws(rng: np.random.Generator, seeds: int, examples: int, resamples: int) -> tuple[np.ndarray, np.ndarray]:
    """Per resample, how often each seed and each example was drawn: ``(B, S)`` and ``(B, N)`` counts."""
    s_idx = rng.integers(0, seeds, size=(resamples, seeds))
    n_idx = rng.integers(0, examples, size=(resamples, examples))

    def counts(idx: np.ndarray, k: int) -> np.ndarray:
        flat = (np.arange(resamples)[:, None] * k + idx).ravel()
        return np.bincount(flat, minlength=resamples * k).reshape(resamples, k).astype(np.float64)

    return counts(s_idx, seeds), counts(n_idx, examples)


def _check(values: Any) -> np.ndarray:
    o = np.asarray(values, np.float64)
    if o.ndim != 2 or o.shape[0] < 1 or o.shape[1] < 1:
        raise ValueError(f"`outcomes` must be a (seeds, examples) array with both >= 1, got shape {o.shape}")
    if not np.isfinite(o).all():
        raise ValueError("`outcomes` must be finite (leave diverged members out)")
    return o


def _check_resamples(resamples: Any) -> int:
    if isinstance(resamples, bool) or not isinstance(resamples, (int, np.integer)) or resamples < 2:
        raise ValueError(f"`resamples` must be an int >= 2, got {resamples!r}")
    return int(resamples)


def bootstrap_means(outcomes: Any, *, resamples: int = 2000, seed: int = 0) -> np.ndarray:
    """The ``B`` two-level bootstrap means ``T_b`` of ``outcomes`` ``(S, N)`` (module docstring)."""
    return _bootstrap([_check(outcomes)], _check_resamples(resamples), seed)[0]


def _bootstrap(arms: Sequence[np.ndarray], resamples: int, seed: int) -> list[np.ndarray]:
    """``T_b`` of each arm from one set of draws (arms of the same ``(S, N)`` shape, paired row by row)."""
    seeds, examples = arms[0].shape
    s_count, n_count = _draws(np.random.default_rng(seed), seeds, examples, resamples)
    # per resample and seed: the member's mean over the drawn examples; then over the drawn seeds
    return [((n_count @ o.T) / examples * s_count).sum(axis=1) / seeds for o in arms]


def _interval(t: np.ndarray, confidence: float) -> tuple[float, float]:
    alpha = 1.0 - confidence
    lo, hi = np.quantile(t, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def total_ci(outcomes: Any, *, confidence: float = 0.95, resamples: int = 2000, seed: int = 0) -> TotalCI:
    """One arm: the mean over seeds of the members' means over examples, its seed-only t interval and its
    total (seeds x examples) bootstrap interval. ``outcomes``: ``(S, N)``, one row per seed."""
    confidence = jstats.check_probability("confidence", confidence)
    o = _check(outcomes)
    t = _bootstrap([o], _check_resamples(resamples), seed)[0]
    ci = jstats.mean_ci(o.mean(axis=1), confidence)
    return TotalCI(ci.mean, ci.lo, ci.hi, *_interval(t, confidence), o.shape[0], o.shape[1], len(t))


def paired_total_ci(
    outcomes: Any, baseline: Any, *, confidence: float = 0.95, resamples: int = 2000, seed: int = 0
) -> TotalCI:
    """``arm - baseline`` paired by seed (row ``i`` of both is seed ``i``) and by example: the same seeds and
    examples are drawn for both arms; the training-only interval is the paired t interval
    (:func:`jtricks.stats.paired_diff_ci`)."""
    confidence = jstats.check_probability("confidence", confidence)
    a, b = _check(outcomes), _check(baseline)
    if a.shape != b.shape:
        raise ValueError(f"`outcomes` {a.shape} and `baseline` {b.shape} must pair seed by seed and example by example")
    ta, tb = _bootstrap([a, b], _check_resamples(resamples), seed)
    d = jstats.paired_diff_ci(a.mean(axis=1), b.mean(axis=1), confidence)
    return TotalCI(d.diff, d.lo, d.hi, *_interval(ta - tb, confidence), a.shape[0], a.shape[1], len(ta))


def write_outcomes(folder: str | Path, outcomes: Outcomes) -> None:
    """``test_outcomes.npy`` (0/1 outcomes bit-packed along the examples, ``np.packbits``, uint8; a loss as
    float32) and ``test_outcomes.json`` (``metric``, ``encoding``, ``examples``, ``members``: ``[arm, seed]`` per
    row)."""
    v = np.asarray(outcomes.values)
    binary = bool(np.isin(v, (0.0, 1.0)).all()) and outcomes.metric.endswith("_acc")
    data = np.packbits(v.astype(np.uint8), axis=1) if binary else v.astype(np.float32)
    folder = Path(folder)
    with jfiles.atomic_file(folder / OUTCOMES_FILE) as tmp, open(tmp, "wb") as f:
        np.save(f, data, allow_pickle=False)
    index = {
        "metric": outcomes.metric,
        "encoding": "packbits" if binary else "float32",
        "examples": int(v.shape[1]),
        "members": [[a, int(s)] for a, s in outcomes.members],
    }
    jfiles.write_atomic(folder / OUTCOMES_INDEX, json.dumps(index, indent=1) + "\n")


def read_outcomes(folder: str | Path) -> Outcomes | None:
    """The :class:`Outcomes` of a results folder, ``None`` when it has none."""
    folder = Path(folder)
    if not (folder / OUTCOMES_INDEX).is_file():
        return None
    index = json.loads((folder / OUTCOMES_INDEX).read_text(encoding="utf-8"))
    data = np.load(folder / OUTCOMES_FILE, allow_pickle=False)
    n = int(index["examples"])
    if index["encoding"] == "packbits":
        values = np.unpackbits(data, axis=1, count=n).astype(np.float64)
    else:
        values = np.asarray(data, np.float64)
    return Outcomes(index["metric"], [(str(a), int(s)) for a, s in index["members"]], values)


def _rows_of(outcomes: Outcomes, arm: str, seeds: Sequence[int]) -> np.ndarray:
    where = {m: i for i, m in enumerate(outcomes.members)}
    return outcomes.values[[where[(arm, s)] for s in seeds]]


def add_total_intervals(
    summary_rows: Sequence[Mapping[str, Any]],
    outcomes: Outcomes,
    member_rows: Sequence[Mapping[str, Any]],
    *,
    resamples: int = 2000,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """The summary rows with :data:`TOTAL_COLUMNS`: on the rows of ``outcomes.metric``, the total interval of the
    arm (:func:`total_ci`) and of its paired difference with the row's baseline (:func:`paired_total_ci`, seeds
    present and not diverged in both arms), at the row's ``confidence``; ``None`` elsewhere. Diverged members
    (``diverged_epoch >= 0``) are left out, as in the seed statistics."""
    bad = {(r["arm"], int(r["seed"])) for r in member_rows if int(r["diverged_epoch"]) >= 0}
    ok = lambda arm: sorted(s for a, s in outcomes.members if a == arm and (a, s) not in bad)  # noqa: E731
    out = []
    for r in summary_rows:
        row = {**r, **dict.fromkeys(TOTAL_COLUMNS)}
        if r["metric"] == outcomes.metric and ok(r["arm"]):
            conf = float(r["confidence"])
            t = total_ci(_rows_of(outcomes, r["arm"], ok(r["arm"])), confidence=conf, resamples=resamples, seed=seed)
            row["total_ci_low"], row["total_ci_high"] = t.lo, t.hi
            shared = sorted(set(ok(r["arm"])) & set(ok(r["baseline"])))
            if r["arm"] != r["baseline"] and shared:
                a, b = (_rows_of(outcomes, name, shared) for name in (r["arm"], r["baseline"]))
                d = paired_total_ci(a, b, confidence=conf, resamples=resamples, seed=seed)
                row["total_diff_low"], row["total_diff_high"] = d.lo, d.hi
        out.append(row)
    return out
