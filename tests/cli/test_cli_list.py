"""``jtricks list`` reads the experiment files without running them (a real ``python -m jtricks`` subprocess)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from support import processes

from jtricks.engine import catalog

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "JAX_PLATFORMS": "cpu"}


MARKER_EXPERIMENT = '''"""An experiment whose import leaves a marker file."""

from pathlib import Path

from jtricks.experiment import Experiment

Path(__file__).with_name("IMPORTED").write_text("this file ran")

EXPERIMENT = Experiment(
    name="marker",
    description=(
        "a literal description "
        "in two parts"
    ),
    dataset="digits",
)
'''


def test_list_reads_descriptions_without_running_the_files(tmp_path: Path) -> None:
    exps = tmp_path / "experiments"
    exps.mkdir()
    (exps / "marker.py").write_text(MARKER_EXPERIMENT)
    (exps / "computed.py").write_text(
        '"""Computed: its description is an f-string."""\n'
        'import os\nEXPERIMENT = Experiment(description=f"{os.getpid()}")\n'
    )
    (exps / "bare.py").write_text("import os\nEXPERIMENT = make(name=os.environ['X'])\n")
    (exps / "broken.py").write_text("EXPERIMENT = Experiment(\n")
    (exps / "renamed.py").write_text("EXPERIMENT = dataclasses.replace(BASE, name='other', description='a copy')\n")
    p = processes.run([sys.executable, "-m", "jtricks", "list"], cwd=tmp_path, env=ENV)
    assert p.returncode == 0, p.stderr
    assert not (exps / "IMPORTED").exists()
    lines = {ln.split()[0]: " ".join(ln.split()[1:]) for ln in p.stdout.splitlines()}
    assert lines["marker"] == "a literal description in two parts"
    assert lines["computed"] == "Computed: its description is an f-string."
    assert lines["bare"] == catalog.NOT_LITERAL == "(description not read: not a literal)"
    assert lines["broken"] == "(cannot parse: SyntaxError at line 1)"
    assert lines["renamed"] == "a copy (name: other)"
    assert "dropout_mnist1d" in lines  # the built-in experiments are listed the same way
    # running it stays the explicit way to execute the file
    assert catalog.describe_experiment(exps / "marker.py") == ("marker", "a literal description in two parts")
    assert not (exps / "IMPORTED").exists()
