"""Test-only: a ``run_cell`` whose worker process dies on the cells of one made-up method.

Executors in the tests are handed this module's ``run_cell``. A task or pool job pickles it
by reference, so every worker that unpickles it (a freshly restarted one included) imports
this module; spawned workers find it because they inherit the test process's ``sys.path``.
Monkeypatching the method registry in the test process would not reach them: they import
``methods`` afresh. The worker is SIGKILLed, as the kernel's out-of-memory killer would do,
before the cell loads any data.
"""

from __future__ import annotations

import os
import signal

#: Cells of this method kill the process that runs them; any other cell runs as usual.
DIES = "dies-mid-run"


def run_cell(cell, *args, **kwargs):
    """``bench.grid.runner.run_cell``, except that a ``DIES`` cell kills its worker process."""
    if cell.method == DIES:
        os.kill(os.getpid(), signal.SIGKILL)
    from bench.grid.runner import run_cell as real_run_cell

    return real_run_cell(cell, *args, **kwargs)
