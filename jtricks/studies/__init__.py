"""What wraps runs of the engine: tune-then-ablate (:mod:`~jtricks.studies.tuning`), seeds added until resolved
(:mod:`~jtricks.studies.sequential`), one grid over several processes (:mod:`~jtricks.studies.distributed`) and the
rerun of a results folder (:mod:`~jtricks.studies.reproduce`). :func:`run` is the entry point for any experiment.
"""

from __future__ import annotations

from typing import Any

__all__ = ["run"]


def run(exp: Any, *, out_dir: Any = None, options: Any = None, **option_changes: Any) -> Any:
    """Run ``exp``: tuned then compared when it has ``tune`` (:func:`jtricks.studies.tuning.run`), else one run of
    the engine (:func:`jtricks.engine.runner.run`); ``options`` / keywords as there. Also ``jtricks.run``."""
    if exp.tune is not None and (options is None or options.part is None) and option_changes.get("part") is None:
        from jtricks.studies import tuning as jtuning

        return jtuning.run(exp, out_dir=out_dir, options=options, **option_changes)
    from jtricks.engine import runner as jrunner

    return jrunner.run(exp, out_dir=out_dir, options=options, **option_changes)
