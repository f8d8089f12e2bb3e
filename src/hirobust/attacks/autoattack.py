"""AutoAttack (Croce & Hein, 2020) through the authors' package ``pyautoattack``, on one level's logits.

``reduced`` (the default): APGD-CE + APGD-T (9 target classes, or C − 1 when fewer), one restart each, as the
robust-CLIP literature reports it; APGD-CE alone when the level has fewer than 4 classes (APGD-T's targeted DLR
loss needs 4). ``standard``: the authors' standard version (APGD-CE, APGD-T, FAB-T, Square), as RobustBench runs it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch
from torch import nn

from ..errors import ConfigError, MissingPackage


class _LevelLogits(nn.Module):
    """An ``nn.Module`` view of ``fn``: pixels in [0, 1] -> one level's logits (what AutoAttack expects)."""

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor], owner: nn.Module | None):
        super().__init__()
        self.fn = fn
        self.owner = owner  # registered so AutoAttack's checks see the real model's mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x).float()


def check_available() -> None:
    """Refuse, before any work, a run that will need AutoAttack where pyautoattack is not installed."""
    import importlib.util

    if importlib.util.find_spec("pyautoattack") is None:
        raise MissingPackage("eval.attacks asks for autoattack, which needs the package pyautoattack (a dependency "
                             "of hirobust, missing here): pip install pyautoattack, or drop autoattack from "
                             "eval.attacks")


def autoattack(
    logits_fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    norm: str = "linf",
    seed: int = 0,
    batch_size: int = 250,
    owner: nn.Module | None = None,
    n_iter: int = 100,
    version: str = "reduced",
) -> torch.Tensor:
    """Adversarial examples [B, ...] for labels ``y`` under ``logits_fn`` (which returns [B, C]). ``version``:
    ``reduced`` (APGD-CE + APGD-T, one restart, ``n_iter`` iterations) or ``standard`` (the authors' standard
    version: APGD-CE, APGD-T, FAB-T, Square, with their own settings)."""
    try:
        from pyautoattack import AutoAttack
    except ImportError as e:  # an optional dependency
        raise MissingPackage("AutoAttack needs the package pyautoattack (a dependency of hirobust): pip install "
                             "pyautoattack") from e
    if norm not in ("linf", "l2"):
        raise ConfigError(f"AutoAttack norm must be linf or l2, got {norm!r}")
    model = _LevelLogits(logits_fn, owner).eval()
    with torch.no_grad():
        n_classes = int(logits_fn(x[:1]).shape[-1])
    if version == "standard":
        aa = AutoAttack(model, eps=eps, norm="Linf" if norm == "linf" else "L2", version="standard", seed=seed,
                        device=x.device)
        aa.apgd_targeted.n_target_classes = aa.fab.n_target_classes = min(9, n_classes - 1)
        if n_classes < 4:  # the targeted DLR loss needs 4 classes: untargeted FAB instead of the targeted attacks
            aa.attacks_to_run = ["apgd-ce", "fab", "square"]
        aa.verbose = False
        aa.logger.setLevel(logging.WARNING)
        out = aa.run_standard_evaluation(x, y, batch_size=batch_size)
        return (out[0] if isinstance(out, tuple) else out).detach()
    if version != "reduced":
        raise ConfigError(f"AutoAttack version must be 'reduced' or 'standard', got {version!r}")
    attacks = ["apgd-ce", "apgd-t"] if n_classes >= 4 else ["apgd-ce"]
    aa = AutoAttack(model, attacks=attacks, eps=eps, norm="Linf" if norm == "linf" else "L2", version="custom",
                    seed=seed, device=x.device)
    aa.verbose = False
    aa.logger.setLevel(logging.WARNING)
    aa.apgd.n_restarts = 1
    aa.apgd.n_iter = n_iter
    aa.apgd_targeted.n_restarts = 1
    aa.apgd_targeted.n_iter = n_iter
    aa.apgd_targeted.n_target_classes = min(9, n_classes - 1)
    out = aa.run_standard_evaluation(x, y, batch_size=batch_size)
    x_adv = out[0] if isinstance(out, tuple) else out
    return x_adv.detach()
