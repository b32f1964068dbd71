"""What every tracegrade worker process does: leave when the process it works for is gone."""

from __future__ import annotations

import os
import threading
import time

_POLL_S = 0.5


def exit_with(parent: int) -> None:
    """Exit this worker process soon after process ``parent`` ends, even by ``kill -9``.

    A killed parent cannot stop its workers, and they would otherwise wait forever on a queue
    they also hold open (and, for fork-server workers, keep the fork server alive too). An open
    transaction of the worker's rolls back.
    """
    threading.Thread(target=_watch, args=(parent,), name="tracegrade-parent-watch",
                     daemon=True).start()


def _watch(parent: int) -> None:
    while _alive(parent):
        time.sleep(_POLL_S)
    os._exit(1)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # the pid was reused by another user's process
        return False
    return True
