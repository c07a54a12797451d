"""The training engine: a pure train step, an epoch, evaluation, and a whole run as one pure function.

Model of execution (see ``docs/engine.md``)::

    state  = init_state(config, key, hparams, input_shape)      # one member
    state, m = train_step(config)(state, x_all, y_all, batch_idx) # one optimizer step
    state, h = run_epoch(config, data)(state)                     # one epoch (steps fused in lax.scan)
    train    = make_train(config, data); state, history = train(key, hparams)   # a whole run

Everything is a pure function of (state, data), so ``jax.vmap`` turns one member into a population:
seeds × numeric hyperparameters (learning rate, dropout rate, weight decay, ...) run as ONE compiled
program. Numeric hyperparameters live as arrays in ``state.hparams`` (and in the optimizer state through
``optax.inject_hyperparams``); only the :class:`TrainConfig` is static.

Per-member safety: a step whose loss or gradient is non-finite is not applied; the member is frozen at
its last finite state and marked diverged (``state.diverged_epoch``), its later metrics are NaN, and no
other member is affected. Early stopping freezes a member the same way (after restoring its best
params). Both use ``jnp.where`` masks, never Python branches on traced values.

Randomness comes from named streams of the member's root key (:mod:`jtricks.keys`): ``"init"`` for the
weights, ``"data"`` for the epoch permutations, ``"dropout"`` for dropout masks. Toggling dropout or
changing its rate therefore leaves the initial weights and the data order of a seed unchanged.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Literal, Mapping, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jtricks import data as jdata
from jtricks import diagnostics as jdiag
from jtricks import optim as joptim
from jtricks import population as jpop
from jtricks import numerics as jnum
from jtricks import regularize as jreg
from jtricks.keys import key_for

__all__ = [
    "TrainConfig",
    "TrainState",
    "DeviceData",
    "ENGINE_HPARAMS",
    "default_hparams",
    "validate_hparams",
    "device_data",
    "init_state",
    "loss_fn",
    "make_train_step",
    "make_evaluate",
    "evaluations",
    "make_epoch",
    "make_train",
    "resolve_execution",
    "CONV_MODELS",
]

Execution = Literal["auto", "scan", "loop"]
Averaging = Literal[None, "ema", "swa"]

#: Numeric hyperparameters the engine itself reads from ``state.hparams`` (the optimizer's come from
#: :func:`jtricks.optim.hparam_names`).
ENGINE_HPARAMS: dict[str, float] = {
    "dropout_rate": 0.0,  # overrides the model's static rate (traced: one compile for a grid of rates)
    "init_scale": 1.0,  # multiplier on the initializer's std (traced)
    "l2": 0.0,  # coefficient λ of the L2 penalty λ·½‖w‖² added to the loss (kernels only)
    "patience": 5.0,  # early stopping: epochs without improvement of the monitored metric
    "min_delta": 0.0,  # early stopping: minimum improvement
    "ema_decay": 0.99,  # EMA of the weights, per step
    "swa_start": 1.0,  # SWA: first epoch (1-based) whose end-of-epoch weights enter the average
}

#: Models whose convolutions XLA CPU runs much slower inside ``lax.scan`` (see docs/engine.md); the same set
#: :mod:`jtricks.population` unrolls on CPU.
CONV_MODELS = jpop.CONV_MODELS


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Static description of a training run: everything that changes the compiled program.

    Attributes:
      model: a :class:`jtricks.models.Model` (``init``, ``apply``, ``name``, ``config``).
      optimizer: a :class:`jtricks.optim.OptimizerSpec` (family, schedule, clipping, decay: structure only).
      epochs: number of epochs.
      batch_size: examples per step (an epoch is ``num_train // batch_size`` steps; the remainder of each
        epoch's permutation is dropped, so every example is still seen over epochs).
      l2: add ``hparams["l2"] · ½Σ‖W‖²`` over kernels (ndim ≥ 2) to the loss.
      early_stopping: monitor ``val_loss`` (min); stop after ``hparams["patience"]`` epochs without an
        improvement larger than ``hparams["min_delta"]``, restore the best params and freeze.
      averaging: ``None``, ``"ema"`` (per-step EMA, debiased) or ``"swa"`` (uniform average of the
        end-of-epoch weights from epoch ``hparams["swa_start"]``); the averaged weights are evaluated as
        ``avg_val_*`` / ``avg_test_*`` metrics.
      execution: ``"scan"`` (an epoch's steps fused in ``lax.scan``), ``"loop"`` (a host loop of jitted
        steps) or ``"auto"`` (loop for convolutional models on CPU, scan otherwise; see
        :func:`resolve_execution`).
      eval_batch_size: chunk size of evaluation (fixed: no recompile for the last partial chunk).
      diagnostics: add per-layer gradient norms (``grad_norm/<layer>``) to the metrics.
      dropout: the dropout rate is data (``hparams["dropout_rate"]``, overriding the model's static
        rate), so one program serves a grid of rates; off, the model's static rate applies.
      init_scale: multiply the initializer's std by ``hparams["init_scale"]`` (data).
    """

    model: Any
    optimizer: Any
    epochs: int
    batch_size: int
    l2: bool = False
    early_stopping: bool = False
    averaging: Averaging = None
    execution: Execution = "auto"
    eval_batch_size: int = 1000
    diagnostics: bool = False
    dropout: bool = False
    init_scale: bool = False

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "eval_batch_size"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise ValueError(f"TrainConfig.{name} must be a positive int, got {v!r}")
        if self.averaging not in (None, "ema", "swa"):
            raise ValueError(f"TrainConfig.averaging must be one of None, 'ema', 'swa'; got {self.averaging!r}")
        if self.execution not in ("auto", "scan", "loop"):
            raise ValueError(f"TrainConfig.execution must be one of 'auto', 'scan', 'loop'; got {self.execution!r}")

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
        return tuple(dict.fromkeys(names))


class TrainState(NamedTuple):
    """Everything one member carries from step to step (a pytree; stack it for a population).

    ``diverged_epoch`` is -1 until the member diverges (1-based epoch). ``one`` is a per-member float32
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
    one: jax.Array


class DeviceData(NamedTuple):
    """Device-resident splits, shared (not vmapped) by every member of a population.

    Evaluation splits are zero-padded to a multiple of the evaluation chunk; ``*_mask`` marks real examples.
    """

    x_train: jax.Array
    y_train: jax.Array
    x_val: jax.Array
    y_val: jax.Array
    val_mask: jax.Array
    x_test: jax.Array
    y_test: jax.Array
    test_mask: jax.Array


def _pad_to(x: np.ndarray, multiple: int) -> tuple[np.ndarray, np.ndarray]:
    n = x.shape[0]
    total = max(multiple, -(-n // multiple) * multiple)
    pad = np.zeros((total - n,) + x.shape[1:], dtype=x.dtype)
    mask = np.concatenate([np.ones(n, bool), np.zeros(total - n, bool)])
    return np.concatenate([x, pad]), mask


def device_data(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    *,
    eval_batch_size: int,
) -> DeviceData:
    """Put the splits on the device once; pad the evaluation splits to whole chunks of ``eval_batch_size``."""
    for name, x, y in (("train", x_train, y_train), ("val", x_val, y_val), ("test", x_test, y_test)):
        if len(x) != len(y):
            raise ValueError(f"{name} split: {len(x)} inputs but {len(y)} labels")
        if len(x) == 0:
            raise ValueError(f"{name} split is empty")
    eb = min(eval_batch_size, max(len(x_val), len(x_test)))
    xv, vm = _pad_to(np.asarray(x_val, np.float32), eb)
    yv, _ = _pad_to(np.asarray(y_val, np.int32), eb)
    xt, tm = _pad_to(np.asarray(x_test, np.float32), eb)
    yt, _ = _pad_to(np.asarray(y_test, np.int32), eb)
    put = jnp.asarray
    return DeviceData(
        put(np.asarray(x_train, np.float32)),
        put(np.asarray(y_train, np.int32)),
        put(xv),
        put(yv),
        put(vm),
        put(xt),
        put(yt),
        put(tm),
    )


def default_hparams(config: TrainConfig) -> dict[str, float]:
    """Default values of every numeric hyperparameter ``config`` reads."""
    out = dict(joptim.default_hparams(config.optimizer))
    model_rate = float(getattr(config.model, "config", {}).get("dropout_rate", 0.0) or 0.0)
    for name in config.hparam_names():
        if name not in out:
            out[name] = ENGINE_HPARAMS[name]
    if config.dropout:
        out["dropout_rate"] = model_rate
    return {k: out[k] for k in config.hparam_names()}


def validate_hparams(config: TrainConfig, hparams: Mapping[str, Any]) -> dict[str, Any]:
    """Fill defaults and check names (and Python-number values) before anything compiles."""
    allowed = config.hparam_names()
    unknown = sorted(set(hparams) - set(allowed))
    if unknown:
        raise ValueError(f"unknown hyperparameter(s) {unknown}; this configuration reads {list(allowed)}")
    full = {**default_hparams(config), **dict(hparams)}
    for name, v in full.items():
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            if not np.isfinite(v):
                raise ValueError(f"hyperparameter {name!r} must be finite, got {v}")
            if name == "dropout_rate" and not 0.0 <= v < 1.0:
                raise ValueError(f"hyperparameter 'dropout_rate' must be in [0, 1), got {v}")
            if name in ("l2", "patience", "min_delta", "swa_start") and v < 0:
                raise ValueError(f"hyperparameter {name!r} must be >= 0, got {v}")
            if name == "ema_decay" and not 0.0 <= v < 1.0:
                raise ValueError(f"hyperparameter 'ema_decay' must be in [0, 1), got {v}")
    # the optimizer builder validates its own Python-number hyperparameters (nothing is compiled here)
    joptim.build(config.optimizer, {k: full[k] for k in joptim.hparam_names(config.optimizer)})
    return full


def as_arrays(hparams: Mapping[str, Any]) -> dict[str, jax.Array]:
    """Hyperparameters as float32 arrays: never constant-folded Python floats (bitwise population = standalone)."""
    return {k: jnp.asarray(v, dtype=jnp.float32) for k, v in hparams.items()}


def _build_tx(config: TrainConfig, hparams: Mapping[str, jax.Array]) -> optax.GradientTransformation:
    opt_names = joptim.hparam_names(config.optimizer)
    return joptim.build(config.optimizer, {k: hparams[k] for k in opt_names})


def init_state(config: TrainConfig, key: jax.Array, hparams: Mapping[str, Any], input_shape: tuple[int, ...]) -> TrainState:
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
    early = jreg.early_stopping_init((params, model_state), mode="min") if config.early_stopping else None
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
        # 1.0, but computed from member data so that XLA can neither constant-fold it nor drop its
        # population axis (0·lr is not foldable in IEEE arithmetic; lr is finite for any run that trains)
        one=jnp.float32(1.0) + jnp.float32(0.0) * hp["learning_rate"],
    )


def loss_fn(
    config: TrainConfig,
    params: Any,
    model_state: Any,
    x: jax.Array,
    y: jax.Array,
    *,
    key: jax.Array | None,
    hparams: Mapping[str, jax.Array],
) -> tuple[jax.Array, tuple[Any, jax.Array, jax.Array]]:
    """Training objective ``mean CE(softmax(f(x)), y) + λ·½Σ‖W‖²`` → (loss, (new_model_state, ce, accuracy))."""
    model_hp = {"dropout_rate": hparams["dropout_rate"]} if config.dropout else None
    logits, new_state = config.model.apply(params, model_state, x, key=key, train=True, hparams=model_hp)
    ce = jnum.mean(jnum.softmax_cross_entropy(logits, y))
    loss = ce
    if config.l2:
        loss = loss + hparams["l2"] * jreg.l2_penalty(params, jreg.decay_mask(params))
    acc = jnum.mean((jnp.argmax(logits, -1) == y).astype(jnp.float32))
    return loss, (new_state, ce, acc)


def _select(pred: jax.Array, new: Any, old: Any) -> Any:
    return jax.tree_util.tree_map(lambda a, b: jnp.where(pred, a, b), new, old)


def _frozen(config: TrainConfig, state: TrainState) -> jax.Array:
    frozen = state.diverged_epoch >= 0
    if config.early_stopping:
        frozen = frozen | state.early.should_stop
    return frozen


def make_train_step(config: TrainConfig) -> Callable[[TrainState, jax.Array, jax.Array, jax.Array], tuple[TrainState, dict]]:
    """A pure ``step(state, x_all, y_all, batch_idx) -> (state, metrics)``.

    The batch is gathered on device (``x_all[batch_idx]``), so a population shares one copy of the data.
    The update is applied only when the loss and the gradient norm are finite and the member is not frozen;
    a non-finite step marks the member diverged in the current epoch and freezes it.
    Metrics: ``loss`` (cross-entropy + penalty), ``ce``, ``acc``, ``grad_norm`` and, with
    ``config.diagnostics``, ``grad_norm/<layer>``.
    """

    def step(state: TrainState, x_all: jax.Array, y_all: jax.Array, batch_idx: jax.Array) -> tuple[TrainState, dict]:
        x = x_all[batch_idx]
        y = y_all[batch_idx]
        dkey = jax.random.fold_in(key_for(state.key, "dropout"), state.step)
        grad_fn = jax.value_and_grad(loss_fn, argnums=1, has_aux=True)
        (loss, (new_mstate, ce, acc)), grads = grad_fn(
            config, state.params, state.model_state, x, y, key=dkey, hparams=state.hparams
        )
        gnorm = jnum.global_norm(grads)
        tx = _build_tx(config, state.hparams)
        updates, new_opt = tx.update(grads, state.opt_state, state.params)
        new_params = optax.apply_updates(state.params, updates)
        ok = jnp.isfinite(loss) & jnp.isfinite(gnorm)
        frozen = _frozen(config, state)
        commit = ok & ~frozen
        avg = state.averaging
        if config.averaging == "ema":
            avg = _select(commit, jreg.ema_update(avg, new_params, state.hparams["ema_decay"]), avg)
        new_state = state._replace(
            step=state.step + commit.astype(jnp.int32),
            params=_select(commit, new_params, state.params),
            model_state=_select(commit, new_mstate, state.model_state),
            opt_state=_select(commit, new_opt, state.opt_state),
            averaging=avg,
            diverged_epoch=jnp.where(~ok & ~frozen, state.epoch + 1, state.diverged_epoch),
        )
        metrics = {"loss": loss, "ce": ce, "acc": acc, "grad_norm": gnorm}
        if config.diagnostics:
            for name, v in jdiag.per_layer_norms(grads, group="layer").items():
                metrics[f"grad_norm/{name}"] = v
        return new_state, metrics

    return step


def make_evaluate(config: TrainConfig, chunk: int) -> Callable[..., tuple[jax.Array, jax.Array]]:
    """``evaluate(params, model_state, one, x, y, mask) -> (mean loss, accuracy)`` over fixed-size chunks.

    ``one`` is the member's ``TrainState.one`` (see :class:`TrainState`).

    ``x`` is padded to a multiple of ``chunk`` (see :func:`device_data`); padded rows are masked out, so
    every split compiles to one chunk shape. Eval mode: dropout off, batch norm on running statistics.
    """

    def chunk_sums(params: Any, model_state: Any, one: jax.Array, x: jax.Array, y: jax.Array, m: jax.Array) -> jax.Array:
        logits, _ = config.model.apply(params, model_state, x * one.astype(x.dtype), key=None, train=False, hparams=None)
        ce = jnum.softmax_cross_entropy(logits, y)
        correct = (jnp.argmax(logits, -1) == y).astype(jnp.float32)
        mf = m.astype(jnp.float32)
        return jnp.stack([jnum.pairwise_sum(ce * mf), jnum.pairwise_sum(correct * mf)])

    def evaluate(params: Any, model_state: Any, one: jax.Array, x: jax.Array, y: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
        n_chunks = x.shape[0] // chunk
        xs = x.reshape((n_chunks, chunk) + x.shape[1:])
        ys = y.reshape((n_chunks, chunk))
        ms = mask.reshape((n_chunks, chunk))
        sums = jnum.pairwise_sum(jax.lax.map(lambda c: chunk_sums(params, model_state, one, *c), (xs, ys, ms)), 0)
        inv_n = 1.0 / jnum.pairwise_sum(mask.astype(jnp.float32))
        return sums[0] * inv_n, sums[1] * inv_n

    evaluate.chunk_sums = chunk_sums  # type: ignore[attr-defined]  # used by the host-loop execution
    return evaluate


def resolve_execution(config: TrainConfig, backend: str | None = None) -> Literal["scan", "loop"]:
    """Pick the execution mode: the user's choice, or by model and backend when ``"auto"``.

    Measured on XLA CPU (docs/engine.md, benchmarks/): the MNIST-1D MLP runs ~1.3× faster with an epoch's
    steps fused in ``lax.scan``, while convolutional models run 3-15× slower inside ``lax.scan`` than as
    a host loop of jitted steps. So ``auto`` = ``loop`` for convolutional models on CPU, ``scan`` otherwise.
    """
    if config.execution != "auto":
        return config.execution  # type: ignore[return-value]
    backend = backend or jax.default_backend()
    if backend == "cpu" and getattr(config.model, "name", "") in CONV_MODELS:
        return "loop"
    return "scan"


def _epoch_indices(config: TrainConfig, state: TrainState, num_train: int) -> jax.Array:
    return jdata.epoch_batches(jax.random.fold_in(key_for(state.key, "data"), state.epoch), num_train, config.batch_size)


def _nan_if(pred: jax.Array, v: jax.Array) -> jax.Array:
    return jnp.where(pred, jnp.nan, v)


def _early_stop(config: TrainConfig, state: TrainState, val_loss: jax.Array) -> TrainState:
    """Early-stopping bookkeeping at the end of an epoch: update, and restore the best params on stopping."""
    if not config.early_stopping:
        return state
    was_stopped = state.early.should_stop
    es = jreg.early_stopping_update(
        state.early,
        val_loss,
        (state.params, state.model_state),
        state.epoch + 1,
        patience=state.hparams["patience"],
        min_delta=state.hparams["min_delta"],
        mode="min",
    )
    restore = es.should_stop & ~was_stopped & (state.diverged_epoch < 0)
    best_params, best_mstate = es.best_params
    return state._replace(
        early=es,
        params=_select(restore, best_params, state.params),
        model_state=_select(restore, best_mstate, state.model_state),
    )


def _average(config: TrainConfig, state: TrainState) -> tuple[TrainState, Any]:
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


def _finish_epoch(
    config: TrainConfig, state: TrainState, step_metrics: dict[str, jax.Array], evals: dict[str, jax.Array]
) -> tuple[TrainState, dict[str, jax.Array]]:
    """Per-epoch metrics (train means over the epoch's steps + evaluations); NaN once diverged."""
    out: dict[str, jax.Array] = {
        "train_loss": jnum.mean(step_metrics["ce"]),
        "train_acc": jnum.mean(step_metrics["acc"]),
        "grad_norm": jnum.mean(step_metrics["grad_norm"]),
    }
    for k, v in step_metrics.items():
        if k.startswith("grad_norm/"):
            out[k] = jnum.mean(v)
    out.update(evals)
    diverged = state.diverged_epoch >= 0
    out = {k: _nan_if(diverged, v) for k, v in out.items()}
    out["lr"] = _current_lr(config, state)
    return state._replace(epoch=state.epoch + 1), out


def evaluations(
    config: TrainConfig, evaluate: Callable[..., tuple[jax.Array, jax.Array]], data: DeviceData, state: TrainState, avg_params: Any
) -> dict[str, jax.Array]:
    """``{val,test}_{loss,acc}`` (and ``avg_*`` for the averaged params) with ``evaluate`` (in-program or host loop)."""
    evals: dict[str, jax.Array] = {}
    targets = [("", state.params)] + ([("avg_", avg_params)] if config.averaging else [])
    for prefix, params in targets:
        for split, x, y, m in (("val", data.x_val, data.y_val, data.val_mask), ("test", data.x_test, data.y_test, data.test_mask)):
            loss, acc = evaluate(params, state.model_state, state.one, x, y, m)
            evals[f"{prefix}{split}_loss"], evals[f"{prefix}{split}_acc"] = loss, acc
    return evals


def _end_of_epoch(
    config: TrainConfig,
    evaluate: Callable[..., tuple[jax.Array, jax.Array]],
    data: DeviceData,
    state: TrainState,
    step_metrics: dict[str, jax.Array],
) -> tuple[TrainState, dict[str, jax.Array]]:
    """Close an epoch inside one program: early stopping, SWA, evaluation, metrics."""
    if config.early_stopping:
        vloss = evaluate(state.params, state.model_state, state.one, data.x_val, data.y_val, data.val_mask)[0]
        state = _early_stop(config, state, vloss)
    state, avg_params = _average(config, state)
    return _finish_epoch(config, state, step_metrics, evaluations(config, evaluate, data, state, avg_params))


def _current_lr(config: TrainConfig, state: TrainState) -> jax.Array:
    """The learning rate the schedule gives at the member's current step."""
    return jnp.asarray(joptim.build_schedule(config.optimizer, state.hparams)(state.step), jnp.float32)


def make_epoch(config: TrainConfig) -> Callable[[TrainState, DeviceData], tuple[TrainState, dict[str, jax.Array]]]:
    """One epoch as a pure function: ``lax.scan`` over the epoch's batches, then evaluation.

    ``epoch(state, data) -> (state, metrics)`` where metrics are per-epoch scalars (train_loss, train_acc,
    grad_norm, val_loss, val_acc, test_loss, test_acc, lr, and avg_* with averaging). ``data`` is an
    argument (not a closure constant), shared by a population: ``jax.vmap(epoch, in_axes=(0, None))``.
    """
    step = make_train_step(config)

    def epoch_fn(state: TrainState, data: DeviceData) -> tuple[TrainState, dict[str, jax.Array]]:
        num_train = int(data.x_train.shape[0])
        evaluate = make_evaluate(config, _eval_chunk(config, data))
        idx = _epoch_indices(config, state, num_train)

        def body(s: TrainState, bidx: jax.Array) -> tuple[TrainState, dict]:
            return step(s, data.x_train, data.y_train, bidx)

        state, step_metrics = jax.lax.scan(body, state, idx)
        return _end_of_epoch(config, evaluate, data, state, step_metrics)

    return epoch_fn


def _eval_chunk(config: TrainConfig, data: DeviceData) -> int:
    n_val, n_test = int(data.x_val.shape[0]), int(data.x_test.shape[0])
    chunk = min(config.eval_batch_size, n_val, n_test)
    if n_val % chunk or n_test % chunk:
        raise ValueError(
            f"evaluation splits ({n_val}, {n_test}) are not padded to a multiple of eval_batch_size={chunk}; "
            "build them with jtricks.train.device_data"
        )
    return chunk


def make_train(config: TrainConfig, data: DeviceData) -> Callable[[jax.Array, Mapping[str, Any]], tuple[TrainState, dict]]:
    """``train(key, hparams) -> (final_state, history)``: the whole run as one pure function (PureJaxRL style).

    Epochs are a ``lax.scan`` of :func:`make_epoch`; ``history[metric]`` has shape ``(epochs,)``. Use it as
    ``jax.jit(jax.vmap(train))(keys, stacked_hparams)`` to train a population in one program. The
    experiment runner (:mod:`jtricks.experiment`) uses the same pieces but keeps the epoch loop on the host
    for progress, checkpoints and resume; both give the same numbers.
    """
    epoch_fn = make_epoch(config)
    input_shape = tuple(data.x_train.shape[1:])

    def train(key: jax.Array, hparams: Mapping[str, Any]) -> tuple[TrainState, dict]:
        state = init_state(config, key, hparams, input_shape)
        return jax.lax.scan(lambda s, _: epoch_fn(s, data), state, None, length=config.epochs)

    return train


class LoopFunctions(NamedTuple):
    """Pieces of one epoch for the host-loop execution; the runner jits and vmaps each one.

    Order per epoch: ``indices`` → ``step`` per batch → (``early_stop`` with the host-evaluated val loss)
    → ``average`` → host evaluation with ``chunk_sums`` → ``finish``. Same math as :func:`make_epoch`,
    but no convolution ever runs inside a loop construct (XLA CPU compiles those much slower).
    """

    indices: Callable[[TrainState], jax.Array]
    step: Callable[..., tuple[TrainState, dict]]
    early_stop: Callable[[TrainState, jax.Array], TrainState]
    average: Callable[[TrainState], tuple[TrainState, Any]]
    chunk_sums: Callable[..., jax.Array]
    finish: Callable[[TrainState, dict, dict], tuple[TrainState, dict]]
    chunk: int


def make_loop_functions(config: TrainConfig, data: DeviceData) -> LoopFunctions:
    """The pieces of one epoch for the host-loop mode (see :class:`LoopFunctions`)."""
    num_train = int(data.x_train.shape[0])
    chunk = _eval_chunk(config, data)
    evaluate = make_evaluate(config, chunk)

    def indices(state: TrainState) -> jax.Array:
        return _epoch_indices(config, state, num_train)

    return LoopFunctions(
        indices=indices,
        step=make_train_step(config),
        early_stop=lambda s, vl: _early_stop(config, s, vl),
        average=lambda s: _average(config, s),
        chunk_sums=evaluate.chunk_sums,  # type: ignore[attr-defined]
        finish=lambda s, sm, ev: _finish_epoch(config, s, sm, ev),
        chunk=chunk,
    )
