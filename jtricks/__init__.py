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
    "stats",
    "report",
    "cli",
)

__all__ = ["__version__", *_SUBMODULES]


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"jtricks.{name}")
    raise AttributeError(f"module 'jtricks' has no attribute {name!r}")
