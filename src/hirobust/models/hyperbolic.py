"""Hyperbolic embeddings and the Poincaré zero-shot head (docs/method.md §3).

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
from .heads import SUPERCLASS_READOUTS, Head, TextSpec, membership, superclass_logits
from .zeroshot import ZeroShotClassifier, apply_text_projection, encode_prompts, text_projection_of

TEXT_DEPTHS = ("fitted", "level")  # a node text's depth: its fitted norm α_T‖W_T T‖, or its level's radius


def clip_tangent(v: torch.Tensor, r: float) -> torch.Tensor:
    """Scale rows of ``v`` [..., D] down to norm ``r`` where longer."""
    n = v.norm(dim=-1, keepdim=True).clamp_min(P.MIN_NORM)
    return v * (r / n).clamp(max=1.0)


class HyperbolicEmbedding(nn.Module):
    """The learnable map from Euclidean CLIP features into the Poincaré ball, shared by every head.

    ``projection`` is the CLIP model's own W_T (the same Parameter, so training it trains the model's).
    """

    def __init__(self, projection, curvature: float = 1.0, clip_r: float = 3.0, alpha_img: float = 1.0,
                 alpha_txt: float = 1.0, tau: float = 0.07, tau_range: tuple[float, float] = (0.01, 1.0),
                 text_depth: str = "fitted", num_levels: int = 1, superclass_readout: str = "direct"):
        super().__init__()
        P.check_curvature(curvature)
        if text_depth not in TEXT_DEPTHS:
            raise ConfigError(f"text_depth={text_depth!r} is not one of {TEXT_DEPTHS}")
        self.text_depth = text_depth
        if superclass_readout not in SUPERCLASS_READOUTS:
            raise ConfigError(f"superclass_readout={superclass_readout!r} is not one of {SUPERCLASS_READOUTS}")
        self.superclass_readout = superclass_readout
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
        # text_depth = "level": every level-l node's tangent text has the same norm r_l = exp(log_level_radius[l])
        # (its direction is W_T·T's), so depth is a property of the level, never of a class's fitted norm
        self.log_level_radius = nn.Parameter(torch.zeros(num_levels)) if text_depth == "level" else None
        # modality centring (HiRo's `center`): each modality's mean, a class-independent offset fixed at
        # initialisation, is removed before the map into the ball (image features; pooled text before W_T)
        self.register_buffer("img_center", None)
        self.register_buffer("txt_center", None)

    def set_centers(self, img: torch.Tensor | None, txt: torch.Tensor | None) -> None:
        """Fix the image-feature mean [D] and the pooled-text mean [width] removed before the ball (None: none)."""
        self.img_center = None if img is None else img.detach().float().clone()
        self.txt_center = None if txt is None else txt.detach().float().clone()

    @property
    def tau(self) -> torch.Tensor:
        return self.log_tau.exp()

    def project_text(self, pooled: torch.Tensor, projection=None) -> torch.Tensor:
        """W_T (or another ``projection``) applied to cached pooled text outputs, [N, width] -> [N, D]."""
        if projection is None:
            projection = self.proj_module if self.proj_module is not None else self.proj
        return apply_text_projection(projection, pooled)

    def text_tangent(self, pooled: torch.Tensor, levels: torch.Tensor | None = None, projection=None) -> torch.Tensor:
        """w = α_T W_T T, [N, width] -> [N, D] (before clipping; HiRo's δ_T is added here). With
        ``text_depth="level"``: w = r_l · W_T T / ‖W_T T‖, r_l the radius of each row's level (``levels`` [N]).
        ``projection`` replaces W_T (e.g. the pretrained one, for the diagnosis)."""
        if self.txt_center is not None:
            pooled = pooled.float() - self.txt_center
        u = self.project_text(pooled.to(self.log_alpha_txt.dtype), projection).float()
        if self.log_level_radius is None:
            return self.log_alpha_txt.exp() * u
        if levels is None:
            raise ValueError("text_depth='level' needs each text's level")
        r = self.log_level_radius.exp()[levels.clamp(max=self.log_level_radius.numel() - 1)]
        return r.unsqueeze(-1) * u / u.norm(dim=-1, keepdim=True).clamp_min(P.MIN_NORM)

    def to_ball(self, tangent: torch.Tensor) -> torch.Tensor:
        """clip -> exp₀ -> project, [..., D] -> [..., D] in the ball (float32)."""
        return P.project(P.expmap0(clip_tangent(tangent.float(), self.clip_r), self.c), self.c)

    def image(self, features: torch.Tensor) -> torch.Tensor:
        """φ = proj(exp₀(clip(α_I f))), [B, D] -> [B, D]."""
        f = features.float() if self.img_center is None else features.float() - self.img_center
        return self.to_ball(self.log_alpha_img.exp() * f)

    def text(self, pooled: torch.Tensor, levels: torch.Tensor | None = None) -> torch.Tensor:
        """ψ = proj(exp₀(clip(α_T W_T T))), [N, width] -> [N, D] (``levels`` [N]: see :meth:`text_tangent`)."""
        return self.to_ball(self.text_tangent(pooled, levels))

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

    def __init__(self, pooled: Sequence[torch.Tensor], hyp: HyperbolicEmbedding, tree=None):
        super().__init__()
        self.sizes = [p.shape[0] for p in pooled]
        if hyp.superclass_readout != "direct" and tree is None:
            raise ConfigError(f"superclass_readout={hyp.superclass_readout!r} needs the head's tree")
        self.members = [membership(tree, lvl) for lvl in range(len(self.sizes))] if tree is not None else []
        self.register_buffer("pooled", torch.cat(list(pooled)).float())
        self.register_buffer("levels", torch.cat([torch.full((n,), lvl, dtype=torch.long)
                                                  for lvl, n in enumerate(self.sizes)]), persistent=False)
        self.hyp = hyp
        self._cache: tuple | None = None

    def node_embeddings(self) -> torch.Tensor:
        """ψ of every node of every level, [ΣC_l, D]."""
        if self.training:
            return self.hyp.text(self.pooled, self.levels)
        key = tuple(p._version for p in self.hyp.parameters()) + (self.pooled.device,)
        if self._cache is None or self._cache[0] != key:
            with torch.no_grad():
                self._cache = (key, self.hyp.text(self.pooled, self.levels))
        return self._cache[1]

    def forward(self, image_features: torch.Tensor) -> list[torch.Tensor]:
        phi = self.hyp.image(image_features)
        levels = list(self.hyp.logits(phi, self.node_embeddings()).split(self.sizes, dim=-1))
        if self.hyp.superclass_readout != "direct":  # superclasses read through the tree from the leaves
            levels[1:] = [superclass_logits(z, levels[0], self.members[lvl].to(z.device), self.hyp.superclass_readout)
                          for lvl, z in enumerate(levels[1:], start=1)]
        return levels

    def head_state(self) -> dict:
        tensors = {k: getattr(self.hyp, k).detach() for k in self.TENSORS}
        for k in ("log_level_radius", "img_center", "txt_center"):
            if getattr(self.hyp, k) is not None:
                tensors[k] = getattr(self.hyp, k).detach()
        return {"head": self.kind, "curvature": self.hyp.c, "clip_r": self.hyp.clip_r,
                "text_depth": self.hyp.text_depth, "superclass_readout": self.hyp.superclass_readout,
                "tensors": tensors}

    @classmethod
    def build_classifier(cls, clip, forest, text: TextSpec, state: dict, tensors: dict[str, torch.Tensor],
                         where: str = "the run directory") -> ZeroShotClassifier:
        """A trained HiRo classifier: Poincaré heads for every tree, W_T from ``clip``, α and τ from ``tensors``."""
        depth = state.get("text_depth", "fitted")
        if depth not in TEXT_DEPTHS:
            raise ConfigError(f"{where!r}: head.text_depth={depth!r} is not one of {TEXT_DEPTHS}; the run directory "
                             f"is damaged, fine-tune again")
        names = cls.TENSORS + (("log_level_radius",) if depth == "level" else ())
        if depth == "level" and "log_level_radius" not in tensors:
            raise ConfigError("HiRo head file lacks 'log_level_radius'; the run directory is incomplete, fine-tune "
                              "again")
        readout = state.get("superclass_readout", "direct")
        if readout not in SUPERCLASS_READOUTS:
            raise ConfigError(f"{where!r}: head.superclass_readout={readout!r} is not one of {SUPERCLASS_READOUTS}; "
                              f"the run directory is damaged, fine-tune again")
        hyp = HyperbolicEmbedding(text_projection_of(clip.model), state.get("curvature", 1.0), state.get("clip_r", 3.0),
                                  text_depth=depth, superclass_readout=readout,
                                  num_levels=int(tensors["log_level_radius"].numel())
                                  if depth == "level" else 1)
        with torch.no_grad():
            for k in names:
                if k not in tensors:
                    raise ConfigError(f"HiRo head file lacks {k!r}; the run directory is incomplete, fine-tune again")
                getattr(hyp, k).copy_(tensors[k])
        hyp.set_centers(tensors.get("img_center"), tensors.get("txt_center"))
        hyp.to(next(clip.model.parameters()).device)
        return poincare_classifier(clip.model.visual, clip.mean, clip.std, clip.image_size,
                                   pooled_text(clip, forest, text), hyp, text, forest)


def pooled_text(clip: LoadedCLIP, forest: Forest, text: TextSpec) -> dict[str, list[torch.Tensor]]:
    """{tree: [pooled pre-projection text features [C_l, width] per level]} (computed once)."""
    return {tree.name: [encode_prompts(clip, text.names(tree.nodes(lvl)), text.templates, pre_projection=True)
                        for lvl in range(tree.num_levels)] for tree in forest}


def poincare_classifier(visual: nn.Module, mean, std, image_size: int, pooled: dict[str, list[torch.Tensor]],
                        hyp: HyperbolicEmbedding, text: TextSpec | None = None, forest=None) -> ZeroShotClassifier:
    """A classifier with one Poincaré head per tree of ``pooled`` (``pooled_text``), all sharing ``hyp``
    (``forest``: the trees, for a superclass readout through the tree)."""
    trees = {t.name: t for t in forest} if forest is not None else {}
    heads = {name: PoincareHead(levels, hyp, trees.get(name)) for name, levels in pooled.items()}
    return ZeroShotClassifier(visual, mean, std, heads, image_size, text)

