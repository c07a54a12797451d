"""Per-example losses by name or as a user's callable, and the check of targets against a loss.

A :class:`Loss` is a pure ``fn(outputs, targets, hparams) -> (B,)`` per-example loss, the kind of
targets it expects and the numeric hyperparameters it reads (with their defaults)::

    cross_entropy           ℓ = −log softmax(z)_y                                   targets: class ids
    smoothed_cross_entropy  ℓ = −Σ_k q_k log softmax(z)_k,  q = (1−ε)·onehot(y) + ε/K   (ε = label_smoothing)
    binary_cross_entropy    ℓ = −y log σ(z) − (1−y) log σ(−z)  (mean over outputs)     targets: 0 / 1
    mse                     ℓ = mean_j (o_j − y_j)²                                   targets: real numbers

Every reduction over a class or output axis is a :func:`jtricks.numerics.pairwise_sum` /
:func:`jtricks.numerics.mean`, whose rounding ``jax.vmap`` cannot change, so a population member's loss
is bit for bit its standalone value. ``hparams`` may hold traced arrays (one compiled loss serves a
vmapped grid over, e.g., ``label_smoothing``).

A loss's hyperparameters have their own namespace in an experiment (:func:`hparam_keys`): your loss's ``gamma`` is
the key ``loss.gamma`` of ``hparams``, ``grid`` and ``--set``, never the optimizer's ``gamma``; the library's own
loss hyperparameters (``label_smoothing``, owner ``"loss"`` in :data:`jtricks.hparams.REGISTRY`) keep their names.

:func:`check_targets` runs on host numpy arrays before anything compiles and raises a ``ValueError``
naming the split and the loss when the targets cannot be what the loss expects (regression targets
given to a classification loss, labels outside ``[0, num_outputs)``, shapes that disagree).

Example::

    from jtricks import losses
    ce = losses.get("smoothed_cross_entropy")
    per_example = ce.fn(logits, labels, {"label_smoothing": 0.1})          # (B,)
    my = losses.loss(lambda o, y, hp: jnp.abs(o - y)[:, 0], name="l1", targets="real")
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jtricks import hparams as jhparams
from jtricks._core import checks
from jtricks._core import numerics as jnum

__all__ = [
    "Loss",
    "LOSSES",
    "TARGET_KINDS",
    "get",
    "loss",
    "names",
    "check_targets",
    "check_hparams",
    "hparam_keys",
    "HPARAM_PREFIX",
    "prepare_targets",
    "cross_entropy",
    "smoothed_cross_entropy",
    "binary_cross_entropy",
    "mse",
]

TargetKind = Literal["class", "binary", "real"]
#: What a loss expects: integer class ids, 0/1 labels, or real-valued targets.
TARGET_KINDS: tuple[str, ...] = ("class", "binary", "real")
Hparams = Mapping[str, Any]


class Loss(NamedTuple):
    """A per-example loss with its target kind and the numeric hyperparameters it reads.

    Attributes:
      name: the loss's name (for manifests and messages).
      fn: ``fn(outputs (B, ...), targets (B, ...), hparams) -> (B,)``, pure and jittable.
      targets: ``"class"`` (integer ids in ``[0, K)``), ``"binary"`` (0/1) or ``"real"``.
      hparams: the numeric hyperparameters ``fn`` reads, with their defaults (e.g.
        ``{"label_smoothing": 0.1}``); the engine fills them in and may vmap over them.
    """

    name: str
    fn: Callable[[jax.Array, jax.Array, Hparams], jax.Array]
    targets: TargetKind
    hparams: Mapping[str, float]


# --------------------------------------------------------------------------------------------
# the named losses
# --------------------------------------------------------------------------------------------


#: Szegedy et al.'s value, the default of ``smoothed_cross_entropy``.
_DEFAULT_LABEL_SMOOTHING = 0.1


def _hp(hparams: Hparams | None, name: str, default: float) -> Any:
    return default if hparams is None or name not in hparams else hparams[name]


def _per_example(x: jax.Array) -> jax.Array:
    """``(B, ...) -> (B, n)``: one row of values per example."""
    return jnp.reshape(x, (x.shape[0], -1))


def cross_entropy(outputs: jax.Array, targets: jax.Array, hparams: Hparams | None = None) -> jax.Array:
    """``ℓ_i = −log softmax(z_i)_{y_i}``: :func:`jtricks.numerics.softmax_cross_entropy` (vmap-stable)."""
    del hparams
    return jnum.softmax_cross_entropy(outputs, targets)


def smoothed_cross_entropy(outputs: jax.Array, targets: jax.Array, hparams: Hparams | None = None) -> jax.Array:
    """``ℓ_i = −Σ_k q_ik log softmax(z_i)_k`` with ``q_i = (1 − ε)·onehot(y_i) + ε/K``,
    ``ε = hparams["label_smoothing"]``.

    ``ε = 0`` gives :func:`cross_entropy` bit for bit (the smoothed target is then exactly the one-hot).
    Label smoothing: Szegedy et al. 2016, "Rethinking the Inception Architecture".
    """
    eps = jnp.asarray(_hp(hparams, "label_smoothing", _DEFAULT_LABEL_SMOOTHING))
    logp = jnum.log_softmax(outputs)
    k = outputs.shape[-1]
    eps = eps.astype(logp.dtype)
    q = (1.0 - eps) * jax.nn.one_hot(targets, k, dtype=logp.dtype) + eps * jnp.asarray(1.0 / k, logp.dtype)
    return -jnum.pairwise_sum(logp * q, -1)


def binary_cross_entropy(outputs: jax.Array, targets: jax.Array, hparams: Hparams | None = None) -> jax.Array:
    """``ℓ_i = mean_j [−y_ij log σ(z_ij) − (1 − y_ij) log σ(−z_ij)]`` on logits ``z`` (``(B,)``, ``(B, 1)``
    or ``(B, K)`` for K independent labels); ``log σ`` is ``jax.nn.log_sigmoid`` (stable for large ``|z|``)."""
    del hparams
    z = _per_example(outputs)
    y = jnp.reshape(targets, z.shape).astype(z.dtype)
    per = -(y * jax.nn.log_sigmoid(z) + (1.0 - y) * jax.nn.log_sigmoid(-z))
    return jnum.mean(per, -1)


def mse(outputs: jax.Array, targets: jax.Array, hparams: Hparams | None = None) -> jax.Array:
    """``ℓ_i = mean_j (o_ij − y_ij)²`` over the outputs of example ``i`` (``(B,)`` vs ``(B, 1)`` agree)."""
    del hparams
    o = _per_example(outputs)
    y = jnp.reshape(targets, o.shape).astype(o.dtype)
    return jnum.mean(jnp.square(o - y), -1)


#: The named losses.
LOSSES: Mapping[str, Loss] = {
    "cross_entropy": Loss("cross_entropy", cross_entropy, "class", {}),
    "smoothed_cross_entropy": Loss(
        "smoothed_cross_entropy", smoothed_cross_entropy, "class", {"label_smoothing": _DEFAULT_LABEL_SMOOTHING}
    ),
    "binary_cross_entropy": Loss("binary_cross_entropy", binary_cross_entropy, "binary", {}),
    "mse": Loss("mse", mse, "real", {}),
}

#: Valid ranges of the hyperparameters the named losses read: ``name -> (low, high, high_inclusive)``.
_HPARAM_RANGES: Mapping[str, tuple[float, float, bool]] = {"label_smoothing": (0.0, 1.0, False)}


def names() -> tuple[str, ...]:
    """The names :func:`get` accepts."""
    return tuple(LOSSES)


#: The prefix of a loss's own hyperparameters in an experiment's keys (``loss.gamma``).
HPARAM_PREFIX = "loss."


def hparam_keys(loss_: Loss) -> dict[str, str]:
    """``{experiment key: the loss's own name}`` of the hyperparameters ``loss_`` reads.

    A hyperparameter of the library's losses (owner ``"loss"`` in :data:`jtricks.hparams.REGISTRY`:
    ``label_smoothing``) keeps its name; every other one is ``loss.<name>`` (:data:`HPARAM_PREFIX`), so a loss's
    ``gamma`` never shares a key with the optimizer's ``gamma`` or an engine hyperparameter. The engine holds
    the values under these keys and hands the loss its own names (``hparams["gamma"]``).
    """
    out = {}
    for name in loss_.hparams:
        spec = jhparams.REGISTRY.get(name)
        out[name if spec is not None and spec.owner == "loss" else HPARAM_PREFIX + name] = name
    return out


# --------------------------------------------------------------------------------------------
# user losses
# --------------------------------------------------------------------------------------------


def _positional_arity(fn: Callable[..., Any]) -> int | None:
    """How many positional arguments ``fn`` accepts (``None``: any number, or not inspectable)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return None
    return sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params)


def loss(
    fn: Callable[..., jax.Array],
    *,
    name: str | None = None,
    targets: str = "real",
    hparams: Mapping[str, float] | None = None,
) -> Loss:
    """Wrap a user callable as a :class:`Loss`.

    ``fn(outputs, targets, hparams) -> (B,)`` per-example losses; a two-argument ``fn(outputs, targets)``
    is accepted too (it then reads no hyperparameters). ``hparams`` declares the numeric hyperparameters
    ``fn`` reads with their defaults (e.g. ``{"aux_weight": 0.5}``); an experiment sets them as
    ``loss.<name>`` (``hparams={"loss.aux_weight": 1.0}``, ``grid={"loss.aux_weight": [...]}``, see
    :func:`hparam_keys`) and at run time ``fn`` receives the engine's dict of (possibly traced) values under its
    own names (``hparams["aux_weight"]``). Reduce over a class or output axis with
    :func:`jtricks.numerics.pairwise_sum` to keep population members bit-identical to standalone runs.

    Raises:
      TypeError: ``fn`` is not callable or cannot take 2 or 3 positional arguments.
      ValueError: ``targets`` not one of ``"class"``, ``"binary"``, ``"real"``; a bad ``hparams`` entry.
    """
    if isinstance(fn, Loss) or not callable(fn):
        raise TypeError(f"`fn` must be a callable fn(outputs, targets, hparams) -> (B,), got {fn!r}")
    checks.check_choice(targets, "targets", TARGET_KINDS)
    name = getattr(fn, "__name__", type(fn).__name__) if name is None else name
    if not isinstance(name, str) or not name:
        raise ValueError(f"`name` must be a non-empty str, got {name!r}")
    hp = dict(hparams or {})
    for k, v in hp.items():
        if not isinstance(k, str) or not k.isidentifier() or not checks.is_python_number(v):
            raise ValueError(f"`hparams` must map names (identifiers) to default numbers, got {k!r}: {v!r}")
    arity = _positional_arity(fn)
    if arity is not None and arity not in (2, 3):
        raise TypeError(
            f"loss `{name}` must take (outputs, targets, hparams) or (outputs, targets); "
            f"it takes {arity} positional arguments"
        )
    if arity == 2:
        two = fn
        fn = lambda outputs, targets_, hparams_: two(outputs, targets_)  # noqa: E731
    return Loss(name, fn, targets, hp)  # type: ignore[arg-type]


def get(spec: str | Callable[..., jax.Array] | Loss) -> Loss:
    """A :class:`Loss` from a name in :data:`LOSSES`, a :class:`Loss`, or a callable (see :func:`loss`).

    Raises:
      ValueError: an unknown name (the message lists the known ones).
      TypeError: anything else.
    """
    if isinstance(spec, Loss):
        return spec
    if isinstance(spec, str):
        if spec not in LOSSES:
            raise ValueError(f"`loss` must be one of {', '.join(repr(n) for n in LOSSES)} or a callable; got {spec!r}")
        return LOSSES[spec]
    if callable(spec):
        return loss(spec)
    raise TypeError(f"`loss` must be a name ({', '.join(LOSSES)}), a Loss or a callable; got {type(spec).__name__}")


def check_hparams(loss_: Loss, values: Mapping[str, Any]) -> None:
    """Check the Python-number values of the hyperparameters ``loss_`` reads (arrays pass unchecked).

    ``label_smoothing`` must satisfy ``0 <= label_smoothing < 1``.

    Raises:
      ValueError: a value outside its range.
    """
    for name in loss_.hparams:
        if name in values and name in _HPARAM_RANGES:
            low, high, high_inclusive = _HPARAM_RANGES[name]
            checks.check_number(
                name,
                values[name],
                low=low,
                high=high,
                high_inclusive=high_inclusive,
                arrays=True,
                where=f"loss {loss_.name!r}",
            )


# --------------------------------------------------------------------------------------------
# targets, checked on the host before anything compiles
# --------------------------------------------------------------------------------------------


def _outputs_per_example(y: np.ndarray) -> int:
    return int(math.prod(y.shape[1:]))


def _check_shape(y: np.ndarray, num_outputs: int | None, where: str) -> None:
    per = _outputs_per_example(y)
    if num_outputs is not None and per != num_outputs:
        expected = f"({y.shape[0]},) or ({y.shape[0]}, 1)" if num_outputs == 1 else f"({y.shape[0]}, {num_outputs})"
        raise ValueError(
            f"{where}: targets of shape {y.shape} give {per} value(s) per example but the model has "
            f"num_outputs={num_outputs}; expected shape {expected}"
        )


def _check_class(y: np.ndarray, num_outputs: int | None, where: str) -> None:
    if y.ndim != 1:
        raise ValueError(
            f"{where}: class labels must have shape (B,) (one integer per example), got shape {y.shape}"
            + ("; one-hot targets? pass y.argmax(-1)" if y.ndim == 2 and y.shape[1] > 1 else "")
        )
    if np.issubdtype(y.dtype, np.floating) and not np.array_equal(y, np.round(y)):
        bad = y[y != np.round(y)][0].item()
        raise ValueError(
            f"{where}: class labels must be integers, got {bad!r} (dtype {y.dtype}); regression targets? use loss='mse'"
        )
    lo, hi = y.min().item(), y.max().item()
    if lo < 0:
        raise ValueError(f"{where}: class labels must be >= 0, got min label {lo!r}")
    if num_outputs is not None and hi >= num_outputs:
        raise ValueError(
            f"{where}: class labels must lie in [0, {num_outputs}) for a model with "
            f"num_outputs={num_outputs}; got max label {int(hi)}"
        )


def _check_binary(y: np.ndarray, num_outputs: int | None, where: str) -> None:
    if not np.isin(y, (0, 1)).all():
        bad = y[~np.isin(y, (0, 1))].ravel()[0].item()
        raise ValueError(
            f"{where}: binary targets must be 0 or 1, got {bad!r}"
            + ("; class labels? use loss='cross_entropy'" if float(bad).is_integer() else "")
        )
    _check_shape(y, num_outputs, where)


def _check_real(y: np.ndarray, num_outputs: int | None, where: str) -> None:
    _check_shape(y, num_outputs, where)


def check_targets(loss: Loss, y: Any, *, num_outputs: int | None, split: str) -> None:
    """Check targets ``y`` (host numpy) against what ``loss`` expects, before anything compiles.

    * every kind: a leading example axis with at least one example, a real (or bool) dtype, finite values;
    * ``"class"``: shape ``(B,)``; integer labels (integral floats such as ``3.0`` are accepted, ``0.83`` is
      not: "regression targets? use loss='mse'"); ``0 <= y < num_outputs``;
    * ``"binary"``: values 0 or 1; one target per model output (``(B,)`` or ``(B, 1)`` for one logit);
    * ``"real"``: one target per model output (``(B,)`` or ``(B, 1)`` for one output, ``(B, K)`` for K).
      Integer targets (counts, ratings) are allowed and become float32 (see :func:`prepare_targets`).

    ``num_outputs`` is the model's number of outputs per example (``None`` skips the checks that need it).

    Raises:
      ValueError: naming ``split`` and the loss, and what is wrong.
    """
    if not isinstance(loss, Loss):
        raise TypeError(f"`loss` must be a Loss (see jtricks.losses.get), got {type(loss).__name__}")
    where = f"{split} targets for loss {loss.name!r}"
    y = np.asarray(y)
    if y.ndim < 1 or y.shape[0] == 0:
        raise ValueError(f"{where}: need a leading example axis with at least one example, got shape {y.shape}")
    if not (y.dtype == np.bool_ or np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.floating)):
        raise ValueError(f"{where}: targets must be integers, bools or floats, got dtype {y.dtype}")
    if np.issubdtype(y.dtype, np.floating) and not np.isfinite(y).all():
        raise ValueError(f"{where}: targets must be finite, got {np.count_nonzero(~np.isfinite(y))} NaN/inf value(s)")
    if num_outputs is not None:
        checks.check_positive_int(num_outputs, "num_outputs")
    {"class": _check_class, "binary": _check_binary, "real": _check_real}[loss.targets](y, num_outputs, where)


def prepare_targets(loss: Loss, y: Any) -> np.ndarray:
    """Targets in the dtype ``loss.fn`` computes with: int32 class ids, float32 for ``"binary"`` and ``"real"``
    (shape kept). Call after :func:`check_targets`."""
    return np.asarray(y).astype(np.int32 if loss.targets == "class" else np.float32)
