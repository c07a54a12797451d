"""Results: what a run leaves behind and what is read from it.

* :mod:`~jtricks.results.tables` -- the CSV tables (``metrics.csv``, ``members.csv``, ``summary.csv``);
* :mod:`~jtricks.results.folders` -- results folders: one writer at a time, the manifest written last, the
  completeness check, publishing;
* :mod:`~jtricks.results.fingerprint` -- run fingerprints and their differences;
* :mod:`~jtricks.results.stats` -- statistics over seeds (intervals, paired tests, adjustments, power);
* :mod:`~jtricks.results.sequential_bounds` -- exact group-sequential boundaries of alpha-spending functions;
* :mod:`~jtricks.results.budget` -- expected validation performance of n tuning configurations;
* :mod:`~jtricks.results.bootstrap` -- the test-set bootstrap: per-example test outcomes, seeds and examples
  resampled together (the total interval);
* :mod:`~jtricks.results.summary` -- per-arm summaries with verdicts;
* :mod:`~jtricks.results.rendering` -- tables, ``summary.md``, re-rendering a folder; :mod:`~jtricks.results.plots`;
* :mod:`~jtricks.results.tensorboard` -- TensorBoard event files;
* :mod:`~jtricks.results.read` -- a folder as pandas DataFrames (``jtricks.read``, ``jtricks.read_summary``);
* :mod:`~jtricks.results.comparison` -- two runs compared arm by arm (:func:`compare`, ``jtricks compare``).

This package's face (also ``jtricks.report``) names the functions a reader of results needs.
"""

from __future__ import annotations

import importlib
from typing import Any

#: Public name -> the results module that holds it.
NAMES: dict[str, str] = {
    **{
        n: "jtricks.results.tables"
        for n in (
            "METRICS_COLUMNS",
            "MEMBERS_COLUMNS",
            "SUMMARY_COLUMNS",
            "write_metrics_csv",
            "read_metrics_csv",
            "write_members_csv",
            "read_members_csv",
            "result_file",
            "open_text",
        )
    },
    **{
        n: "jtricks.results.summary"
        for n in ("DEFAULT_METRICS", "TARGET_METRIC", "metric_direction", "summarize", "edge_optima")
    },
    **{
        n: "jtricks.results.rendering"
        for n in ("format_summary_table", "write_summary", "append_sections", "render", "SECTION_FILES")
    },
    "plot_curves": "jtricks.results.plots",
    **{n: "jtricks.results.comparison" for n in ("compare", "format_comparison", "comparison_report")},
}

__all__ = sorted(NAMES)


def __getattr__(name: str) -> Any:
    if name in NAMES:
        return getattr(importlib.import_module(NAMES[name]), name)
    raise AttributeError(f"module 'jtricks.results' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
