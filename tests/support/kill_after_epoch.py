"""Run the command line, killed (SIGKILL, no cleanup) right after the checkpoint of epoch N is written: a power cut
at a known point, to test ``--resume``.

    python tests/support/kill_after_epoch.py N run EXPERIMENT --out DIR ...
"""

from __future__ import annotations

import os
import signal
import sys

from jtricks.cli import main
from jtricks.engine import checkpoint


def _killing_save(save):
    def save_then_die(folder, step, *args, **kwargs):
        out = save(folder, step, *args, **kwargs)
        if step == int(sys.argv[1]):
            os.kill(os.getpid(), signal.SIGKILL)
        return out

    return save_then_die


if __name__ == "__main__":
    checkpoint.save = _killing_save(checkpoint.save)
    sys.exit(main(sys.argv[2:]))
