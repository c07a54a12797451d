"""The training engine: a pure train step, one epoch driver, evaluation, and a whole run as one pure function.

Model of execution (see ``docs/engine.md``)::

    state  = init_state(config, key, hparams, input_shape)      # one member
    state, m = make_train_step(config)(state, x_all, y_all, batch_idx) # one optimizer step
    state, h = make_epoch(config)(state, data)                    # one epoch (steps fused in lax.scan)
    train    = make_train(config, data); state, history = train(key, hparams)   # a whole run

Everything is a pure function of (state, data), so ``jax.vmap`` turns one member into a population:
seeds × numeric hyperparameters (learning rate, dropout rate, weight decay, ...) run as ONE compiled
program. Numeric hyperparameters live as arrays in ``state.hparams`` (and in the optimizer state through
``optax.inject_hyperparams``); only the :class:`TrainConfig` is static.

One epoch is always :func:`run_epoch` over an :class:`EpochOps`: the in-program pieces of
:func:`epoch_ops` (the scan execution and :func:`make_train`) or the jitted population pieces of the
host-loop execution (:mod:`jtricks.programs`). The driver is the same code in both.

Per-member safety: a member with a step whose loss or gradient is non-finite, or whose objective explodes
(above ``divergence_factor`` times the member's first objective), is marked diverged
(``state.diverged_epoch``) and, at the end of that epoch, restored to its state at the epoch's start and
frozen (:func:`guard_epoch`, one select per epoch instead of one per step); its metrics from that epoch
on are NaN, and no other member is affected. Early stopping freezes a member after restoring its best
params (its steps are then not applied). Both use ``jnp.where`` masks, never Python branches on traced values.

Randomness comes from named streams of the member's root key (:mod:`jtricks.keys`): ``"init"`` for the
weights, ``"data"`` for the epoch permutations, ``"dropout"`` for dropout masks, ``"augment"`` for the data
augmentation of each step (:mod:`jtricks.augment`). Toggling dropout or augmentation, or changing their
rates, therefore leaves the initial weights and the data order of a seed unchanged.

Gradient accumulation (``OptimizerSpec.accumulate = k``, ``optax.MultiSteps``): each step is one micro-batch
of ``batch_size / k`` examples (the epoch's batches cut in ``k``, in order) and every ``k``-th step applies the
update of the ``k`` averaged gradients; the learning-rate schedule counts applied updates.

Mixed precision (``TrainConfig.precision``, ``docs/precision.md``): with ``"bfloat16"`` or ``"float16"`` the
model's ``apply`` runs on params and inputs cast to that dtype, its outputs are cast back to float32 before the
loss and the metrics, and the gradients, the optimizer and the master params stay float32; ``"float16"`` scales
the loss dynamically (``TrainState.loss_scale``) and skips a step whose gradients are not finite. With
``"float32"`` no cast is traced: the program is the plain one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jtricks import augment as jaug
from jtricks import data as jdata
from jtricks import diagnostics as jdiag
from jtricks import hparams as jhparams
from jtricks import losses as jlosses
from jtricks import metrics as jmetrics
from jtricks import models as jmodels
from jtricks import optim as joptim
from jtricks import regularize as jreg
from jtricks._core import numerics as jnum
from jtricks._core import precision as jprec
from jtricks._core.keys import key_for

__all__ = [
    "TrainConfig",
    "TrainState",
    "DeviceData",
    "EpochOps",
    "ENGINE_HPARAMS",
    "default_hparams",
    "validate_hparams",
    "as_arrays",
    "device_data",
    "streamed_data",
    "init_state",
    "loss_fn",
    "make_train_step",
    "make_batch_step",
    "make_evaluate",
    "chunk_totals",
    "eval_outputs",
    "outcome_metric",
    "example_outcomes",
    "finalize_evaluation",
    "evaluations",
    "epoch_indices",
    "train_size",
    "member_data",
    "split_rows",
    "early_stop",
    "average",
    "step_blocks",
    "finish_epoch",
    "eval_chunk",
    "epoch_ops",
    "run_epoch",
    "TARGET_DTYPES",
    "make_epoch",
    "make_train",
    "resolve_execution",
    "augment_batch",
    "check_inputs",
    "micro_batch",
    "shard_batch",
]

Execution = Literal["auto", "scan", "loop"]
Averaging = Literal[None, "ema", "swa"]

#: Numeric hyperparameters the engine itself reads from ``state.hparams``, with their defaults (their ranges
#: and meanings: :data:`jtricks.hparams.REGISTRY`, owner ``"engine"``; the optimizer's come from
#: :func:`jtricks.optim.hparam_names`, the loss's from :class:`jtricks.losses.Loss`).
ENGINE_HPARAMS: Mapping[str, float] = jhparams.defaults("engine")

#: Models whose convolutions XLA CPU runs much slower inside ``lax.scan`` (see docs/engine.md); the same set
#: :mod:`jtricks.population` unrolls on CPU.

_CROSS_ENTROPY = jlosses.get("cross_entropy")


def _default_metrics(loss: jlosses.Loss) -> tuple[jmetrics.Metric, ...]:
    names = ("acc",) if loss.targets in ("class", "binary") else ("mse", "r2")
    return tuple(jmetrics.get(n) for n in names if n in jmetrics.METRICS)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Static description of a training run: everything that changes the compiled program.

    Attributes:
      model: a :class:`jtricks.models.Model` (``init``, ``apply``, ``name``, ``config``).
      optimizer: a :class:`jtricks.optim.OptimizerSpec` (family, schedule, clipping, decay: structure only).
      epochs: number of epochs.
      batch_size: examples per optimizer update (an epoch is ``num_train // batch_size`` updates; the remainder
        of each epoch's permutation is dropped, so every example is still seen over epochs). With gradient
        accumulation (``optimizer.accumulate = k``) a step is a micro-batch of ``batch_size / k`` examples
        and an epoch ``k · (num_train // batch_size)`` steps.
      loss: a :class:`jtricks.losses.Loss` (per-example ``loss(outputs, targets, hparams)``), default
        cross-entropy; the objective is its batch mean plus the penalties.
      metrics: the :class:`jtricks.metrics.Metric` s measured besides the loss, on every training batch
        (``train_<name>``: mean over the epoch's steps) and on the validation and test splits
        (``val_<name>``, ``test_<name>``). ``None``: accuracy for classification losses, mse and r2 for
        regression.
      l2: add ``hparams["l2"] · ½Σ‖W‖²`` over kernels (ndim ≥ 2) to the loss.
      early_stopping: stop after ``hparams["patience"]`` epochs without an improvement of ``monitor``
        larger than ``hparams["min_delta"]``, restore the best params and freeze.
      monitor: the validation metric early stopping watches: ``"val_loss"`` or ``"val_<name>"`` of any measured
        metric, your own :func:`jtricks.metrics.metric` included; its direction is the metric's declared one.
      averaging: ``None``, ``"ema"`` (per-step EMA, debiased) or ``"swa"`` (uniform average of the
        end-of-epoch weights from epoch ``hparams["swa_start"]``); the averaged weights are evaluated as
        ``avg_val_*`` / ``avg_test_*`` metrics.
      execution: ``"scan"`` (an epoch's steps fused in ``lax.scan``), ``"loop"`` (a host loop of jitted
        steps) or ``"auto"`` (see :func:`resolve_execution`).
      eval_batch_size: chunk size of evaluation (fixed: no recompile for the last partial chunk).
      diagnostics: add per-layer gradient norms (``grad_norm/<layer>``) to the metrics.
      dropout: the dropout rate is data (``hparams["dropout_rate"]``, overriding the model's static
        rate), so one program serves a grid of rates; off, the model's static rate applies.
      init_scale: multiply the initializer's std by ``hparams["init_scale"]`` (data).
      custom_hparams: the user's own numeric hyperparameters with their defaults (``{name: value}``; data,
        vmappable): passed to the model's ``apply`` and to the loss in their ``hparams`` dict.
      divergence_factor: the explosion rule: a step with ``|objective| > divergence_factor · |first
        objective|`` (the member's first step; see ``TrainState.first_objective``) counts as diverged, like
        a non-finite one. ``None``: only non-finite steps diverge. A member whose first objective is 0 is
        never caught by this rule.
      log_every: also return the training loss every ``k`` steps: ``train_loss@`` (the means of the
        epoch's consecutive blocks of ``k`` steps, the last block shorter when ``k`` does not divide the
        steps) and ``train_loss@steps`` (each block's last step, 1-based): computed inside the compiled
        epoch, copied out with the epoch's other metrics (see :func:`step_blocks`).
      train_eval: evaluate a fixed sample of this many training examples in eval mode each epoch (dropout
        off, batch norm on running statistics) as ``train_eval_<metric>``: the clean training accuracy a
        train/validation gap needs (``train_<metric>`` is averaged over the epoch's steps in train mode).
        0: off. The sample is in :class:`DeviceData` (:func:`device_data`'s ``train_eval``).
      augment: the data augmentations of every training step, names of :data:`jtricks.augment.AUGMENTATIONS`
        (``"crop"``, ``"flip"``, ``"cutout"``, ``"mixup"``), applied in that order whatever the order given
        (:func:`augment_batch`); their numbers are data (``hparams["flip_rate"]``, ``["cutout_size"]``,
        ``["mixup_alpha"]``). ``"mixup"`` needs a loss of class or binary targets (it mixes the losses of the
        two label sets); the others need NHWC images (:func:`check_inputs`).
      crop_padding: the zero padding of ``"crop"`` (static: it sets the padded shape).
      member_split: ``None`` (every member trains on ``data.x_train`` and validates on ``data.x_val``), or
        ``(pool, n_val, n_train)``: ``data.x_train`` is a pool of ``pool`` examples that each member splits by its
        own ``"split"`` key stream (:func:`split_rows`): ``n_val`` validation examples, then ``n_train`` training
        ones (``Experiment.vary_split``).
      precision: the dtype of the forward and backward passes (:mod:`jtricks._core.precision`): ``"float32"``
        (the plain program), ``"bfloat16"`` or ``"float16"`` (params and inputs cast to it for ``model.apply``,
        outputs cast back to float32 before the loss and the metrics; the parameters, their gradients, the
        optimizer state and the batch-norm statistics stay float32). ``"float16"`` adds dynamic loss scaling
        (:func:`jtricks.optim.loss_scale_update`): a step with non-finite gradients is skipped, counted in the
        ``skipped_steps`` metric and not a divergence, unless the scale is already at its minimum.
    """

    model: Any
    optimizer: Any
    epochs: int
    batch_size: int
    loss: jlosses.Loss = _CROSS_ENTROPY
    metrics: tuple[jmetrics.Metric, ...] | None = None
    l2: bool = False
    early_stopping: bool = False
    monitor: str = "val_loss"
    averaging: Averaging = None
    execution: Execution = "auto"
    eval_batch_size: int = 1000
    diagnostics: bool = False
    dropout: bool = False
    init_scale: bool = False
    custom_hparams: Any = ()
    divergence_factor: float | None = 1e6
    log_every: int | None = None
    train_eval: int = 0
    augment: tuple[str, ...] = ()
    crop_padding: int = 4
    member_split: tuple[int, int, int] | None = None
    precision: str = "float32"

    def __post_init__(self) -> None:
        jprec.check_precision(self.precision, "precision")
        ms = self.member_split
        if ms is not None and (
            len(ms) != 3 or not all(isinstance(v, int) and v > 0 for v in ms) or ms[1] + ms[2] > ms[0]
        ):
            raise ValueError(
                f"TrainConfig.member_split must be None or (pool, n_val, n_train) of positive ints with "
                f"n_val + n_train <= pool, got {ms!r}"
            )
        object.__setattr__(self, "custom_hparams", tuple(sorted(dict(self.custom_hparams).items())))
        object.__setattr__(self, "augment", _check_augment(self.augment))
        cp = self.crop_padding
        if not isinstance(cp, int) or isinstance(cp, bool) or cp < 0:
            raise ValueError(f"TrainConfig.crop_padding must be an int >= 0, got {cp!r}")
        lk = self.log_every
        if lk is not None and (not isinstance(lk, int) or isinstance(lk, bool) or lk <= 0):
            raise ValueError(f"TrainConfig.log_every must be a positive int or None, got {lk!r}")
        for name in ("epochs", "batch_size", "eval_batch_size"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise ValueError(f"TrainConfig.{name} must be a positive int, got {v!r}")
        te = self.train_eval
        if not isinstance(te, int) or isinstance(te, bool) or te < 0:
            raise ValueError(f"TrainConfig.train_eval must be an int >= 0 (0: off), got {te!r}")
        f = self.divergence_factor
        if f is not None and (isinstance(f, bool) or not isinstance(f, (int, float)) or not np.isfinite(f) or f < 1):
            raise ValueError(f"TrainConfig.divergence_factor must be a finite number >= 1 or None, got {f!r}")
        if self.averaging not in (None, "ema", "swa"):
            raise ValueError(f"TrainConfig.averaging must be one of None, 'ema', 'swa'; got {self.averaging!r}")
        if self.execution not in ("auto", "scan", "loop"):
            raise ValueError(f"TrainConfig.execution must be one of 'auto', 'scan', 'loop'; got {self.execution!r}")
        object.__setattr__(self, "loss", jlosses.get(self.loss))
        if "mixup" in self.augment and self.loss.targets not in ("class", "binary"):
            raise ValueError(
                f"augment 'mixup' mixes the losses of two label sets, which needs a loss of class or binary targets; "
                f"loss {self.loss.name!r} has {self.loss.targets!r} targets"
            )
        acc = getattr(self.optimizer, "accumulate", 1)
        if self.batch_size % acc:
            raise ValueError(
                f"'accumulate'={acc} must divide 'batch_size'={self.batch_size} "
                "(a step is a micro-batch of batch_size / accumulate examples)"
            )
        metrics = _default_metrics(self.loss) if self.metrics is None else tuple(jmetrics.get(m) for m in self.metrics)
        object.__setattr__(self, "metrics", tuple(m for m in metrics if m.name != "loss"))
        shared = sorted(set(self.loss.hparams) & {k for k, _ in self.custom_hparams})
        if shared:
            raise ValueError(
                f"custom_hparams {shared} are also hyperparameters of the loss {self.loss.name!r}: both would reach "
                f"the loss under one name; rename the custom one (the loss's own are set as "
                f"{[jlosses.HPARAM_PREFIX + k for k in shared]})"
            )
        monitors = [f"val_{n}" for n in ("loss", *self.metric_names())]
        if self.monitor not in monitors:  # a custom metric is a monitor like any other (its declared direction)
            raise ValueError(f"'monitor' must be a validation metric, one of {monitors}; got {self.monitor!r}")

    def monitored(self) -> str:
        """The base name of the metric early stopping watches (``"loss"`` for ``monitor="val_loss"``)."""
        return self.monitor.removeprefix("val_")

    def metric_names(self) -> tuple[str, ...]:
        """Base names of the measured metrics besides the loss (``("acc",)`` for classification)."""
        return tuple(m.name for m in self.metrics)  # type: ignore[union-attr]

    def hparam_names(self) -> tuple[str, ...]:
        """Names of the numeric hyperparameters this configuration reads (all vmappable)."""
        names = list(joptim.hparam_names(self.optimizer))
        if self.dropout:
            names.append("dropout_rate")
        if self.init_scale:
            names.append("init_scale")
        if self.l2:
            names.append("l2")
        if self.early_stopping:
            names += ["patience", "min_delta"]
        if self.averaging == "ema":
            names.append("ema_decay")
        if self.averaging == "swa":
            names.append("swa_start")
        names += [_AUGMENT_HPARAMS[a] for a in self.augment if a in _AUGMENT_HPARAMS]
        names += list(jlosses.hparam_keys(self.loss)) + [k for k, _ in self.custom_hparams]
        return tuple(dict.fromkeys(names))

    def model_hparam_names(self) -> tuple[str, ...]:
        """The hyperparameters handed to ``model.apply`` (dropout rate and the user's own)."""
        return (("dropout_rate",) if self.dropout else ()) + tuple(k for k, _ in self.custom_hparams)

    def loss_hparam_names(self) -> tuple[str, ...]:
        """The keys of the hyperparameters handed to the loss: its own (``loss.<name>``,
        :func:`jtricks.losses.hparam_keys`) and the user's ``custom_hparams``."""
        return tuple(dict.fromkeys([*jlosses.hparam_keys(self.loss), *(k for k, _ in self.custom_hparams)]))

    def loss_hparams(self, hparams: Mapping[str, Any]) -> dict[str, Any]:
        """The loss's ``hparams`` argument from a member's: its own under their own names (``loss.gamma`` ->
        ``gamma``) and the ``custom_hparams``."""
        own = {name: hparams[key] for key, name in jlosses.hparam_keys(self.loss).items()}
        return {**own, **{k: hparams[k] for k, _ in self.custom_hparams}}


#: The hyperparameter each augmentation reads (crop's padding is static: ``TrainConfig.crop_padding``).
_AUGMENT_HPARAMS: Mapping[str, str] = {"flip": "flip_rate", "cutout": "cutout_size", "mixup": "mixup_alpha"}


def _check_augment(augment: Any) -> tuple[str, ...]:
    """``augment`` as a tuple in the order of :data:`jtricks.augment.AUGMENTATIONS` (a str is one name)."""
    names = (augment,) if isinstance(augment, str) else augment
    allowed = list(jaug.AUGMENTATIONS)
    if not isinstance(names, (tuple, list)) or not all(isinstance(n, str) for n in names):
        raise ValueError(f"'augment' must be a list of names among {allowed}, got {augment!r}")
    unknown = [n for n in names if n not in allowed]
    if unknown or len(set(names)) != len(names):
        what = f"unknown {unknown}" if unknown else "a name given twice"
        raise ValueError(f"'augment' must be a list of distinct names among {allowed}; got {list(names)} ({what})")
    return tuple(a for a in allowed if a in names)


class TrainState(NamedTuple):
    """Everything one member carries from step to step (a pytree; stack it for a population).

    ``diverged_epoch`` is -1 until the member diverges (1-based epoch). ``first_objective`` is
    ``|objective|`` of the member's first step (0 before it; the reference of the explosion rule,
    ``TrainConfig.divergence_factor``). ``loss_scale`` is the dynamic loss scale of ``precision="float16"``
    (:class:`jtricks.optim.LossScaleState`; ``None`` otherwise). ``one`` is a per-member float32
    ``1.0``: evaluation multiplies the shared evaluation inputs by it, which gives them the population axis,
    so XLA computes each member's first-layer products exactly as in a standalone run (a product of
    *unbatched* inputs with batched weights was measured to round differently for some shapes).
    """

    step: jax.Array
    epoch: jax.Array
    params: Any
    model_state: Any
    opt_state: Any
    hparams: dict[str, jax.Array]
    key: jax.Array
    averaging: Any
    early: Any
    diverged_epoch: jax.Array
    first_objective: jax.Array
    one: jax.Array
    loss_scale: Any = None


class DeviceData(NamedTuple):
    """Device-resident splits, shared (not vmapped) by every member of a population.

    Evaluation splits are zero-padded to a multiple of the evaluation chunk; ``*_mask`` marks real examples.
    ``*_train_eval``: the fixed training sample evaluated in eval mode (``None`` when off).
    """

    x_train: jax.Array
    y_train: jax.Array
    x_val: jax.Array
    y_val: jax.Array
    val_mask: jax.Array
    x_test: jax.Array
    y_test: jax.Array
    test_mask: jax.Array
    x_train_eval: jax.Array | None = None
    y_train_eval: jax.Array | None = None
    train_eval_mask: jax.Array | None = None


def _pad_to(x: np.ndarray, multiple: int) -> tuple[np.ndarray, np.ndarray]:
    n = x.shape[0]
    total = max(multiple, -(-n // multiple) * multiple)
    pad = np.zeros((total - n,) + x.shape[1:], dtype=x.dtype)
    mask = np.concatenate([np.ones(n, bool), np.zeros(total - n, bool)])
    return np.concatenate([x, pad]), mask


#: dtype of the targets on the device, by the kind of targets a loss expects
TARGET_DTYPES: Mapping[str, Any] = {"class": np.int32, "binary": np.float32, "real": np.float32}


def device_data(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    *,
    eval_batch_size: int,
    targets: str = "class",
    train_eval: int = 0,
) -> DeviceData:
    """Put the splits on the device once; pad the evaluation splits to whole chunks of ``eval_batch_size``.

    ``targets`` (a :class:`jtricks.losses.Loss`'s kind) sets the target dtype: int32 class labels, float32
    binary or real targets (never a silent cast of real targets to integers). ``train_eval > 0`` adds the
    training sample evaluated in eval mode: ``min(train_eval, n_train)`` examples drawn without replacement
    by ``numpy.random.default_rng(0)`` (the same for every seed and arm), in training-set order.
    """
    _check_splits(len(x_train), len(y_train), x_val, y_val, x_test, y_test, targets, train_eval)
    ydt = TARGET_DTYPES[targets]
    rows = lambda idx: (np.asarray(x_train)[idx], np.asarray(y_train)[idx])  # noqa: E731
    train = (jnp.asarray(np.asarray(x_train, np.float32)), jnp.asarray(np.asarray(y_train, ydt)))
    return _with_evaluation(train, rows, len(x_train), x_val, y_val, x_test, y_test, ydt, eval_batch_size, train_eval)


def streamed_data(
    split: jdata.HostSplit,
    x_val: np.ndarray,
    y_val: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    *,
    eval_batch_size: int,
    targets: str = "class",
    train_eval: int = 0,
) -> DeviceData:
    """:func:`device_data` of a training split that stays on the host (``split``, docs/streaming.md): the
    evaluation splits (and the ``train_eval`` sample, gathered from ``split``) go to the device as there;
    ``x_train`` and ``y_train`` are their shapes only (``jax.ShapeDtypeStruct``)."""
    n = split.num_examples
    _check_splits(n, len(split.y), x_val, y_val, x_test, y_test, targets, train_eval)
    ydt = TARGET_DTYPES[targets]
    train = (
        jax.ShapeDtypeStruct((n, *split.x.shape[1:]), jnp.float32),
        jax.ShapeDtypeStruct(tuple(split.y.shape), ydt),
    )
    return _with_evaluation(train, split.rows, n, x_val, y_val, x_test, y_test, ydt, eval_batch_size, train_eval)


def _check_splits(
    n_train: int, n_y: int, x_val: Any, y_val: Any, x_test: Any, y_test: Any, targets: str, train_eval: Any
) -> None:
    for name, nx, ny in (("train", n_train, n_y), ("val", len(x_val), len(y_val)), ("test", len(x_test), len(y_test))):
        if nx != ny:
            raise ValueError(f"{name} split: {nx} inputs but {ny} targets")
        if nx == 0:
            raise ValueError(f"{name} split is empty")
    if targets not in TARGET_DTYPES:
        raise ValueError(f"`targets` must be one of {sorted(TARGET_DTYPES)}, got {targets!r}")
    if not isinstance(train_eval, (int, np.integer)) or isinstance(train_eval, bool) or train_eval < 0:
        raise ValueError(f"`train_eval` must be an int >= 0 (0: off), got {train_eval!r}")


def _with_evaluation(
    train: tuple[Any, Any],
    rows: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
    n_train: int,
    x_val: np.ndarray,
    y_val: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    ydt: Any,
    eval_batch_size: int,
    train_eval: int,
) -> DeviceData:
    """The :class:`DeviceData` of ``train`` and the padded evaluation splits (``rows(idx)``: training rows)."""
    eb = min(eval_batch_size, max(len(x_val), len(x_test)))

    def evaluated(x: np.ndarray, y: np.ndarray) -> tuple[jax.Array, jax.Array, jax.Array]:
        """An evaluation split on the device, padded to whole chunks: (inputs, targets, mask of real rows)."""
        xp, mask = _pad_to(np.asarray(x, np.float32), eb)
        yp, _ = _pad_to(np.asarray(y, ydt), eb)
        return jnp.asarray(xp), jnp.asarray(yp), jnp.asarray(mask)

    fit: tuple[Any, ...] = (None, None, None)
    if train_eval:
        fit = evaluated(*rows(np.sort(np.random.default_rng(0).permutation(n_train)[: min(int(train_eval), n_train)])))
    return DeviceData(*train, *evaluated(x_val, y_val), *evaluated(x_test, y_test), *fit)


def default_hparams(config: TrainConfig) -> dict[str, float]:
    """Default values of every numeric hyperparameter ``config`` reads."""
    out = dict(joptim.default_hparams(config.optimizer, strict=False))
    out.update({key: config.loss.hparams[name] for key, name in jlosses.hparam_keys(config.loss).items()})
    out.update(config.custom_hparams)
    for name in config.hparam_names():
        if name not in out and name in ENGINE_HPARAMS:
            out[name] = ENGINE_HPARAMS[name]
    if config.dropout:
        out["dropout_rate"] = float(getattr(config.model, "config", {}).get("dropout_rate", 0.0) or 0.0)
    return {k: out[k] for k in config.hparam_names() if k in out}


def _check_value(name: str, v: Any) -> None:
    """Range check from :data:`jtricks.hparams.REGISTRY`; a hyperparameter of the user's own must be finite."""
    if name in jhparams.REGISTRY:
        jhparams.check(name, v, label=f"hyperparameter {name!r}")
    elif isinstance(v, (int, float, np.number)) and not isinstance(v, bool) and not np.isfinite(v):
        raise ValueError(f"hyperparameter {name!r} must be finite, got {v}")


def validate_hparams(config: TrainConfig, hparams: Mapping[str, Any]) -> dict[str, Any]:
    """Fill defaults and check names (and Python-number values) before anything compiles."""
    allowed = config.hparam_names()
    unknown = sorted(set(hparams) - set(allowed))
    if unknown:
        raise ValueError(f"unknown hyperparameter(s) {unknown}; this configuration reads {list(allowed)}")
    full = {**default_hparams(config), **dict(hparams)}
    missing = [k for k in allowed if k not in full]
    if missing:
        raise ValueError(f"hyperparameter(s) {missing} have no default: give a value (hparams=) or a grid factor")
    for name, v in full.items():
        _check_value(name, v)
    # the optimizer builder validates its own Python-number hyperparameters (nothing is compiled here)
    joptim.build(config.optimizer, {k: full[k] for k in joptim.hparam_names(config.optimizer)})
    return full


def as_arrays(hparams: Mapping[str, Any]) -> dict[str, jax.Array]:
    """Hyperparameters as float32 arrays: never constant-folded Python floats (bitwise population = standalone)."""
    return {k: jnp.asarray(v, dtype=jnp.float32) for k, v in hparams.items()}


def _build_tx(config: TrainConfig, hparams: Mapping[str, jax.Array]) -> optax.GradientTransformation:
    opt_names = joptim.hparam_names(config.optimizer)
    return joptim.build(config.optimizer, {k: hparams[k] for k in opt_names})


def _subset(hparams: Mapping[str, jax.Array], names: Sequence[str]) -> dict[str, jax.Array] | None:
    return {k: hparams[k] for k in names} if names else None


def init_state(
    config: TrainConfig, key: jax.Array, hparams: Mapping[str, Any], input_shape: tuple[int, ...]
) -> TrainState:
    """Initial state of one member: params from the ``"init"`` stream, optimizer state holding the hyperparameters."""
    hp = as_arrays(hparams)
    init_hp = {"init_scale": hp["init_scale"]} if config.init_scale else None
    params, model_state = config.model.init(key_for(key, "init"), tuple(input_shape), init_hp)
    opt_state = _build_tx(config, hp).init(params)
    if config.averaging == "ema":
        avg = jreg.ema_init(params)
    elif config.averaging == "swa":
        avg = jreg.swa_init(params)
    else:
        avg = None
    mode = "max" if jmetrics.higher_is_better(config.monitor, _custom(config)) else "min"
    early = jreg.early_stopping_init((params, model_state), mode=mode) if config.early_stopping else None
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        epoch=jnp.zeros((), jnp.int32),
        params=params,
        model_state=model_state,
        opt_state=opt_state,
        hparams=hp,
        key=key,
        averaging=avg,
        early=early,
        diverged_epoch=jnp.full((), -1, jnp.int32),
        first_objective=jnp.zeros((), jnp.float32),
        # 1.0, but computed from member data so that XLA can neither constant-fold it nor drop its
        # population axis (0·lr is not foldable in IEEE arithmetic; lr is finite for any run that trains)
        one=jnp.float32(1.0) + jnp.float32(0.0) * hp["learning_rate"],
        loss_scale=joptim.loss_scale_init() if config.precision == "float16" else None,
    )


def _custom(config: TrainConfig) -> dict[str, jmetrics.Metric]:
    return {m.name: m for m in config.metrics}  # type: ignore[union-attr]


def _metric_values(
    config: TrainConfig, outputs: jax.Array, y: jax.Array, per_example: jax.Array
) -> dict[str, jax.Array]:
    """Each metric of ``config`` over one batch: ``finalize(Σ_batch stats, B)`` (sums pairwise)."""
    n = per_example.shape[0]
    return {m.name: m.finalize(jnum.pairwise_sum(m.stats(outputs, y, per_example), 0), n) for m in config.metrics}  # type: ignore[union-attr]


def _apply(config: TrainConfig, params: Any, model_state: Any, x: jax.Array, **kwargs: Any) -> tuple[jax.Array, Any]:
    """``config.model.apply`` in ``config.precision``: ``(outputs, new_model_state)`` with float32 outputs.

    Mixed precision: ``f(cast(params, c), cast(x, c))`` with ``c`` the compute dtype, the outputs cast to
    float32, and so is the new model state's (batch-norm running statistics, computed in float32). The cast
    inside the differentiated function makes the gradients float32 (the master weights' dtype). float32:
    ``config.model.apply`` itself, no cast traced.
    """
    if not jprec.is_mixed(config.precision):
        return config.model.apply(params, model_state, x, **kwargs)
    dtype = jprec.compute_dtype(config.precision)
    outputs, new_state = config.model.apply(jprec.cast_floating(params, dtype), model_state, x.astype(dtype), **kwargs)
    return outputs.astype(jnp.float32), jprec.cast_floating(new_state, jnp.float32)


def loss_fn(
    config: TrainConfig,
    params: Any,
    model_state: Any,
    x: jax.Array,
    y: jax.Array,
    *,
    key: jax.Array | None,
    hparams: Mapping[str, jax.Array],
    mix: tuple[jax.Array, jax.Array] | None = None,
) -> tuple[jax.Array, tuple[Any, jax.Array, dict[str, jax.Array]]]:
    """Training objective ``mean_b loss(f(x_b), y_b) + λ·½Σ‖W‖²`` → (objective, (new_model_state, data loss,
    metrics)).

    ``mix = (lam, perm)`` (mixup, :func:`augment_batch`): the per-example loss is
    ``lam · loss(f(x_b), y_b) + (1 - lam) · loss(f(x_b), y_perm(b))``; the metrics compare with ``y``.
    """
    outputs, new_state = _apply(
        config, params, model_state, x, key=key, train=True, hparams=_subset(hparams, config.model_hparam_names())
    )
    loss_hp = config.loss_hparams(hparams)
    per_example = config.loss.fn(outputs, y, loss_hp)
    if mix is not None:
        lam, perm = mix
        per_example = jaug.mix(lam, per_example, config.loss.fn(outputs, y[perm], loss_hp))
    data_loss = jnum.mean(per_example)
    objective = data_loss
    if config.l2:
        objective = objective + hparams["l2"] * jreg.l2_penalty(params, jreg.decay_mask(params))
    return objective, (new_state, data_loss, _metric_values(config, outputs, y, per_example))


def _select(pred: jax.Array, new: Any, old: Any) -> Any:
    return jax.tree_util.tree_map(lambda a, b: jnp.where(pred, a, b), new, old)


def _frozen(config: TrainConfig, state: TrainState) -> jax.Array:
    frozen = state.diverged_epoch >= 0
    if config.early_stopping:
        frozen = frozen | state.early.should_stop
    return frozen


def _exploded(config: TrainConfig, objective: jax.Array, first: jax.Array) -> jax.Array:
    """The explosion rule: ``|objective| > divergence_factor · first`` (``first`` > 0; never with ``None``)."""
    if config.divergence_factor is None:
        return jnp.zeros((), bool)
    return (first > 0) & (jnp.abs(objective) > jnp.float32(config.divergence_factor) * first)


def augment_batch(
    config: TrainConfig, root: jax.Array, step: jax.Array, x: jax.Array, hparams: Mapping[str, jax.Array]
) -> tuple[jax.Array, tuple[jax.Array, jax.Array] | None]:
    """The step's augmented inputs and mixup's ``(lam, perm)`` (``None`` without mixup).

    ``config.augment`` in the order crop, flip, cutout, mixup (:mod:`jtricks.augment`), each with its key
    from the member's ``"augment"`` stream folded with the step count (:func:`jtricks.augment.step_keys`).
    """
    if not config.augment:
        return x, None
    keys = jaug.step_keys(root, step, config.augment)
    if "crop" in keys:
        x = jaug.random_crop(keys["crop"], x, padding=config.crop_padding)
    if "flip" in keys:
        x = jaug.horizontal_flip(keys["flip"], x, rate=hparams["flip_rate"])
    if "cutout" in keys:
        x = jaug.cutout(keys["cutout"], x, size=hparams["cutout_size"])
    if "mixup" not in keys:
        return x, None
    lam, perm = jaug.mixup_draw(keys["mixup"], int(x.shape[0]), alpha=hparams["mixup_alpha"])
    return jaug.mix(lam, x, x[perm]).astype(x.dtype), (lam, perm)


def check_inputs(config: TrainConfig, input_shape: Sequence[int]) -> None:
    """``ValueError`` when ``config.augment`` holds an image augmentation and one example is not ``(H, W, C)``."""
    images = [a for a in config.augment if a in jaug.IMAGE_AUGMENTATIONS]
    if images and len(tuple(input_shape)) != 3:
        raise ValueError(
            f"augment {images} needs NHWC images, examples of shape (H, W, C); the data has examples of shape "
            f"{tuple(input_shape)}"
        )


def _accumulate(config: TrainConfig) -> int:
    return int(getattr(config.optimizer, "accumulate", 1))


def micro_batch(config: TrainConfig) -> int:
    """Examples per step: ``batch_size / accumulate`` (``batch_size`` without gradient accumulation)."""
    return config.batch_size // _accumulate(config)


def shard_batch(sharding: Any, *arrays: jax.Array) -> tuple[jax.Array, ...]:
    """``arrays`` with their leading (example) axis laid out by ``sharding`` (a sharding constraint; the
    identity when ``sharding`` is ``None``). Values are unchanged: only where each example is computed.

    Under ``jax.vmap`` the member axis is left unconstrained (it follows the population's sharding), so a
    ``NamedSharding(mesh, PartitionSpec("data"))`` gives each member's batch split over the mesh's ``"data"``
    axis (:mod:`jtricks.engine.mesh`).
    """
    if sharding is None:
        return arrays
    return tuple(jax.lax.with_sharding_constraint(a, sharding) for a in arrays)


def make_train_step(
    config: TrainConfig, *, batch_sharding: Any = None
) -> Callable[[TrainState, jax.Array, jax.Array, jax.Array], tuple[TrainState, dict]]:
    """A pure ``step(state, x_all, y_all, batch_idx) -> (state, metrics)``: :func:`make_batch_step` of the
    batch gathered on device (``x_all[batch_idx]``), so a population shares one copy of the data; with
    ``batch_sharding`` its examples are split over devices (as in :func:`make_batch_step`)."""
    batch_step = make_batch_step(config, batch_sharding=batch_sharding)

    def step(state: TrainState, x_all: jax.Array, y_all: jax.Array, batch_idx: jax.Array) -> tuple[TrainState, dict]:
        return batch_step(state, x_all[batch_idx], y_all[batch_idx])

    return step


def make_batch_step(
    config: TrainConfig, *, batch_sharding: Any = None
) -> Callable[[TrainState, jax.Array, jax.Array], tuple[TrainState, dict]]:
    """A pure ``step(state, x, y) -> (state, metrics)``: one optimizer step on the batch ``(x, y)`` (the
    streamed execution feeds each member its batch from the host: docs/streaming.md). With ``batch_sharding``
    the batch's examples are split over devices (:func:`shard_batch`: data parallelism, the loss still the
    mean over the whole batch, so the gradients are the whole batch's).

    The update is always applied (no select over the state on every step); a step whose loss or gradient
    norm is non-finite, or whose objective exploded (``|objective| > divergence_factor · first_objective``,
    see :class:`TrainConfig`), marks the member diverged in the current epoch, and :func:`guard_epoch`
    restores the member's state from the start of that epoch and freezes it. An early-stopped member's
    steps are not applied.
    Metrics: ``objective`` (loss + penalty), ``loss`` (the data loss), each metric of ``config.metrics``,
    ``grad_norm`` and, with ``config.diagnostics``, ``grad_norm/<layer>``.
    """

    def step(state: TrainState, x: jax.Array, y: jax.Array) -> tuple[TrainState, dict]:
        x, y = shard_batch(batch_sharding, x, y)
        x, mixing = augment_batch(config, state.key, state.step, x, state.hparams)
        dkey = jax.random.fold_in(key_for(state.key, "dropout"), state.step)
        (objective, (new_mstate, data_loss, mvals)), grads = _gradients(config, state, x, y, dkey, mixing)
        gnorm = jnum.global_norm(grads)
        tx = _build_tx(config, state.hparams)
        updates, new_opt = tx.update(grads, state.opt_state, state.params)
        new_params = optax.apply_updates(state.params, updates)
        scaled = state.loss_scale is not None
        finite = joptim.all_finite(grads) & jnp.isfinite(objective) if scaled else None
        first = _first_objective(state, objective, finite)
        ok = jnp.isfinite(objective) & jnp.isfinite(gnorm) & ~_exploded(config, objective, first)
        if scaled:  # a skipped step is no divergence, unless the loss scale has nothing left to give
            ok = jnp.where(finite, ok, ~joptim.loss_scale_exhausted(state.loss_scale, finite))
        avg = state.averaging
        if config.averaging == "ema":
            avg = jreg.ema_update(avg, new_params, state.hparams["ema_decay"])
            if _accumulate(config) > 1:  # the average moves with the applied updates only
                avg = _select((state.step + 1) % _accumulate(config) == 0, avg, state.averaging)
        # applied unconditionally: a member that fails here is restored once, at the end of the epoch
        # (guard_epoch); only the epoch of its first failure is recorded now
        new_state = state._replace(
            step=state.step + 1,
            params=new_params,
            model_state=new_mstate,
            opt_state=new_opt,
            averaging=avg,
            diverged_epoch=jnp.where(~ok & ~_frozen(config, state), state.epoch + 1, state.diverged_epoch),
            first_objective=first,
        )
        if scaled:
            new_state = _skip_nonfinite(state, new_state, finite)
        if config.early_stopping:  # a stopped member does not train (its later train metrics are its best model's)
            new_state = _select(state.early.should_stop, state, new_state)
        metrics = {"objective": objective, "loss": data_loss, **mvals, "grad_norm": gnorm}
        if scaled:
            metrics["skipped"] = jnp.where(finite, 0.0, 1.0).astype(jnp.float32)
        if config.diagnostics:
            for name, v in jdiag.per_layer_norms(grads, group="layer").items():
                metrics[f"grad_norm/{name}"] = v
        return new_state, metrics

    return step


def _gradients(
    config: TrainConfig,
    state: TrainState,
    x: jax.Array,
    y: jax.Array,
    key: jax.Array,
    mix: tuple[jax.Array, jax.Array] | None,
) -> tuple[tuple[jax.Array, Any], Any]:
    """``((objective, aux), grads)`` of :func:`loss_fn` at ``state.params`` (float32 gradients).

    With a loss scale (``precision="float16"``) the backward pass differentiates ``s · objective`` and the
    gradients are unscaled, ``g = ∇(s · L) · (1/s)`` (:func:`jtricks.optim.scale_loss`,
    :func:`jtricks.optim.unscale_grads`); the returned objective is the unscaled one.
    """
    kwargs = dict(key=key, hparams=state.hparams, mix=mix)
    if state.loss_scale is None:
        grad_fn = jax.value_and_grad(loss_fn, argnums=1, has_aux=True)
        return grad_fn(config, state.params, state.model_state, x, y, **kwargs)

    def scaled(params: Any) -> tuple[jax.Array, tuple[jax.Array, Any]]:
        objective, aux = loss_fn(config, params, state.model_state, x, y, **kwargs)
        return joptim.scale_loss(objective, state.loss_scale), (objective, aux)

    (_, (objective, aux)), grads = jax.value_and_grad(scaled, has_aux=True)(state.params)
    return (objective, aux), joptim.unscale_grads(grads, state.loss_scale)


def _first_objective(state: TrainState, objective: jax.Array, finite: jax.Array | None) -> jax.Array:
    """``|objective|`` of the member's first step (``finite is None``), or of its first step that was not
    skipped (loss scaling: ``finite`` says whether this step's gradients were finite)."""
    if finite is None:
        return jnp.where(state.step == 0, jnp.abs(objective), state.first_objective)
    return jnp.where((state.first_objective == 0) & finite, jnp.abs(objective), state.first_objective)


def _skip_nonfinite(state: TrainState, new: TrainState, finite: jax.Array) -> TrainState:
    """Loss scaling's skip: ``new`` when the step's gradients were ``finite``, else ``state`` (params, optimizer
    and model state, averages unchanged); either way the step counter, the divergence record and the new loss
    scale (:func:`jtricks.optim.loss_scale_update`) are ``new``'s."""
    return _select(finite, new, state)._replace(
        step=new.step,
        diverged_epoch=new.diverged_epoch,
        first_objective=new.first_objective,
        loss_scale=joptim.loss_scale_update(state.loss_scale, finite),
    )


def guard_epoch(config: TrainConfig, start: TrainState, end: TrainState) -> TrainState:
    """Divergence isolation, once per epoch: ``end`` if the member is live, else ``start``.

    ``state' = where(frozen(end), start, end)`` leaf by leaf, keeping ``end.diverged_epoch``: a member that
    diverged during the epoch (or was frozen before it) keeps its state from the start of the epoch, so its
    non-finite values never leave the epoch; every other member's state is ``end`` bit for bit.
    """
    return _select(_frozen(config, end), start, end)._replace(diverged_epoch=end.diverged_epoch)


# ----------------------------------------------------------------------------------------- evaluation
def eval_outputs(
    config: TrainConfig,
    params: Any,
    model_state: Any,
    one: jax.Array,
    hparams: Mapping[str, jax.Array],
    x: jax.Array,
    y: jax.Array,
) -> tuple[jax.Array, jax.Array]:
    """The model's outputs on ``x`` in eval mode (dropout off, batch norm on running statistics) and the
    per-example loss against ``y``. ``one`` is the member's ``TrainState.one`` (it gives the shared inputs the
    population axis)."""
    outputs, _ = _apply(
        config,
        params,
        model_state,
        x * one.astype(x.dtype),
        key=None,
        train=False,
        hparams=_subset(hparams, config.model_hparam_names()),
    )
    return outputs, config.loss.fn(outputs, y, config.loss_hparams(hparams))


def outcome_metric(config: TrainConfig) -> str:
    """The metric per-example test outcomes make up (:func:`example_outcomes`): ``"test_acc"`` when accuracy is
    measured, else ``"test_loss"``."""
    return "test_acc" if "acc" in config.metric_names() else "test_loss"


def example_outcomes(
    config: TrainConfig,
    params: Any,
    model_state: Any,
    one: jax.Array,
    hparams: Mapping[str, jax.Array],
    x: jax.Array,
    y: jax.Array,
) -> jax.Array:
    """Per example of ``x``: ``[correct]`` (1.0 or 0.0, accuracy's per-example statistic) when accuracy is
    measured, else its loss; the mean over the examples is :func:`outcome_metric`."""
    outputs, per_example = eval_outputs(config, params, model_state, one, hparams, x, y)
    if outcome_metric(config) == "test_loss":
        return per_example
    return jmetrics.get("acc").stats(outputs, y, per_example)[:, 0]


def chunk_totals(
    config: TrainConfig,
    params: Any,
    model_state: Any,
    one: jax.Array,
    hparams: Mapping[str, jax.Array],
    x: jax.Array,
    y: jax.Array,
    m: jax.Array,
) -> dict[str, jax.Array]:
    """Masked sums over one evaluation chunk: ``{"loss": [Σ loss], name: Σ stats of the metric}`` (pairwise sums).

    Eval mode: dropout off, batch norm on running statistics. ``one`` is the member's ``TrainState.one``;
    ``hparams`` its numeric hyperparameters (the model and the loss get the ones they read).
    """
    outputs, per_example = eval_outputs(config, params, model_state, one, hparams, x, y)
    mf = m.astype(jnp.float32)[:, None]
    out = {"loss": jnum.pairwise_sum(per_example[:, None] * mf, 0)}
    for mt in config.metrics:  # type: ignore[union-attr]
        out[mt.name] = jnum.pairwise_sum(mt.stats(outputs, y, per_example) * mf, 0)
    return out


def finalize_evaluation(config: TrainConfig, totals: Mapping[str, jax.Array], mask: jax.Array) -> dict[str, jax.Array]:
    """``{"loss": Σloss · (1/n), name: metric.finalize(its sums, n)}`` from the summed chunk totals."""
    n = jnum.pairwise_sum(mask.astype(jnp.float32))
    out = {"loss": totals["loss"][0] * (1.0 / n)}
    for mt in config.metrics:  # type: ignore[union-attr]
        out[mt.name] = mt.finalize(totals[mt.name], n)
    return out


def make_evaluate(
    config: TrainConfig, chunk: int, *, batch_sharding: Any = None
) -> Callable[..., dict[str, jax.Array]]:
    """``evaluate(params, model_state, one, hparams, x, y, mask) -> {"loss": ..., metric: ...}`` over fixed-size chunks.

    ``x`` is padded to a multiple of ``chunk`` (see :func:`device_data`); padded rows are masked out, so
    every split compiles to one chunk shape. With ``batch_sharding`` each chunk's examples are split over
    devices (:func:`shard_batch`).
    """

    def evaluate(
        params: Any,
        model_state: Any,
        one: jax.Array,
        hparams: Mapping[str, jax.Array],
        x: jax.Array,
        y: jax.Array,
        mask: jax.Array,
    ) -> dict[str, jax.Array]:
        n_chunks = x.shape[0] // chunk
        split = lambda a: a.reshape((n_chunks, chunk) + a.shape[1:])  # noqa: E731
        per_chunk = jax.lax.map(
            lambda c: chunk_totals(config, params, model_state, one, hparams, *shard_batch(batch_sharding, *c)),
            (split(x), split(y), split(mask)),
        )
        return finalize_evaluation(config, jax.tree_util.tree_map(lambda t: jnum.pairwise_sum(t, 0), per_chunk), mask)

    return evaluate


def evaluations(
    config: TrainConfig,
    evaluate: Callable[..., dict[str, jax.Array]],
    data: DeviceData,
    state: TrainState,
    avg_params: Any,
) -> dict[str, jax.Array]:
    """``{val,test}_{loss,<metric>}`` (and ``avg_*`` for the averaged params; ``train_eval_*`` with
    ``config.train_eval``) with ``evaluate``."""
    evals: dict[str, jax.Array] = {}
    splits = [("val", data.x_val, data.y_val, data.val_mask), ("test", data.x_test, data.y_test, data.test_mask)]
    if config.train_eval:
        if data.x_train_eval is None:
            raise ValueError(
                "TrainConfig.train_eval is on but the data has no training sample: build it with "
                "jtricks.train.device_data(..., train_eval=n)"
            )
        splits.append(("train_eval", data.x_train_eval, data.y_train_eval, data.train_eval_mask))
    targets = [("", state.params)] + ([("avg_", avg_params)] if config.averaging else [])
    for prefix, params in targets:
        for split, x, y, m in splits if not prefix else splits[:2]:
            for name, v in evaluate(params, state.model_state, state.one, state.hparams, x, y, m).items():
                evals[f"{prefix}{split}_{name}"] = v
    return evals


def resolve_execution(config: TrainConfig, backend: str | None = None) -> Literal["scan", "loop"]:
    """Pick the execution mode: the user's choice, or by model and backend when ``"auto"``.

    Measured on XLA CPU (docs/engine.md, benchmarks/): the MNIST-1D MLP runs ~1.3× faster with an epoch's
    steps fused in ``lax.scan``, while convolutional models run 3-15× slower inside ``lax.scan`` than as
    a host loop of jitted steps. So ``auto`` = ``loop`` for convolutional models on CPU, ``scan`` otherwise.
    """
    if config.execution != "auto":
        return config.execution  # type: ignore[return-value]
    backend = backend or jax.default_backend()
    if backend == "cpu" and getattr(config.model, "name", "") in jmodels.CONVOLUTIONAL:
        return "loop"
    return "scan"


def epoch_indices(config: TrainConfig, state: TrainState, num_train: int) -> jax.Array:
    """The epoch's batches ``(steps, batch_size)``: a permutation from the member's ``"data"`` stream and epoch.

    With gradient accumulation (``k = accumulate``) each batch is cut into ``k`` micro-batches, in order:
    ``(k · steps, batch_size / k)``, the same examples in the same order.
    """
    idx = jdata.epoch_batches(jax.random.fold_in(key_for(state.key, "data"), state.epoch), num_train, config.batch_size)
    if config.member_split is not None:  # positions in the member's own training split -> rows of the pool
        idx = split_rows(config, state.key)[1][idx]
    if _accumulate(config) == 1:
        return idx
    return idx.reshape(-1, micro_batch(config))


def split_rows(config: TrainConfig, key: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The member's own split of the pool (``config.member_split = (pool, n_val, n_train)``): with
    ``p = permutation(key_for(key, "split"), pool)``, validation rows ``p[:n_val]`` and training rows
    ``p[n_val : n_val + n_train]`` (the order of :func:`jtricks.data.train_val_split`, then the first ``n_train``)."""
    pool, n_val, n_train = config.member_split  # type: ignore[misc]
    perm = jax.random.permutation(key_for(key, "split"), pool).astype(jnp.int32)
    return perm[:n_val], perm[n_val : n_val + n_train]


def member_data(config: TrainConfig, state: TrainState, data: DeviceData) -> DeviceData:
    """``data`` with the member's own validation split (:func:`split_rows`) gathered from the pool in place of
    ``data.x_val`` (same padded length and mask: padding rows repeat pool row 0 and stay masked out);
    ``data`` itself without ``config.member_split``."""
    if config.member_split is None:
        return data
    val, _ = split_rows(config, state.key)
    rows = jnp.zeros(data.x_val.shape[0], jnp.int32).at[: val.shape[0]].set(val)
    return data._replace(x_val=data.x_train[rows], y_val=data.y_train[rows])


def train_size(config: TrainConfig, data: DeviceData) -> int:
    """The examples a member trains on: ``n_train`` of ``config.member_split``, else ``len(data.x_train)``."""
    return config.member_split[2] if config.member_split is not None else int(data.x_train.shape[0])


def _nan_if(pred: jax.Array, v: jax.Array) -> jax.Array:
    return jnp.where(pred, jnp.nan, v)


def early_stop(config: TrainConfig, state: TrainState, monitored: jax.Array) -> TrainState:
    """Early-stopping bookkeeping at the end of an epoch: update, and restore the best params on stopping."""
    if not config.early_stopping:
        return state
    was_stopped = state.early.should_stop
    es = jreg.early_stopping_update(
        state.early,
        monitored,
        (state.params, state.model_state),
        state.epoch + 1,
        patience=state.hparams["patience"],
        min_delta=state.hparams["min_delta"],
        mode="max" if jmetrics.higher_is_better(config.monitor, _custom(config)) else "min",
    )
    restore = es.should_stop & ~was_stopped & (state.diverged_epoch < 0)
    best_params, best_mstate = es.best_params
    return state._replace(
        early=es,
        params=_select(restore, best_params, state.params),
        model_state=_select(restore, best_mstate, state.model_state),
    )


def average(config: TrainConfig, state: TrainState) -> tuple[TrainState, Any]:
    """SWA: add this epoch's weights to the average (from epoch ``swa_start``); return the averaged params."""
    avg = state.averaging
    if config.averaging == "swa":
        live = ~_frozen(config, state)
        upd = jreg.swa_update(avg, state.params, state.epoch + 1, start=state.hparams["swa_start"])
        avg = _select(live, upd, avg)
        return state._replace(averaging=avg), jreg.swa_params(avg)
    if config.averaging == "ema":
        return state, jreg.ema_params(avg)
    return state, None


def step_blocks(values: jax.Array, k: int) -> tuple[jax.Array, np.ndarray]:
    """Means of the consecutive blocks of ``k`` entries of ``values`` (``(steps,)``), and each block's last
    step (1-based): ``mean_j = (1/|B_j|) Σ_{s ∈ B_j} values_s`` with ``B_j = [jk, min((j+1)k, steps))``
    (pairwise sums, as every mean of the engine). ``k > steps`` gives one block."""
    steps = int(values.shape[-1])
    full = steps // k
    parts = [jnum.mean(values[: full * k].reshape(full, k), axis=1)] if full else []
    if steps - full * k:
        parts.append(jnum.mean(values[full * k :])[None])
    ends = [k * (j + 1) for j in range(full)] + ([steps] if steps - full * k else [])
    return jnp.concatenate(parts), np.asarray(ends, np.int32)


def finish_epoch(
    config: TrainConfig, state: TrainState, step_metrics: dict[str, jax.Array], evals: dict[str, jax.Array]
) -> tuple[TrainState, dict[str, jax.Array]]:
    """Per-epoch metrics (train means over the epoch's steps + evaluations); NaN once diverged.

    With loss scaling the train means are over the applied steps, ``Σ_s a_s v_s / Σ_s a_s`` (``a_s = 0`` for a
    skipped step, NaN when every step was skipped), and ``skipped_steps`` is ``Σ_s (1 - a_s)``.
    """
    skipped = step_metrics.get("skipped")
    step_mean = jnum.mean if skipped is None else (lambda v: _applied_mean(v, skipped))
    out: dict[str, jax.Array] = {"train_loss": step_mean(step_metrics["loss"])}
    for name in config.metric_names():
        out[f"train_{name}"] = step_mean(step_metrics[name])
    out["grad_norm"] = step_mean(step_metrics["grad_norm"])
    for k, v in step_metrics.items():
        if k.startswith("grad_norm/"):
            out[k] = step_mean(v)
    if skipped is not None:
        out["skipped_steps"] = jnum.pairwise_sum(skipped)
    out.update(evals)
    if config.log_every is not None:
        out["train_loss@"], ends = step_blocks(step_metrics["loss"], config.log_every)
    diverged = state.diverged_epoch >= 0
    out = {k: _nan_if(diverged, v) for k, v in out.items()}
    if config.log_every is not None:
        out["train_loss@steps"] = jnp.asarray(ends)
    steps = state.step if state.loss_scale is None else state.step - state.loss_scale.skipped
    updates = steps if _accumulate(config) == 1 else steps // _accumulate(config)
    out["lr"] = jnp.asarray(joptim.build_schedule(config.optimizer, state.hparams)(updates), jnp.float32)
    return state._replace(epoch=state.epoch + 1), out


def _applied_mean(values: jax.Array, skipped: jax.Array) -> jax.Array:
    """``Σ_s (1 - k_s) v_s / Σ_s (1 - k_s)`` over the steps axis (``k_s = 1``: step ``s`` was skipped; pairwise
    sums; NaN when every step was skipped)."""
    applied = skipped == 0
    n = jnum.pairwise_sum(applied.astype(jnp.float32))
    total = jnum.pairwise_sum(jnp.where(applied, values, jnp.zeros((), values.dtype)))
    return jnp.where(n > 0, total * (1.0 / jnp.maximum(n, 1.0)), jnp.nan)


# -------------------------------------------------------------------------------------- the epoch driver
class EpochOps(NamedTuple):
    """The pieces :func:`run_epoch` calls, in this order: ``steps`` (all the epoch's optimizer steps, with
    their metrics stacked on a steps axis; it must leave its input state intact), ``guard``
    (:func:`guard_epoch` of the epoch's start and end states), ``evaluate`` (see :func:`make_evaluate`), ``early_stop``,
    ``average``, ``finish``. :func:`epoch_ops` gives the in-program pieces of one member; the host-loop
    execution (:mod:`jtricks.programs`) gives jitted population versions of the same functions."""

    steps: Callable[[TrainState, DeviceData], tuple[TrainState, dict]]
    guard: Callable[[TrainState, TrainState], TrainState]
    evaluate: Callable[..., dict[str, jax.Array]]
    early_stop: Callable[[TrainState, jax.Array], TrainState]
    average: Callable[[TrainState], tuple[TrainState, Any]]
    finish: Callable[[TrainState, dict, dict], tuple[TrainState, dict]]


def run_epoch(
    config: TrainConfig, ops: EpochOps, state: TrainState, data: DeviceData
) -> tuple[TrainState, dict[str, jax.Array]]:
    """One epoch: the steps, the divergence guard, then early stopping on ``config.monitor``, averaging,
    evaluation and metrics."""
    start = state
    state, step_metrics = ops.steps(state, data)
    state = ops.guard(start, state)
    if config.early_stopping:
        evals = ops.evaluate(
            state.params, state.model_state, state.one, state.hparams, data.x_val, data.y_val, data.val_mask
        )
        state = ops.early_stop(state, evals[config.monitored()])
    state, avg_params = ops.average(state)
    return ops.finish(state, step_metrics, evaluations(config, ops.evaluate, data, state, avg_params))


def eval_chunk(config: TrainConfig, data: DeviceData) -> int:
    """The evaluation chunk size of ``data`` (its evaluation splits are padded to a multiple of it)."""
    n_val, n_test = int(data.x_val.shape[0]), int(data.x_test.shape[0])
    n_fit = 0 if data.x_train_eval is None else int(data.x_train_eval.shape[0])
    chunk = min(config.eval_batch_size, n_val, n_test)
    if n_val % chunk or n_test % chunk or n_fit % chunk:
        raise ValueError(
            f"evaluation splits ({n_val}, {n_test}{f', {n_fit}' if n_fit else ''}) are not padded to a multiple of "
            f"eval_batch_size={chunk}; "
            "build them with jtricks.train.device_data"
        )
    return chunk


def epoch_ops(config: TrainConfig, data: DeviceData, *, batch_sharding: Any = None) -> EpochOps:
    """The in-program pieces of one member's epoch: the steps fused in ``lax.scan``, evaluation by ``lax.map``
    (each batch and evaluation chunk split over devices by ``batch_sharding``: :func:`shard_batch`)."""
    step = make_train_step(config, batch_sharding=batch_sharding)
    num_train = train_size(config, data)

    def steps(state: TrainState, d: DeviceData) -> tuple[TrainState, dict]:
        return jax.lax.scan(
            lambda s, b: step(s, d.x_train, d.y_train, b), state, epoch_indices(config, state, num_train)
        )

    return EpochOps(
        steps=steps,
        guard=lambda start, end: guard_epoch(config, start, end),
        evaluate=make_evaluate(config, eval_chunk(config, data), batch_sharding=batch_sharding),
        early_stop=lambda s, v: early_stop(config, s, v),
        average=lambda s: average(config, s),
        finish=lambda s, sm, ev: finish_epoch(config, s, sm, ev),
    )


def make_epoch(
    config: TrainConfig, *, batch_sharding: Any = None
) -> Callable[[TrainState, DeviceData], tuple[TrainState, dict[str, jax.Array]]]:
    """One epoch as a pure function ``epoch(state, data) -> (state, metrics)`` (:func:`run_epoch` over
    :func:`epoch_ops`). Metrics are per-epoch scalars (train_loss, train_<metric>, grad_norm, val_*, test_*,
    lr, and avg_* with averaging). ``data`` is an argument (not a closure constant), shared by a
    population: ``jax.vmap(epoch, in_axes=(0, None))``. ``batch_sharding`` splits each batch over devices
    (:func:`shard_batch`).
    """

    def epoch_fn(state: TrainState, data: DeviceData) -> tuple[TrainState, dict[str, jax.Array]]:
        data = member_data(config, state, data)
        return run_epoch(config, epoch_ops(config, data, batch_sharding=batch_sharding), state, data)

    return epoch_fn


def make_train(
    config: TrainConfig, data: DeviceData
) -> Callable[[jax.Array, Mapping[str, Any]], tuple[TrainState, dict]]:
    """``train(key, hparams) -> (final_state, history)``: the whole run as one pure function (PureJaxRL style).

    Epochs are a ``lax.scan`` of :func:`make_epoch`; ``history[metric]`` has shape ``(epochs,)``. Use it as
    ``jax.jit(jax.vmap(train))(keys, stacked_hparams)`` to train a population in one program. The
    experiment runner keeps the epoch loop on the host for progress, checkpoints and resume; both run
    :func:`run_epoch` and give the same numbers.
    """
    epoch_fn = make_epoch(config)
    input_shape = tuple(data.x_train.shape[1:])
    check_inputs(config, input_shape)

    def train(key: jax.Array, hparams: Mapping[str, Any]) -> tuple[TrainState, dict]:
        state = init_state(config, key, hparams, input_shape)
        return jax.lax.scan(lambda s, _: epoch_fn(s, data), state, None, length=config.epochs)

    return train
