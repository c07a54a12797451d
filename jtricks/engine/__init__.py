"""The engine: an :class:`Experiment` becomes one compiled population program per static configuration, trained
and written as a results folder. The life of one run, a module per step:

    validate  (engine.validation) every setting checked; the arms expanded (engine.grid)
    plan      (engine.plan)       arms grouped by static configuration, members cut into chunks
    build     (engine.build)      per group: data (engine.prepare), configuration, the device mesh (engine.mesh:
                                  members x data), programs (engine.programs)
    execute   (engine.execute)    the epoch loop: engine.train's steps in population programs, checkpoints
    write     (engine.write)      metrics.csv, members.csv, summaries, plots, manifest.json (jtricks.results)

:func:`jtricks.engine.runner.run` runs the four steps. This package's face is the experiment API, public also
as ``jtricks.experiment``: ``from jtricks.experiment import Experiment``.
"""

from __future__ import annotations

import importlib
from typing import Any

#: Public name -> the engine module that holds it.
NAMES: dict[str, str] = {
    **{
        n: "jtricks.engine.experiment"
        for n in (
            "Experiment",
            "Arm",
            "SETTINGS",
            "NUMERIC_HPARAMS",
            "STATIC_FIELDS",
            "REPORT_ONLY",
            "DATA_PLACEMENTS",
            "fingerprint_fields",
            "setting",
            "sections",
            "to_json",
        )
    },
    **{
        n: "jtricks.engine.grid"
        for n in ("expand", "arm_name", "apply_overrides", "static_signature", "data_key", "traced_hparams")
    },
    **{n: "jtricks.engine.settings" for n in ("parse_set", "with_settings")},
    **{n: "jtricks.engine.catalog" for n in ("experiments_dirs", "find_experiments", "load_experiment")},
    **{n: "jtricks.engine.configure" for n in ("build_model", "build_config", "summary_metrics", "produced_metrics")},
    "validate": "jtricks.engine.validation",
}

__all__ = sorted(NAMES)


def __getattr__(name: str) -> Any:
    if name in NAMES:
        return getattr(importlib.import_module(NAMES[name]), name)
    raise AttributeError(f"module 'jtricks.engine' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
