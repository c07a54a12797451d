"""jtricks: the classic deep-learning training tricks as pure JAX functions and optax transforms, and an engine that
measures them (seed-replicated, vmapped ablations with confidence intervals).

The package in layers, each importing only the ones below it::

    jtricks.cli                        the command line
    jtricks.studies                    what wraps runs: tune-then-ablate, seeds until resolved, several processes,
                                       reproduce
    jtricks.engine                     an experiment becomes compiled population programs: plan -> build -> execute ->
                                       write
    jtricks.results                    results folders, fingerprints, statistics, summaries, plots
    jtricks.data, jtricks.models       data sets and architectures sized to them
    jtricks.init, .norm, .dropout,     the tricks: small pure functions and optax transforms, the public face
      .augment, .optim, .regularize,
      .diagnostics, .losses, .metrics, .hparams
    jtricks._core                      numerics that vmap cannot change, argument checks, named key streams

Every module is an attribute of ``jtricks`` on first use (``import jtricks; jtricks.runner.run(...)``), as are the
functions of :data:`FUNCTIONS` (``jtricks.read(run_dir)``, ``jtricks.read_summary(run_dir)``), and the
short public paths (``jtricks.runner``, ``jtricks.experiment``, ``jtricks.report``, ...) are importable names of
the modules that hold the code (:data:`MODULES`): ``from jtricks.experiment import Experiment`` and
``from jtricks.engine.experiment import Experiment`` give the same class.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
from types import ModuleType
from typing import Any

__version__ = "0.1.0"

#: Public name -> the module that holds it.
MODULES: dict[str, str] = {
    # the tricks
    **{
        name: f"jtricks.{name}"
        for name in (
            "init",
            "norm",
            "dropout",
            "augment",
            "optim",
            "hparams",
            "regularize",
            "diagnostics",
            "losses",
            "metrics",
        )
    },
    "data": "jtricks.data",
    "models": "jtricks.models",
    "adapters": "jtricks.models.adapters",
    # the core
    "numerics": "jtricks._core.numerics",
    "checks": "jtricks._core.checks",
    "keys": "jtricks._core.keys",
    # results
    "results": "jtricks.results",
    "report": "jtricks.results",
    "results_io": "jtricks.results.folders",
    "fingerprint": "jtricks.results.fingerprint",
    "stats": "jtricks.results.stats",
    "reading": "jtricks.results.read",
    "tensorboard": "jtricks.results.tensorboard",
    "trackers": "jtricks.results.trackers",
    # the engine
    "engine": "jtricks.engine",
    "experiment": "jtricks.engine",
    **{
        name: f"jtricks.engine.{name}"
        for name in (
            "train",
            "programs",
            "population",
            "prepare",
            "runner",
            "search",
            "pbt",
            "parts",
            "checkpoint",
            "saved",
            "callbacks",
            "runtime",
            "provenance",
            "stopping",
        )
    },
    # studies
    "studies": "jtricks.studies",
    **{name: f"jtricks.studies.{name}" for name in ("tuning", "sequential", "distributed", "reproduce")},
    "cli": "jtricks.cli",
}

#: Public function -> the module that holds it: attributes of ``jtricks`` on first use, like the modules
#: (``jtricks.read(run_dir)``: a results folder's ``metrics.csv`` as a pandas DataFrame).
FUNCTIONS: dict[str, str] = {"read": "jtricks.results.read", "read_summary": "jtricks.results.read"}

__all__ = ["__version__", "run", "load", *FUNCTIONS, *MODULES]


def run(experiment: Any, **options: Any) -> Any:
    """Run an experiment (tuned, then compared, when it has ``tune``) and write its results folder:
    :func:`jtricks.studies.run` (``out_dir=`` and the fields of :class:`jtricks.engine.options.RunOptions` as
    keywords)."""
    from jtricks.studies import run as run_study

    return run_study(experiment, **options)


def load(run_dir: Any, *, arm: str, seed: int, experiment: Any = None) -> Any:
    """A saved member of a finished run with its model: :func:`jtricks.engine.saved.load`."""
    from jtricks.engine.saved import load as load_member

    return load_member(run_dir, arm=arm, seed=seed, experiment=experiment)


def __getattr__(name: str) -> Any:
    if name in FUNCTIONS:
        return getattr(importlib.import_module(FUNCTIONS[name]), name)
    if name in MODULES:
        return importlib.import_module(MODULES[name])
    raise AttributeError(f"module 'jtricks' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)


class _PublicPath(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Makes ``import jtricks.runner`` give the module that holds the code (``jtricks.engine.runner``): the same
    module object under both names, so attributes set on one are seen through the other."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        prefix, _, name = fullname.partition(".")
        if prefix != "jtricks" or name not in MODULES or MODULES[name] == fullname:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        module = importlib.import_module(MODULES[spec.name.partition(".")[2]])
        spec.loader_state = module.__spec__  # the import system sets the public name's spec on the module next
        return module

    def exec_module(self, module: ModuleType) -> None:
        # already executed under its own name: give it back its own spec (its name, file and reloads stay the
        # holding module's)
        module.__spec__ = module.__spec__.loader_state


if not any(isinstance(f, _PublicPath) for f in sys.meta_path):
    sys.meta_path.append(_PublicPath())
