"""Experiments: a declarative grid over the pure training function.

An :class:`Experiment` names a data set, a model, a loss, an optimizer, a number of epochs and seeds,
and a *grid* of factors. Each factor is either

* **numeric** — a hyperparameter that is data (learning rate, dropout rate, weight decay, clip norm,
  momentum, decay rate, the user's own ``custom_hparams``, ...): its values are vmapped, they never
  recompile; or
* **static** — structure (optimizer family, schedule, normalization, initializer, architecture, input
  preprocessing, early stopping, averaging): one compile per distinct static configuration.

Seeds are always vmapped. The expansion is ``arms × grid`` (``arms`` is an optional explicit list of
heterogeneous arms, e.g. "none / early stopping / weight decay / dropout"); the runner groups the arms
by their static configuration and runs each group as one ``jit(vmap(...))`` population.

Every field of :class:`Experiment` carries its metadata (:func:`setting`): the *part* it belongs to
(``data``, ``model``, ``objective``, ``optimizer``, ``regularization``, ``execution``, ``reporting``,
``run``) and its *role*: ``"data"`` (changes the prepared data: part of the data cache key and of the
static signature), ``"program"`` (changes the compiled program: part of the static signature) or
``"run"`` (neither). The static/numeric split, the data cache key, the settable keys and the allowed
values are all derived from that metadata (:data:`SETTINGS`).

Keys of ``grid``, ``arms`` and ``--set`` are: an :class:`Experiment` field (``optimizer``, ``schedule``,
``epochs``, ...), ``model.<kwarg>`` for a model argument (``model.norm``, ``model.init``,
``model.widths``), or a numeric hyperparameter name (``learning_rate``, ``dropout_rate``, a custom one).
Everything is validated before any data is loaded or anything compiles.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
import inspect
import os
from pathlib import Path
from typing import Any, Callable, Literal, Mapping, Sequence

import numpy as np

from jtricks import data as jdata
from jtricks import hparams as jhparams
from jtricks import losses as jlosses
from jtricks import metrics as jmetrics
from jtricks import models as jmodels
from jtricks import optim as joptim
from jtricks.engine import population as jpop
from jtricks.engine import search as jsearch
from jtricks.engine import train as jtrain

__all__ = [
    "Experiment",
    "Arm",
    "SETTINGS",
    "NUMERIC_HPARAMS",
    "STATIC_FIELDS",
    "REPORT_ONLY",
    "setting",
    "parts",
    "expand",
    "arm_name",
    "apply_overrides",
    "parse_set",
    "with_settings",
    "static_signature",
    "to_json",
    "data_key",
    "build_model",
    "build_config",
    "load_experiment",
    "find_experiments",
    "validate",
]

Role = Literal["data", "program", "run"]

#: Every numeric hyperparameter a grid may vmap over without declaring it (the library's registry,
#: :data:`jtricks.hparams.REGISTRY`: optimizers, schedules, the engine, the losses); an experiment's
#: ``custom_hparams`` add its own, and an optax optimizer factory adds its numeric arguments.
NUMERIC_HPARAMS: frozenset[str] = frozenset(jhparams.REGISTRY)


def setting(default: Any, *, part: str, role: Role, choices: Callable[[], Sequence[Any]] | None = None,
            settable: bool = True) -> Any:
    """A field of :class:`Experiment` with its metadata: ``part``, ``role`` (see the module docstring),
    ``choices`` (a function giving the allowed names, checked by :func:`validate`) and ``settable``
    (whether ``grid`` / ``arms`` / ``--set`` may vary it)."""
    meta = {"part": part, "role": role, "choices": choices, "settable": settable}
    if isinstance(default, (dict, list)):
        return dataclasses.field(default_factory=lambda d=default: type(d)(d), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


@dataclasses.dataclass(frozen=True)
class Experiment:
    """A declarative ablation. See the module docstring for what is static and what is vmapped.

    **data** — ``dataset``: a registered name (:func:`jtricks.data.names`; add your own with
    :func:`jtricks.data.register_dataset`) or a :class:`jtricks.data.Dataset` object (your arrays, with an
    optional validation split; ``num_classes=None`` for regression); ``dataset_kwargs`` go to the loader;
    ``preprocess``: ``"raw"``, ``"unit"`` ([0,1]), ``"symmetric"`` ([-1,1]) or ``"standardize"`` (train
    statistics); ``n_train``: a fixed subset; ``n_val``: validation examples held out of the training split by
    the fixed ``split_seed`` (the same split for every seed and arm; unused when the data set has its own
    validation split); ``eval_batch_size``: evaluation chunk.

    **model** — ``model``: a registered name (:func:`jtricks.models.names`; add your own with
    :func:`jtricks.models.register_model`), a :class:`jtricks.models.Model` (e.g. from
    :mod:`jtricks.adapters`) or a factory ``(**model_kwargs) -> Model``; ``model_kwargs``: its static arguments
    (``num_classes`` is filled in from the data when the factory takes it).

    **objective** — ``loss``: a name of :data:`jtricks.losses.LOSSES` or a :class:`jtricks.losses.Loss` /
    callable; ``eval_metrics``: the metrics measured besides the loss (names of :data:`jtricks.metrics.METRICS`
    or :class:`jtricks.metrics.Metric` objects; ``None``: accuracy for classification, mse and r2 for
    regression).

    **optimizer** — ``optimizer``: a name of :data:`jtricks.optim.OPTIMIZERS` or any optax optimizer factory
    (``optax.lion``; its numeric arguments become hyperparameters); ``schedule``, ``decay_every_epochs``,
    ``warmup_epochs``, ``clip``, ``weight_decay`` (:class:`jtricks.optim.OptimizerSpec`). ``l2`` and
    ``weight_decay`` are both a switch and a coefficient: in ``grid`` / ``arms`` / ``--set`` a bool sets the
    switch, a number sets the coefficient and the switch.

    **regularization** — ``l2``, ``early_stopping`` (monitoring ``monitor``), ``averaging``,
    ``divergence_factor`` (a member whose training objective exceeds this multiple of its first step's is
    frozen and reported diverged, like a non-finite one; ``None``: off) (:class:`jtricks.train.TrainConfig`).

    **execution** — ``epochs``, ``batch_size``, ``execution`` (``"scan"``/``"loop"``/``"auto"``),
    ``population`` (how the members are mapped: ``"vmap"``, ``"unroll"`` or ``"auto"``,
    :func:`jtricks.population.resolve_strategy`), ``diagnostics``, ``max_members`` (population chunk size),
    ``log_every`` (also record the training loss averaged over every ``log_every`` steps: ``train_loss@<step>``
    rows, :class:`jtricks.train.TrainConfig`).

    **reporting** — ``metrics``: the metrics summarised (final epoch, mean and 95% CI over seeds; ``None``:
    test and validation accuracy and train loss for classification, test and validation r2 and train loss
    for regression); ``baseline``: the arm every other arm is compared with (default: the first arm);
    ``target``: a validation accuracy (or ``{metric: value}``) whose first epoch is reported; ``train_eval``:
    evaluate a fixed sample of this many training examples in eval mode every epoch (``train_eval_<metric>``,
    the clean training accuracy for train/validation gaps; 0: off); ``adjust``: the
    multiple-comparison adjustment of each metric's comparisons with the baseline (``"holm"``, ``"bh"``
    Benjamini-Hochberg, ``"none"``; :func:`jtricks.stats.adjust_pvalues`).

    **run** — ``name``, ``description``, ``hparams`` (fixed numeric hyperparameters; defaults come from the
    optimizer, the loss and the engine), ``custom_hparams`` (the user's own numeric hyperparameters with
    their defaults, read by the model's ``apply`` or the loss from their ``hparams`` dict: data, vmappable,
    a grid factor like any other), ``grid`` (factor → list of values, the Cartesian product is taken),
    ``arms`` (explicit list of overrides, each with an optional ``"name"``), ``seeds`` (``seed_offset``, ...,
    ``seed_offset + seeds - 1``).

    **search** (:mod:`jtricks.search`, ``docs/search.md``) — a ``grid`` value may be a distribution
    (``loguniform(1e-4, 1e-1)``, ``uniform(a, b)``, ``choice([...])``): ``samples`` joint draws from
    ``sample_seed`` are crossed with the list factors; ``search``: ``None`` (run every member to the end)
    or :class:`jtricks.search.Halving` (successive halving of the configurations at rung epochs); ``tune``:
    ``None`` or :class:`jtricks.tuning.Tune` (each arm's numeric factors tuned on validation before the
    seeds × arms comparison; :func:`jtricks.runner.run` then runs :func:`jtricks.tuning.run`).
    """

    name: str = setting("", part="run", role="run", settable=False)
    description: str = setting("", part="run", role="run")
    dataset: Any = setting("mnist1d", part="data", role="data", choices=lambda: jdata.names())
    dataset_kwargs: Mapping[str, Any] = setting({}, part="data", role="data")
    preprocess: str = setting("standardize", part="data", role="data", choices=lambda: jdata.PREPROCESS_METHODS)
    n_train: int | None = setting(None, part="data", role="data")
    n_val: int = setting(500, part="data", role="data")
    split_seed: int = setting(0, part="data", role="data")
    eval_batch_size: int = setting(1000, part="data", role="data")
    model: Any = setting("mlp", part="model", role="program", choices=lambda: jmodels.names())
    model_kwargs: Mapping[str, Any] = setting({}, part="model", role="program")
    loss: Any = setting("cross_entropy", part="objective", role="program", choices=lambda: tuple(jlosses.LOSSES))
    eval_metrics: Sequence[Any] | None = setting(None, part="objective", role="program")
    optimizer: Any = setting("adam", part="optimizer", role="program", choices=lambda: tuple(joptim.OPTIMIZERS))
    schedule: str = setting("constant", part="optimizer", role="program", choices=lambda: tuple(joptim.SCHEDULES))
    decay_every_epochs: int = setting(1, part="optimizer", role="program")
    warmup_epochs: int = setting(0, part="optimizer", role="program")
    clip: bool = setting(False, part="optimizer", role="program")
    weight_decay: bool = setting(False, part="optimizer", role="program")
    l2: bool = setting(False, part="regularization", role="program")
    early_stopping: bool = setting(False, part="regularization", role="program")
    monitor: str = setting("val_loss", part="regularization", role="program")
    averaging: str | None = setting(None, part="regularization", role="program", choices=lambda: (None, "ema", "swa"))
    divergence_factor: float | None = setting(1e6, part="regularization", role="program")
    epochs: int = setting(10, part="execution", role="program")
    batch_size: int = setting(64, part="execution", role="program")
    execution: str = setting("auto", part="execution", role="program", choices=lambda: ("auto", "scan", "loop"))
    population: str = setting("auto", part="execution", role="program", choices=lambda: jpop.STRATEGIES)
    diagnostics: bool = setting(False, part="execution", role="program")
    log_every: int | None = setting(None, part="execution", role="program")
    max_members: int | None = setting(None, part="execution", role="run")
    metrics: Sequence[str] | None = setting(None, part="reporting", role="run")
    baseline: str | None = setting(None, part="reporting", role="run")
    target: Any = setting(None, part="reporting", role="run")
    train_eval: int = setting(0, part="reporting", role="data")
    adjust: str = setting("holm", part="reporting", role="run", choices=lambda: ("holm", "bh", "none"))
    hparams: Mapping[str, Any] = setting({}, part="run", role="run", settable=False)
    custom_hparams: Mapping[str, float] = setting({}, part="run", role="program", settable=False)
    grid: Mapping[str, Sequence[Any]] = setting({}, part="run", role="run", settable=False)
    arms: Sequence[Mapping[str, Any]] = setting((), part="run", role="run", settable=False)
    seeds: int = setting(8, part="run", role="run")
    seed_offset: int = setting(0, part="run", role="run")
    samples: int | None = setting(None, part="search", role="run")
    sample_seed: int = setting(0, part="search", role="run")
    search: Any = setting(None, part="search", role="run", settable=False)
    tune: Any = setting(None, part="search", role="run", settable=False)


#: Field name → its metadata (``part``, ``role``, ``choices``, ``settable``): the one table of the settings.
SETTINGS: Mapping[str, Mapping[str, Any]] = {f.name: f.metadata for f in dataclasses.fields(Experiment)}

#: Experiment fields that change the compiled program or the data (each distinct value: its own program).
STATIC_FIELDS: frozenset[str] = frozenset(k for k, m in SETTINGS.items() if m["role"] != "run" and m["settable"])

_SETTABLE: frozenset[str] = frozenset(k for k, m in SETTINGS.items() if m["settable"])
#: Fields no number of a run depends on (left out of the run's fingerprint): the reporting settings that only
#: choose how the rows are summarised (role ``"run"``; ``train_eval`` adds rows, so it counts), the name, the
#: description.
REPORT_ONLY: frozenset[str] = frozenset(
    k for k, m in SETTINGS.items() if m["part"] == "reporting" and m["role"] == "run") | {"name", "description"}

#: Names that are both an on/off field and its numeric coefficient: a bool sets the field, a number sets the
#: coefficient and switches the field on (so an arm ``{"l2": 1e-4}`` is an L2 arm).
_SWITCHED_BY_COEFFICIENT = frozenset({"l2", "weight_decay"})


def parts(exp: Experiment) -> dict[str, dict[str, Any]]:
    """The settings of ``exp`` grouped by part: ``{"data": {"dataset": ..., ...}, "model": {...}, ...}``."""
    out: dict[str, dict[str, Any]] = {}
    for f in dataclasses.fields(exp):
        out.setdefault(f.metadata["part"], {})[f.name] = getattr(exp, f.name)
    return out


@dataclasses.dataclass(frozen=True)
class Arm:
    """One cell of the grid: a name, the resolved static experiment, and its numeric hyperparameters."""

    name: str
    factors: Mapping[str, Any]
    experiment: Experiment
    hparams: Mapping[str, float]


def _numeric_names(exp: Experiment) -> frozenset[str]:
    """The numeric hyperparameters ``exp`` may set: the registry's, its own, its loss's and those of an optax
    optimizer factory (its numeric arguments)."""
    names = NUMERIC_HPARAMS | frozenset(exp.custom_hparams) | frozenset(_loss(exp).hparams)
    if callable(exp.optimizer):
        names |= frozenset(joptim.hparam_names(joptim.OptimizerSpec(exp.optimizer)))
    return names


def _kind(key: str, exp: Experiment) -> str:
    if not isinstance(key, str):
        raise TypeError(f"setting names must be strings, got {key!r}")
    if key.startswith("model."):
        return "model"
    if key in _numeric_names(exp):
        return "numeric"
    if key in _SETTABLE:
        return "field"
    allowed = sorted(_SETTABLE) + ["model.<arg>"] + sorted(_numeric_names(exp))
    raise ValueError(f"unknown setting {key!r}; allowed: {', '.join(allowed)} (declare your own numeric "
                     "hyperparameters in custom_hparams)")


def apply_overrides(exp: Experiment, overrides: Mapping[str, Any]) -> Experiment:
    """Return ``exp`` with ``overrides`` applied (fields, ``model.<kwarg>`` and numeric hyperparameters)."""
    fields: dict[str, Any] = {}
    model_kwargs = dict(exp.model_kwargs)
    hparams = dict(exp.hparams)
    for key, value in overrides.items():
        if key == "name":
            continue
        kind = _kind(key, exp)
        if key in _SWITCHED_BY_COEFFICIENT and isinstance(value, bool):
            fields[key] = value  # `l2=True` / `weight_decay=False`: the on/off field
        elif kind == "model":
            model_kwargs[key[len("model.") :]] = value
        elif kind == "numeric":
            hparams[key] = value
            if key in _SWITCHED_BY_COEFFICIENT:
                fields[key] = True  # giving a coefficient switches the penalty / decay on
        else:
            fields[key] = value
    return dataclasses.replace(exp, model_kwargs=model_kwargs, hparams=hparams, **fields)


def _fmt(v: Any) -> str:
    if isinstance(v, jmodels.Model):
        return _describe_object(v)
    if isinstance(v, float):
        return format(v, "g")
    if isinstance(v, (list, tuple)):
        return "x".join(_fmt(x) for x in v)
    if isinstance(v, (str, int, type(None))):
        return str(v)
    return _describe_object(v)


def arm_name(factors: Mapping[str, Any]) -> str:
    """``"k1=v1,k2=v2"`` (``"baseline"`` for an empty set of factors)."""
    if not factors:
        return "baseline"
    return ",".join(f"{k.removeprefix('model.')}={_fmt(v)}" for k, v in factors.items())


def expand(exp: Experiment) -> list[Arm]:
    """All arms of ``exp``: explicit ``arms`` × the Cartesian product of ``grid``, in declaration order."""
    for key, values in exp.grid.items():
        kind = _kind(key, exp)
        if jsearch.is_distribution(values):
            if not isinstance(values, jsearch.Choice) and kind != "numeric":
                raise ValueError(f"grid[{key!r}] = {values}: loguniform / uniform apply to numeric hyperparameters; "
                                 "use choice([...]) or a list for other settings")
        elif isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or len(values) == 0:
            raise ValueError(f"grid[{key!r}] must be a non-empty list of values or a distribution "
                             f"(loguniform, uniform, choice), got {values!r}")
    base_arms: list[Mapping[str, Any]] = list(exp.arms) or [{}]
    combos = jsearch.grid_combos(exp.grid, exp.samples, exp.sample_seed)
    arms: list[Arm] = []
    for base in base_arms:
        for grid_factors in combos:
            overrides = {**{k: v for k, v in base.items() if k != "name"}, **grid_factors}
            label = ([str(base["name"])] if "name" in base else []) + ([arm_name(grid_factors)] if grid_factors else [])
            resolved = apply_overrides(exp, overrides)
            arms.append(Arm(",".join(label) or arm_name(overrides), overrides, resolved, dict(resolved.hparams)))
    names = [a.name for a in arms]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"arm names must be unique, duplicated: {dupes}; give explicit arms a 'name'")
    return arms


def _describe_object(v: Any) -> str:
    """A short, stable description of a non-literal setting (a data set, a model, a callable)."""
    if isinstance(v, jdata.Dataset):
        return f"Dataset({v.name})"
    if isinstance(v, jmodels.Model):
        return f"Model({v.name})"
    name = getattr(v, "name", None) if isinstance(getattr(v, "name", None), str) else None
    qual = getattr(v, "__qualname__", None) or type(v).__qualname__
    return name or f"{getattr(v, '__module__', '') or ''}.{qual}".lstrip(".")


def to_json(v: Any) -> Any:
    """``v`` as plain JSON data: literals as they are, data sets / models / callables by their short description,
    distributions and search methods as their text (``"loguniform(0.0001, 0.1)"``)."""
    if isinstance(v, (str, int, float, bool, type(None))):
        return v
    if isinstance(v, (jsearch.Distribution, jsearch.Halving, jsearch.PBT)):
        return str(v)
    if isinstance(v, jmodels.Model) or not isinstance(v, (list, tuple, Mapping)):
        return _describe_object(v)
    if isinstance(v, Mapping):
        return {str(k): to_json(x) for k, x in v.items()}
    return [to_json(x) for x in v]


def _signature_value(v: Any) -> str:
    """``repr`` of a literal; objects (data sets, models, callables) by identity, so two objects never merge."""
    if isinstance(v, (str, int, float, bool, type(None))):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "(" + ",".join(_signature_value(x) for x in v) + ")"
    if isinstance(v, Mapping):
        return "{" + ",".join(f"{k!r}:{_signature_value(x)}" for k, x in sorted(v.items(), key=lambda kv: str(kv[0]))) + "}"
    return f"{_describe_object(v)}@{id(v):x}"


def static_signature(exp: Experiment) -> tuple:
    """What makes two arms share one compiled program: every field whose role is not ``"run"``."""
    return tuple((k, _signature_value(getattr(exp, k))) for k, m in SETTINGS.items() if m["role"] != "run")


def data_key(exp: Experiment) -> tuple:
    """What makes two arms share one prepared data set: the fields whose role is ``"data"``."""
    return tuple((k, _signature_value(getattr(exp, k))) for k, m in SETTINGS.items() if m["role"] == "data")


def _loss(exp: Experiment) -> jlosses.Loss:
    return jlosses.get(exp.loss)


def _accepts(fn: Callable, name: str) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


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
    if _accepts(factory, "num_classes"):
        kwargs.setdefault("num_classes", num_outputs)
    model = factory(**kwargs)
    if not isinstance(model, jmodels.Model):
        raise TypeError(f"the model factory {_describe_object(factory)} must return a jtricks.models.Model "
                        f"(see jtricks.adapters), got {type(model).__name__}")
    return model


def build_config(exp: Experiment, model: Any, num_train: int, *, dropout: bool | None = None,
                 init_scale: bool | None = None) -> jtrain.TrainConfig:
    """The static :class:`jtricks.train.TrainConfig` of ``exp`` (``num_train`` fixes steps per epoch).

    ``dropout`` / ``init_scale`` (traced dropout rate / init scale) default to whether ``exp.hparams``
    sets them; the runner decides per group (on when any arm of the group sets them).
    """
    if dropout is None:
        dropout = "dropout_rate" in exp.hparams
    if init_scale is None:
        init_scale = "init_scale" in exp.hparams
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
    )
    return jtrain.TrainConfig(
        model=model, optimizer=spec, epochs=exp.epochs, batch_size=exp.batch_size, loss=_loss(exp),
        metrics=None if exp.eval_metrics is None else tuple(exp.eval_metrics), l2=exp.l2,
        early_stopping=exp.early_stopping, monitor=exp.monitor, averaging=exp.averaging,
        execution=exp.execution,  # type: ignore[arg-type]
        eval_batch_size=exp.eval_batch_size, diagnostics=exp.diagnostics, dropout=dropout, init_scale=init_scale,
        custom_hparams=dict(exp.custom_hparams), divergence_factor=exp.divergence_factor, log_every=exp.log_every,
        train_eval=exp.train_eval,
    )


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
    return frozenset(names)


def _check_int(exp: Experiment, field: str, *, minimum: int, optional: bool = False, arm: str | None = None) -> None:
    v = getattr(exp, field)
    if optional and v is None:
        return
    if not isinstance(v, int) or isinstance(v, bool) or v < minimum:
        where = f" (arm {arm!r})" if arm else ""
        kind = "a positive int" if minimum == 1 else f"an int >= {minimum}"
        raise ValueError(f"{field!r} must be {kind}{' or None' if optional else ''}, got {v!r}{where}")


def _check_choices(e: Experiment, arm: str) -> None:
    """Every field with ``choices`` metadata holds an allowed value (objects and callables pass through)."""
    for field, meta in SETTINGS.items():
        v = getattr(e, field)
        if meta["choices"] is None or not (isinstance(v, str) or v is None):
            continue
        allowed = tuple(meta["choices"]())
        if v not in allowed:
            raise ValueError(f"{field!r} must be one of {list(allowed)} (or your own object: see docs/byo.md), "
                             f"got {v!r} (arm {arm!r})")


def _check_dataset_kwargs(e: Experiment) -> None:
    if not isinstance(e.dataset_kwargs, Mapping):
        raise TypeError(f"'dataset_kwargs' must be a mapping, got {e.dataset_kwargs!r}")
    if isinstance(e.dataset, str) and e.dataset_kwargs:
        loader = jdata.loader(e.dataset)
        unknown = sorted(k for k in e.dataset_kwargs if not _accepts(loader, k))
        if unknown:
            allowed = [p for p in inspect.signature(loader).parameters]
            raise ValueError(f"'dataset_kwargs' {unknown} are not arguments of the {e.dataset!r} loader; allowed: {allowed}")
    elif not isinstance(e.dataset, str) and e.dataset_kwargs:
        raise ValueError("dataset_kwargs apply to a registered data set name, not to a Dataset object")


def _check_experiment(exp: Experiment) -> None:
    """The experiment-level settings (before the grid is expanded)."""
    if not isinstance(exp.name, str) or not exp.name:
        raise ValueError("experiment 'name' must be a non-empty string")
    for key, v in exp.custom_hparams.items():
        if key in NUMERIC_HPARAMS:
            raise ValueError(f"custom_hparams[{key!r}] is already a jtricks hyperparameter; set it in hparams")
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            raise ValueError(f"custom_hparams[{key!r}] must be a number (its default), got {v!r}")
    for key in exp.hparams:
        if key not in _numeric_names(exp):
            raise ValueError(f"unknown hyperparameter {key!r} in hparams; allowed: {sorted(_numeric_names(exp))} "
                             "(declare your own in custom_hparams)")
    for field in ("seeds", "epochs", "batch_size", "n_val", "eval_batch_size"):
        _check_int(exp, field, minimum=1)
    _check_int(exp, "max_members", minimum=1, optional=True)
    _check_int(exp, "log_every", minimum=1, optional=True)
    _check_int(exp, "seed_offset", minimum=0)
    _check_int(exp, "train_eval", minimum=0)
    _check_int(exp, "split_seed", minimum=0)
    _check_int(exp, "samples", minimum=1, optional=True)
    _check_int(exp, "sample_seed", minimum=0)


def _check_arm(arm: Arm) -> jtrain.TrainConfig:
    """One arm's settings; returns its configuration (built with a placeholder output count)."""
    e = arm.experiment
    _check_choices(e, arm.name)
    _check_int(e, "n_train", minimum=1, optional=True, arm=arm.name)
    for field in ("epochs", "batch_size"):
        _check_int(e, field, minimum=1, arm=arm.name)
    _check_dataset_kwargs(e)
    # Model, loss, metrics and optimizer constructors validate their own arguments (ValueError naming them).
    config = build_config(e, build_model(e, 10), num_train=max(e.batch_size, 1) * 10)
    jtrain.validate_hparams(config, {k: v for k, v in arm.hparams.items() if k in config.hparam_names()})
    unused = sorted(set(arm.hparams) - set(config.hparam_names()))
    if unused:
        raise ValueError(
            f"hyperparameter(s) {unused} are not read by arm {arm.name!r} "
            f"(optimizer={_fmt(e.optimizer)!r}, schedule={e.schedule!r}, clip={e.clip}, l2={e.l2}, "
            f"early_stopping={e.early_stopping}, averaging={e.averaging!r}); it reads {list(config.hparam_names())}"
        )
    return config


def _check_metrics_field(exp: Experiment) -> None:
    """``metrics``: ``None`` or a list of metric names."""
    m = exp.metrics
    if m is not None and (isinstance(m, (str, bytes)) or not isinstance(m, Sequence) or not m
                          or not all(isinstance(x, str) for x in m)):
        raise ValueError(f"'metrics' must be None or a non-empty list of metric names (e.g. ['val_acc']), got {m!r}")


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float, np.number)) and not isinstance(v, (bool, np.bool_)) and bool(np.isfinite(v))


def _check_target(exp: Experiment, measured: frozenset[str]) -> None:
    """``target``: ``None``, a finite number (a ``val_acc`` target) or ``{metric: number}`` over measured metrics."""
    t = exp.target
    if t is None:
        return
    if isinstance(t, Mapping):
        if not t:
            raise ValueError("'target' must not be an empty mapping; give {metric: value} or None")
        for k, v in t.items():
            if k not in measured:
                raise ValueError(f"'target' names metric {k!r}, measured by no arm; the arms measure {sorted(measured)}")
            if not _is_number(v):
                raise ValueError(f"'target'[{k!r}] must be a finite number, got {v!r}")
        return
    if not _is_number(t):
        raise ValueError(f"'target' must be None, a finite number (a val_acc target) or {{metric: number}}, got {t!r}")
    if "val_acc" not in measured:
        raise ValueError(f"'target'={t!r} is a val_acc target, but no arm measures val_acc; give {{metric: value}} "
                         f"with one of {sorted(measured)}")


def validate(exp: Experiment) -> list[Arm]:
    """Check every setting of ``exp`` and of each arm before anything is loaded or compiled; return the arms.

    Raises ``ValueError`` / ``TypeError`` naming the bad key and the allowed values.
    """
    _check_experiment(exp)
    _check_metrics_field(exp)
    arms = expand(exp)
    configs = [_check_arm(arm) for arm in arms]
    measured = frozenset().union(*(produced_metrics(c) for c in configs))
    missing = sorted(set(summary_metrics(exp, configs[0])) - measured)
    if missing:  # a metric some arms lack (avg_* of the averaging arms) is fine; one no arm measures is not
        raise ValueError(f"metrics {missing} are measured by no arm; the arms measure {sorted(measured)} "
                         "(add the base metric to eval_metrics)")
    _check_target(exp, measured)
    jsearch.check_search(exp.search, epochs=exp.epochs, max_members=exp.max_members, grid_keys=list(exp.grid),
                         measured=measured, hparam_names=frozenset.intersection(*(frozenset(c.hparam_names()) for c in configs)))
    if exp.baseline is not None and exp.baseline not in {a.name for a in arms}:
        raise ValueError(f"'baseline' must be one of the arm names {[a.name for a in arms]}, got {exp.baseline!r}")
    return arms


def parse_set(items: Sequence[str], exp: Experiment | None = None) -> dict[str, Any]:
    """Parse ``--set key=value`` items; values are Python literals (``0.1``, ``[64, 64]``, ``None``) or strings."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--set expects key=value, got {item!r}")
        key, raw = item.split("=", 1)
        key = key.strip()
        if key in ("grid", "arms", "hparams", "custom_hparams"):
            raise ValueError(f"--set cannot replace {key!r} whole; set its entries instead")
        _kind(key, exp or Experiment(name="--set"))
        out[key] = _literal(raw)
    return out


def _literal(raw: str) -> Any:
    """A Python literal, a distribution (``loguniform(1e-4,1e-1)``, :func:`jtricks.search.parse_distribution`),
    else the string; ``[a,b]`` of bare words is a list of literals-or-strings."""
    dist = jsearch.parse_distribution(raw)
    if dist is not None:
        return dist
    try:
        return ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        text = raw.strip()
        if text.startswith("[") and text.endswith("]") and text[1:-1].strip():
            return [_literal(part.strip()) for part in text[1:-1].split(",")]
        return raw


def _sequence_valued(exp: Experiment, key: str) -> bool:
    """Whether one value of ``key`` is itself a sequence (``model.widths=(64, 64)``): a model argument whose
    default or annotation in any registered model is a tuple / sequence, or whose current value or grid values
    are lists; and ``metrics`` / ``eval_metrics``."""
    if key in ("metrics", "eval_metrics"):
        return True
    if not key.startswith("model."):
        return False
    arg = key[len("model.") :]
    current = [exp.model_kwargs.get(arg)] + list(exp.grid.get(key, ()))
    if any(isinstance(v, (list, tuple)) for v in current):
        return True
    for name in jmodels.names():
        try:
            param = inspect.signature(jmodels.factory(name)).parameters.get(arg)
        except (TypeError, ValueError):
            continue
        if param is not None and (
            isinstance(param.default, (list, tuple)) or any(t in str(param.annotation) for t in ("Sequence", "tuple", "list"))
        ):
            return True
    return False


def _sweeps(exp: Experiment, key: str, value: Any) -> bool:
    """Whether ``--set key=value`` gives a factor's values: a list for a grid-able key (a list of lists
    for a sequence-valued one, see :func:`_sequence_valued`)."""
    if not isinstance(value, (list, tuple)):
        return False
    if _sequence_valued(exp, key):
        return len(value) > 0 and all(isinstance(v, (list, tuple)) for v in value)
    return True


def with_settings(exp: Experiment, settings: Mapping[str, Any]) -> Experiment:
    """Apply ``--set`` settings.

    A distribution (``learning_rate=loguniform(1e-4,1e-1)``) makes the key a sampled factor (with
    ``samples=N``). A list for a grid-able key (a numeric hyperparameter, a field, ``model.<arg>``) makes the key a grid
    factor with those values, or replaces the values of an existing factor (``learning_rate=[1e-3,1e-2]``).
    For a key whose one value is a sequence (``model.widths``) a flat list is one value
    (``model.widths=[64,64]``) and a list of lists sweeps (``model.widths=[[64],[64,64]]``). Any other value
    is one value: it replaces an existing factor by a one-value factor, or sets the field / hyperparameter.
    """
    grid = dict(exp.grid)
    rest: dict[str, Any] = {}
    for key, value in settings.items():
        _kind(key, exp)
        if jsearch.is_distribution(value):  # a sampled factor (Experiment.samples draws)
            grid[key] = value
        elif _sweeps(exp, key, value):
            if not value:
                raise ValueError(f"--set {key}=[] gives no values; give at least one")
            grid[key] = [tuple(v) if isinstance(v, list) else v for v in value]
        elif key in grid:  # one value (a sequence-valued key's flat list included)
            grid[key] = [tuple(value) if isinstance(value, list) else value]
        else:
            rest[key] = value
    return apply_overrides(dataclasses.replace(exp, grid=grid), rest)


def experiments_dirs() -> list[Path]:
    """Where experiment files are looked up: ``$JTRICKS_EXPERIMENTS``, ``./experiments``, the source tree's
    ``experiments/`` (a checkout: beside ``pyproject.toml``) and the experiments installed with the package
    (``jtricks/experiments`` of a wheel, built from that same folder)."""
    dirs = []
    if os.environ.get("JTRICKS_EXPERIMENTS"):
        dirs.append(Path(os.environ["JTRICKS_EXPERIMENTS"]))
    dirs.append(Path.cwd() / "experiments")
    package = Path(__file__).resolve().parents[1]
    source = package.parent
    if (source / "pyproject.toml").is_file():
        dirs.append(source / "experiments")
    dirs.append(package / "experiments")
    seen, out = set(), []
    for d in dirs:
        r = d.resolve()
        if r not in seen and r.is_dir():
            seen.add(r)
            out.append(r)
    return out


def find_experiments() -> dict[str, Path]:
    """Experiment name → file, over :func:`experiments_dirs` (first found wins)."""
    found: dict[str, Path] = {}
    for d in experiments_dirs():
        for f in sorted(d.glob("*.py")):
            if f.name.startswith("_"):
                continue
            found.setdefault(f.stem, f)
    return found


def load_experiment(name_or_path: str) -> Experiment:
    """Load ``EXPERIMENT`` from an experiment file given by name (see :func:`find_experiments`) or path."""
    path = Path(name_or_path)
    if not (path.suffix == ".py" and path.is_file()):
        known = find_experiments()
        if name_or_path not in known:
            raise ValueError(f"unknown experiment {name_or_path!r}; known: {sorted(known)} (or give a path to a .py file)")
        path = known[name_or_path]
    spec = importlib.util.spec_from_file_location(f"jtricks_experiment_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    exp = getattr(module, "EXPERIMENT", None)
    if not isinstance(exp, Experiment):
        raise ValueError(f"{path} must define EXPERIMENT = jtricks.experiment.Experiment(...)")
    return exp
