"""The package as a user installs it: a wheel built from the source, installed into a fresh virtual
environment, ``jtricks list`` and a tiny ``jtricks run`` of a shipped experiment from another folder.

The fresh environment gets the wheel only; its dependencies (jax, optax, ...) are those of the test's own
environment, made visible by a ``.pth`` file (no download, no copy).
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # real jtricks runs / processes: left out of `-m "not slow"`

REPO = Path(__file__).resolve().parents[2]


def _sources(dst: Path) -> Path:
    """What the wheel is built from, copied (a build writes build/ and *.egg-info beside the sources)."""
    dst.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, dst / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "plots", "*.sh")
    shutil.copytree(REPO / "jtricks", dst / "jtricks", ignore=ignore)
    shutil.copytree(REPO / "experiments", dst / "experiments", ignore=ignore)
    return dst


def _fresh_venv(path: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True, timeout=120)
    python = path / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    deps = [p for p in [*site.getsitepackages(), sysconfig.get_paths()["purelib"]] if Path(p).is_dir()]
    (Path(purelib) / "_jtricks_test_deps.pth").write_text("\n".join(dict.fromkeys(deps)) + "\n")
    return python


def test_wheel_installs_and_runs_shipped_experiments_from_any_folder(tmp_path: Path) -> None:
    src = _sources(tmp_path / "src")
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path / "dist"),
            str(src),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr
    assert "License classifiers are deprecated" not in build.stderr and "project.license" not in build.stderr
    (wheel,) = (tmp_path / "dist").glob("jtricks-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        metadata = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "jtricks/experiments/dropout_mnist1d.py" in names and "jtricks/engine/saved.py" in names
    assert "License-Expression: Apache-2.0" in metadata

    python = _fresh_venv(tmp_path / "venv")
    install = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q", str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, install.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "JTRICKS_EXPERIMENTS")}
    env["JAX_PLATFORMS"] = "cpu"
    jtricks_cli = tmp_path / "venv" / "bin" / "jtricks"
    where = subprocess.run(
        [str(python), "-c", "import jtricks; print(jtricks.__file__)"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert where.startswith(str(tmp_path / "venv"))  # the installed copy, not the source tree

    listed = subprocess.run(
        [str(jtricks_cli), "list"], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300
    )
    assert listed.returncode == 0, listed.stdout + listed.stderr
    names_listed = [line.split()[0] for line in listed.stdout.splitlines()]
    assert {"dropout_mnist1d", "optimizers", "architectures_small"} <= set(names_listed)
    assert "cannot load" not in listed.stdout

    run = subprocess.run(
        [
            str(jtricks_cli),
            "run",
            "dropout_mnist1d",
            "--epochs",
            "1",
            "--seeds",
            "1",
            "--quiet",
            "--no-plot",
            "--out",
            "out",
            "--set",
            "dropout_rate=[0.0]",
            "--set",
            "model.widths=[16]",
            "--set",
            "n_train=200",
            "--set",
            "n_val=100",
        ],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert (elsewhere / "out" / "manifest.json").is_file() and (elsewhere / "out" / "models" / "index.json").is_file()
