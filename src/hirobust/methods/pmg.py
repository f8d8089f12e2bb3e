"""PMG-AFT (Wang et al., CVPR 2024): pre-trained model guided adversarial fine-tuning.

Loss = CE(z_θ(x_adv), y) + KL(P_θ(x) ‖ P_θ(x_adv)) + KL(P_orig(x_adv) ‖ P_θ(x_adv)), weights 1, where z are
zero-shot logits against the fixed leaf text, P = softmax(z), θ the model being trained and "orig" the frozen
starting model; x_adv maximises the CE by TeCoA's PGD.

As the official code computes it: the logits are **raw cosines** (``logit_scale = 1``: it normalises both
features and drops CLIP's ×100), each KL is **summed over the batch** (``nn.KLDivLoss(reduction="sum")``), and
gradients flow through the clean branch. ``logit_scale: null`` (the model's own, 100 for OpenAI CLIP) with
``kl_reduction: batchmean`` is the paper's formula with per-sample means. The published numbers come from the
official settings (the defaults here).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..attacks import ThreatModel, ce
from .base import Method, StepPasses
from .configs import PMGConfig


class PMG(Method):
    name = "pmg"
    Config = PMGConfig
    needs_reference = True

    def __init__(self, model, forest, cfg: PMGConfig, reference=None, clip=None):
        super().__init__(model)
        self.cfg = cfg
        self.use_fixed_text(0, cfg.logit_scale, reference, needs_reference=True)
        self.threat = ThreatModel(cfg.eps, cfg.steps, cfg.alpha)

    def passes(self, cached: bool = False) -> StepPasses:
        return StepPasses(self.cfg.steps, 2, 1)  # adv + clean in one 2B pass; the frozen model on x_adv

    def forward(self, x, y, generator=None, index=None) -> dict:
        c = self.cfg
        x_adv = self.threat.attack(lambda xa: ce(self.logits(xa), y), x, generator)
        both = self.text_logits(self.model.image_features(torch.cat([x_adv, x])))  # one pass for adv and clean
        z_adv, z_clean = both.split(x.shape[0])
        with torch.no_grad():
            z_orig = self.text_logits(self.reference_model.image_features(x_adv))
        log_p_adv = F.log_softmax(z_adv, dim=-1)
        loss_ce = F.cross_entropy(z_adv, y)
        kl_clean = F.kl_div(log_p_adv, F.softmax(z_clean, dim=-1), reduction=c.kl_reduction)
        kl_orig = F.kl_div(log_p_adv, F.softmax(z_orig, dim=-1), reduction=c.kl_reduction)
        loss = loss_ce + c.w_clean * kl_clean + c.w_orig * kl_orig
        return {"loss": loss, "ce": loss_ce.detach(), "kl_clean": kl_clean.detach(), "kl_orig": kl_orig.detach()}
