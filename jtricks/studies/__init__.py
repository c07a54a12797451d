"""What wraps runs of the engine: tune-then-ablate (:mod:`~jtricks.studies.tuning`), seeds added until resolved
(:mod:`~jtricks.studies.sequential`), one grid over several processes (:mod:`~jtricks.studies.distributed`) and the
rerun of a results folder (:mod:`~jtricks.studies.reproduce`)."""
