"""FARE (Schlarmann et al., ICML 2024): unsupervised adversarial fine-tuning of the image encoder.

Loss = mean_b ‖f_θ(x_adv) − f_orig(x)‖²₂ over unnormalised embeddings (summed over dimensions, no labels);
x_adv maximises the same loss by L∞ PGD with sign steps and momentum 0.9 (ε = 4/255, α = 1/255, 10 steps in the
reference). f_orig(x) comes from the frozen starting model without autograd, computed once per training
sample when the data pipeline is deterministic.

The reference attack keeps a momentum of *signs* and takes its sign again (``v ← sign(0.9·v + sign(g))``),
which for L∞ equals plain sign steps; ``momentum_mode: sign`` reproduces it, ``l1`` is MI-FGSM's
``m ← μ·m + g/‖g‖₁``.
"""

from __future__ import annotations

import torch

from ..attacks import ThreatModel
from ..errors import ConfigError
from .base import Method, StepPasses
from .configs import FAREConfig


class FARE(Method):
    name = "fare"
    Config = FAREConfig
    needs_reference = True
    needs_labels = False

    def __init__(self, model, forest, cfg: FAREConfig, reference=None, clip=None):
        super().__init__(model)
        if reference is None:
            raise ConfigError("method 'fare' needs the frozen reference model")
        self.cfg = cfg
        self.reference_model = reference
        self.threat = ThreatModel(cfg.eps, cfg.steps, cfg.alpha, momentum=cfg.momentum,
                                  momentum_mode=cfg.momentum_mode)

    def reference_outputs(self) -> dict:
        return {"f_orig": self._target} if self.cfg.cache_reference else {}

    def passes(self, cached: bool = False) -> StepPasses:
        return StepPasses(self.cfg.steps, 1, 0 if cached and self.cfg.cache_reference else 1)  # f_orig(x)

    def _target(self, x: torch.Tensor, y=None) -> torch.Tensor:
        return self.reference_model.image_features(x)

    @staticmethod
    def distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Squared L2 per sample, [B, D] x [B, D] -> [B]."""
        return (a.float() - b.float()).pow(2).sum(dim=-1)

    def forward(self, x, y=None, generator=None, index=None) -> dict:
        target = self.reference("f_orig", self._target, x, y, index)
        x_adv = self.threat.attack(lambda xa: self.distance(self.model.image_features(xa), target), x, generator)
        loss = self.distance(self.model.image_features(x_adv), target).mean()
        return {"loss": loss}
