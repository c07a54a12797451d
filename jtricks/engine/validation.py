"""Every setting of an experiment and of each of its arms checked before anything is loaded or compiled: one
``ValueError`` / ``TypeError`` naming the bad key and the allowed values."""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence

from jtricks import data as jdata
from jtricks import losses as jlosses
from jtricks._core import checks
from jtricks._core import precision as jprec
from jtricks.engine import search as jsearch
from jtricks.engine import train as jtrain
from jtricks.engine.configure import build_config, build_model, produced_metrics, summary_metrics
from jtricks.engine.experiment import NUMERIC_HPARAMS, SETTINGS, Arm, Experiment, numeric_names
from jtricks.engine.grid import expand, value_text
from jtricks.results import summary as jsummary

__all__ = ["validate"]


def _check_int(exp: Experiment, field: str, *, minimum: int, optional: bool = False, arm: str | None = None) -> None:
    v = getattr(exp, field)
    if optional and v is None:
        return
    if not isinstance(v, int) or isinstance(v, bool) or v < minimum:
        where = f" (arm {arm!r})" if arm else ""
        kind = "a positive int" if minimum == 1 else f"an int >= {minimum}"
        raise ValueError(f"{field!r} must be {kind}{' or None' if optional else ''}, got {v!r}{where}")


def _check_choices(e: Experiment, arm: str, base: Experiment) -> None:
    """Every field with ``choices`` metadata holds an allowed value (objects and callables pass through). The
    message names the arm only when the value is the arm's own (not the experiment's ``base`` value)."""
    for field, meta in SETTINGS.items():
        v = getattr(e, field)
        if meta["choices"] is None or not (isinstance(v, str) or v is None):
            continue
        allowed = tuple(meta["choices"]())
        if v not in allowed:
            where = "" if v == getattr(base, field) else f" (arm {arm!r})"
            raise ValueError(
                f"{field!r} must be one of {list(allowed)} (or your own object: see docs/byo.md), "
                f"got {v!r}{where}{checks.did_you_mean(v, allowed)}"
            )


def _check_dataset_kwargs(e: Experiment) -> None:
    if not isinstance(e.dataset_kwargs, Mapping):
        raise TypeError(f"'dataset_kwargs' must be a mapping, got {e.dataset_kwargs!r}")
    if isinstance(e.dataset, str) and e.dataset_kwargs:
        loader = jdata.loader(e.dataset)
        unknown = sorted(k for k in e.dataset_kwargs if not checks.accepts_keyword(loader, k))
        if unknown:
            allowed = [p for p in inspect.signature(loader).parameters]
            raise ValueError(
                f"'dataset_kwargs' {unknown} are not arguments of the {e.dataset!r} loader; allowed: {allowed}"
            )
    elif not isinstance(e.dataset, str) and e.dataset_kwargs:
        raise ValueError("dataset_kwargs apply to a registered data set name, not to a Dataset object")


def _check_experiment(exp: Experiment) -> None:
    """The experiment-level settings (before the grid is expanded)."""
    if not isinstance(exp.name, str) or not exp.name:
        raise ValueError("experiment 'name' must be a non-empty string")
    for key, v in exp.custom_hparams.items():
        if not isinstance(key, str) or not key.isidentifier():
            raise ValueError(
                f"custom_hparams names must be identifiers (no '.': 'model.' and 'loss.' keys are the model's "
                f"arguments and the loss's hyperparameters), got {key!r}"
            )
        if key in NUMERIC_HPARAMS:
            raise ValueError(f"custom_hparams[{key!r}] is already a jtricks hyperparameter; set it in hparams")
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            raise ValueError(f"custom_hparams[{key!r}] must be a number (its default), got {v!r}")
    for key in exp.hparams:
        if key not in numeric_names(exp):
            raise ValueError(
                f"unknown hyperparameter {key!r} in hparams; allowed: {sorted(numeric_names(exp))} "
                "(declare your own in custom_hparams)"
            )
    for field in ("seeds", "epochs", "batch_size", "n_val", "eval_batch_size"):
        _check_int(exp, field, minimum=1)
    _check_int(exp, "max_members", minimum=1, optional=True)
    _check_int(exp, "log_every", minimum=1, optional=True)
    _check_int(exp, "seed_offset", minimum=0)
    _check_int(exp, "train_eval", minimum=0)
    _check_int(exp, "split_seed", minimum=0)
    _check_int(exp, "samples", minimum=1, optional=True)
    _check_int(exp, "sample_seed", minimum=0)
    if not isinstance(exp.test_bootstrap, bool):
        raise ValueError(f"'test_bootstrap' must be True or False, got {exp.test_bootstrap!r}")
    if exp.test_bootstrap and exp.search is not None:
        raise ValueError(
            "test_bootstrap=True records the test outcomes of every member at its end, which a search "
            "('search': halving, PBT) does not keep; use test_bootstrap=False with it"
        )


def _check_placement(e: Experiment, arm: str) -> None:
    """A streamed training split runs in the host-loop execution (``execution`` ``"auto"`` or ``"loop"``)."""
    if e.data_placement == "stream" and e.execution == "scan":
        raise ValueError(
            f"data_placement='stream' feeds batches from the host step by step, which needs execution 'loop' or "
            f"'auto' (the allowed values with streaming); got execution='scan' (arm {arm!r})"
        )
    if not isinstance(e.vary_split, bool):
        raise ValueError(f"'vary_split' must be True or False, got {e.vary_split!r} (arm {arm!r})")
    if e.vary_split and e.data_placement != "device":
        raise ValueError(
            f"vary_split=True needs data_placement='device' (a split per member is gathered from the pool on the "
            f"device); got data_placement={e.data_placement!r} (arm {arm!r})"
        )


def _check_arm(arm: Arm, base: Experiment) -> jtrain.TrainConfig:
    """One arm's settings (``base``: the experiment it comes from); returns its configuration (built with a
    placeholder output count)."""
    e = arm.experiment
    if e.precision not in jprec.PRECISIONS:
        where = "" if e.precision == base.precision else f" (arm {arm.name!r})"
        raise ValueError(f"'precision' must be one of {list(jprec.PRECISIONS)}, got {e.precision!r}{where}")
    _check_choices(e, arm.name, base)
    _check_int(e, "n_train", minimum=1, optional=True, arm=arm.name)
    for field in ("epochs", "batch_size", "accumulate"):
        _check_int(e, field, minimum=1, arm=arm.name)
    _check_int(e, "crop_padding", minimum=0, arm=arm.name)
    _check_placement(e, arm.name)
    _check_dataset_kwargs(e)
    # Model, loss, metrics and optimizer constructors validate their own arguments (ValueError naming them).
    config = build_config(e, build_model(e, 10), num_train=max(e.batch_size, 1) * 10)
    hint = _loss_key_hint(config, arm.hparams)
    try:
        jtrain.validate_hparams(config, {k: v for k, v in arm.hparams.items() if k in config.hparam_names()})
    except ValueError as err:
        raise ValueError(f"{err}{hint}") from None
    unused = sorted(set(arm.hparams) - set(config.hparam_names()))
    if unused:
        raise ValueError(
            f"hyperparameter(s) {unused} are not read by arm {arm.name!r} "
            f"(optimizer={value_text(e.optimizer)!r}, schedule={e.schedule!r}, clip={e.clip}, l2={e.l2}, "
            f"early_stopping={e.early_stopping}, averaging={e.averaging!r}, augment={list(config.augment)}); "
            f"it reads {list(config.hparam_names())}{hint}"
        )
    return config


def _loss_key_hint(config: jtrain.TrainConfig, hparams: Mapping[str, object]) -> str:
    """``"; the loss's own 'gamma' is set as 'loss.gamma'"`` when ``hparams`` sets a bare name that is one of the
    loss's own hyperparameters under its ``loss.`` key; else ``""``."""
    bare = {name: key for key, name in jlosses.hparam_keys(config.loss).items() if key != name and name in hparams}
    if not bare:
        return ""
    return "; " + ", ".join(f"the loss's own {n!r} is set as {k!r}" for n, k in bare.items())


def _check_metrics_field(exp: Experiment) -> None:
    """``metrics``: ``None`` or a list of metric names."""
    m = exp.metrics
    if m is not None and (
        isinstance(m, (str, bytes)) or not isinstance(m, Sequence) or not m or not all(isinstance(x, str) for x in m)
    ):
        raise ValueError(f"'metrics' must be None or a non-empty list of metric names (e.g. ['val_acc']), got {m!r}")


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
                raise ValueError(
                    f"'target' names metric {k!r}, measured by no arm; the arms measure {sorted(measured)}"
                )
            if not checks.is_finite_number(v):
                raise ValueError(f"'target'[{k!r}] must be a finite number, got {v!r}")
        return
    if not checks.is_finite_number(t):
        raise ValueError(f"'target' must be None, a finite number (a val_acc target) or {{metric: number}}, got {t!r}")
    if "val_acc" not in measured:
        raise ValueError(
            f"'target'={t!r} is a val_acc target, but no arm measures val_acc; give {{metric: value}} "
            f"with one of {sorted(measured)}"
        )


def validate(exp: Experiment) -> list[Arm]:
    """Check every setting of ``exp`` and of each arm before anything is loaded or compiled; return the arms.

    Raises ``ValueError`` / ``TypeError`` naming the bad key and the allowed values.
    """
    _check_experiment(exp)
    _check_metrics_field(exp)
    arms = expand(exp)
    configs = [_check_arm(arm, exp) for arm in arms]
    measured = frozenset().union(*(produced_metrics(c) for c in configs))
    missing = sorted(set(summary_metrics(exp, configs[0])) - measured)
    if missing:  # a metric some arms lack (avg_* of the averaging arms) is fine; one no arm measures is not
        raise ValueError(
            f"metrics {missing} are measured by no arm; the arms measure {sorted(measured)} "
            "(add the base metric to eval_metrics)"
        )
    _check_target(exp, measured)
    jsummary.equivalence_margins(exp.equivalence_margin, measured)
    jsearch.check_search(
        exp.search,
        epochs=exp.epochs,
        max_members=exp.max_members,
        grid_keys=list(exp.grid),
        measured=measured,
        hparam_names=frozenset.intersection(*(frozenset(c.hparam_names()) for c in configs)),
    )
    if exp.baseline is not None and exp.baseline not in {a.name for a in arms}:
        raise ValueError(f"'baseline' must be one of the arm names {[a.name for a in arms]}, got {exp.baseline!r}")
    return arms
