"""The experiment files: where they are looked up by name, and loading one (its ``EXPERIMENT``)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from jtricks._core import checks
from jtricks.engine.experiment import Experiment

__all__ = ["experiments_dirs", "find_experiments", "load_experiment"]


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
            hint = checks.did_you_mean(name_or_path, sorted(known))
            listed = " (`jtricks list` shows them all, " if hint else f"; known: {sorted(known)} ("
            raise ValueError(f"unknown experiment {name_or_path!r}{hint}{listed}or give a path to a .py file)")
        path = known[name_or_path]
    spec = importlib.util.spec_from_file_location(f"jtricks_experiment_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    exp = getattr(module, "EXPERIMENT", None)
    if not isinstance(exp, Experiment):
        raise ValueError(f"{path} must define EXPERIMENT = jtricks.experiment.Experiment(...)")
    return exp
