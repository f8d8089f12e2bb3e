"""The synthetic control against its knob: per synthetic part, the measured visual coherence of its superclasses
(docs/synthetic.md), the baseline's premise and each run's paired difference to the baseline; and, over the knob
parts of one shared pretrained model, the slope of HiRo's gain against the coherence (the pre-registered test of
"the gain grows as the superclasses stop being visual")."""

from __future__ import annotations

import numpy as np

from ..stats import slope_bootstrap
from .study_numbers import N_BOOT, _rob, _vd


def _coherence(part: dict, level: int = 1) -> float:
    from ..data import get_dataset
    from ..data.synthetic import visual_coherence

    ds = get_dataset(part["dataset"], "test")
    return visual_coherence(ds, level, tree=part["tree"] if part["dataset"] == "synthetic-knob" else None)


def knob_rows(study: dict, cfg) -> list[dict]:
    """One row per synthetic part: coherence at L1, the baseline's robust L1 and premise, each run − baseline."""
    rows = []
    for pname, part in study["parts"].items():
        if not part["dataset"].startswith(("synthetic-mix", "synthetic-knob")):
            continue
        rows.append({"part": pname, "dataset": part["dataset"], "tree": part["tree"],
                     "coherence_L1": _coherence(part, 1),
                     "baseline_robust_L1": part["table"].get(cfg.baseline, {}).get("robust", {}).get("1"),
                     "premise_a_L1": part.get("premise", {}).get("a", {}).get("1"),
                     "paired_L1": {r: p["robust"].get("1") for r, p in part.get("paired", {}).items()}})
    return rows


def knob_slopes(study: dict, loaded: dict, cfg) -> dict:
    """Over the ``synthetic-knob`` parts whose trees the pretraining named (the arbitrary tree is its own arm): the
    slope of (run − baseline) same-level robust accuracy against the level's visual coherence, per superclass level
    and run, seed-matched and paired per image, bootstrapped over each part's seeds and images. Keys: level ->
    run -> the slope entry (with its verdict against 0)."""
    wanted = [p for p, pc in cfg.parts.items() if pc.get("dataset") == "synthetic-knob"
              and "arbitrary" not in str(pc.get("tree"))]
    parts = [p for p in wanted if p in study["parts"] and cfg.baseline in loaded.get(p, {}).get("runs", {})
             and all(len(loaded[p]["runs"].get(r, [])) >= int((cfg.parts[p].get("seeds") or {}).get(r, 1))
                     for r in cfg.parts[p].get("runs", []) if r != "clip")]
    if len(parts) < 3 or parts != wanted:  # the pre-registered test reads every knob value, never a partial sweep
        return {}
    out: dict = {}
    levels = len(study["parts"][parts[0]]["levels"])
    runs = sorted({r for p in parts for r in loaded[p]["runs"]} - {cfg.baseline, "clip"})
    for b in range(1, levels - 1):  # the superclass levels below the (one-node) root
        for run in runs:
            xs, groups = [], []
            for p in parts:
                A, B = loaded[p]["runs"].get(run), loaded[p]["runs"][cfg.baseline]
                if not A:
                    break
                k = min(len(A), len(B))
                xs.append(_coherence(study["parts"][p], b))
                groups.append(np.stack([_rob(a, b, b).astype(np.int8) - _rob(c, b, b).astype(np.int8)
                                        for a, c in zip(A[:k], B[:k])]))
            else:
                d = _vd(slope_bootstrap(xs, groups, n_boot=N_BOOT))
                d["parts"] = parts
                out.setdefault(run, {})[str(b)] = d
    return out
