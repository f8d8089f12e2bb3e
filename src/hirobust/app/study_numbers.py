"""The evidence study's per-image numbers and verdict helpers, shared by its analysis (study_report) and the knob's
slope (study_knob)."""

from __future__ import annotations

import numpy as np

from ..records import correct, subset_of
from ..stats import decide, verdict

N_BOOT = 10_000  # bootstrap replicates of every interval (each verdict also reports its Monte Carlo error)


def _arr(t) -> np.ndarray:
    return t.numpy() if hasattr(t, "numpy") else np.asarray(t)


def _rob(entry: dict, a, b, attack: str = "pgd") -> np.ndarray:
    return _arr(correct(entry, attack, a, b))


def _right(entry: dict, b) -> np.ndarray:
    return _arr(correct(entry, "clean", 0, b))


def _clean_full(entry: dict, b) -> np.ndarray:
    return _arr(subset_of(entry, "clean")[1][str(b)])


def _vd(d: dict) -> dict:
    """A difference with its verdicts: ``verdict`` (the 95% interval against 0, rule v1) and ``decision`` (the
    same with the Monte Carlo error of the deciding bound: "borderline" within 2 of them; rules v2)."""
    d = dict(d)
    d["value"] = d.get("value", d.get("diff"))
    d["verdict"] = verdict(d["ci95"])
    d.update(decide(d))
    return d
