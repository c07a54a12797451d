"""The public API: every ``jtricks.X`` that the README and docs name is an attribute after a bare
``import jtricks``; ``dir(jtricks)`` lists modules and public functions only; every module declares ``__all__``
and defines what it lists; a short public path and the holding module are the same module object."""

from __future__ import annotations

import ast
import importlib
import json
import re
import subprocess
import sys
from pathlib import Path

import jtricks

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "jtricks"


def _named_in_docs() -> set[str]:
    pages = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    named = {m for page in pages for m in re.findall(r"\bjtricks\.([a-z][a-z_]*)\b", page.read_text())}
    return named - {"experiments"}  # the guide's experiment files: a package of the wheel, imported by path


def test_every_name_the_docs_use_is_an_attribute_of_a_fresh_import():
    names = sorted(_named_in_docs())
    assert {"runner", "search", "tuning", "report", "experiment", "optim"} <= set(names)
    code = (
        "import json, sys, jtricks\n"
        f"names = {names!r}\n"
        "missing = [n for n in names if not hasattr(jtricks, n)]\n"
        "print(json.dumps({'missing': missing, 'dir': dir(jtricks)}))\n"
    )
    p = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stderr
    got = json.loads(p.stdout.strip().splitlines()[-1])
    assert got["missing"] == []
    helpers = {"Any", "annotations", "importlib", "sys", "ModuleType"}
    assert not helpers & set(got["dir"])
    assert {n for n in got["dir"] if not n.startswith("_")} == {n for n in jtricks.__all__ if not n.startswith("_")}


def test_every_module_declares_all_and_defines_it():
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "__main__.py":
            continue
        tree = ast.parse(path.read_text())
        declared = [
            n
            for n in tree.body
            if (isinstance(n, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in n.targets))
            or (isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name) and n.target.id == "__all__")
        ]
        assert declared, f"{path.relative_to(REPO)} has no __all__"
        name = ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
        module = importlib.import_module(name)
        missing = [n for n in module.__all__ if not hasattr(module, n)]
        assert missing == [], f"{name}.__all__ lists undefined names {missing}"


def test_short_paths_are_the_holding_modules():
    for short, holder in jtricks.MODULES.items():
        via_attribute = getattr(jtricks, short)
        via_import = importlib.import_module(f"jtricks.{short}")
        assert via_import is importlib.import_module(holder) is via_attribute, short
    from jtricks.engine.experiment import Experiment as held
    from jtricks.experiment import Experiment as short

    assert short is held
