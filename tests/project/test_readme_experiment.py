"""The README's "ablation in one file" is the experiment file it names, setting for setting."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _readme_block(first_line: str) -> str:
    """The ```python block of README.md whose first line is ``first_line``."""
    blocks = re.findall(r"^```python\n(.*?)^```", (REPO / "README.md").read_text(), flags=re.S | re.M)
    (block,) = [b for b in blocks if b.splitlines()[0] == first_line]
    return block


def test_the_readme_ablation_is_experiments_dropout_mnist1d() -> None:
    namespace: dict = {}
    exec(compile(_readme_block("# experiments/dropout_mnist1d.py"), "README.md", "exec"), namespace)
    spec = importlib.util.spec_from_file_location("dropout_mnist1d", REPO / "experiments" / "dropout_mnist1d.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert namespace["EXPERIMENT"] == module.EXPERIMENT
