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

Every field of :class:`Experiment` carries its metadata (:func:`setting`): the *section* it belongs to
(``data``, ``model``, ``objective``, ``optimizer``, ``regularization``, ``execution``, ``reporting``,
``run``) and its *role*: ``"data"`` (changes the prepared data: part of the data cache key and of the
static signature), ``"program"`` (changes the compiled program: part of the static signature) or
``"run"`` (neither). The static/numeric split, the data cache key, the settable keys and the allowed
values are all derived from that metadata (:data:`SETTINGS`).

Keys of ``grid``, ``arms`` and ``--set`` are: an :class:`Experiment` field (``optimizer``, ``schedule``,
``epochs``, ...), ``model.<kwarg>`` for a model argument (``model.norm``, ``model.init``,
``model.widths``), or a numeric hyperparameter name (``learning_rate``, ``dropout_rate``, a custom one, or
``loss.<name>`` for a loss's own, :func:`jtricks.losses.hparam_keys`).
Everything is validated before any data is loaded or anything compiles.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from jtricks import augment as jaug
from jtricks import data as jdata
from jtricks import hparams as jhparams
from jtricks import losses as jlosses
from jtricks import models as jmodels
from jtricks import optim as joptim
from jtricks._core import checks
from jtricks._core import precision as jprec
from jtricks.engine import population as jpop
from jtricks.engine import search as jsearch

__all__ = [
    "Experiment",
    "Arm",
    "SETTINGS",
    "NUMERIC_HPARAMS",
    "STATIC_FIELDS",
    "SETTABLE",
    "REPORT_ONLY",
    "DATA_PLACEMENTS",
    "fingerprint_fields",
    "SWITCHED_BY_COEFFICIENT",
    "setting",
    "sections",
    "numeric_names",
    "setting_kind",
    "model_arguments",
    "describe_object",
    "to_json",
]


Role = Literal["data", "program", "run"]

#: Where a group's training split lives (``Experiment.data_placement``): ``"device"`` (on the device, gathered
#: inside the compiled step) or ``"stream"`` (on the host, batches fed to the compiled step: docs/streaming.md).
DATA_PLACEMENTS: tuple[str, ...] = ("device", "stream")

#: Every numeric hyperparameter a grid may vmap over without declaring it (the library's registry,
#: :data:`jtricks.hparams.REGISTRY`: optimizers, schedules, the engine, the losses); an experiment's
#: ``custom_hparams`` add its own, and an optax optimizer factory adds its numeric arguments.
NUMERIC_HPARAMS: frozenset[str] = frozenset(jhparams.REGISTRY)


def setting(
    default: Any,
    *,
    section: str,
    role: Role,
    choices: Callable[[], Sequence[Any]] | None = None,
    settable: bool = True,
    fingerprint_default: bool = True,
) -> Any:
    """A field of :class:`Experiment` with its metadata: ``section``, ``role`` (see the module docstring),
    ``choices`` (a function giving the allowed names, checked by :func:`validate`), ``settable``
    (whether ``grid`` / ``arms`` / ``--set`` may vary it) and ``fingerprint_default`` (``False``: the field
    enters the run's fingerprint only when it differs from its default, so the fingerprints of runs that
    leave it at its default are those of runs made before the field existed)."""
    meta = {
        "section": section,
        "role": role,
        "choices": choices,
        "settable": settable,
        "fingerprint_default": fingerprint_default,
    }
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
    validation split); ``vary_split``: ``True`` draws each seed's own split from its ``"split"`` key stream
    instead (docs/streaming.md); ``eval_batch_size``: evaluation chunk; ``data_placement``: ``"device"`` (the
    training split on the device) or ``"stream"`` (on the host, batches fed to the compiled step:
    docs/streaming.md); ``augment``: the data augmentations of every
    training step (``"crop"``, ``"flip"``, ``"cutout"``, ``"mixup"``, :mod:`jtricks.augment`; applied inside the
    compiled step, per member, from its own ``"augment"`` key stream; their numbers ``flip_rate``,
    ``cutout_size``, ``mixup_alpha`` are hyperparameters), ``crop_padding``: the zero padding of ``"crop"``
    (static).

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
    ``warmup_epochs``, ``clip``, ``weight_decay``, ``accumulate`` (gradient accumulation: ``k`` micro-batches of
    ``batch_size / k`` make one update, ``optax.MultiSteps``) (:class:`jtricks.optim.OptimizerSpec`). ``l2`` and
    ``weight_decay`` are both a switch and a coefficient: in ``grid`` / ``arms`` / ``--set`` a bool sets the
    switch, a number sets the coefficient and the switch.

    **regularization** — ``l2``, ``early_stopping`` (monitoring ``monitor``), ``averaging``,
    ``divergence_factor`` (a member whose training objective exceeds this multiple of its first step's is
    frozen and reported diverged, like a non-finite one; ``None``: off) (:class:`jtricks.train.TrainConfig`).

    **execution** — ``epochs``, ``batch_size``, ``execution`` (``"scan"``/``"loop"``/``"auto"``),
    ``population`` (how the members are mapped: ``"vmap"``, ``"unroll"`` or ``"auto"``,
    :func:`jtricks.population.resolve_strategy`), ``diagnostics``, ``max_members`` (population chunk size),
    ``log_every`` (also record the training loss averaged over every ``log_every`` steps: ``train_loss@<step>``
    rows, :class:`jtricks.train.TrainConfig`), ``precision`` (``"float32"``, ``"bfloat16"`` or ``"float16"``:
    the dtype of the forward and backward passes, float32 master weights; float16 with dynamic loss scaling;
    ``docs/precision.md``).

    **reporting** — ``metrics``: the metrics summarised (final epoch, mean and 95% CI over seeds; ``None``:
    test and validation accuracy and train loss for classification, test and validation r2 and train loss
    for regression); ``baseline``: the arm every other arm is compared with (default: the first arm);
    ``target``: a validation accuracy (or ``{metric: value}``) whose first epoch is reported; ``train_eval``:
    evaluate a fixed sample of this many training examples in eval mode every epoch (``train_eval_<metric>``,
    the clean training accuracy for train/validation gaps; 0: off); ``adjust``: the
    multiple-comparison adjustment of each metric's comparisons with the baseline (``"holm"``, ``"bh"``
    Benjamini-Hochberg, ``"none"``; :func:`jtricks.stats.adjust_pvalues`); ``equivalence_margin``: the smallest
    difference of interest, a number (every summarised metric) or ``{metric: number}``: a comparison with the
    baseline that is not resolved as different is tested for equivalence within it (``"equivalent"`` /
    ``"not resolved"``, :func:`jtricks.stats.tost_paired`; ``None``: no equivalence test, ``"n.s."``).
    ``test_bootstrap``: record every member's per-example test outcomes (``test_outcomes.npy``) and add the
    total interval, seeds and test examples resampled (:mod:`jtricks.results.bootstrap`), to the summary.

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

    name: str = setting("", section="run", role="run", settable=False)
    description: str = setting("", section="run", role="run")
    dataset: Any = setting("mnist1d", section="data", role="data", choices=lambda: jdata.names())
    dataset_kwargs: Mapping[str, Any] = setting({}, section="data", role="data")
    preprocess: str = setting("standardize", section="data", role="data", choices=lambda: jdata.PREPROCESS_METHODS)
    n_train: int | None = setting(None, section="data", role="data")
    n_val: int = setting(500, section="data", role="data")
    split_seed: int = setting(0, section="data", role="data")
    eval_batch_size: int = setting(1000, section="data", role="data")
    data_placement: str = setting(
        "device", section="data", role="data", choices=lambda: DATA_PLACEMENTS, fingerprint_default=False
    )
    vary_split: bool = setting(False, section="data", role="data", fingerprint_default=False)
    augment: Sequence[str] = setting((), section="data", role="program", choices=lambda: jaug.AUGMENTATIONS)
    crop_padding: int = setting(4, section="data", role="program")
    model: Any = setting("mlp", section="model", role="program", choices=lambda: jmodels.names())
    model_kwargs: Mapping[str, Any] = setting({}, section="model", role="program")
    loss: Any = setting("cross_entropy", section="objective", role="program", choices=lambda: tuple(jlosses.LOSSES))
    eval_metrics: Sequence[Any] | None = setting(None, section="objective", role="program")
    optimizer: Any = setting("adam", section="optimizer", role="program", choices=lambda: tuple(joptim.OPTIMIZERS))
    schedule: str = setting("constant", section="optimizer", role="program", choices=lambda: tuple(joptim.SCHEDULES))
    decay_every_epochs: int = setting(1, section="optimizer", role="program")
    warmup_epochs: int = setting(0, section="optimizer", role="program")
    clip: bool = setting(False, section="optimizer", role="program")
    weight_decay: bool = setting(False, section="optimizer", role="program")
    accumulate: int = setting(1, section="optimizer", role="program")
    l2: bool = setting(False, section="regularization", role="program")
    early_stopping: bool = setting(False, section="regularization", role="program")
    monitor: str = setting("val_loss", section="regularization", role="program")
    averaging: str | None = setting(
        None, section="regularization", role="program", choices=lambda: (None, "ema", "swa")
    )
    divergence_factor: float | None = setting(1e6, section="regularization", role="program")
    epochs: int = setting(10, section="execution", role="program")
    batch_size: int = setting(64, section="execution", role="program")
    execution: str = setting("auto", section="execution", role="program", choices=lambda: ("auto", "scan", "loop"))
    population: str = setting("auto", section="execution", role="program", choices=lambda: jpop.STRATEGIES)
    diagnostics: bool = setting(False, section="execution", role="program")
    log_every: int | None = setting(None, section="execution", role="program")
    precision: str = setting(
        "float32", section="execution", role="program", choices=lambda: jprec.PRECISIONS, fingerprint_default=False
    )
    max_members: int | None = setting(None, section="execution", role="run")
    metrics: Sequence[str] | None = setting(None, section="reporting", role="run")
    baseline: str | None = setting(None, section="reporting", role="run")
    target: Any = setting(None, section="reporting", role="run")
    train_eval: int = setting(0, section="reporting", role="data")
    adjust: str = setting("holm", section="reporting", role="run", choices=lambda: ("holm", "bh", "none"))
    equivalence_margin: Any = setting(None, section="reporting", role="run")
    test_bootstrap: bool = setting(False, section="reporting", role="run", fingerprint_default=False)
    hparams: Mapping[str, Any] = setting({}, section="run", role="run", settable=False)
    custom_hparams: Mapping[str, float] = setting({}, section="run", role="program", settable=False)
    grid: Mapping[str, Sequence[Any]] = setting({}, section="run", role="run", settable=False)
    arms: Sequence[Mapping[str, Any]] = setting((), section="run", role="run", settable=False)
    seeds: int = setting(8, section="run", role="run")
    seed_offset: int = setting(0, section="run", role="run")
    samples: int | None = setting(None, section="search", role="run")
    sample_seed: int = setting(0, section="search", role="run")
    search: Any = setting(None, section="search", role="run", settable=False)
    tune: Any = setting(None, section="search", role="run", settable=False)


#: Field name → its metadata (``section``, ``role``, ``choices``, ``settable``): the one table of the settings.
SETTINGS: Mapping[str, Mapping[str, Any]] = {f.name: f.metadata for f in dataclasses.fields(Experiment)}

#: Experiment fields that change the compiled program or the data (each distinct value: its own program).
STATIC_FIELDS: frozenset[str] = frozenset(k for k, m in SETTINGS.items() if m["role"] != "run" and m["settable"])

SETTABLE: frozenset[str] = frozenset(k for k, m in SETTINGS.items() if m["settable"])

#: Fields no number of a run depends on (left out of the run's fingerprint): the reporting settings that only
#: choose how the rows are summarised (role ``"run"``; ``train_eval`` adds rows, so it counts), the name, the
#: description.
REPORT_ONLY: frozenset[str] = frozenset(
    k for k, m in SETTINGS.items() if m["section"] == "reporting" and m["role"] == "run"
) | {"name", "description"}


def fingerprint_fields(exp: Experiment) -> dict[str, Any]:
    """The fields of ``exp`` its run's fingerprint covers: every field but :data:`REPORT_ONLY`, leaving out a
    field marked ``fingerprint_default=False`` (:func:`setting`) while it holds its default."""
    out = {}
    for f in dataclasses.fields(exp):
        v = getattr(exp, f.name)
        if f.name in REPORT_ONLY or (not f.metadata["fingerprint_default"] and v == f.default):
            continue
        out[f.name] = v
    return out


#: Names that are both an on/off field and its numeric coefficient: a bool sets the field, a number sets the
#: coefficient and switches the field on (so an arm ``{"l2": 1e-4}`` is an L2 arm).
SWITCHED_BY_COEFFICIENT = frozenset({"l2", "weight_decay"})


def sections(exp: Experiment) -> dict[str, dict[str, Any]]:
    """The settings of ``exp`` grouped by section: ``{"data": {"dataset": ..., ...}, "model": {...}, ...}``."""
    out: dict[str, dict[str, Any]] = {}
    for f in dataclasses.fields(exp):
        out.setdefault(f.metadata["section"], {})[f.name] = getattr(exp, f.name)
    return out


@dataclasses.dataclass(frozen=True)
class Arm:
    """One cell of the grid: a name, the resolved static experiment, and its numeric hyperparameters."""

    name: str
    factors: Mapping[str, Any]
    experiment: Experiment
    hparams: Mapping[str, float]


def numeric_names(exp: Experiment) -> frozenset[str]:
    """The numeric hyperparameters ``exp`` may set: the registry's, its own, its loss's (``loss.<name>``,
    :func:`jtricks.losses.hparam_keys`) and those of an optax optimizer factory (its numeric arguments)."""
    names = NUMERIC_HPARAMS | frozenset(exp.custom_hparams) | frozenset(jlosses.hparam_keys(jlosses.get(exp.loss)))
    if callable(exp.optimizer):
        names |= frozenset(joptim.hparam_names(joptim.OptimizerSpec(exp.optimizer)))
    return names


#: Fields that describe a run rather than set it: never offered as a setting in a message.
_NOT_OFFERED = frozenset({"name", "description"})


def model_arguments(exp: Experiment) -> list[str]:
    """The keyword arguments of ``exp``'s model factory (a registered name or a factory; ``[]`` for a built
    :class:`jtricks.models.Model` or an unknown name)."""
    factory = exp.model
    if isinstance(factory, str):
        if factory not in jmodels.names():
            return []
        factory = jmodels.factory(factory)
    if isinstance(factory, jmodels.Model) or not callable(factory):
        return []
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return []
    return [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def setting_kind(key: str, exp: Experiment) -> str:
    """``"model"`` (a ``model.<arg>`` key), ``"numeric"`` (a numeric hyperparameter) or ``"field"`` (an
    :class:`Experiment` field); ``ValueError`` naming the closest keys for anything else."""
    if not isinstance(key, str):
        raise TypeError(f"setting names must be strings, got {key!r}")
    if key.startswith("model."):
        return "model"
    if key in numeric_names(exp):
        return "numeric"
    if key in SETTABLE:
        return "field"
    fields = sorted(SETTABLE - _NOT_OFFERED)
    numeric = sorted(numeric_names(exp) - set(fields))
    model = [f"model.{a}" for a in model_arguments(exp)]
    hint = checks.did_you_mean(key, [*fields, *numeric, *model])
    if hint:
        raise ValueError(f"unknown setting {key!r}{hint}")
    raise ValueError(
        f"unknown setting {key!r}; a setting is a field ({', '.join(fields)}), a model argument "
        f"(model.<arg>) or a numeric hyperparameter ({', '.join(numeric)}; declare your own in custom_hparams)"
    )


def describe_object(v: Any) -> str:
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
        return describe_object(v)
    if isinstance(v, Mapping):
        return {str(k): to_json(x) for k, x in v.items()}
    return [to_json(x) for x in v]
