"""``python -m jtricks``: see :mod:`jtricks.cli`."""

import sys

from jtricks.cli import main

sys.exit(main())
