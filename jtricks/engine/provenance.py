"""Provenance of a run, for its manifest: the code, the command, the environment and every resolved default.

:func:`manifest_entries` gathers, besides what the runner already records (versions, device, the
configuration as written, data checksums):

* ``code`` -- the git commit of the checkout the ``jtricks`` package was imported from and whether its
  working tree had uncommitted changes (``None`` outside a git checkout or without ``git``);
* ``command`` -- ``sys.argv`` and the working directory, every path relative to the repository (a path
  elsewhere keeps only its file name: :func:`shareable_path`), so a published manifest names no user,
  home folder or machine layout;
* ``machine`` -- what explains a difference between two machines' numbers (:func:`machine`): the CPU's
  vendor, model, family and the instruction-set extensions that change XLA's code (AVX2, FMA, AVX-512,
  AMX), the core count, the operating system, the jaxlib build, and the accelerators with their driver;
* ``environment`` -- ``XLA_FLAGS``, every ``JAX_*`` and ``XLA_*`` variable, ``CUDA_VISIBLE_DEVICES``
  and ``TF_CPP_MIN_LOG_LEVEL`` as set for the process (absent ones are left out);
* ``resolved`` -- per arm, every numeric hyperparameter the program reads with its default filled in
  (optimizer betas and epsilon, patience, init scale, ...: :func:`jtricks.train.validate_hparams`);
  per static group the model factory's arguments with its defaults (initializer, activation, norm) and
  the data loader's arguments with its defaults (the data generator's seed, e.g. MNIST-1D's ``seed=42``).
"""

from __future__ import annotations

import inspect
import os
import platform
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "git_state",
    "command",
    "environment",
    "call_arguments",
    "manifest_entries",
    "ENV_PREFIXES",
    "machine",
    "shareable_path",
    "ISA_FLAGS",
]

#: Environment variables recorded: exact names, and prefixes (``JAX_``, ``XLA_``).
ENV_NAMES: tuple[str, ...] = ("XLA_FLAGS", "CUDA_VISIBLE_DEVICES", "TF_CPP_MIN_LOG_LEVEL", "ONEDNN_MAX_CPU_ISA")

#: The CPU flags (``/proc/cpuinfo``) that change the code XLA generates or the kernels its libraries pick:
#: exact names, and the prefixes ``avx512`` and ``amx``.
ISA_FLAGS: tuple[str, ...] = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx_vnni")
_ISA_PREFIXES: tuple[str, ...] = ("avx512", "amx")
_REPO = Path(__file__).resolve().parents[2]
ENV_PREFIXES: tuple[str, ...] = ("JAX_", "XLA_")


def git_state(path: str | os.PathLike | None = None) -> dict[str, Any] | None:
    """``{"commit": sha, "dirty": bool}`` of the git checkout holding ``path`` (default: the ``jtricks``
    package), ``dirty`` meaning tracked files differ from the commit (``git status --porcelain
    --untracked-files=no`` is not empty); ``None`` when ``path`` is not in a git checkout or git is missing."""
    where = Path(path) if path is not None else _REPO / "jtricks"
    try:
        sha = subprocess.run(
            ["git", "-C", str(where), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "-C", str(where), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": sha, "dirty": bool(status.strip())}


def shareable_path(path: str | os.PathLike[str], root: str | os.PathLike[str] | None = None) -> str:
    """``path`` as it may be published: relative to ``root`` (default: the repository holding the package)
    when inside it (``"."`` for the root itself), else ``".../NAME"`` (only its last component).

    >>> shareable_path("/home/ada/jtricks/experiments/init.py", "/home/ada/jtricks")
    'experiments/init.py'
    >>> shareable_path("/home/ada/data/mine.py", "/home/ada/jtricks")
    '.../mine.py'
    """
    base = Path(root).resolve() if root is not None else _REPO
    p = Path(path).expanduser()
    p = (Path.cwd() / p) if not p.is_absolute() else p
    p = Path(os.path.normpath(p))
    try:
        rel = p.relative_to(base)
    except ValueError:
        return f".../{p.name}" if p.name else "..."
    return rel.as_posix() or "."


def command() -> dict[str, Any]:
    """The process's command line (``sys.argv``) and working directory, paths made shareable
    (:func:`shareable_path`: an argument naming an existing file or folder, and the working directory)."""
    argv = [shareable_path(a) if (os.sep in a or a.endswith(".py")) and Path(a).exists() else a for a in sys.argv]
    if argv:
        argv[0] = Path(sys.argv[0]).name
    return {"argv": argv, "cwd": shareable_path(os.getcwd())}


def _cpuinfo(text: str | None = None) -> dict[str, str]:
    """The first processor's ``key: value`` lines of ``/proc/cpuinfo`` (empty where there is none)."""
    if text is None:
        try:
            text = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            return {}
    info: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if info:
                break
            continue
        key, _, value = line.partition(":")
        info.setdefault(key.strip(), value.strip())
    return info


def _accelerators() -> list[dict[str, Any]]:
    import jax

    devices = [d for d in jax.devices() if d.platform != "cpu"]
    if not devices:
        return []
    driver = None
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.split()
        driver = out[0] if out else None
    except (OSError, subprocess.SubprocessError):
        pass
    kinds = sorted({d.device_kind for d in devices})
    return [
        {
            "platform": devices[0].platform,
            "kind": k,
            "count": sum(d.device_kind == k for d in devices),
            "driver": driver,
        }
        for k in kinds
    ]


def machine(cpuinfo: str | None = None) -> dict[str, Any]:
    """What the numbers of a run can depend on besides the code and the settings.

    ``cpu``: ``vendor``, ``model`` (the model name), ``family`` and ``model_number`` (Linux's
    ``/proc/cpuinfo``), ``isa`` (which of :data:`ISA_FLAGS`, ``avx512*`` and ``amx*`` the CPU has),
    ``cores`` (those this process may use); ``architecture``; ``os``; ``jaxlib_build`` (its git
    commit); ``accelerators`` (each kind of non-CPU device with its count and driver version).
    """
    import jaxlib.version

    info = _cpuinfo(cpuinfo)
    flags = info.get("flags", "").split()
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    return {
        "architecture": platform.machine(),
        "os": f"{platform.system()} {platform.release()}",
        "cpu": {
            "vendor": info.get("vendor_id"),
            "model": info.get("model name") or platform.processor() or None,
            "family": int(info["cpu family"]) if info.get("cpu family", "").isdigit() else None,
            "model_number": int(info["model"]) if info.get("model", "").isdigit() else None,
            "isa": sorted(f for f in flags if f in ISA_FLAGS or f.startswith(_ISA_PREFIXES)),
            "cores": cores,
        },
        "jaxlib_build": getattr(jaxlib.version, "_git_hash", None),
        "accelerators": _accelerators(),
    }


def _shareable_value(value: str) -> str:
    """An environment value with every absolute path in it made shareable (``--xla_dump_to=/home/a/x`` ->
    ``--xla_dump_to=.../x``)."""
    words = []
    for word in value.split(" "):
        key, eq, rest = word.partition("=")
        if eq and rest.startswith(("/", "~")):
            word = f"{key}={shareable_path(rest)}"
        elif word.startswith(("/", "~")):
            word = shareable_path(word)
        words.append(word)
    return " ".join(words)


def environment(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The variables of ``env`` (default ``os.environ``) that change what XLA and JAX do, sorted by name; the
    paths in their values made shareable (:func:`shareable_path`)."""
    env = os.environ if env is None else env
    return {k: _shareable_value(env[k]) for k in sorted(env) if k in ENV_NAMES or k.startswith(ENV_PREFIXES)}


def call_arguments(fn: Callable[..., Any], kwargs: Mapping[str, Any]) -> dict[str, Any] | None:
    """The keyword arguments ``fn`` is called with, every default filled in (``None`` when ``fn`` has no
    inspectable signature or does not accept ``kwargs``)."""
    try:
        bound = inspect.signature(fn).bind_partial(**dict(kwargs))
    except (TypeError, ValueError):
        return None
    bound.apply_defaults()
    return dict(bound.arguments)


def _group_defaults(exp: Any, num_outputs: int) -> dict[str, Any]:
    from jtricks import data as jdata
    from jtricks import models as jmodels
    from jtricks.engine import experiment as jexp

    out: dict[str, Any] = {}
    if isinstance(exp.model, str) or (callable(exp.model) and not isinstance(exp.model, jmodels.Model)):
        factory = jmodels.factory(exp.model) if isinstance(exp.model, str) else exp.model
        kwargs = dict(exp.model_kwargs)
        if "num_classes" in inspect.signature(factory).parameters:
            kwargs.setdefault("num_classes", num_outputs)
        out["model_kwargs"] = call_arguments(factory, kwargs)
    if isinstance(exp.dataset, str):
        out["dataset_kwargs"] = call_arguments(jdata.loader(exp.dataset), exp.dataset_kwargs)
    return jexp.to_json(out)


def manifest_entries(groups: Sequence[Any], configs: Sequence[Any], num_outputs: Sequence[int]) -> dict[str, Any]:
    """The provenance keys of a manifest (module docstring).

    Args:
      groups: the plan's groups (:class:`jtricks.runner.Group`: ``arms`` and ``experiment``).
      configs: each group's :class:`jtricks.train.TrainConfig`.
      num_outputs: each group's output width (class count).
    """
    from jtricks.engine import experiment as jexp
    from jtricks.engine import train as jtrain

    per_arm: dict[str, Any] = {}
    per_group: list[dict[str, Any]] = []
    for g, config, n_out in zip(groups, configs, num_outputs):
        for arm in g.arms:
            per_arm[arm.name] = jexp.to_json(jtrain.validate_hparams(config, dict(arm.hparams)))
        per_group.append({"arms": [a.name for a in g.arms], **_group_defaults(g.experiment, n_out)})
    return {
        "code": git_state(),
        "command": command(),
        "machine": machine(),
        "environment": environment(),
        "resolved": {"hparams": per_arm, "groups": per_group},
    }
