"""Evaluation metrics (placeholder; full module lands with its tests)."""

from __future__ import annotations

from typing import Any, Callable, Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp

from jtricks import numerics as jnum

__all__ = ["Metric", "METRICS", "get", "metric", "parse", "higher_is_better", "SPLITS"]

SPLITS = ("train", "val", "test")


class Metric(NamedTuple):
    name: str
    higher_is_better: bool
    stats: Callable[[jax.Array, jax.Array, jax.Array], jax.Array]
    finalize: Callable[[jax.Array, Any], jax.Array]


def _mean_of_first(t: jax.Array, n: Any) -> jax.Array:
    return t[0] * (1.0 / n)


def _acc(o: jax.Array, y: jax.Array, l: jax.Array) -> jax.Array:
    return (jnp.argmax(o, -1) == y).astype(jnp.float32)[:, None]


def _loss(o: jax.Array, y: jax.Array, l: jax.Array) -> jax.Array:
    return l[:, None]


METRICS: Mapping[str, Metric] = {
    "acc": Metric("acc", True, _acc, _mean_of_first),
    "loss": Metric("loss", False, _loss, _mean_of_first),
}


def get(spec: Any) -> Metric:
    if isinstance(spec, Metric):
        return spec
    if spec not in METRICS:
        raise ValueError(f"unknown metric {spec!r}; known: {sorted(METRICS)}")
    return METRICS[spec]


def metric(fn: Callable, *, name: str, higher_is_better: bool) -> Metric:
    return Metric(name, higher_is_better, lambda o, y, l: fn(o, y)[:, None], _mean_of_first)


def parse(full_name: str) -> tuple[str, str]:
    for prefix in ("avg_val", "avg_test", "train", "val", "test"):
        if full_name.startswith(prefix + "_"):
            return prefix, full_name[len(prefix) + 1 :]
    return "", full_name


def higher_is_better(full_name: str, custom: Mapping[str, Metric] = {}) -> bool:
    _, base = parse(full_name)
    m = custom.get(base) or METRICS.get(base)
    return bool(m.higher_is_better) if m else False
