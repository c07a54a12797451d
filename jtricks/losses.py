"""Training losses as per-example functions (placeholder; full module lands with its tests)."""

from __future__ import annotations

from typing import Any, Callable, Literal, Mapping, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jtricks import numerics as jnum

__all__ = ["Loss", "LOSSES", "get", "loss", "check_targets"]


class Loss(NamedTuple):
    name: str
    fn: Callable[[jax.Array, jax.Array, Mapping[str, jax.Array]], jax.Array]
    targets: Literal["class", "binary", "real"]
    hparams: Mapping[str, float]


def _ce(outputs: jax.Array, targets: jax.Array, hparams: Mapping[str, jax.Array]) -> jax.Array:
    return jnum.softmax_cross_entropy(outputs, targets)


def _mse(outputs: jax.Array, targets: jax.Array, hparams: Mapping[str, jax.Array]) -> jax.Array:
    if outputs.ndim == targets.ndim + 1 and outputs.shape[-1] == 1:
        outputs = outputs[..., 0]
    d = jnp.square(outputs - targets)
    return d if d.ndim == 1 else jnum.mean(d, tuple(range(1, d.ndim)))


LOSSES: Mapping[str, Loss] = {
    "cross_entropy": Loss("cross_entropy", _ce, "class", {}),
    "mse": Loss("mse", _mse, "real", {}),
}


def loss(fn: Callable, *, name: str | None = None, targets: str = "real", hparams: Mapping[str, float] | None = None) -> Loss:
    return Loss(name or getattr(fn, "__name__", "loss"), fn, targets, dict(hparams or {}))  # type: ignore[arg-type]


def get(spec: Any) -> Loss:
    if isinstance(spec, Loss):
        return spec
    if isinstance(spec, str):
        if spec not in LOSSES:
            raise ValueError(f"unknown loss {spec!r}; known: {sorted(LOSSES)} or a callable")
        return LOSSES[spec]
    if callable(spec):
        return loss(spec)
    raise TypeError(f"loss must be a name, a Loss or a callable, got {spec!r}")


def check_targets(loss: Loss, y: np.ndarray, *, num_outputs: int | None, split: str) -> None:
    y = np.asarray(y)
    if loss.targets == "class":
        if not np.issubdtype(y.dtype, np.integer):
            raise ValueError(f"{split} targets must be integer class labels for loss {loss.name!r}")
        if num_outputs is not None and y.size and (y.min() < 0 or y.max() >= num_outputs):
            raise ValueError(f"{split} labels span [{y.min()}, {y.max()}] but the model has {num_outputs} outputs")
