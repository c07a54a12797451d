"""Keeping values in range (the guide's first trick): scaling and standardization of a data set's inputs.

* :func:`scale` -- the affine map of ``src_range = (a, b)`` onto ``[low, high]``:
  ``y = low + (x - a) / (b - a) · (high - low)`` (pixels ``[0, 255] -> [0, 1]`` or ``-> [-1, 1]``), in float32.
* :func:`standardize` -- ``x̂ = (x − μ) / s`` with the mean ``μ`` and population standard deviation ``σ`` of the
  *training split only* (float64 on the host; per feature or one scalar), ``s = σ`` where ``σ > eps`` and
  ``s = 1`` elsewhere; :func:`apply_standardize` applies saved :class:`StandardizeStats` to another split.
* :func:`preprocess` -- a float32 copy of a :class:`~jtricks.data.Dataset` by method name
  (:data:`PREPROCESS_METHODS`: ``"raw"``, ``"unit"`` ``(x − a) / (b − a)``, ``"symmetric"``
  ``2 (x − a) / (b − a) − 1``, ``"standardize"``).
* :func:`fit_preprocessing` -- the same, as a :class:`Preprocessing` fitted on the training split: a function of
  new inputs (a saved model's raw inputs), with what it was fitted to (``to_json`` / ``from_json``).
* :func:`float32_absorbs` -- whether ``small + big == big`` in float32 (spacing ``2^(floor(log2 big) - 23)`` near
  ``big``): why values of order 1 matter.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jtricks._core import checks
from jtricks.data._dataset import Array, Dataset

__all__ = [
    "scale",
    "StandardizeStats",
    "standardize",
    "apply_standardize",
    "PREPROCESS_METHODS",
    "Preprocessing",
    "fit_preprocessing",
    "preprocess",
    "float32_absorbs",
]


def _check_range(name: str, r: Any) -> tuple[float, float]:
    try:
        a, b = r
    except (TypeError, ValueError):
        raise TypeError(f"`{name}` must be a pair (low, high) of numbers, got {r!r}") from None
    if not (checks.is_python_number(a) and checks.is_python_number(b)):
        raise TypeError(f"`{name}` must be a pair (low, high) of Python numbers, got {r!r}")
    a, b = float(a), float(b)
    if not (math.isfinite(a) and math.isfinite(b) and a < b):
        raise ValueError(f"`{name}` must satisfy low < high (finite), got {r!r}")
    return a, b


def _as_float32(x: Array) -> Array:
    if isinstance(x, jax.Array):
        return x.astype(jnp.float32)
    return np.asarray(x, dtype=np.float32)


def scale(x: Array, low: float = 0.0, high: float = 1.0, *, src_range: tuple[float, float] = (0.0, 255.0)) -> Array:
    """Affine map of ``src_range = (a, b)`` onto ``[low, high]``, in float32.

    ``y = low + (x - a) / (b - a) · (high - low)``; e.g. pixels ``[0, 255] -> [0, 1]``
    (``low=0, high=1``) or ``-> [-1, 1]`` (``low=-1, high=1``); for these two targets the end
    points map exactly (``a -> low``, ``b -> high``) on numpy input. Values outside ``src_range``
    map outside ``[low, high]`` (no clipping). Works on numpy arrays (returns numpy; uint8 input
    goes through a 256-entry lookup table of the same float32 arithmetic) and jax arrays (returns
    jax, jittable; XLA may fuse the ops, so results can differ from numpy's in the last bit).

    This is the guide's first trick, *keep values in range*: inputs of order 1 keep the first
    layer's pre-activations of order 1 (no saturated sigmoid/tanh, no huge first-layer gradients,
    no float32 absorption; see :func:`float32_absorbs`).
    """
    lo, hi = _check_range("(low, high)", (low, high))
    a, b = _check_range("src_range", src_range)
    if isinstance(x, jax.Array):
        return (x.astype(jnp.float32) - a) / (b - a) * (hi - lo) + lo
    x = np.asarray(x)
    if x.dtype == np.uint8:
        # Same float32 arithmetic on the 256 possible values, then one gather (fast for images).
        return _scale_np(np.arange(256, dtype=np.float32), a, b, lo, hi)[x]
    return _scale_np(x.astype(np.float32), a, b, lo, hi)


def _scale_np(xf: np.ndarray, a: float, b: float, lo: float, hi: float) -> np.ndarray:
    xf -= np.float32(a)
    xf /= np.float32(b - a)
    xf *= np.float32(hi - lo)
    xf += np.float32(lo)
    return xf


class StandardizeStats(NamedTuple):
    """Training-split statistics: ``mean`` and the divisor ``scale`` (float32, per feature or scalar)."""

    mean: np.ndarray
    scale: np.ndarray


def _moments(x: np.ndarray, per_feature: bool, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (population) std in float64, two passes in chunks (no full float64 copy)."""
    n = x.shape[0]
    flat = x.reshape(n, -1)  # (N, F): contiguous inner loops (a trailing axis of 1 is slow)
    axis = 0 if per_feature else None
    count = n if per_feature else flat.size
    mean = np.add.reduce(flat, axis=axis, dtype=np.float64) / count
    ss = np.zeros(flat.shape[1] if per_feature else (), np.float64)
    for i in range(0, n, chunk):
        d = flat[i : i + chunk].astype(np.float64)
        d -= mean
        ss += np.einsum("ij,ij->j", d, d) if per_feature else np.vdot(d, d)
    shape = x.shape[1:] if per_feature else ()
    return np.reshape(mean, shape), np.reshape(np.sqrt(ss / count), shape)


def standardize(
    x_train: Array, x_test: Array | None = None, *, per_feature: bool = True, eps: float = 1e-8
) -> tuple[Array, Array | None, StandardizeStats]:
    """Standardize with statistics of the *training split only*: ``x̂ = (x − μ) / s``.

    ``μ`` and ``σ`` are the mean and population standard deviation of ``x_train`` (computed in
    float64 on the host), per feature (pixel) when ``per_feature`` else one scalar over all values;
    ``s = σ`` where ``σ > eps`` and ``s = 1`` elsewhere (constant features, e.g. always-black
    border pixels, are centred but not blown up; scikit-learn's ``StandardScaler`` convention).
    The same ``μ, s`` are applied to ``x_test`` (never its own statistics: that would leak test
    information and shift the two splits differently).

    Returns:
      ``(x_train_std, x_test_std or None, stats)``, float32; reuse ``stats`` with
      :func:`apply_standardize`.
    """
    stats = _fit_standardize(x_train, per_feature, eps)
    x_tr = apply_standardize(x_train, stats)
    x_te = None if x_test is None else apply_standardize(x_test, stats)
    return x_tr, x_te, stats


def _fit_standardize(x_train: Array, per_feature: bool, eps: float) -> StandardizeStats:
    """The statistics of :func:`standardize`: float64 moments of ``x_train``, stored as float32."""
    if not isinstance(per_feature, (bool, np.bool_)):
        raise TypeError(f"`per_feature` must be a bool, got {type(per_feature).__name__}")
    if not checks.is_python_number(eps) or not float(eps) >= 0.0:
        raise ValueError(f"`eps` must be a number >= 0, got {eps!r}")
    xs = np.asarray(x_train)
    if xs.ndim < 1 or xs.shape[0] < 1:
        raise ValueError(f"`x_train` must have at least one example, got shape {xs.shape}")
    mean, std = _moments(xs, bool(per_feature))
    scale_ = np.where(std > float(eps), std, 1.0)
    return StandardizeStats(mean.astype(np.float32), scale_.astype(np.float32))


def apply_standardize(x: Array, stats: StandardizeStats) -> Array:
    """``x̂ = (x − μ) / s`` with saved training statistics (numpy in -> numpy out; jax -> jax)."""
    if isinstance(x, jax.Array):
        return (x.astype(jnp.float32) - jnp.asarray(stats.mean)) / jnp.asarray(stats.scale)
    x = np.asarray(x)
    mean, scale_ = np.asarray(stats.mean, np.float32), np.asarray(stats.scale, np.float32)
    if x.ndim >= 1 and x.shape[1:] == mean.shape and mean.ndim >= 1:
        # Same arithmetic on an (N, F) view: contiguous inner loops are much faster in numpy.
        out = x.reshape(x.shape[0], -1).astype(np.float32)
        out -= mean.reshape(-1)
        out /= scale_.reshape(-1)
        return out.reshape(x.shape)
    return (x.astype(np.float32) - mean) / scale_


PREPROCESS_METHODS = ("raw", "unit", "symmetric", "standardize")

#: The target range of the scaling methods.
_TARGET_RANGES: dict[str, tuple[float, float]] = {"unit": (0.0, 1.0), "symmetric": (-1.0, 1.0)}


@dataclasses.dataclass(frozen=True)
class Preprocessing:
    """A preprocessing method fitted on a training split (:func:`fit_preprocessing`): call it on inputs.

    Attributes:
      method: one of :data:`PREPROCESS_METHODS`.
      src_range: ``"unit"`` / ``"symmetric"``: the ``(a, b)`` mapped onto the target range (the data set's
        ``value_range``, else the training split's ``(min, max)``); else ``None``.
      stats: ``"standardize"``: the training split's :class:`StandardizeStats`; else ``None``.
    """

    method: str
    src_range: tuple[float, float] | None = None
    stats: StandardizeStats | None = None

    def __call__(self, x: Array) -> Array:
        """``x`` (raw inputs, numpy or jax) preprocessed as the training split was, in float32."""
        if self.method == "standardize":
            return apply_standardize(x, self.stats)  # type: ignore[arg-type]
        if self.method in _TARGET_RANGES:
            return scale(x, *_TARGET_RANGES[self.method], src_range=self.src_range)  # type: ignore[arg-type]
        return _as_float32(x)

    def dataset(self, ds: Dataset) -> Dataset:
        """A float32 copy of ``ds`` with every split preprocessed (``value_range``: the target range, ``None``
        after standardizing, unchanged for ``"raw"``)."""
        rng = _TARGET_RANGES.get(self.method, None if self.method == "standardize" else ds.value_range)
        x_va = None if ds.x_val is None else self(ds.x_val)
        return dataclasses.replace(ds, x_train=self(ds.x_train), x_test=self(ds.x_test), x_val=x_va, value_range=rng)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON data, exact (float32 values round-trip through JSON numbers): :meth:`from_json` reads it."""
        doc: dict[str, Any] = {"method": self.method}
        if self.src_range is not None:
            doc["src_range"] = list(self.src_range)
        if self.stats is not None:
            doc["shape"] = list(np.shape(self.stats.mean))
            doc["mean"] = np.asarray(self.stats.mean, np.float32).reshape(-1).tolist()
            doc["scale"] = np.asarray(self.stats.scale, np.float32).reshape(-1).tolist()
        return doc

    @staticmethod
    def from_json(doc: Any) -> Preprocessing:
        """The :class:`Preprocessing` of :meth:`to_json`'s data (``ValueError`` on anything else)."""
        if not isinstance(doc, dict) or doc.get("method") not in PREPROCESS_METHODS:
            raise ValueError(f"not a preprocessing record: {str(doc)[:80]}")
        src = doc.get("src_range")
        stats = None
        if "mean" in doc:
            shape = tuple(doc["shape"])
            stats = StandardizeStats(*(np.asarray(doc[k], np.float32).reshape(shape) for k in ("mean", "scale")))
        return Preprocessing(doc["method"], None if src is None else (float(src[0]), float(src[1])), stats)


def fit_preprocessing(ds: Dataset, method: str, *, per_feature: bool = True) -> Preprocessing:
    """``method`` fitted on ``ds``'s training split (see :func:`preprocess`), as a function of new inputs."""
    if method not in PREPROCESS_METHODS:
        raise ValueError(f"unknown preprocessing method {method!r}; known: {', '.join(PREPROCESS_METHODS)}")
    if method == "standardize":
        return Preprocessing(method, stats=_fit_standardize(ds.x_train, per_feature, 1e-8))
    if method in _TARGET_RANGES:
        src = ds.value_range
        if src is None:
            src = (float(np.min(ds.x_train)), float(np.max(ds.x_train)))
        return Preprocessing(method, src_range=(float(src[0]), float(src[1])))
    return Preprocessing(method)


def preprocess(ds: Dataset, method: str, *, per_feature: bool = True) -> Dataset:
    """A float32 copy of ``ds`` with inputs brought into range.

    * ``"raw"``: the raw values as float32 (``value_range`` unchanged).
    * ``"unit"``: :func:`scale` of ``ds.value_range`` onto ``[0, 1]``: ``(x − a) / (b − a)``.
    * ``"symmetric"``: onto ``[-1, 1]``: ``2 (x − a) / (b − a) − 1``.
    * ``"standardize"``: :func:`standardize` with training statistics
      (``per_feature`` selects per-pixel or global statistics); ``value_range`` becomes ``None``.

    When ``ds.value_range`` is ``None`` (MNIST-1D), ``"unit"`` and ``"symmetric"`` use the
    training split's ``(min, max)``, so test values may fall slightly outside. The same, as a function of
    new inputs: :func:`fit_preprocessing`.
    """
    return fit_preprocessing(ds, method, per_feature=per_feature).dataset(ds)


def float32_absorbs(small: float = 1e-10, big: float = 1e10, dtype: Any = np.float32) -> bool:
    """Whether ``small + big == big`` in ``dtype``: the guide's precision example.

    float32 has a 24-bit significand, so near ``big`` the spacing of representable numbers is
    ``2^(floor(log2 big) - 23)`` (``2^10 = 1024`` at ``1e10``); any ``|small|`` below half of that
    vanishes:
    ``float32_absorbs(1e-10, 1e10)`` is ``True``, as is ``float32_absorbs(100.0, 1e10)``. Keeping
    values of order 1 keeps such sums meaningful.
    """
    dt = np.dtype(dtype)
    if dt.kind != "f":
        raise TypeError(f"`dtype` must be a floating dtype, got {dt}")
    s, b = dt.type(small), dt.type(big)
    return bool(dt.type(s + b) == b)
