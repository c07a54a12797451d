"""jtricks.runtime: the compilation cache and CPU devices ``jtricks run`` sets for its own process.

The settings are process-global, so each check runs in a fresh Python process.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from support import processes

from jtricks import provenance, runtime
from jtricks._core import files as jfiles

pytestmark = pytest.mark.slow  # real jtricks runs / processes: left out of `-m "not slow"`

REPO = Path(__file__).resolve().parents[2]


def _python(code: str, env: dict[str, str]) -> dict:
    p = processes.run([sys.executable, "-c", textwrap.dedent(code)], env=env)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout.strip().splitlines()[-1])


def _env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("XLA_FLAGS", "JAX_COMPILATION_CACHE_DIR", "JTRICKS_COMPILE_CACHE")
    }
    return {**env, "PYTHONPATH": str(REPO), "JAX_PLATFORMS": "cpu", **extra}


CONFIGURE_AND_COMPILE = """
    import json, jax, jax.numpy as jnp
    from jtricks import runtime
    s = runtime.configure(compile_cache={cache!r}, cpu_devices={devices!r})
    jax.jit(lambda x: jnp.tanh(x) * 3.0)(jnp.ones(7)).block_until_ready()
    print(json.dumps({{"settings": s.to_json(), "current": runtime.current(), "devices": jax.device_count()}}))
"""


def test_configure_sets_devices_and_fills_the_cache(tmp_path):
    cache = tmp_path / "xla"
    out = _python(CONFIGURE_AND_COMPILE.format(cache=str(cache), devices=3), _env())
    assert out["devices"] == 3
    assert (
        out["settings"]["cpu_devices"] == 3
        and "--xla_force_host_platform_device_count=3" in out["settings"]["xla_flags"]
    )
    assert out["settings"]["compile_cache"] == str(cache.resolve())
    # the manifest's record names no folder outside the repository: only the folder's name
    assert out["current"]["compile_cache"] == provenance.shareable_path(cache) == ".../xla"
    assert any(cache.iterdir()), "the compiled program was not written to the cache"
    assert runtime.cache_size_bytes(cache) > 0


def test_user_flags_and_off_switch_are_respected(tmp_path):
    env = _env(XLA_FLAGS="--xla_force_host_platform_device_count=2")
    out = _python(CONFIGURE_AND_COMPILE.format(cache=False, devices=None), env)
    assert out["devices"] == 2 and out["settings"]["cpu_devices"] is None
    assert "already sets" in out["settings"]["cpu_devices_note"]
    assert out["settings"]["compile_cache"] is None and out["current"]["compile_cache"] is None
    # the default folder follows $JTRICKS_COMPILE_CACHE
    env = _env(JTRICKS_COMPILE_CACHE=str(tmp_path / "mine"))
    out = _python(CONFIGURE_AND_COMPILE.format(cache=True, devices=1), env)
    assert out["devices"] == 1 and out["settings"]["compile_cache"] == str((tmp_path / "mine").resolve())
    assert any((tmp_path / "mine").iterdir())


@pytest.mark.parametrize("bad", [0, -2, 1.5, True, "2"])
def test_cpu_devices_must_be_a_positive_int(bad):
    with pytest.raises(ValueError, match="cpu_devices must be a positive int"):
        runtime.configure(compile_cache=False, cpu_devices=bad)


def test_default_cache_dir_order(monkeypatch, tmp_path):
    for var in ("JTRICKS_COMPILE_CACHE", "JAX_COMPILATION_CACHE_DIR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert runtime.default_cache_dir() == tmp_path / "xdg" / "jtricks" / "xla"
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", str(tmp_path / "jaxs"))
    assert runtime.default_cache_dir() == tmp_path / "jaxs"
    monkeypatch.setenv("JTRICKS_COMPILE_CACHE", str(tmp_path / "ours"))
    assert runtime.default_cache_dir() == tmp_path / "ours"


TINY = (
    "from jtricks.experiment import Experiment\n"
    "EXPERIMENT = Experiment(name='tiny', dataset='digits', preprocess='unit', n_val=100, n_train=256,\n"
    "    model='mlp', model_kwargs={'widths': (16,)}, grid={'learning_rate': [3e-3, 1e-2]}, epochs=2,\n"
    "    batch_size=64, eval_batch_size=256, seeds=3)\n"
)


def _cli(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return processes.run([sys.executable, "-m", "jtricks", *args], cwd=cwd, env=env)


def test_cli_run_records_the_runtime_and_a_rerun_hits_the_cache(tmp_path):
    f = tmp_path / "tiny.py"
    f.write_text(TINY)
    env = _env()
    cache = tmp_path / "cc"
    for d in "ac":
        p = _cli(
            "run",
            str(f),
            "--out",
            str(tmp_path / d),
            "--quiet",
            "--no-plot",
            "--no-save-models",
            "--compile-cache",
            str(cache),
            "--cpu-devices",
            "2",
            cwd=tmp_path,
            env=env,
        )
        assert p.returncode == 0, p.stderr
    manifests = {d: json.loads((tmp_path / d / "manifest.json").read_text()) for d in "ac"}
    # the rerun loads its programs from the cache: hits, no misses
    first, again = manifests["a"]["compile"], manifests["c"]["compile"]
    assert first["cache_misses"] > 0 and first["cache_hits"] == 0 and first["programs"] > 0
    assert again["cache_hits"] == first["cache_misses"] and again["cache_misses"] == 0
    ma = manifests["a"]["runtime"]
    assert manifests["a"]["device"]["count"] == 2 and "--xla_force_host_platform_device_count=2" in ma["xla_flags"]
    assert ma["compile_cache"] == ".../cc" and 0 < ma["compile_cache_bytes"] <= runtime.cache_size_bytes(cache)
    # 6 members sharded over 2 devices, compiled or loaded from the cache: the same bytes (the in-process
    # engine tests check that sharding over host devices equals one device)
    for name in ("metrics.csv", "members.csv", "summary.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "c" / name).read_bytes(), name
    bad = _cli("run", str(f), "--compile-cache", str(cache), "--no-compile-cache", cwd=tmp_path, env=env)
    assert bad.returncode == 2 and "--compile-cache and --no-compile-cache contradict" in bad.stderr


def test_configured_restores_the_callers_settings(tmp_path, monkeypatch):
    """In-process use of the command line leaves ``XLA_FLAGS`` and the cache options as they were."""
    import jax

    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_enable_fast_math=false")
    before = (jax.config.jax_compilation_cache_dir, jax.config.jax_enable_compilation_cache)
    with runtime.configured(compile_cache=tmp_path / "cc", cpu_devices=2) as s:
        assert jax.config.jax_compilation_cache_dir == s.compile_cache == str((tmp_path / "cc").resolve())
    assert os.environ["XLA_FLAGS"] == "--xla_cpu_enable_fast_math=false"
    assert (jax.config.jax_compilation_cache_dir, jax.config.jax_enable_compilation_cache) == before


def test_cli_run_with_a_compile_cache_below_a_regular_file_warns_once_and_runs(tmp_path):
    f = tmp_path / "tiny.py"
    f.write_text(TINY)
    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder")
    cache = blocker / "xla"
    out = tmp_path / "out"
    p = _cli(
        "run", str(f), "--epochs", "1", "--seeds", "2", "--no-plot", "--quiet", "--out", str(out),
        "--compile-cache", str(cache), "--cpu-devices", "1", cwd=tmp_path, env=_env(),
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    warnings = [ln for ln in p.stderr.splitlines() if "warning" in ln]
    assert warnings == [f"jtricks: warning: compile cache {cache} unusable (Not a directory); running without it"]
    assert json.loads((out / "manifest.json").read_text())["runtime"]["compile_cache"] is None
    assert blocker.read_text() == "not a folder"


@pytest.mark.parametrize("code", [errno.EROFS, errno.ENOSPC])
def test_read_only_or_full_compile_cache_is_skipped_with_one_warning(tmp_path, monkeypatch, capsys, code):
    import jax

    def refuse(folder: Path) -> None:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(jfiles, "_probe_write", refuse)
    with runtime.configured(compile_cache=tmp_path / "cc", cpu_devices=1) as s:
        assert s.compile_cache is None and not jax.config.jax_enable_compilation_cache
        assert runtime.current()["compile_cache"] is None
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"jtricks: warning: compile cache {tmp_path / 'cc'} unusable ({os.strerror(code)}); running without it"
    ]
