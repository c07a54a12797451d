"""The engine: an :class:`~jtricks.engine.experiment.Experiment` becomes one compiled population program per static
configuration, trained and written as a results folder (``plan -> build -> execute -> write``, :mod:`jtricks.engine.runner`)."""
