"""Hierarchical metrics of predictions at every level (docs/method.md §5)."""

from __future__ import annotations

import torch

from .hierarchy import Hierarchy
from .stats import accuracy


def hierarchical_metrics(pred: torch.Tensor, truth: torch.Tensor, hier: Hierarchy) -> dict:
    """``pred``, ``truth``: [N, levels] node indices (level 0 = leaf).

    - mistake_severity: mean tree distance (levels climbed until the ancestors meet) between a wrong leaf
      prediction and the true leaf; NaN when no leaf prediction is wrong;
    - consistency[l]: fraction of images whose leaf prediction's level-l ancestor equals the direct level-l
      prediction ("mean" over levels l ≥ 1);
    - full_path_accuracy: fraction of images right at every level.
    """
    L = hier.num_levels
    wrong = pred[:, 0] != truth[:, 0]
    dist = hier.tree_distance(0)
    severity = float(dist[pred[wrong, 0], truth[wrong, 0]].mean()) if wrong.any() else float("nan")
    consistency, consistency_ci = {}, {}
    for lvl in range(1, L):
        anc = hier.ancestor_index(lvl)[pred[:, 0]]
        acc = accuracy(anc == pred[:, lvl])
        consistency[str(lvl)], consistency_ci[str(lvl)] = acc["value"], acc["ci95"]
    if consistency:
        consistency["mean"] = sum(consistency.values()) / len(consistency)
    full = accuracy((pred == truth).all(1))
    return {"mistake_severity": severity, "consistency": consistency, "consistency_ci95": consistency_ci,
            "full_path_accuracy": full["value"], "full_path_accuracy_ci95": full["ci95"], "n": full["n"],
            "leaf_errors": int(wrong.sum())}


def chance_rates(hier: Hierarchy, y: torch.Tensor) -> dict:
    """Per level: a uniform guess's accuracy (1/nodes) and the majority node's share of ``y`` (leaf labels)."""
    out = {}
    for b in range(hier.num_levels):
        counts = torch.bincount(hier.labels(y, b), minlength=hier.num_nodes(b))
        out[str(b)] = {"uniform": 1.0 / hier.num_nodes(b), "majority": float(counts.max()) / max(1, len(y))}
    return out


def chance_flags(entry: dict, chance: dict, why: str) -> dict:
    """{level: reason} for every level (with more than one node) whose clean accuracy is not above the majority
    node's share: its interval's lower bound at or below it. Robust numbers at such a level say nothing."""
    out = {}
    for b, c in chance.items():
        lo = (entry.get("clean_ci95", {}).get(b) or [None])[0]
        if c["majority"] < 1 and lo is not None and lo <= c["majority"]:
            out[b] = (f"clean {100 * entry['clean'][b]:.1f}% (interval from {100 * lo:.1f}) is not above the majority "
                      f"node's {100 * c['majority']:.1f}%: {why}")
    return out
