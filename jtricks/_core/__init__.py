"""The core every layer builds on: reductions and elementary functions whose rounding no population size or CPU can
change (:mod:`~jtricks._core.numerics`), argument checks (:mod:`~jtricks._core.checks`) and named key streams
(:mod:`~jtricks._core.keys`). Public as ``jtricks.numerics``, ``jtricks.checks``, ``jtricks.keys``."""

__all__: list[str] = []
