"""Per-layer statistics of gradients, parameters, updates and activations (vanishing / exploding gradients).

Everything except :func:`flag_layers` and :func:`format_table` is a pure function of arrays that
returns a dict of scalar arrays, so it runs inside a jitted / scanned / vmapped training step at
the cost of a few reductions per leaf, and its output can be stacked into a per-step history.

Layer names are the leaves' tree paths joined by ``"/"`` (``params["dense_0"]["kernel"]`` is
``"dense_0/kernel"``); with ``group="layer"`` the leaves are grouped by their top-level key
(``"dense_0"`` holds its kernel and bias), and a norm of a group is the L2 norm of all its entries.

Example::

    import jax, jax.numpy as jnp
    from jtricks import diagnostics as diag

    params = {"dense_0": {"kernel": jnp.ones((3, 4)), "bias": jnp.zeros(4)},
              "dense_1": {"kernel": jnp.ones((4, 2)), "bias": jnp.zeros(2)}}
    grads = jax.tree.map(lambda p: 1e-9 * p, params)
    norms = diag.per_layer_norms(grads, group="layer")    # {"dense_0": 3.46e-9, "dense_1": 2.83e-9}
    print(diag.format_table(diag.flag_layers(norms)))      # both "vanishing" (< 1e-7)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jtricks._core import checks

__all__ = [
    "layer_names",
    "per_layer_norms",
    "global_norm",
    "gradient_stats",
    "param_stats",
    "update_ratios",
    "activation_stats",
    "GLOBAL_ROW",
    "FLAG_NAMES",
    "FLAG_OK",
    "FLAG_VANISHING",
    "FLAG_EXPLODING",
    "flag_codes",
    "flag_layers",
    "format_table",
]

PyTree = Any

#: Codes returned by :func:`flag_codes`; ``FLAG_NAMES[code]`` is the label used by :func:`flag_layers`.
FLAG_OK, FLAG_VANISHING, FLAG_EXPLODING = 0, 1, 2
FLAG_NAMES: tuple[str, ...] = ("ok", "vanishing", "exploding")

#: Name of the row over all leaves in :func:`gradient_stats` / :func:`param_stats`.
GLOBAL_ROW = "(global)"
_GROUPS = ("leaf", "layer")
_ROOT = "(root)"
_COLUMN_ORDER = ("norm", "rms", "mean", "std", "max_abs", "nonfinite", "frac_zero", "frac_dead", "flag")


# --------------------------------------------------------------------------------------------
# names and grouping
# --------------------------------------------------------------------------------------------


def _key_str(k: Any) -> str:
    for attr in ("key", "idx", "name"):  # DictKey / FlattenedIndexKey, SequenceKey, GetAttrKey
        if hasattr(k, attr):
            return str(getattr(k, attr))
    return str(k)


def _path_parts(path: tuple[Any, ...]) -> list[str]:
    return [_key_str(k) for k in path]


def _named_leaves(tree: PyTree, fn: str) -> list[tuple[list[str], jax.Array]]:
    out = [(_path_parts(p), x) for p, x in jax.tree_util.tree_flatten_with_path(tree)[0]]
    names = ["/".join(parts) or _ROOT for parts, _ in out]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"{fn}: leaf names collide after joining the path with '/': {dup}")
    return out


def layer_names(tree: PyTree) -> list[str]:
    """The ``"/"``-joined tree path of every leaf, in ``jax.tree_util`` flattening order.

    Dict keys, sequence indices and attribute names become path components:
    ``{"dense_0": {"kernel": w, "bias": b}}`` gives ``["dense_0/bias", "dense_0/kernel"]`` (jax
    flattens dicts in sorted key order). A bare array is named ``"(root)"``.

    Raises:
      ValueError: if two leaves get the same name (e.g. keys ``"a/b"`` and ``"a"`` -> ``"b"``).
    """
    return ["/".join(parts) or _ROOT for parts, _ in _named_leaves(tree, "layer_names")]


def _check_group(group: Any) -> str:
    if not isinstance(group, str) or group not in _GROUPS:
        raise ValueError(f"`group` must be one of {_GROUPS!r}, got {group!r}")
    return group


def _groups(tree: PyTree, group: str, fn: str) -> dict[str, list[jax.Array]]:
    """Ordered mapping name -> leaves (one leaf per name for ``"leaf"``, grouped by top-level key for ``"layer"``)."""
    group = _check_group(group)
    out: dict[str, list[jax.Array]] = {}
    for parts, x in _named_leaves(tree, fn):
        name = ("/".join(parts) if group == "leaf" else (parts[0] if parts else "")) or _ROOT
        out.setdefault(name, []).append(jnp.asarray(x))
    return out


def _f(x: jax.Array) -> jax.Array:
    return x.astype(jnp.promote_types(x.dtype, jnp.float32))


def _scale(xs: list[jax.Array]) -> tuple[jax.Array, jax.Array]:
    """``(max |x|, s)`` over the leaves, with ``s = max |x|`` when finite and > 0, else 1.

    Sums of squares are taken of ``x / s`` and rescaled, so norms of 1e-25 (vanishing) or 1e25
    (exploding) entries neither underflow to 0 nor overflow to inf in float32.
    """
    m = jnp.zeros((), jnp.float32)
    for x in xs:
        if x.size:
            m = jnp.maximum(m, jnp.max(jnp.abs(_f(x))))
    ok = jnp.isfinite(m) & (m > 0)
    return m, jnp.where(ok, m, jnp.ones_like(m))


def _norm(xs: list[jax.Array]) -> jax.Array:
    """``sqrt(sum x^2)`` over the leaves ``xs``, computed as ``s * sqrt(sum (x / s)^2)``."""
    _, s = _scale(xs)
    total = jnp.zeros((), jnp.float32)
    for x in xs:
        total = total + jnp.sum(jnp.square(_f(x) / s))
    return s * jnp.sqrt(total)


# --------------------------------------------------------------------------------------------
# norms and statistics
# --------------------------------------------------------------------------------------------


def global_norm(tree: PyTree) -> jax.Array:
    """``sqrt(sum over every leaf and entry of x^2)`` in at least float32 (as ``optax.global_norm``).

    Computed as ``s * sqrt(sum (x / s)^2)`` with ``s = max |x|``, so the norm of tiny (vanishing)
    or huge (exploding) gradients does not underflow to 0 or overflow to inf; a NaN / Inf entry
    gives a non-finite norm.
    """
    return _norm([jnp.asarray(x) for x in jax.tree_util.tree_leaves(tree)])


def per_layer_norms(tree: PyTree, *, group: str = "leaf") -> dict[str, jax.Array]:
    """L2 norm ``||x||_2 = sqrt(sum x^2)`` per leaf (``group="leaf"``) or per layer (``group="layer"``).

    With ``"layer"`` the leaves are grouped by their top-level key and the norm is over all the
    group's entries: ``norm("dense_0") = sqrt(||kernel||^2 + ||bias||^2)``.

    Raises:
      ValueError: unknown ``group``.
    """
    return {name: _norm(xs) for name, xs in _groups(tree, group, "per_layer_norms").items()}


def _stats(xs: list[jax.Array]) -> dict[str, jax.Array]:
    n = sum(int(np.prod(jnp.shape(x))) for x in xs)
    if n == 0:
        z = jnp.zeros((), jnp.float32)
        return {"norm": z, "rms": z, "mean": z, "std": z, "max_abs": z, "nonfinite": jnp.zeros((), jnp.int32)}
    inv_n = 1.0 / n
    max_abs, s = _scale(xs)
    total = jnp.zeros((), jnp.float32)
    sum_sq = jnp.zeros((), jnp.float32)
    nonfinite = jnp.zeros((), jnp.int32)
    for x in xs:
        if x.size == 0:
            continue
        xf = _f(x)
        y = xf / s
        total = total + jnp.sum(y)
        sum_sq = sum_sq + jnp.sum(jnp.square(y))
        nonfinite = nonfinite + jnp.sum(jnp.logical_not(jnp.isfinite(xf))).astype(jnp.int32)
    mean = total * inv_n
    var = jnp.maximum(sum_sq * inv_n - jnp.square(mean), 0.0)
    return {
        "norm": s * jnp.sqrt(sum_sq),
        "rms": s * jnp.sqrt(sum_sq * inv_n),
        "mean": s * mean,
        "std": s * jnp.sqrt(var),
        "max_abs": max_abs,
        "nonfinite": nonfinite,
    }


def _tree_stats(tree: PyTree, group: str, fn: str) -> dict[str, dict[str, jax.Array]]:
    groups = _groups(tree, group, fn)
    out = {name: _stats(xs) for name, xs in groups.items()}
    out[GLOBAL_ROW] = _stats([x for xs in groups.values() for x in xs])
    return out


def gradient_stats(grads: PyTree, *, group: str = "layer") -> dict[str, dict[str, jax.Array]]:
    """Per-layer gradient statistics plus a ``"(global)"`` row over all gradients.

    For each group of ``n`` entries ``g``: ``norm = ||g||_2``, ``rms = ||g||_2 / sqrt(n)``,
    ``mean``, ``std`` (population), ``max_abs = max |g|`` and ``nonfinite`` (count of NaN / Inf
    entries, int32). The ``"(global)"`` row's ``norm`` is :func:`global_norm`. A first-layer norm
    orders of magnitude below the last layer's signals vanishing gradients, above it exploding
    ones (Glorot & Bengio, 2010); see :func:`flag_layers`.

    Sums are taken of ``g / max|g|`` and rescaled, so tiny and huge values neither underflow
    nor overflow; ``std`` is ``sqrt(E[g^2] - E[g]^2)`` in float32 (fine for diagnostics).

    Raises:
      ValueError: unknown ``group``.
    """
    return _tree_stats(grads, group, "gradient_stats")


def param_stats(params: PyTree, *, group: str = "layer") -> dict[str, dict[str, jax.Array]]:
    """Per-layer parameter statistics plus a ``"(global)"`` row: the fields of :func:`gradient_stats`.

    ``std`` per kernel is the quantity an initializer sets (e.g. ``sqrt(2 / n_in)`` for He);
    ``nonfinite > 0`` marks a diverged run.

    Raises:
      ValueError: unknown ``group``.
    """
    return _tree_stats(params, group, "param_stats")


def update_ratios(updates: PyTree, params: PyTree, *, eps: float = 1e-12, group: str = "layer") -> dict[str, jax.Array]:
    """Relative update size per layer: ``||delta theta|| / (||theta|| + eps)``.

    ``updates`` are the increments added to the parameters (optax's ``updates``, i.e.
    ``theta_new - theta``). A common rule of thumb (Karpathy, CS231n) puts healthy values near
    ``1e-3``: much smaller means the layer barely learns (too small a learning rate or vanishing
    gradients), much larger means it is being overwritten (too large a rate, exploding gradients).

    Raises:
      ValueError: unknown ``group``, a negative Python ``eps``, or ``updates`` with a different
        structure than ``params``.
    """
    if checks.is_python_number(eps) and not (math.isfinite(float(eps)) and float(eps) >= 0):
        raise ValueError(f"`eps` must be a finite number >= 0, got {eps!r}")
    tu, tp = jax.tree_util.tree_structure(updates), jax.tree_util.tree_structure(params)
    if tu != tp:
        raise ValueError(f"update_ratios: `updates` must have the structure of `params`; got {tu} vs {tp}")
    gu = _groups(updates, group, "update_ratios")
    gp = _groups(params, group, "update_ratios")
    e = jnp.asarray(eps, jnp.float32)
    return {name: _norm(gu[name]) / (_norm(gp[name]) + e) for name in gp}


def activation_stats(acts: Mapping[str, jax.Array]) -> dict[str, dict[str, jax.Array]]:
    """Per-layer activation statistics for a mapping ``name -> activations (batch, ..., units)``.

    For each layer: ``mean``, ``std`` (population), ``frac_zero`` (fraction of exactly-zero
    entries: inactive ReLUs on this batch), ``frac_dead`` (fraction of units, last axis, that are
    zero for every example and position: dead ReLUs) and ``max_abs``. Saturated ``tanh`` /
    ``sigmoid`` layers show ``max_abs`` near 1 with a large ``std``; collapsing activations (a
    small ``std`` shrinking with depth) go with vanishing gradients (Glorot & Bengio, 2010).

    Raises:
      TypeError: ``acts`` is not a mapping.
    """
    if not isinstance(acts, Mapping):
        raise TypeError(f"`acts` must be a mapping from layer name to activations, got {type(acts).__name__}")
    out: dict[str, dict[str, jax.Array]] = {}
    for name, a in acts.items():
        a = _f(jnp.asarray(a))
        zero = a == 0
        dead = jnp.all(zero.reshape(-1, a.shape[-1]), axis=0) if a.ndim >= 1 else zero
        out[str(name)] = {
            "mean": jnp.mean(a),
            "std": jnp.std(a),
            "frac_zero": jnp.mean(zero.astype(jnp.float32)),
            "frac_dead": jnp.mean(dead.astype(jnp.float32)),
            "max_abs": jnp.max(jnp.abs(a)),
        }
    return out


# --------------------------------------------------------------------------------------------
# flags
# --------------------------------------------------------------------------------------------


def _norm_of(value: Any) -> Any:
    return value["norm"] if isinstance(value, Mapping) else value


def _check_thresholds(vanishing: Any, exploding: Any) -> None:
    for name, v in (("vanishing", vanishing), ("exploding", exploding)):
        if isinstance(v, (bool, np.bool_)):
            raise TypeError(f"`{name}` must be a number >= 0, got {v!r}")
        if checks.is_python_number(v) and not (float(v) >= 0 and not math.isnan(float(v))):
            raise ValueError(f"`{name}` must be a number >= 0, got {v!r}")
    if checks.is_python_number(vanishing) and checks.is_python_number(exploding) and vanishing >= exploding:
        raise ValueError(f"need `vanishing` < `exploding`, got vanishing={vanishing!r}, exploding={exploding!r}")


def flag_codes(
    norms: Mapping[str, Any], *, vanishing: float | jax.Array = 1e-7, exploding: float | jax.Array = 1e4
) -> dict[str, jax.Array]:
    """Jittable flags: per name an int32 code, ``FLAG_EXPLODING`` (2) if the norm is non-finite or
    ``> exploding``, ``FLAG_VANISHING`` (1) if ``< vanishing``, else ``FLAG_OK`` (0).

    ``norms`` maps names to scalar (or batched, e.g. per population member) norms, or to stat rows
    with a ``"norm"`` field (the output of :func:`gradient_stats`). Thresholds may be traced.

    Raises:
      ValueError: a Python threshold is negative / NaN, or ``vanishing >= exploding``.
    """
    _check_thresholds(vanishing, exploding)
    lo, hi = jnp.asarray(vanishing, jnp.float32), jnp.asarray(exploding, jnp.float32)
    out = {}
    for name, value in norms.items():
        v = jnp.asarray(_norm_of(value))
        v = v.astype(jnp.promote_types(v.dtype, jnp.float32))
        bad = jnp.logical_not(jnp.isfinite(v)) | (v > hi)
        out[name] = jnp.where(bad, FLAG_EXPLODING, jnp.where(v < lo, FLAG_VANISHING, FLAG_OK)).astype(jnp.int32)
    return out


def flag_layers(norms: Mapping[str, Any], *, vanishing: float = 1e-7, exploding: float = 1e4) -> dict[str, str]:
    """Host-side labels ``"ok"`` | ``"vanishing"`` | ``"exploding"`` per layer, over concrete values.

    Same rule as :func:`flag_codes`: non-finite or ``> exploding`` is ``"exploding"``,
    ``< vanishing`` is ``"vanishing"``. The defaults are deliberately loose (gradient norms of
    a healthy float32 network are many orders inside them); tighten them relative to your model,
    e.g. ``vanishing = 1e-3 * median norm``. Values must be concrete scalars (not tracers).

    Raises:
      ValueError: a value is not a scalar, or bad thresholds (see :func:`flag_codes`).
    """
    _check_thresholds(vanishing, exploding)
    out = {}
    for name, value in norms.items():
        v = np.asarray(_norm_of(value), dtype=np.float64)
        if v.ndim != 0:
            raise ValueError(
                f"flag_layers: the norm of {name!r} must be a scalar, got shape {v.shape}; "
                "use flag_codes for batched norms"
            )
        x = float(v)
        if not math.isfinite(x) or x > exploding:
            out[name] = FLAG_NAMES[FLAG_EXPLODING]
        elif x < vanishing:
            out[name] = FLAG_NAMES[FLAG_VANISHING]
        else:
            out[name] = FLAG_NAMES[FLAG_OK]
    return out


# --------------------------------------------------------------------------------------------
# table
# --------------------------------------------------------------------------------------------


def _fmt(value: Any, precision: int) -> str:
    if isinstance(value, str):
        return value
    v = np.asarray(value)
    if v.ndim != 0:
        raise ValueError(f"format_table: values must be scalars, got shape {v.shape} (index one population member)")
    if v.dtype == np.bool_:
        return str(bool(v))
    if np.issubdtype(v.dtype, np.integer):
        return str(int(v))
    return f"{float(v):.{precision}g}"


def format_table(stats: Mapping[str, Any], *, precision: int = 4) -> str:
    """A small fixed-width text table of ``stats``.

    ``stats`` is either ``{name: scalar_or_str}`` (two columns ``name | value``) or
    ``{name: {column: scalar_or_str}}`` (one row per name, the union of the columns; missing cells
    are blank), e.g. the output of :func:`gradient_stats`, :func:`activation_stats`,
    :func:`per_layer_norms` or :func:`flag_layers`. Floats use ``precision`` significant digits.
    Values must be concrete scalars. Since ``jax.jit`` returns dicts with sorted keys, the known
    columns (``norm, rms, mean, std, max_abs, nonfinite, frac_zero, frac_dead, flag``) come first
    in that order, other columns after them in first-seen order, and the ``"(global)"`` row last.

    Raises:
      ValueError: a value is not a scalar.
    """
    if not isinstance(stats, Mapping):
        raise TypeError(f"`stats` must be a mapping, got {type(stats).__name__}")
    names = [n for n in stats if n != GLOBAL_ROW] + [n for n in stats if n == GLOBAL_ROW]
    nested = any(isinstance(v, Mapping) for v in stats.values())
    if nested:
        columns: list[str] = []
        for row in stats.values():
            for c in row if isinstance(row, Mapping) else ["value"]:
                if c not in columns:
                    columns.append(c)
        known = {c: i for i, c in enumerate(_COLUMN_ORDER)}
        columns.sort(key=lambda c: known.get(c, len(known)))  # stable: unknown columns keep their order
        header = ["name", *map(str, columns)]
        rows = []
        for name in names:
            row = stats[name]
            row = row if isinstance(row, Mapping) else {"value": row}
            rows.append([str(name), *(_fmt(row[c], precision) if c in row else "" for c in columns)])
    else:
        header = ["name", "value"]
        rows = [[str(name), _fmt(stats[name], precision)] for name in names]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = [c.rjust(w) for c, w in zip(cells[1:], widths[1:])]
        return "  ".join([first, *rest]).rstrip()

    sep = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), sep, *(line(r) for r in rows)])
