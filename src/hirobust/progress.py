"""Labels for progress bars: which stage of how many a bar belongs to (and its model), with an overall ETA.

A job of several stages (the demo's pretraining, fine-tunes and evaluations; the study's cells) wraps each in
``Stages.stage(name)``; every bar opened meanwhile is labelled ``[k/N name] <what the bar counts>`` and each stage
starts with a log line giving the elapsed time and an estimate of the time left (the mean time of the finished
stages times the stages left; an estimate, said as one).
"""

from __future__ import annotations

import contextlib
import logging
import time

_prefix = [""]


def label(desc: str) -> str:
    """``desc`` under the current stage's label (what a bar passes to tqdm)."""
    return f"{_prefix[0]} {desc}".strip()


def active() -> bool:
    """Whether a stage is running (an inner job then keeps its label instead of numbering its own stages)."""
    return bool(_prefix[0])


def _clock(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Stages:
    """``total`` stages, run one after another; ``done`` of them already finished before (a resumed job);
    ``parallel`` processes share them (the estimate of the time left is divided among them)."""

    def __init__(self, total: int, done: int = 0, log: logging.Logger | None = None, parallel: int = 1):
        self.total, self.k, self.log = total, done, log or logging.getLogger("hirobust")
        self.parallel = max(1, parallel)
        self.t0, self.times = time.perf_counter(), []

    def eta(self) -> str:
        if not self.times:
            return "unknown until a stage finishes"
        return "~" + _clock(sum(self.times) / len(self.times) * (self.total - self.k + 1) / self.parallel)

    @contextlib.contextmanager
    def stage(self, name: str, done: int | None = None):
        """One stage; ``done``: how many are finished now, or under way in other processes that share the stages."""
        self.k = (self.k if done is None else done) + 1
        before, _prefix[0] = _prefix[0], f"[{self.k}/{self.total} {name}]"
        self.log.info("stage %d/%d: %s (elapsed %s, left %s)", self.k, self.total, name,
                      _clock(time.perf_counter() - self.t0), self.eta())
        t = time.perf_counter()
        try:
            yield
        finally:
            self.times.append(time.perf_counter() - t)
            _prefix[0] = before

    def skip(self) -> None:
        """A stage with nothing to do (already finished): counted, not timed."""
        self.k += 1
