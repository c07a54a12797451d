"""Experiments: a declarative grid over the pure training function.

An :class:`Experiment` names a data set, a model, an optimizer, a number of epochs and seeds, and a
*grid* of factors. Each factor is either

* **numeric** — a hyperparameter that is data (learning rate, dropout rate, weight decay, clip norm,
  momentum, decay rate, ...): its values are vmapped, they never recompile; or
* **static** — structure (optimizer family, schedule, normalization, initializer, architecture, input
  preprocessing, early stopping, averaging): one compile per distinct static configuration.

Seeds are always vmapped. The expansion is ``arms × grid`` (``arms`` is an optional explicit list of
heterogeneous arms, e.g. "none / early stopping / weight decay / dropout"); the runner groups the arms
by their static configuration and runs each group as one ``jit(vmap(...))`` population.

Keys of ``grid``, ``arms`` and ``--set`` are: an :class:`Experiment` field (``optimizer``, ``schedule``,
``epochs``, ...), ``model.<kwarg>`` for a model argument (``model.norm``, ``model.init``,
``model.widths``), or a numeric hyperparameter name (``learning_rate``, ``dropout_rate``, ...).
Everything is validated before any data is loaded or anything compiles.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
import itertools
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

from jtricks import hparams as jhparams
from jtricks import models as jmodels
from jtricks import optim as joptim
from jtricks import train as jtrain

__all__ = [
    "Experiment",
    "Arm",
    "NUMERIC_HPARAMS",
    "STATIC_FIELDS",
    "expand",
    "arm_name",
    "apply_overrides",
    "parse_set",
    "load_experiment",
    "find_experiments",
    "validate",
]

#: Every numeric hyperparameter a grid may vmap over (optimizer hyperparameters + the engine's own).
NUMERIC_HPARAMS: frozenset[str] = frozenset(
    {h.name for h in jhparams.REGISTRY.values() if h.owner == "optimizer"}
    | {k for names in joptim.SCHEDULES.values() for k in names}
    | {"clip_norm", "weight_decay"}
    | set(jtrain.ENGINE_HPARAMS)
)


@dataclasses.dataclass(frozen=True)
class Experiment:
    """A declarative ablation. See the module docstring for what is static and what is vmapped.

    Attributes:
      name, description: shown by ``jtricks list``.
      dataset: ``"mnist1d"``, ``"digits"``, ``"fashion_mnist"`` or ``"mnist"`` (see :mod:`jtricks.data`).
      preprocess: ``"raw"``, ``"unit"`` ([0,1]), ``"symmetric"`` ([-1,1]) or ``"standardize"`` (train statistics).
      n_train: use only this many training examples (a seeded, fixed subset; ``None`` = all).
      n_val: validation examples held out of the training split by the fixed ``split_seed``
        (the same split for every seed and arm, so arms are compared on the same data).
      model, model_kwargs: a name of :func:`jtricks.models.get` and its static arguments.
      optimizer, schedule, clip, weight_decay: the optimizer's structure (:class:`jtricks.optim.OptimizerSpec`);
        ``decay_every_epochs`` (``schedule="step"``: epochs between drops) and ``warmup_epochs``
        (``schedule="warmup_cosine"``). ``l2`` and ``weight_decay`` are both a switch and a coefficient:
        in ``grid`` / ``arms`` / ``--set`` a bool sets the switch, a number sets the coefficient and the switch.
      l2, early_stopping, averaging, execution, eval_batch_size, diagnostics: see :class:`jtricks.train.TrainConfig`.
      population: how the host-loop execution maps a step over the members: ``"vmap"``, ``"unroll"``
        (members one after another in one program) or ``"auto"`` (:func:`jtricks.population.resolve_strategy`:
        unroll for convolutional models on CPU, vmap otherwise).
      epochs, batch_size: training length and batch size.
      hparams: fixed numeric hyperparameters (defaults filled from the optimizer and the engine).
      grid: factor → list of values (the Cartesian product is taken).
      arms: optional explicit list of arms: dicts of overrides, each with an optional ``"name"``.
      seeds: number of seeds (``seed_offset``, ..., ``seed_offset + seeds - 1``).
      baseline: the arm every other arm is compared with (default: the first arm).
      metrics: the metrics summarised (final epoch, mean and 95% CI over seeds).
      target: a validation accuracy; the summary reports the first epoch the mean curve reaches it.
      max_members: population chunk size (``None``: the whole group at once).
    """

    name: str
    description: str = ""
    dataset: str = "mnist1d"
    dataset_kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    preprocess: str = "standardize"
    n_train: int | None = None
    n_val: int = 500
    split_seed: int = 0
    model: str = "mlp"
    model_kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    optimizer: str = "adam"
    schedule: str = "constant"
    decay_every_epochs: int = 1
    warmup_epochs: int = 0
    clip: bool = False
    weight_decay: bool = False
    l2: bool = False
    early_stopping: bool = False
    averaging: str | None = None
    execution: str = "auto"
    population: str = "auto"
    eval_batch_size: int = 1000
    diagnostics: bool = False
    epochs: int = 10
    batch_size: int = 64
    hparams: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    grid: Mapping[str, Sequence[Any]] = dataclasses.field(default_factory=dict)
    arms: Sequence[Mapping[str, Any]] = ()
    seeds: int = 8
    seed_offset: int = 0
    baseline: str | None = None
    metrics: Sequence[str] = ("test_acc", "val_acc", "train_loss")
    target: float | None = None
    max_members: int | None = None


#: Experiment fields a grid / arm may vary (each distinct value is its own compiled program).
STATIC_FIELDS: frozenset[str] = frozenset(
    {
        "dataset",
        "preprocess",
        "n_train",
        "model",
        "optimizer",
        "schedule",
        "decay_every_epochs",
        "warmup_epochs",
        "clip",
        "weight_decay",
        "l2",
        "early_stopping",
        "averaging",
        "execution",
        "population",
        "batch_size",
        "diagnostics",
    }
)
_SETTABLE_FIELDS = frozenset(f.name for f in dataclasses.fields(Experiment)) - {"name", "grid", "arms", "hparams"}


@dataclasses.dataclass(frozen=True)
class Arm:
    """One cell of the grid: a name, the resolved static experiment, and its numeric hyperparameters."""

    name: str
    factors: Mapping[str, Any]
    experiment: Experiment
    hparams: Mapping[str, float]


def _kind(key: str) -> str:
    if key.startswith("model."):
        return "model"
    if key in NUMERIC_HPARAMS:
        return "numeric"
    if key in _SETTABLE_FIELDS:
        return "field"
    allowed = sorted(_SETTABLE_FIELDS) + ["model.<arg>"] + sorted(NUMERIC_HPARAMS)
    raise ValueError(f"unknown setting {key!r}; allowed: {', '.join(allowed)}")


def apply_overrides(exp: Experiment, overrides: Mapping[str, Any]) -> Experiment:
    """Return ``exp`` with ``overrides`` applied (fields, ``model.<kwarg>`` and numeric hyperparameters)."""
    fields: dict[str, Any] = {}
    model_kwargs = dict(exp.model_kwargs)
    hparams = dict(exp.hparams)
    for key, value in overrides.items():
        if key == "name":
            continue
        kind = _kind(key)
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


#: Names that are both an on/off field and its numeric coefficient: a bool sets the field, a number sets the
#: coefficient and switches the field on (so an arm ``{"l2": 1e-4}`` is an L2 arm).
_SWITCHED_BY_COEFFICIENT = frozenset({"l2", "weight_decay"})


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return format(v, "g")
    if isinstance(v, (list, tuple)):
        return "x".join(_fmt(x) for x in v)
    return str(v)


def arm_name(factors: Mapping[str, Any]) -> str:
    """``"k1=v1,k2=v2"`` (``"baseline"`` for an empty set of factors)."""
    if not factors:
        return "baseline"
    return ",".join(f"{k.removeprefix('model.')}={_fmt(v)}" for k, v in factors.items())


def expand(exp: Experiment) -> list[Arm]:
    """All arms of ``exp``: explicit ``arms`` × the Cartesian product of ``grid``, in declaration order."""
    for key, values in exp.grid.items():
        _kind(key)
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or len(values) == 0:
            raise ValueError(f"grid[{key!r}] must be a non-empty list of values, got {values!r}")
    base_arms: list[Mapping[str, Any]] = list(exp.arms) or [{}]
    grid_keys = list(exp.grid)
    combos = list(itertools.product(*(exp.grid[k] for k in grid_keys))) or [()]
    arms: list[Arm] = []
    for base in base_arms:
        for combo in combos:
            overrides = {**{k: v for k, v in base.items() if k != "name"}, **dict(zip(grid_keys, combo))}
            label_parts = []
            if "name" in base:
                label_parts.append(str(base["name"]))
            grid_factors = dict(zip(grid_keys, combo))
            if grid_factors:
                label_parts.append(arm_name(grid_factors))
            name = ",".join(label_parts) if label_parts else arm_name(overrides)
            resolved = apply_overrides(exp, overrides)
            arms.append(Arm(name=name, factors=overrides, experiment=resolved, hparams=dict(resolved.hparams)))
    names = [a.name for a in arms]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"arm names must be unique, duplicated: {dupes}; give explicit arms a 'name'")
    return arms


def static_signature(exp: Experiment) -> tuple:
    """What makes two arms share one compiled program (everything but the numeric hyperparameters)."""
    d = dataclasses.asdict(exp)
    for k in ("name", "description", "hparams", "grid", "arms", "seeds", "seed_offset", "baseline", "metrics", "target", "max_members"):
        d.pop(k, None)
    return tuple(sorted((k, repr(v)) for k, v in d.items()))


def build_model(exp: Experiment, num_classes: int) -> Any:
    """The :class:`jtricks.models.Model` of ``exp``."""
    kwargs = dict(exp.model_kwargs)
    kwargs.setdefault("num_classes", num_classes)
    return jmodels.get(exp.model, **kwargs)


def build_config(exp: Experiment, model: Any, num_train: int, *, dropout: bool | None = None, init_scale: bool | None = None) -> jtrain.TrainConfig:
    """The static :class:`jtricks.train.TrainConfig` of ``exp`` (``num_train`` fixes steps per epoch).

    ``dropout`` / ``init_scale`` (traced dropout rate / init scale) default to whether ``exp.hparams``
    sets them; the runner decides per group (on when any arm of the group sets them).
    """
    if dropout is None:
        dropout = "dropout_rate" in exp.hparams
    if init_scale is None:
        init_scale = "init_scale" in exp.hparams
    steps_per_epoch = num_train // exp.batch_size
    spec = joptim.OptimizerSpec(
        name=exp.optimizer,
        schedule=exp.schedule,
        clip=exp.clip,
        weight_decay=exp.weight_decay,
        steps_per_epoch=max(1, steps_per_epoch),
        total_steps=max(1, steps_per_epoch * exp.epochs),
        decay_every_epochs=exp.decay_every_epochs,
        warmup_steps=max(0, steps_per_epoch * exp.warmup_epochs),
    )
    return jtrain.TrainConfig(
        model=model,
        optimizer=spec,
        epochs=exp.epochs,
        batch_size=exp.batch_size,
        l2=exp.l2,
        early_stopping=exp.early_stopping,
        averaging=exp.averaging,
        execution=exp.execution,  # type: ignore[arg-type]
        eval_batch_size=exp.eval_batch_size,
        diagnostics=exp.diagnostics,
        dropout=dropout,
        init_scale=init_scale,
    )


_DATASETS = ("mnist1d", "digits", "fashion_mnist", "mnist")
_PREPROCESS = ("raw", "unit", "symmetric", "standardize")
_POPULATION = ("auto", "vmap", "unroll")


def validate(exp: Experiment) -> list[Arm]:
    """Check every setting of ``exp`` and of each arm before anything is loaded or compiled; return the arms.

    Raises ``ValueError`` naming the bad key and the allowed values.
    """
    if not isinstance(exp.name, str) or not exp.name:
        raise ValueError("experiment 'name' must be a non-empty string")
    for key in exp.hparams:
        if key not in NUMERIC_HPARAMS:
            raise ValueError(f"unknown hyperparameter {key!r} in hparams; allowed: {sorted(NUMERIC_HPARAMS)}")
    for field in ("seeds", "epochs", "batch_size", "n_val", "eval_batch_size"):
        v = getattr(exp, field)
        if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
            raise ValueError(f"{field!r} must be a positive int, got {v!r}")
    if exp.max_members is not None and (not isinstance(exp.max_members, int) or exp.max_members <= 0):
        raise ValueError(f"'max_members' must be a positive int or None, got {exp.max_members!r}")
    arms = expand(exp)
    for arm in arms:
        e = arm.experiment
        if e.dataset not in _DATASETS:
            raise ValueError(f"'dataset' must be one of {list(_DATASETS)}, got {e.dataset!r} (arm {arm.name!r})")
        if e.preprocess not in _PREPROCESS:
            raise ValueError(f"'preprocess' must be one of {list(_PREPROCESS)}, got {e.preprocess!r} (arm {arm.name!r})")
        if e.population not in _POPULATION:
            raise ValueError(f"'population' must be one of {list(_POPULATION)}, got {e.population!r} (arm {arm.name!r})")
        if e.n_train is not None and (not isinstance(e.n_train, int) or e.n_train <= 0):
            raise ValueError(f"'n_train' must be a positive int or None, got {e.n_train!r}")
        for field in ("epochs", "batch_size"):
            v = getattr(e, field)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise ValueError(f"{field!r} must be a positive int, got {v!r} (arm {arm.name!r})")
        # Model and optimizer constructors validate their own static arguments (ValueError naming them).
        model = build_model(e, num_classes=10)
        config = build_config(e, model, num_train=max(e.batch_size, 1) * 10)
        jtrain.validate_hparams(config, {k: v for k, v in arm.hparams.items() if k in config.hparam_names()})
        unused = sorted(set(arm.hparams) - set(config.hparam_names()))
        if unused:
            raise ValueError(
                f"hyperparameter(s) {unused} are not read by arm {arm.name!r} "
                f"(optimizer={e.optimizer!r}, schedule={e.schedule!r}, clip={e.clip}, l2={e.l2}, "
                f"early_stopping={e.early_stopping}, averaging={e.averaging!r}); it reads {list(config.hparam_names())}"
            )
    if exp.baseline is not None and exp.baseline not in {a.name for a in arms}:
        raise ValueError(f"'baseline' must be one of the arm names {[a.name for a in arms]}, got {exp.baseline!r}")
    return arms


def parse_set(items: Sequence[str]) -> dict[str, Any]:
    """Parse ``--set key=value`` items; values are Python literals (``0.1``, ``[64, 64]``, ``None``) or strings."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--set expects key=value, got {item!r}")
        key, raw = item.split("=", 1)
        key = key.strip()
        _kind(key) if key not in ("grid", "arms", "hparams") else None
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            value = raw
        out[key] = value
    return out


def with_settings(exp: Experiment, settings: Mapping[str, Any]) -> Experiment:
    """Apply ``--set`` settings: a key that is a grid factor replaces the factor's values (a list or one value)."""
    grid = dict(exp.grid)
    rest: dict[str, Any] = {}
    for key, value in settings.items():
        if key in grid:
            grid[key] = list(value) if isinstance(value, (list, tuple)) else [value]
        elif key in ("grid", "arms", "hparams"):
            raise ValueError(f"--set cannot replace {key!r} whole; set its entries instead")
        else:
            rest[key] = value
    return apply_overrides(dataclasses.replace(exp, grid=grid), rest)


def experiments_dirs() -> list[Path]:
    """Where experiment files are looked up: ``$JTRICKS_EXPERIMENTS``, ``./experiments``, the source tree's ``experiments/``."""
    dirs = []
    if os.environ.get("JTRICKS_EXPERIMENTS"):
        dirs.append(Path(os.environ["JTRICKS_EXPERIMENTS"]))
    dirs.append(Path.cwd() / "experiments")
    dirs.append(Path(__file__).resolve().parent.parent / "experiments")
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


