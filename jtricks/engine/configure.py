"""Configure an experiment: its model, its static training configuration (:class:`jtricks.engine.train.TrainConfig`),
and the metrics it writes and summarises."""

from __future__ import annotations

from typing import Any

from jtricks import losses as jlosses
from jtricks import models as jmodels
from jtricks import optim as joptim
from jtricks._core import checks
from jtricks.engine import grid as jgrid
from jtricks.engine import train as jtrain
from jtricks.engine.experiment import Experiment, describe_object, model_arguments

__all__ = ["build_model", "build_config", "execution_of", "summary_metrics", "produced_metrics"]


def build_model(exp: Experiment, num_outputs: int) -> Any:
    """The :class:`jtricks.models.Model` of ``exp`` (``num_outputs``: classes, or regression targets)."""
    if isinstance(exp.model, jmodels.Model):
        if exp.model_kwargs:
            raise ValueError("model_kwargs apply to a model name or factory, not to a built Model; build it with them")
        return exp.model
    kwargs = dict(exp.model_kwargs)
    factory = jmodels.factory(exp.model) if isinstance(exp.model, str) else exp.model
    if not callable(factory):
        raise TypeError(f"'model' must be a registered name, a jtricks.models.Model or a factory, got {exp.model!r}")
    _check_model_arguments(exp, factory, kwargs)
    if checks.accepts_keyword(factory, "num_classes"):
        kwargs.setdefault("num_classes", num_outputs)
    model = factory(**kwargs)
    if not isinstance(model, jmodels.Model):
        raise TypeError(
            f"the model factory {describe_object(factory)} must return a jtricks.models.Model "
            f"(see jtricks.adapters), got {type(model).__name__}"
        )
    return model


def _check_model_arguments(exp: Experiment, factory: Any, kwargs: dict[str, Any]) -> None:
    """``ValueError`` naming an argument the model factory does not take, the closest ones and all it takes
    (a factory without an inspectable signature is not checked)."""
    accepted = model_arguments(exp)
    if not accepted:
        return
    unknown = [k for k in kwargs if not checks.accepts_keyword(factory, k)]
    if unknown:
        close = " or ".join(f"'model.{a}'" for a in checks.close_matches(unknown[0], accepted))
        name = exp.model if isinstance(exp.model, str) else describe_object(exp.model)
        raise ValueError(
            f"'model.{unknown[0]}' is not an argument of the model {name!r}"
            f"{f'; did you mean {close}?' if close else ''} (its arguments: "
            f"{', '.join(f'model.{a}' for a in accepted)})"
        )


def build_config(
    exp: Experiment,
    model: Any,
    num_train: int,
    *,
    traced: frozenset[str] | None = None,
    member_split: tuple[int, int, int] | None = None,
) -> jtrain.TrainConfig:
    """The static :class:`jtricks.train.TrainConfig` of ``exp`` (``num_train`` fixes steps per epoch).

    ``traced``: the model hyperparameters its program traces (:func:`jtricks.engine.grid.traced_hparams`:
    of a group, those any arm sets; default: those ``exp.hparams`` sets). ``member_split``: the pool split of
    ``vary_split`` (:attr:`jtricks.engine.prepare.PreparedData.member_split`).
    """
    traced = jgrid.traced_hparams([exp.hparams]) if traced is None else traced
    steps_per_epoch = max(1, num_train // exp.batch_size)
    spec = joptim.OptimizerSpec(
        name=exp.optimizer,
        schedule=exp.schedule,
        clip=exp.clip,
        weight_decay=exp.weight_decay,
        steps_per_epoch=steps_per_epoch,
        total_steps=steps_per_epoch * exp.epochs,
        decay_every_epochs=exp.decay_every_epochs,
        warmup_steps=max(0, steps_per_epoch * exp.warmup_epochs),
        accumulate=exp.accumulate,
    )
    return jtrain.TrainConfig(
        model=model,
        optimizer=spec,
        epochs=exp.epochs,
        batch_size=exp.batch_size,
        loss=jlosses.get(exp.loss),
        metrics=None if exp.eval_metrics is None else tuple(exp.eval_metrics),
        l2=exp.l2,
        early_stopping=exp.early_stopping,
        monitor=exp.monitor,
        averaging=exp.averaging,
        execution=execution_of(exp),  # type: ignore[arg-type]
        eval_batch_size=exp.eval_batch_size,
        diagnostics=exp.diagnostics,
        dropout="dropout_rate" in traced,
        init_scale="init_scale" in traced,
        custom_hparams=dict(exp.custom_hparams),
        divergence_factor=exp.divergence_factor,
        log_every=exp.log_every,
        train_eval=exp.train_eval,
        augment=exp.augment,
        crop_padding=exp.crop_padding,
        member_split=member_split,
        precision=exp.precision,
    )


def execution_of(exp: Experiment) -> str:
    """``exp.execution``, with ``"auto"`` resolved to ``"loop"`` for a streamed training split (its batches come
    from the host step by step)."""
    return "loop" if exp.data_placement == "stream" and exp.execution == "auto" else exp.execution


def summary_metrics(exp: Experiment, config: jtrain.TrainConfig) -> tuple[str, ...]:
    """The metrics ``exp`` summarises: ``exp.metrics`` or the defaults of its task."""
    if exp.metrics is not None:
        return tuple(exp.metrics)
    main = "acc" if "acc" in config.metric_names() else (config.metric_names() or ("loss",))[-1]
    return (f"test_{main}", f"val_{main}", "train_loss")


def produced_metrics(config: jtrain.TrainConfig) -> frozenset[str]:
    """Every metric name a run of ``config`` writes to ``metrics.csv``."""
    base = ("loss", *config.metric_names())
    evaluated = ("val", "test", "train_eval") if config.train_eval else ("val", "test")
    names = {f"train_{b}" for b in base} | {f"{s}_{b}" for s in evaluated for b in base} | {"grad_norm", "lr"}
    if config.averaging:
        names |= {f"avg_{s}_{b}" for s in ("val", "test") for b in base}
    if config.precision == "float16":
        names.add("skipped_steps")
    return frozenset(names)
