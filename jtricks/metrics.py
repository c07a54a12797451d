"""Evaluation metrics as sums of per-example statistics, with a declared direction.

The engine evaluates a split in fixed-size chunks whose padding is masked out, so every metric is
*sum, then finalize*: ``stats(outputs, targets, per_example_loss) -> (B, k)`` per-example sufficient
statistics, summed over the real examples of every chunk (:func:`evaluate_totals`, a
:func:`jtricks.numerics.pairwise_sum`), then ``finalize(totals (k,), n) -> scalar``:

=========== ========================= ================================================ ========
name        stats per example         finalize                                          better
=========== ========================= ================================================ ========
acc         [argmax z = y]            Σ / n   (one output: [(z > 0) = y])               higher
topK_acc    [y among the K largest z] Σ / n   (``top5_acc``; any K)                      higher
loss        [ℓ_i]                     Σ / n                                             lower
mse         [mean_j (o_j − y_j)²]     Σ / n                                             lower
r2          [e², y, y²] per output    1 − SSE / (Σy² − (Σy)²/n), averaged over outputs  higher
=========== ========================= ================================================ ========

A *full* metric name is a split and a metric: ``train_loss``, ``val_acc``, ``test_r2``, ``avg_test_acc``
(the averaged weights' evaluation). The engine also records ``lr``, ``grad_norm``, ``grad_norm/<layer>`` and
(float16 precision) ``skipped_steps``,
which belong to no split and have no better direction (:func:`parse` gives ``("", "lr")``,
:func:`direction` gives 0).

Example::

    from jtricks import metrics
    ms = [metrics.get("acc"), metrics.get("top5_acc"), metrics.get("loss")]
    totals = metrics.evaluate_totals(ms, logits, labels, per_example_loss, mask)    # (3,)
    values = metrics.finalize_totals(ms, totals, n, widths=(1, 1, 1))               # {"acc": ..., ...}
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jtricks._core import numerics as jnum

__all__ = [
    "Metric",
    "METRICS",
    "SPLITS",
    "ENGINE_METRICS",
    "get",
    "metric",
    "names",
    "parse",
    "direction",
    "higher_is_better",
    "stat_widths",
    "evaluate_totals",
    "finalize_totals",
]


class Metric(NamedTuple):
    """A metric as per-example sufficient statistics and a finalizer.

    Attributes:
      name: the metric's name without a split (``"acc"``, ``"r2"``).
      higher_is_better: its direction, used by the summary, early stopping and best-epoch selection.
      stats: ``(outputs, targets, per_example_loss) -> (B, k)`` float32 statistics per example.
      finalize: ``(totals (k,) summed over the real examples, n) -> scalar``.
    """

    name: str
    higher_is_better: bool
    stats: Callable[[jax.Array, jax.Array, jax.Array], jax.Array]
    finalize: Callable[[jax.Array, jax.Array], jax.Array]


#: The splits a metric is evaluated on (``avg_`` + split: the averaged weights, with EMA / SWA). ``train``:
#: averaged over the epoch's steps in train mode; ``train_eval``: a fixed training sample in eval mode.
SPLITS: tuple[str, ...] = ("train", "train_eval", "val", "test")
#: Metrics the engine records that belong to no split (``grad_norm/<layer>`` too, with diagnostics;
#: ``skipped_steps``: the steps float16's loss scaling skipped in the epoch).
ENGINE_METRICS: tuple[str, ...] = ("lr", "grad_norm", "skipped_steps")

_TOPK = re.compile(r"top([1-9][0-9]*)_acc")


# --------------------------------------------------------------------------------------------
# the named metrics
# --------------------------------------------------------------------------------------------


def _rows(x: jax.Array) -> jax.Array:
    """``(B, ...) -> (B, n)`` float32."""
    return jnp.reshape(x, (x.shape[0], -1)).astype(jnp.float32)


def _column(x: jax.Array) -> jax.Array:
    return jnp.reshape(x, (x.shape[0], 1)).astype(jnp.float32)


def _mean_finalize(totals: jax.Array, n: Any) -> jax.Array:
    # Σ · (1/n) with an explicit reciprocal (as jtricks.numerics.mean): a Python n folds to the same float32
    # constant as jnum.mean's, a traced n divides once; XLA never rewrites it differently per program
    return totals[0] * (1.0 / n)


def _one_output(outputs: jax.Array) -> bool:
    return outputs.ndim == 1 or (outputs.ndim == 2 and outputs.shape[-1] == 1)


def _acc_stats(outputs: jax.Array, targets: jax.Array, loss: jax.Array) -> jax.Array:
    """``[argmax_k z_k = y]``; a one-output model (a binary logit) predicts ``z > 0``."""
    del loss
    if _one_output(outputs):
        pred = (jnp.reshape(outputs, (-1,)) > 0).astype(jnp.int32)
        return _column(pred == jnp.reshape(targets, (-1,)).astype(jnp.int32))
    return _column(jnp.argmax(outputs, axis=-1) == targets)


def _topk_stats(k: int) -> Callable[[jax.Array, jax.Array, jax.Array], jax.Array]:
    def stats(outputs: jax.Array, targets: jax.Array, loss: jax.Array) -> jax.Array:
        """``[#{j : z_j > z_y} < K]``: the label's logit is among the K largest (ties count for the label)."""
        del loss
        z_y = jnp.take_along_axis(outputs, targets[:, None].astype(jnp.int32), axis=-1)
        above = jnum.pairwise_sum((outputs > z_y).astype(jnp.int32), -1)
        return _column(above < k)

    return stats


def _loss_stats(outputs: jax.Array, targets: jax.Array, loss: jax.Array) -> jax.Array:
    del outputs, targets
    return _column(loss)


def _sq_err(outputs: jax.Array, targets: jax.Array) -> jax.Array:
    o = _rows(outputs)
    return jnp.square(o - jnp.reshape(targets, o.shape).astype(jnp.float32))


def _mse_stats(outputs: jax.Array, targets: jax.Array, loss: jax.Array) -> jax.Array:
    del loss
    return jnum.mean(_sq_err(outputs, targets), -1, keepdims=True)


def _r2_stats(outputs: jax.Array, targets: jax.Array, loss: jax.Array) -> jax.Array:
    """``[e_1..e_K, y_1..y_K, y²_1..y²_K]`` with ``e_j = (o_j − y_j)²`` (K outputs per example)."""
    del loss
    y = jnp.reshape(targets, (targets.shape[0], -1)).astype(jnp.float32)
    return jnp.concatenate([_sq_err(outputs, targets), y, jnp.square(y)], axis=-1)


def _r2_finalize(totals: jax.Array, n: jax.Array) -> jax.Array:
    """``R² = 1 − SSE / SST`` per output, ``SST = Σy² − (Σy)²/n``, averaged over outputs (sklearn's
    ``uniform_average``). float32: when ``|mean y|`` dwarfs ``std y`` the subtraction loses digits."""
    sse, sy, syy = jnp.split(totals, 3)
    n = jnp.asarray(n, jnp.float32)
    sst = syy - jnp.square(sy) / n
    return jnum.mean(1.0 - sse / sst)


#: The named metrics (``topK_acc`` for any K is built by :func:`get`).
METRICS: Mapping[str, Metric] = {
    "acc": Metric("acc", True, _acc_stats, _mean_finalize),
    "top5_acc": Metric("top5_acc", True, _topk_stats(5), _mean_finalize),
    "loss": Metric("loss", False, _loss_stats, _mean_finalize),
    "mse": Metric("mse", False, _mse_stats, _mean_finalize),
    "r2": Metric("r2", True, _r2_stats, _r2_finalize),
}


def names() -> tuple[str, ...]:
    """The named metrics (``topK_acc`` is accepted for any K >= 1)."""
    return tuple(METRICS)


def _allowed() -> str:
    return ", ".join(repr(n) for n in METRICS) + " (or 'topK_acc' for any K)"


def get(spec: str | Metric) -> Metric:
    """A :class:`Metric` from a name (``"acc"``, ``"top3_acc"`` ...) or a :class:`Metric` itself.

    Raises:
      ValueError: an unknown name (the message lists the allowed ones).
      TypeError: a callable (wrap it with :func:`metric`, which needs a name and a direction) or anything else.
    """
    if isinstance(spec, Metric):
        return spec
    if isinstance(spec, str):
        if spec in METRICS:
            return METRICS[spec]
        m = _TOPK.fullmatch(spec)
        if m:
            return Metric(spec, True, _topk_stats(int(m.group(1))), _mean_finalize)
        raise ValueError(f"unknown metric {spec!r}; allowed: {_allowed()}, or a Metric from jtricks.metrics.metric")
    if callable(spec):
        raise TypeError(
            "a metric callable needs a name and a direction: jtricks.metrics.metric(fn, name=..., higher_is_better=...)"
        )
    raise TypeError(f"a metric must be a name or a Metric, got {type(spec).__name__}")


def metric(fn: Callable[[jax.Array, jax.Array], jax.Array], *, name: str, higher_is_better: bool) -> Metric:
    """Wrap a user per-example ``fn(outputs, targets) -> (B,)`` as a :class:`Metric` finalized as the mean.

    Raises:
      TypeError: ``fn`` not callable or ``higher_is_better`` not a bool.
      ValueError: ``name`` empty, containing ``/``, or starting with a split prefix (``val_`` ...).
    """
    if not callable(fn) or isinstance(fn, Metric):
        raise TypeError(f"`fn` must be a callable fn(outputs, targets) -> (B,), got {fn!r}")
    if not isinstance(higher_is_better, bool):
        raise TypeError(f"`higher_is_better` must be a bool, got {higher_is_better!r}")
    if not isinstance(name, str) or not name or "/" in name or _split_prefix(name)[0]:
        raise ValueError(f"`name` must be a non-empty metric name without a split prefix or '/', got {name!r}")

    def stats(outputs: jax.Array, targets: jax.Array, loss: jax.Array) -> jax.Array:
        del loss
        return _column(fn(outputs, targets))

    return Metric(name, higher_is_better, stats, _mean_finalize)


# --------------------------------------------------------------------------------------------
# full names: split + metric, and their direction
# --------------------------------------------------------------------------------------------


def _split_prefix(full_name: str) -> tuple[str, str]:
    for split in sorted(SPLITS + tuple(f"avg_{s}" for s in SPLITS), key=len, reverse=True):
        if full_name.startswith(split + "_"):
            return split, full_name[len(split) + 1 :]
    return "", full_name


def _is_engine_metric(name: str) -> bool:
    return name in ENGINE_METRICS or name.startswith("grad_norm/")


def parse(full_name: str, custom: Mapping[str, Metric] | Sequence[str] = ()) -> tuple[str, str]:
    """``"test_r2" -> ("test", "r2")``, ``"avg_val_acc" -> ("avg_val", "acc")``; the engine's own metrics
    (``lr``, ``grad_norm``, ``grad_norm/<layer>``) give ``("", name)``. ``custom`` names user metrics.

    Raises:
      ValueError: no known split prefix, or an unknown metric (the message lists the allowed ones).
    """
    if not isinstance(full_name, str):
        raise TypeError(f"a metric name must be a str, got {type(full_name).__name__}")
    if _is_engine_metric(full_name):
        return "", full_name
    split, name = _split_prefix(full_name)
    if not split:
        raise ValueError(
            f"metric {full_name!r} must start with a split: one of "
            f"{', '.join(s + '_' for s in SPLITS)} (or avg_val_, avg_test_), or be one of {', '.join(ENGINE_METRICS)}"
        )
    if name not in custom:
        try:
            get(name)
        except ValueError:
            extra = f", {', '.join(repr(c) for c in custom)}" if len(custom) else ""
            raise ValueError(f"unknown metric {name!r} in {full_name!r}; allowed: {_allowed()}{extra}") from None
    return split, name


def direction(full_name: str, custom: Mapping[str, Metric] | None = None) -> int:
    """``+1`` if higher is better, ``-1`` if lower is better, ``0`` for the engine's ``lr`` / ``grad_norm``.
    ``custom`` maps the names of user metrics to their :class:`Metric`."""
    custom = {} if custom is None else custom
    split, name = parse(full_name, custom)
    if not split:
        return 0
    m = custom[name] if name in custom else get(name)
    return 1 if m.higher_is_better else -1


def higher_is_better(full_name: str, custom: Mapping[str, Metric] | None = None) -> bool:
    """Whether a larger value of the full metric name is better (``False`` for ``lr`` and ``grad_norm``)."""
    return direction(full_name, custom) > 0


# --------------------------------------------------------------------------------------------
# evaluation: sum over the real examples, then finalize
# --------------------------------------------------------------------------------------------


def stat_widths(metrics: Sequence[Metric], outputs: Any, targets: Any, per_example_loss: Any) -> tuple[int, ...]:
    """``k`` of every metric's statistics for these shapes (arrays or ``jax.ShapeDtypeStruct``; nothing runs)."""
    return tuple(int(jax.eval_shape(m.stats, outputs, targets, per_example_loss).shape[-1]) for m in metrics)


def evaluate_totals(
    metrics: Sequence[Metric], outputs: jax.Array, targets: jax.Array, per_example_loss: jax.Array, mask: jax.Array
) -> jax.Array:
    """``Σ_{i : mask_i} stats_i`` of every metric, concatenated: ``(Σ_m k_m,)`` float32.

    Masked-out (padding) rows are replaced by 0 with ``jnp.where`` (a NaN there cannot leak); the sum over
    the batch is :func:`jtricks.numerics.pairwise_sum`, so chunk totals add up to the whole split's and a
    population member's totals are bit for bit its standalone ones.
    """
    if not metrics:
        return jnp.zeros((0,), jnp.float32)
    stats = jnp.concatenate([m.stats(outputs, targets, per_example_loss).astype(jnp.float32) for m in metrics], axis=-1)
    keep = jnp.reshape(jnp.asarray(mask).astype(bool), (-1, 1))
    return jnum.pairwise_sum(jnp.where(keep, stats, 0.0), 0)


def finalize_totals(
    metrics: Sequence[Metric], totals: jax.Array, n: Any, *, widths: Sequence[int]
) -> dict[str, jax.Array]:
    """``{metric.name: metric.finalize(its slice of totals, n)}`` (``widths`` from :func:`stat_widths`)."""
    if len(widths) != len(metrics):
        raise ValueError(f"`widths` must give one width per metric ({len(metrics)}), got {len(widths)}")
    out, start = {}, 0
    for m, w in zip(metrics, widths):
        out[m.name] = m.finalize(totals[start : start + w], jnp.asarray(n, jnp.float32))
        start += w
    return out
