"""Attack objectives: per-sample losses of logits that an attack maximises.

They see only logits and labels, never the model, method or geometry that produced them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import ConfigError


def ce(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Untargeted cross-entropy, [B, C] x [B] -> [B]."""
    return F.cross_entropy(logits.float(), y, reduction="none")


def targeted_ce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Targeted: maximising this minimises the cross-entropy of ``target``, [B]."""
    return -F.cross_entropy(logits.float(), target, reduction="none")


def cw_margin(logits: torch.Tensor, y: torch.Tensor, kappa: float = float("inf")) -> torch.Tensor:
    """Carlini-Wagner margin ``max_{j≠y} z_j − z_y`` (clamped above at ``kappa``), [B]."""
    z = logits.float()
    true = z.gather(1, y[:, None]).squeeze(1)
    other = z.masked_fill(F.one_hot(y, z.shape[1]).bool(), float("-inf")).amax(1)
    return (other - true).clamp(max=kappa)


OBJECTIVES = {"ce": ce, "cw": cw_margin, "targeted_ce": targeted_ce}


def level_objective(model, level: int, y_level: torch.Tensor, objective: str = "ce", tree: str | None = None):
    """Closure ``x -> per-sample objective`` of the level-``level`` logits of ``model(x, tree)``.

    ``y_level`` holds the level-``level`` labels (the target labels for ``targeted_ce``).
    """
    if objective not in OBJECTIVES:
        raise ConfigError(f"unknown attack objective {objective!r}; use one of {sorted(OBJECTIVES)}")
    fn = OBJECTIVES[objective]

    def loss_fn(x: torch.Tensor) -> torch.Tensor:
        logits = model(x, tree=tree) if tree is not None else model(x)
        return fn(logits[level], y_level)

    return loss_fn
