"""Hyperbolic embeddings and the Poincaré zero-shot head (METHOD.md §3).

v = α_I·f(x), w = α_T·W_T·T(prompt); tangent norms are clipped at ``clip_r`` ("clipped hyperbolic"
networks), then φ = proj(exp₀(v)), ψ = proj(exp₀(w)). Logits at a level: −d_c(φ, ψ_k)/τ. T(prompt) is the
frozen text transformer's pooled output, cached once per node (template-averaged); only W_T, α and τ are
applied per step.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from ..errors import ConfigError
from ..geometry import poincare as P
from ..hierarchy import Forest
from .clip import LoadedCLIP
from .heads import Head, TextSpec
from .zeroshot import ZeroShotClassifier, apply_text_projection, encode_prompts, text_projection_of


def clip_tangent(v: torch.Tensor, r: float) -> torch.Tensor:
    """Scale rows of ``v`` [..., D] down to norm ``r`` where longer."""
    n = v.norm(dim=-1, keepdim=True).clamp_min(P.MIN_NORM)
    return v * (r / n).clamp(max=1.0)


class HyperbolicEmbedding(nn.Module):
    """The learnable map from Euclidean CLIP features into the Poincaré ball, shared by every head.

    ``projection`` is the CLIP model's own W_T (the same Parameter, so training it trains the model's).
    """

    def __init__(self, projection, curvature: float = 1.0, clip_r: float = 3.0, alpha_img: float = 1.0,
                 alpha_txt: float = 1.0, tau: float = 0.07, tau_range: tuple[float, float] = (0.01, 1.0)):
        super().__init__()
        P.check_curvature(curvature)
        self.c = float(curvature)
        self.clip_r = float(clip_r)
        self.tau_range = tau_range
        if isinstance(projection, nn.Module):
            self.proj_module = projection
            self.proj = None
        else:
            self.proj_module = None
            self.proj = projection  # nn.Parameter [width, D], registered here too
        self.log_alpha_img = nn.Parameter(torch.tensor(math.log(alpha_img)))
        self.log_alpha_txt = nn.Parameter(torch.tensor(math.log(alpha_txt)))
        self.log_tau = nn.Parameter(torch.tensor(math.log(tau)))

    @property
    def tau(self) -> torch.Tensor:
        return self.log_tau.exp()

    def project_text(self, pooled: torch.Tensor) -> torch.Tensor:
        """W_T applied to cached pooled text outputs, [N, width] -> [N, D]."""
        return apply_text_projection(self.proj_module if self.proj_module is not None else self.proj, pooled)

    def text_tangent(self, pooled: torch.Tensor) -> torch.Tensor:
        """w = α_T W_T T, [N, width] -> [N, D] (before clipping; HiRo's δ_T is added here)."""
        return self.log_alpha_txt.exp() * self.project_text(pooled.to(self.log_alpha_txt.dtype)).float()

    def to_ball(self, tangent: torch.Tensor) -> torch.Tensor:
        """clip -> exp₀ -> project, [..., D] -> [..., D] in the ball (float32)."""
        return P.project(P.expmap0(clip_tangent(tangent.float(), self.clip_r), self.c), self.c)

    def image(self, features: torch.Tensor) -> torch.Tensor:
        """φ = proj(exp₀(clip(α_I f))), [B, D] -> [B, D]."""
        return self.to_ball(self.log_alpha_img.exp() * features.float())

    def text(self, pooled: torch.Tensor) -> torch.Tensor:
        """ψ = proj(exp₀(clip(α_T W_T T))), [N, width] -> [N, D]."""
        return self.to_ball(self.text_tangent(pooled))

    def logits(self, phi: torch.Tensor, psi: torch.Tensor) -> torch.Tensor:
        """−d_c(φ, ψ)/τ, [B, D] x [C, D] -> [B, C]."""
        return -P.pairwise_dist(phi, psi, self.c) / self.tau

    def clamp_(self) -> None:
        with torch.no_grad():
            lo, hi = self.tau_range
            self.log_tau.clamp_(math.log(lo), math.log(hi))


class PoincareHead(Head):
    """The Poincaré zero-shot head at every level of one tree: logits −d_c(φ(x), ψ_k)/τ.

    In eval mode the node embeddings ψ are computed once and reused until a parameter they depend on changes.
    """

    kind = "poincare"
    TENSORS = ("log_alpha_img", "log_alpha_txt", "log_tau")  # the HyperbolicEmbedding scalars a run saves

    def __init__(self, pooled: Sequence[torch.Tensor], hyp: HyperbolicEmbedding):
        super().__init__()
        self.sizes = [p.shape[0] for p in pooled]
        self.register_buffer("pooled", torch.cat(list(pooled)).float())
        self.hyp = hyp
        self._cache: tuple | None = None

    def node_embeddings(self) -> torch.Tensor:
        """ψ of every node of every level, [ΣC_l, D]."""
        if self.training:
            return self.hyp.text(self.pooled)
        key = tuple(p._version for p in self.hyp.parameters()) + (self.pooled.device,)
        if self._cache is None or self._cache[0] != key:
            with torch.no_grad():
                self._cache = (key, self.hyp.text(self.pooled))
        return self._cache[1]

    def forward(self, image_features: torch.Tensor) -> list[torch.Tensor]:
        phi = self.hyp.image(image_features)
        return list(self.hyp.logits(phi, self.node_embeddings()).split(self.sizes, dim=-1))

    def head_state(self) -> dict:
        return {"head": self.kind, "curvature": self.hyp.c, "clip_r": self.hyp.clip_r,
                "tensors": {k: getattr(self.hyp, k).detach() for k in self.TENSORS}}

    @classmethod
    def build_classifier(cls, clip, forest, text: TextSpec, state: dict, tensors: dict[str, torch.Tensor],
                         where: str = "the run directory") -> ZeroShotClassifier:
        """A trained HiRo classifier: Poincaré heads for every tree, W_T from ``clip``, α and τ from ``tensors``."""
        hyp = HyperbolicEmbedding(text_projection_of(clip.model), state.get("curvature", 1.0), state.get("clip_r", 3.0))
        with torch.no_grad():
            for k in cls.TENSORS:
                if k not in tensors:
                    raise ConfigError(f"HiRo head file lacks {k!r}; the run directory is incomplete, fine-tune again")
                getattr(hyp, k).copy_(tensors[k])
        hyp.to(next(clip.model.parameters()).device)
        return poincare_classifier(clip.model.visual, clip.mean, clip.std, clip.image_size,
                                   pooled_text(clip, forest, text), hyp, text)


def pooled_text(clip: LoadedCLIP, forest: Forest, text: TextSpec) -> dict[str, list[torch.Tensor]]:
    """{tree: [pooled pre-projection text features [C_l, width] per level]} (computed once)."""
    return {tree.name: [encode_prompts(clip, text.names(tree.nodes(lvl)), text.templates, pre_projection=True)
                        for lvl in range(tree.num_levels)] for tree in forest}


def poincare_classifier(visual: nn.Module, mean, std, image_size: int, pooled: dict[str, list[torch.Tensor]],
                        hyp: HyperbolicEmbedding, text: TextSpec | None = None) -> ZeroShotClassifier:
    """A classifier with one Poincaré head per tree of ``pooled`` (``pooled_text``), all sharing ``hyp``."""
    heads = {name: PoincareHead(levels, hyp) for name, levels in pooled.items()}
    return ZeroShotClassifier(visual, mean, std, heads, image_size, text)

