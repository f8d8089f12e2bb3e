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
