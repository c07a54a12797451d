"""The guide's experiments, one file per claim (``jtricks list``); installed with the package as
``jtricks.experiments``, so ``jtricks run NAME`` finds them from any folder."""
