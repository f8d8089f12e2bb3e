"""Cells of work shared by several processes, on one machine or on several that share the folder.

A :class:`Cell` is a key, the keys of the cells it needs, a test for *done* (its result file exists) and the function
that computes it. :func:`work` runs a list of cells in order: the first cell that is not done, whose needs are done
and that no other process holds is *claimed* (an exclusive ``fcntl.flock`` on ``<claims>/<key>.lock``, which the
OS releases when the process ends, kill -9 included; Linux carries ``flock`` over NFS as a POSIX lock), tested
again (another process may have finished it meanwhile) and computed. When every remaining cell is held by another
process or needs one that is, it waits and looks again. Two processes thus never compute the same cell, and a
process that dies leaves its cell to the next one that looks.

:func:`shard` takes slice ``i`` of ``n`` of the cells that can be spread (``Cell.spread``), with every cell they
need (which any slice computes when it needs it first): a SLURM array or several shells each run one slice.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError

log = logging.getLogger("hirobust.workqueue")


@dataclass
class Cell:
    key: str
    run: Callable[[], None]
    done: Callable[[], bool]
    needs: tuple[str, ...] = ()
    spread: bool = True  # False: a cell others need (pretraining, tuning), computed by whichever slice needs it first


def _lock_path(claims: Path, key: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", key)[:80]
    return Path(claims) / f"{safe}-{hashlib.sha1(key.encode()).hexdigest()[:8]}.lock"


@contextlib.contextmanager
def claimed(claims: str | Path, key: str, wait: bool = False) -> Iterator[bool]:
    """Hold ``key`` while the block runs; yields False (at once) when another process holds it, unless ``wait``."""
    import fcntl
    import os
    import socket

    path = _lock_path(Path(claims), key)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            f.seek(0)
            f.truncate()
            f.write(f"{key}\n{socket.gethostname()} pid {os.getpid()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
            f.flush()
            yield True
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` (1 <= i <= n) as ``(i, n)``; anything else is a one-line error."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if not m or not 1 <= int(m.group(1)) <= int(m.group(2)):
        raise ConfigError(f"--shard {text!r} is not i/n with 1 <= i <= n (e.g. --shard 2/4, or "
                          f"--shard $((SLURM_ARRAY_TASK_ID+1))/$SLURM_ARRAY_TASK_COUNT)")
    return int(m.group(1)), int(m.group(2))


def shard(cells: list[Cell], i: int, n: int) -> list[Cell]:
    """Slice ``i`` of ``n`` (1-based) of the spread cells, round robin in their order, with what they need."""
    by_key = {c.key: c for c in cells}
    spread = [c for c in cells if c.spread]
    keep = {c.key for j, c in enumerate(spread) if j % n == i - 1}
    todo = list(keep)
    while todo:
        for k in by_key[todo.pop()].needs:
            if k not in keep:
                keep.add(k)
                todo.append(k)
    return [c for c in cells if c.key in keep]


def work(cells: list[Cell], claims: str | Path, *, poll: float = 10.0,
         before: Callable[[Cell, int], contextlib.AbstractContextManager] | None = None,
         after: Callable[[Cell], None] | None = None) -> list[str]:
    """Compute every cell of ``cells`` that is not done, sharing them with any other process working on the same
    ``claims`` folder; returns the keys this process computed. ``before(cell, n_started)`` wraps each computation
    (a progress stage; ``n_started``: cells done or held by other processes); ``after(cell)`` follows it (a
    partial analysis). A cell that raises ends the work with its traceback (its claim is released: the next process
    to look tries it again)."""
    by_key = {c.key: c for c in cells}
    for c in cells:
        missing = [k for k in c.needs if k not in by_key]
        if missing:
            raise ValueError(f"cell {c.key!r} needs {missing}, which are not in the list")
    computed: list[str] = []
    waited_on = None
    while True:
        pending = [c for c in cells if not c.done()]
        if not pending:
            return computed
        busy = 0  # pending cells before this one that other processes hold: they count as started
        for c in pending:
            if not all(by_key[k].done() for k in c.needs):
                continue
            with claimed(claims, c.key) as held:
                if not held or c.done():
                    busy += not held
                    continue
                waited_on = None
                with before(c, len(cells) - len(pending) + busy) if before else contextlib.nullcontext():
                    c.run()
                computed.append(c.key)
            if after:
                after(c)
            break
        else:  # every pending cell is held elsewhere or needs one that is
            keys = [c.key for c in pending]
            if keys != waited_on:
                log.info("waiting for %d cell(s) other processes hold or need (%s)", len(keys),
                         ", ".join(keys[:3]) + (", ..." if len(keys) > 3 else ""))
                waited_on = keys
            time.sleep(poll)
