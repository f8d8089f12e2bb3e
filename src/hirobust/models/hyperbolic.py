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

from ..geometry import poincare as P
from ..hierarchy import Forest
from .clip import LoadedCLIP
from .zeroshot import ZeroShotClassifier, _text_module, encode_prompts


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
        if self.proj_module is not None:
            return self.proj_module(pooled)
        return pooled @ self.proj if self.proj is not None else pooled

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


class PoincareHead(nn.Module):
    """The Poincaré zero-shot head at every level of one tree: logits −d_c(φ(x), ψ_k)/τ.

    In eval mode the node embeddings ψ are computed once and reused until a parameter they depend on changes.
    """

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

    def level_text(self, level: int) -> torch.Tensor:
        start = sum(self.sizes[:level])
        return self.node_embeddings()[start : start + self.sizes[level]]


def text_projection_of(model: nn.Module):
    """The CLIP model's W_T: a Parameter [width, D] (CLIP) or a Linear (custom text towers)."""
    return _text_module(model).text_projection


def pooled_text(clip: LoadedCLIP, forest: Forest, templates: Sequence[str], prompt_names: dict | None = None):
    """{tree: [pooled pre-projection text features [C_l, width] per level]} (computed once)."""
    names = prompt_names or {}
    return {tree.name: [encode_prompts(clip, [names.get(n, n) for n in tree.nodes(lvl)], templates,
                                       pre_projection=True) for lvl in range(tree.num_levels)] for tree in forest}


def build_poincare_classifier(clip: LoadedCLIP, forest: Forest, templates: Sequence[str], meta: dict,
                              extras: dict[str, torch.Tensor], prompt_names: dict | None = None) -> ZeroShotClassifier:
    """A trained HiRo classifier: Poincaré heads for every tree, W_T from ``clip``, α and τ from ``extras``."""
    hyp = HyperbolicEmbedding(text_projection_of(clip.model), meta.get("curvature", 1.0), meta.get("clip_r", 3.0))
    with torch.no_grad():
        for k in ("log_alpha_img", "log_alpha_txt", "log_tau"):
            if k not in extras:
                raise ValueError(f"HiRo head file lacks {k!r}; the run directory is incomplete, fine-tune again")
            getattr(hyp, k).copy_(extras[k])
    hyp.to(next(clip.model.parameters()).device)
    pooled = pooled_text(clip, forest, templates, prompt_names)
    heads = {name: PoincareHead(levels, hyp) for name, levels in pooled.items()}
    return ZeroShotClassifier(clip.model.visual, clip.mean, clip.std, heads, clip.image_size)
