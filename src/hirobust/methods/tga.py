"""TGA-ZSR (Yu et al., NeurIPS 2024): text-guided attention for zero-shot robustness.

Loss = CE(s·cos(f_θ(x_adv), t), y) + α‖A_θ(x_adv) − A_orig(x)‖₂ + β‖A_θ(x) − A_orig(x)‖₂ (α = 0.08, β = 0.05;
unsquared L2 per sample, mean over the batch), with TeCoA's attack. The text-guided attention map A, as the
reference code computes it: every token of the ViT after ``ln_post`` and the projection, [B, 1 + T, D],
L2-normalised **along the token axis** (per channel, CLS included), the patch tokens' dot products with the
ground-truth class text, min-max normalised per image, laid out on the patch grid and bilinearly upsampled to
the image size. Here one forward pass per image gives both the logits and the map (the reference encodes the
adversarial image twice), and A_orig(x) is computed once per training sample when the data is deterministic.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..attacks import ThreatModel, ce
from ..errors import ConfigError
from .base import Method, StepPasses
from .configs import TGAConfig


def attention_lowres(tokens: torch.Tensor, text_y: torch.Tensor) -> torch.Tensor:
    """Text-guided attention on the patch grid: tokens [B, 1 + T, D], class text [B, D] -> [B, 1, g, g]."""
    f = F.normalize(tokens.float(), dim=1)  # along the token axis, as the reference code
    a = (f[:, 1:] * text_y[:, None].float()).sum(-1)  # [B, T]
    lo, hi = a.amin(1, keepdim=True), a.amax(1, keepdim=True)
    a = (a - lo) / (hi - lo).clamp_min(1e-12)
    g = math.isqrt(a.shape[1])
    if g * g != a.shape[1]:
        raise ConfigError(f"{a.shape[1]} patch tokens do not form a square grid")
    return a.view(-1, 1, g, g)


def upsample(a: torch.Tensor, size: int) -> torch.Tensor:
    """[B, 1, g, g] -> [B, size²] (bilinear, align_corners=False, as the reference)."""
    return F.interpolate(a, size=(size, size), mode="bilinear", align_corners=False).flatten(1)


class TGA(Method):
    name = "tga"
    Config = TGAConfig
    needs_reference = True

    def __init__(self, model, forest, cfg: TGAConfig, reference=None, clip=None):
        super().__init__(model)
        self.cfg = cfg
        self.use_fixed_text(0, cfg.logit_scale, reference, needs_reference=True)
        self.threat = ThreatModel(cfg.eps, cfg.steps, cfg.alpha)

    def _orig_map(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        _, tokens = self.reference_model.model.image_features_and_tokens(x)
        return attention_lowres(tokens, self.text[y])

    def reference_outputs(self) -> dict:
        return {"a_orig": self._orig_map} if self.cfg.cache_reference else {}

    def passes(self, cached: bool = False) -> StepPasses:  # adv + clean in one 2B pass; A_orig(x) unless cached
        return StepPasses(self.cfg.steps, 2, 0 if cached and self.cfg.cache_reference else 1)

    def forward(self, x, y, generator=None, index=None) -> dict:
        c = self.cfg
        x_adv = self.threat.attack(lambda xa: ce(self.logits(xa), y), x, generator)
        feats, tokens = self.model.image_features_and_tokens(torch.cat([x_adv, x]))  # one pass per image
        b = x.shape[0]
        z_adv = self.text_logits(feats[:b])
        maps = attention_lowres(tokens, self.text[y].repeat(2, 1))
        a_adv, a_clean = upsample(maps[:b], x.shape[-1]), upsample(maps[b:], x.shape[-1])
        a_orig = upsample(self.reference("a_orig", self._orig_map, x, y, index), x.shape[-1])
        loss_ce = F.cross_entropy(z_adv, y)
        l_adv = (a_adv - a_orig).norm(dim=1).mean()
        l_clean = (a_clean - a_orig).norm(dim=1).mean()
        loss = loss_ce + c.attn_adv_weight * l_adv + c.attn_clean_weight * l_clean
        return {"loss": loss, "ce": loss_ce.detach(), "attn_adv": l_adv.detach(), "attn_clean": l_clean.detach()}
