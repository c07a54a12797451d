"""The experiment files: where they are looked up by name, reading one without running it, and loading one.

:func:`describe_experiment` reads a file's name and description statically (``ast``: nothing in the file runs),
for ``jtricks list``; :func:`load_experiment` imports the file (runs it) and returns its ``EXPERIMENT``, for
``jtricks run``.
"""

from __future__ import annotations

import ast
import importlib.util
import os
from pathlib import Path

from jtricks._core import checks
from jtricks.engine.experiment import Experiment

__all__ = ["experiments_dirs", "find_experiments", "describe_experiment", "load_experiment", "NOT_LITERAL"]

#: What :func:`describe_experiment` gives for a description it cannot read without running the file.
NOT_LITERAL = "(description not read: not a literal)"


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


def _experiment_call(tree: ast.Module) -> ast.Call | None:
    """The call assigned to ``EXPERIMENT`` at the top level of ``tree`` (the last such assignment), if any."""
    found = None
    for node in tree.body:
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign):
            targets = [node.target]
        else:
            continue
        if any(isinstance(t, ast.Name) and t.id == "EXPERIMENT" for t in targets):
            found = node.value if isinstance(node.value, ast.Call) else None
    return found


def _literal_keyword(call: ast.Call | None, name: str) -> str | None:
    """The value of keyword ``name`` of ``call`` when it is a literal string, else ``None``."""
    for kw in call.keywords if call is not None else ():
        if kw.arg == name:
            try:
                value = ast.literal_eval(kw.value)
            except (ValueError, TypeError, SyntaxError, RecursionError):
                return None
            return value if isinstance(value, str) else None
    return None


def describe_experiment(path: str | os.PathLike[str]) -> tuple[str, str]:
    """``(name, description)`` of an experiment file, read with ``ast`` without running it.

    They are the ``name`` and ``description`` keywords of the call assigned to ``EXPERIMENT``
    (``Experiment(...)``, ``dataclasses.replace(...)``) when they are literal strings. Otherwise the name is
    the file's name and the description the first line of the module docstring, else :data:`NOT_LITERAL`;
    a file that does not parse gives ``(cannot parse: SyntaxError at line N)``.
    """
    path = Path(path)
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except SyntaxError as e:
        return path.stem, f"(cannot parse: SyntaxError at line {e.lineno})"
    except (OSError, UnicodeDecodeError, ValueError) as e:
        return path.stem, f"(cannot read: {type(e).__name__})"
    call = _experiment_call(tree)
    name = _literal_keyword(call, "name") or path.stem
    description = _literal_keyword(call, "description")
    if description is None:
        doc = ast.get_docstring(tree)
        description = doc.strip().splitlines()[0] if doc and doc.strip() else NOT_LITERAL
    return name, " ".join(description.split())


def load_experiment(name_or_path: str) -> Experiment:
    """Load ``EXPERIMENT`` from an experiment file given by name (see :func:`find_experiments`) or path: the file
    is imported, so its code runs (:func:`describe_experiment` reads one without running it)."""
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
