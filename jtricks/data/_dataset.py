"""The data set container: :class:`Dataset` (a train/test split held as host arrays, raw values) and :func:`arrays`
(a :class:`Dataset` from your own numpy / JAX arrays), with the helpers the loaders share.

Every loader returns a :class:`Dataset` holding the *raw* values (uint8 pixels in ``[0, 255]`` for IDX data,
``[0, 16]`` for digits) so that the scaling trick is an explicit, visible step (:mod:`jtricks.data`'s
``preprocess``). Arrays are marked read-only (:func:`readonly`): they may be shared with an in-process cache.

:meth:`Dataset.subset` and the digits split draw a stratified random sample with :func:`stratified_choice`:
class ``k`` with ``c_k`` of the ``N`` labels gets ``floor(n·c_k/N)`` places, the leftover places go to the
largest remainders ``n·c_k/N - floor(n·c_k/N)`` (ties: the smaller class index).

Every :class:`Dataset` is checked once, on the host, when it is made (:func:`check_values`): classification labels
in ``[0, num_classes)``, and no NaN / Inf among the features or regression targets of any split unless
``allow_nonfinite=True``. A refusal is one ``ValueError`` naming the split, the count of bad values and the first
example holding one. Integer and bool arrays cannot hold NaN / Inf and cost nothing; a float array costs one
``numpy.isfinite`` pass in chunks (about 30 ms for MNIST's 60,000 float32 images).
"""

from __future__ import annotations

import dataclasses
import numbers
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from jtricks._core import checks

__all__ = [
    "Array",
    "Dataset",
    "arrays",
    "check_values",
    "check_seed",
    "readonly",
    "stratified_choice",
    "warn_float32_targets",
]

Array = Any  # a numpy array or a jax array


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """A train/test data set held as host (numpy) arrays: classification, or regression.

    Attributes:
      name: the data set's name (``"fashion_mnist"``, ...).
      x_train, x_test: inputs, ``(N, *input_shape)``. Loaders keep the *raw* values (uint8 pixels
        for image data) so that scaling is an explicit step (:func:`preprocess`).
      y_train, y_test: classification: int labels in ``[0, num_classes)``, ``(N,)``; regression
        (``num_classes=None``): float targets ``(N,)`` or ``(N, K)``.
      num_classes: number of classes, or ``None`` for a regression task.
      input_shape: the shape of one example: ``(28, 28, 1)`` (NHWC) for MNIST-like images,
        ``(8, 8, 1)`` for digits, ``(40,)`` for MNIST-1D.
      value_range: ``(low, high)`` of the raw values when known (``(0, 255)`` for IDX images,
        ``(0, 16)`` for digits; ``(0, 1)`` / ``(-1, 1)`` after scaling), else ``None``.
      class_names: optional human-readable class names.
      x_val, y_val: an optional validation split of the data set's own (otherwise the experiment holds
        ``n_val`` examples out of the training split).
      allow_nonfinite: ``False`` (the default) refuses NaN / Inf among the features (and regression
        targets) of any split with a ``ValueError`` naming the split, the count and the first bad example
        (:func:`check_values`); ``True`` keeps them, for a model that handles them itself.

    Loaders return arrays marked read-only (they may be shared with an in-process cache); derive
    new arrays (``preprocess``, ``np.array(x)``) instead of writing into them. Build one from your own
    arrays with :func:`arrays`.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int | None
    input_shape: tuple[int, ...]
    value_range: tuple[float, float] | None = None
    class_names: tuple[str, ...] | None = None
    x_val: np.ndarray | None = None
    y_val: np.ndarray | None = None
    allow_nonfinite: bool = False

    def __post_init__(self) -> None:
        shape = tuple(int(s) for s in self.input_shape)
        object.__setattr__(self, "input_shape", shape)
        if (self.x_val is None) != (self.y_val is None):
            raise ValueError(f"Dataset {self.name!r}: give both x_val and y_val, or neither")
        splits = ("train", "val", "test") if self.x_val is not None else ("train", "test")
        for split in splits:
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if tuple(x.shape[1:]) != shape:
                raise ValueError(f"Dataset {self.name!r}: x_{split} has shape {tuple(x.shape)}, expected (N, *{shape})")
            ok_ndim = y.ndim == 1 or (self.num_classes is None and y.ndim == 2)
            if not ok_ndim or y.shape[0] != x.shape[0]:
                raise ValueError(
                    f"Dataset {self.name!r}: y_{split} has shape {tuple(y.shape)}, expected ({x.shape[0]},) "
                    f"to match x_{split}" + ("" if self.num_classes is not None else f" or ({x.shape[0]}, K)")
                )
        if self.num_classes is not None and (
            not isinstance(self.num_classes, numbers.Integral) or self.num_classes < 1
        ):
            raise ValueError(
                f"Dataset {self.name!r}: `num_classes` must be a positive int (or None for "
                f"regression), got {self.num_classes!r}"
            )
        if not isinstance(self.allow_nonfinite, (bool, np.bool_)):
            raise TypeError(f"`allow_nonfinite` must be a bool, got {type(self.allow_nonfinite).__name__}")
        check_values(self)

    def __repr__(self) -> str:
        task = f"num_classes={self.num_classes}" if self.num_classes is not None else "regression"
        val = f", n_val={len(self.x_val)}" if self.x_val is not None else ""
        return (
            f"Dataset({self.name!r}, n_train={self.num_train}{val}, n_test={self.num_test}, "
            f"input_shape={self.input_shape}, {task})"
        )

    @property
    def num_outputs(self) -> int:
        """Outputs a model needs: the class count, or the regression target width (1 for ``(N,)`` targets)."""
        if self.num_classes is not None:
            return int(self.num_classes)
        return 1 if self.y_train.ndim == 1 else int(self.y_train.shape[1])

    @property
    def num_train(self) -> int:
        """Number of training examples."""
        return int(self.x_train.shape[0])

    @property
    def num_test(self) -> int:
        """Number of test examples."""
        return int(self.x_test.shape[0])

    def subset(self, n_train: int, n_test: int | None = None, *, seed: int | None = None) -> Dataset:
        """A smaller copy: ``n_train`` training and ``n_test`` (default: all) test examples.

        ``seed=None`` takes the first ``n`` examples of each split (the files' order; deterministic,
        not stratified). An int ``seed`` draws a stratified random sample instead: class ``k`` with
        ``c_k`` of the ``N`` examples gets ``floor(n·c_k/N)`` places plus one of the leftover places
        by largest remainder, drawn with ``numpy.random.default_rng(seed)``; the result is in random
        order.
        """
        n_train = _check_count("n_train", n_train, self.num_train)
        n_test = self.num_test if n_test is None else _check_count("n_test", n_test, self.num_test)
        if seed is None:
            tr, te = np.arange(n_train), np.arange(n_test)
        else:
            rng = np.random.default_rng(check_seed(seed))
            tr = stratified_choice(self.y_train, n_train, rng)
            te = stratified_choice(self.y_test, n_test, rng)
        return dataclasses.replace(
            self,
            x_train=readonly(self.x_train[tr]),
            y_train=readonly(self.y_train[tr]),
            x_test=readonly(self.x_test[te]),
            y_test=readonly(self.y_test[te]),
        )


def arrays(
    x_train: Array,
    y_train: Array,
    x_test: Array,
    y_test: Array,
    *,
    num_classes: int | None,
    x_val: Array | None = None,
    y_val: Array | None = None,
    name: str = "arrays",
    value_range: tuple[float, float] | None = None,
    allow_nonfinite: bool = False,
) -> Dataset:
    """A :class:`Dataset` from your own numpy / JAX arrays (``num_classes=None``: regression targets).

    Classification labels become int32 (float labels must be integral, else ``ValueError``). Regression targets
    become float32, the precision the engine trains in: float64 targets that float32 cannot hold exactly are
    rounded with one warning naming the splits and the largest relative change (:func:`warn_float32_targets`);
    cast them yourself (``y.astype(np.float32)``) to make the rounding yours. The values are checked once, on
    the host (:func:`check_values`): NaN / Inf among the features or regression targets of any split raise
    ``ValueError`` naming the split, the count and the first bad example, unless ``allow_nonfinite=True``;
    classification labels outside ``[0, num_classes)`` always do.
    """

    def host(a: Array, what: str) -> np.ndarray:
        out = np.asarray(a)
        if out.ndim == 0:
            raise ValueError(f"`{what}` must have a leading example axis, got a scalar")
        return out

    xs = {k: host(v, k) for k, v in (("x_train", x_train), ("x_test", x_test), ("x_val", x_val)) if v is not None}
    ys = {k: host(v, k) for k, v in (("y_train", y_train), ("y_test", y_test), ("y_val", y_val)) if v is not None}
    for k, y in ys.items():
        if num_classes is not None and not np.issubdtype(y.dtype, np.integer):
            if not np.all(np.isfinite(y)) or not np.all(y == np.round(y)):
                raise ValueError(
                    f"`{k}` holds non-integer values but num_classes={num_classes} (classification); "
                    "pass num_classes=None for regression targets"
                )
            ys[k] = y.astype(np.int32)
    if num_classes is None:
        warn_float32_targets(ys, name, stacklevel=3)
        ys = {k: y.astype(np.float32) for k, y in ys.items()}
    return Dataset(
        name,
        xs["x_train"],
        ys["y_train"],
        xs["x_test"],
        ys["y_test"],
        num_classes,
        tuple(xs["x_train"].shape[1:]),
        value_range,
        None,
        xs.get("x_val"),
        ys.get("y_val"),
        allow_nonfinite,
    )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


_CHECK_ROWS = 8192  # examples per numpy pass: bounded temporary memory


def _bad_examples(a: np.ndarray, is_ok: Any) -> tuple[int, int]:
    """``(count, first)``: how many values of ``a`` fail ``is_ok``, and the first example (leading axis) holding
    one (-1 when none)."""
    flat = a.reshape(a.shape[0], int(np.prod(a.shape[1:], dtype=np.int64)))
    count, first = 0, -1
    for start in range(0, flat.shape[0], _CHECK_ROWS):
        ok = is_ok(flat[start : start + _CHECK_ROWS])
        n = ok.size - int(np.count_nonzero(ok))
        if n and first < 0:
            first = start + int(np.argmin(ok.all(axis=1)))
        count += n
    return count, first


def check_values(ds: Dataset) -> None:
    """Refuse bad values in every split of ``ds``, on the host, before anything compiles.

    * features (and regression targets): NaN / Inf, unless ``ds.allow_nonfinite``; integer and bool arrays
      are skipped (they cannot hold them);
    * classification labels: values outside ``[0, num_classes)``.

    Raises:
      ValueError: one line naming the split, the count of bad values and the first example holding one, e.g.
        ``Dataset 'arrays': the test features hold 3 non-finite values (NaN/Inf), first at example 17; clean
        them or pass allow_nonfinite=True``.
    """
    splits = ("train", "val", "test") if ds.x_val is not None else ("train", "test")
    for split in splits:
        arrays_ = [("features", np.asarray(getattr(ds, f"x_{split}")))]
        y = np.asarray(getattr(ds, f"y_{split}"))
        if ds.num_classes is not None:
            n_cls = int(ds.num_classes)
            count, first = _bad_examples(y, lambda v: (v >= 0) & (v < n_cls))
            if count:
                raise ValueError(
                    f"Dataset {ds.name!r}: the {split} labels hold {_count(count, 'value')} outside [0, {n_cls}), "
                    f"first at example {first}; labels are class indices 0..{n_cls - 1}"
                )
        else:
            arrays_.append(("targets", y))
        if ds.allow_nonfinite:
            continue
        for what, a in arrays_:
            if a.dtype.kind not in "fc":
                continue
            count, first = _bad_examples(a, np.isfinite)
            if count:
                raise ValueError(
                    f"Dataset {ds.name!r}: the {split} {what} hold {_count(count, 'non-finite value')} (NaN/Inf), "
                    f"first at example {first}; clean them or pass allow_nonfinite=True"
                )


def warn_float32_targets(ys: Mapping[str, Any], name: str, *, stacklevel: int = 2) -> None:
    """One ``UserWarning`` when float32 cannot hold the floating targets ``ys`` (``{split: y}``) exactly.

    The engine trains in float32, so real-valued targets are rounded to float32; a float64 (or wider) array
    whose values change by the rounding is named, with the largest relative change ``max |y32 − y| / |y|``.
    Nothing is said when the rounding is exact (float32 data held as float64, integers below ``2^24``).
    """
    changed, worst = [], 0.0
    for split, y in ys.items():
        a = np.asarray(y)
        if a.dtype.kind != "f" or a.dtype.itemsize <= 4:
            continue
        with np.errstate(all="ignore"):  # values beyond float32's range round to inf: an infinite change
            err = np.abs(a.astype(np.float32).astype(a.dtype) - a)
            rel = err / np.where(a == 0, 1, np.abs(a))
        if np.any(err > 0):
            changed.append(split)
            worst = max(worst, float(np.nanmax(rel)))
    if changed:
        warnings.warn(
            f"data set {name!r}: {', '.join(changed)} are {np.asarray(ys[changed[0]]).dtype} regression targets, "
            f"rounded to float32, the precision jtricks trains in (largest relative change {worst:.2g}); pass "
            "y.astype(np.float32) to round them yourself",
            UserWarning,
            stacklevel=stacklevel + 1,
        )


def _check_count(name: str, n: Any, maximum: int) -> int:
    if not checks.is_python_int(n):
        raise TypeError(f"`{name}` must be a Python int, got {type(n).__name__}")
    if not 1 <= int(n) <= maximum:
        raise ValueError(f"`{name}` must satisfy 1 <= {name} <= {maximum}, got {n}")
    return int(n)


def check_seed(seed: Any) -> int:
    """``seed`` as an int; ``TypeError`` unless it is a non-negative Python int."""
    if not checks.is_python_int(seed) or int(seed) < 0:
        raise TypeError(f"`seed` must be a non-negative Python int, got {seed!r}")
    return int(seed)


def readonly(a: np.ndarray) -> np.ndarray:
    """``a`` itself, marked read-only (it may be shared with an in-process cache)."""
    a.setflags(write=False)
    return a


def stratified_choice(y: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of a stratified random sample of size ``n`` from labels ``y`` (random order).

    Class ``k`` with ``c_k`` of the ``N`` labels gets ``floor(n·c_k/N)`` places; the remaining
    places go to the classes with the largest remainders ``n·c_k/N - floor(n·c_k/N)`` (ties: the
    smaller class index).
    """
    y = np.asarray(y)
    classes, counts = np.unique(y, return_counts=True)
    exact = n * counts / y.shape[0]
    quota = np.floor(exact).astype(np.int64)
    leftover = n - int(quota.sum())
    order = np.lexsort((classes, -(exact - quota)))  # largest remainder first, then class index
    quota[order[:leftover]] += 1
    chosen = [rng.permutation(np.flatnonzero(y == c))[:q] for c, q in zip(classes, quota)]
    return rng.permutation(np.concatenate(chosen))
