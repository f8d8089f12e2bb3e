"""TeCoA (Mao et al., ICLR 2023): text-guided contrastive adversarial training.

Loss: CE(s·cos(f_θ(x_adv), t), y) against the fixed leaf text features t, where x_adv maximises the same
CE by L∞ PGD (ε = α = 1/255, 2 steps, random start in the reference code).
"""

from __future__ import annotations

import torch.nn.functional as F

from ..attacks import ThreatModel, ce
from .base import Method, StepPasses
from .configs import TeCoAConfig


class TeCoA(Method):
    name = "tecoa"
    Config = TeCoAConfig

    def __init__(self, model, forest, cfg: TeCoAConfig, reference=None, clip=None):
        super().__init__(model)
        self.cfg = cfg
        self.use_fixed_text(cfg.level, cfg.logit_scale)
        self.tree = forest[0]
        self.threat = ThreatModel(cfg.eps, cfg.steps, cfg.alpha, random_start=cfg.random_start)

    def passes(self, cached: bool = False) -> StepPasses:
        return StepPasses(self.cfg.steps, 1, 0)

    def forward(self, x, y, generator=None, index=None) -> dict:
        y = self.tree.labels(y, self.cfg.level)
        x_adv = self.threat.attack(lambda xa: ce(self.logits(xa), y), x, generator)
        loss = F.cross_entropy(self.logits(x_adv), y)
        return {"loss": loss}
