"""Every ```python block of README.md and docs/*.md runs as written.

The blocks of one page run in order in one namespace (a later block may use an earlier one's names),
in a fresh temporary working folder. Every page runs twice, the second time with a fresh namespace in the
folder the first pass left behind, as a reader who runs an example again would: a block that appends to
its own output or refuses to overwrite its earlier results fails the second pass. A block whose first
line is ``# not run: <reason>`` is left out (for runs that take minutes or need a GPU); the reason is
required. New pages and blocks are picked up automatically.
"""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import matplotlib
import pytest

from jtricks import data as jdata
from jtricks import models as jmodels

pytestmark = pytest.mark.slow  # real jtricks runs / processes: left out of `-m "not slow"`

REPO = Path(__file__).resolve().parents[2]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```python[^\n]*\n(.*?)^```", flags=re.S | re.M)
OPT_OUT = re.compile(r"#\s*not run:\s*(\S.*)")


def blocks(page: Path) -> list[tuple[int, str]]:
    """``(line number, code)`` of every python block of ``page``."""
    text = page.read_text()
    return [(text[: m.start()].count("\n") + 2, m.group(1)) for m in BLOCK.finditer(text)]


def test_the_pages_have_python_blocks() -> None:
    assert sum(len(blocks(p)) for p in PAGES) >= 20


def _run_page(page: Path, monkeypatch: pytest.MonkeyPatch, pass_name: str) -> int:
    """Run the blocks of ``page`` in a fresh namespace; returns how many ran."""
    module = types.ModuleType("jtricks_docs_example")  # a real module: dataclasses look their module up
    monkeypatch.setitem(sys.modules, module.__name__, module)
    namespace = module.__dict__
    ran = 0
    before = set(jdata.names()), set(jmodels.names())
    try:
        for line, code in blocks(page):
            first = code.lstrip().splitlines()[0] if code.strip() else ""
            if first.startswith("# not run"):
                assert OPT_OUT.match(first), f"{page.name}:{line}: '# not run:' needs a reason"
                continue
            exec(compile(code, f"{page.relative_to(REPO)}:{line} ({pass_name} pass)", "exec"), namespace)
            ran += 1
    finally:  # a page that registers a data set or a model leaves the registries as it found them
        for name in set(jdata.names()) - before[0]:
            jdata.unregister_dataset(name)
        for name in set(jmodels.names()) - before[1]:
            jmodels.unregister_model(name)
    return ran


@pytest.mark.parametrize("page", [p for p in PAGES if blocks(p)], ids=lambda p: p.name)
def test_python_blocks_run_twice(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    matplotlib.use("Agg")
    monkeypatch.chdir(tmp_path)
    ran = _run_page(page, monkeypatch, "first")
    assert ran > 0, f"every block of {page.name} opted out"
    assert _run_page(page, monkeypatch, "second") == ran
