"""A job stopped from outside stops cleanly: Ctrl-C (SIGINT) and SIGTERM (a cluster's time limit or preemption:
SLURM sends SIGTERM, then SIGKILL after its ``KillWait``; ``kill``; ``torchrun`` passing a signal on to its ranks).

SIGTERM is turned into :class:`Terminated`, a ``KeyboardInterrupt``, so every cleanup written for Ctrl-C runs for it
too: the half-written checkpoint (``checkpoint.tmp``) is removed and the last complete one kept, the run
directory's lock is released, local study workers are stopped and the stopped session is recorded. Finished work
(checkpoints, evaluation cells, study cells) is kept for ``--resume``. A second SIGTERM during that cleanup is
ignored, so the cleanup is not itself cut short.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterator

log = logging.getLogger("hirobust")


class Terminated(KeyboardInterrupt):
    """The process received SIGTERM."""


_received: list[int] = []


def terminated() -> bool:
    """Whether this process received SIGTERM while :func:`sigterm_stops` was active."""
    return bool(_received)


def _on_sigterm(signum, frame) -> None:
    if _received:  # the first one is being handled: let its cleanup finish
        return
    _received.append(signum)
    raise Terminated(f"signal {signal.Signals(signum).name}")


@contextlib.contextmanager
def sigterm_stops() -> Iterator[None]:
    """While the block runs (in the main thread), SIGTERM raises :class:`Terminated`; the previous handler is
    restored afterwards. Elsewhere (another thread cannot install handlers) the block runs unchanged."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _received.clear()
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
