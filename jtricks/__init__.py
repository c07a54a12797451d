"""jtricks: the classic deep-learning training tricks as pure JAX functions and optax transforms.

Submodules are imported on first attribute access, so ``import jtricks`` is cheap and
``jtricks.optim``, ``jtricks.init`` ... work without explicit imports.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_SUBMODULES = (
    "init",
    "norm",
    "dropout",
    "optim",
    "hparams",
    "regularize",
    "diagnostics",
    "data",
    "models",
    "losses",
    "metrics",
    "adapters",
    "checks",
    "keys",
    "population",
    "train",
    "programs",
    "experiment",
    "prepare",
    "checkpoint",
    "fingerprint",
    "results_io",
    "runner",
    "saved",
    "callbacks",
    "tensorboard",
    "stats",
    "report",
    "cli",
)

__all__ = ["__version__", "load", *_SUBMODULES]


def load(run_dir: Any, *, arm: str, seed: int, experiment: Any = None) -> Any:
    """A saved member of a finished run with its model: :func:`jtricks.saved.load`."""
    from jtricks.saved import load as _load

    return _load(run_dir, arm=arm, seed=seed, experiment=experiment)


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"jtricks.{name}")
    raise AttributeError(f"module 'jtricks' has no attribute {name!r}")
