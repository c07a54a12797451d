"""Provenance of a run, for its manifest: the code, the command, the environment and every resolved default.

:func:`manifest_entries` gathers, besides what the runner already records (versions, device, the
configuration as written, data checksums):

* ``code`` -- the git commit of the checkout the ``jtricks`` package was imported from and whether its
  working tree had uncommitted changes (``None`` outside a git checkout or without ``git``);
* ``command`` -- ``sys.argv`` and the working directory;
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
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

__all__ = ["git_state", "command", "environment", "call_arguments", "manifest_entries", "ENV_PREFIXES"]

#: Environment variables recorded: exact names, and prefixes (``JAX_``, ``XLA_``).
ENV_NAMES: tuple[str, ...] = ("XLA_FLAGS", "CUDA_VISIBLE_DEVICES", "TF_CPP_MIN_LOG_LEVEL")
ENV_PREFIXES: tuple[str, ...] = ("JAX_", "XLA_")


def git_state(path: str | os.PathLike | None = None) -> dict[str, Any] | None:
    """``{"commit": sha, "dirty": bool}`` of the git checkout holding ``path`` (default: the ``jtricks``
    package), ``dirty`` meaning tracked files differ from the commit (``git status --porcelain
    --untracked-files=no`` is not empty); ``None`` when ``path`` is not in a git checkout or git is missing."""
    where = Path(path) if path is not None else Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "-C", str(where), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip()
        status = subprocess.run(["git", "-C", str(where), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": sha, "dirty": bool(status.strip())}


def command() -> dict[str, Any]:
    """The process's command line (``sys.argv``) and working directory."""
    return {"argv": list(sys.argv), "cwd": os.getcwd()}


def environment(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The variables of ``env`` (default ``os.environ``) that change what XLA and JAX do, sorted by name."""
    env = os.environ if env is None else env
    return {k: env[k] for k in sorted(env) if k in ENV_NAMES or k.startswith(ENV_PREFIXES)}


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
    from jtricks import experiment as jexp
    from jtricks import models as jmodels

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
    from jtricks import experiment as jexp
    from jtricks import train as jtrain

    per_arm: dict[str, Any] = {}
    per_group: list[dict[str, Any]] = []
    for g, config, n_out in zip(groups, configs, num_outputs):
        for arm in g.arms:
            per_arm[arm.name] = jexp.to_json(jtrain.validate_hparams(config, dict(arm.hparams)))
        per_group.append({"arms": [a.name for a in g.arms], **_group_defaults(g.experiment, n_out)})
    return {
        "code": git_state(),
        "command": command(),
        "environment": environment(),
        "resolved": {"hparams": per_arm, "groups": per_group},
    }
