"""Zero-shot classifiers over a hierarchy: pixels in [0, 1] in, logits at every level out.

Text features of every node prompt are computed once, when the classifier is built, and stored as
buffers; nothing re-encodes text during training or attacks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..hierarchy import Forest, Hierarchy
from .clip import LoadedCLIP
from .heads import Head, TextSpec


def _text_module(model: nn.Module) -> nn.Module:
    return getattr(model, "text", model)  # CustomTextCLIP keeps its tower in .text, CLIP inlines it


@torch.no_grad()
def encode_prompts(
    clip: LoadedCLIP, names: Sequence[str], templates: Sequence[str], pre_projection: bool = False, batch: int = 512
) -> torch.Tensor:
    """Template-averaged text features, [len(names), D].

    ``pre_projection=False``: CLIP's zero-shot weights, mean over templates of L2-normalised projected features,
    normalised again. ``pre_projection=True``: mean over templates of the text transformer's pooled output
    *before* the projection W_T (unnormalised, [len(names), width]); since W_T is linear, applying it to this mean
    equals the mean of the projected features, so a trainable W_T can be applied per step at no text cost.

    Both come from one pass of the text tower and are kept (:mod:`.text_cache`): asking for the other form, or
    the same prompts again with the same weights, encodes nothing.
    """
    if not templates:
        raise ConfigError("no prompt templates given")
    check_templates(templates)
    from .text_cache import cached_text

    prompts = [t.format(n) for n in names for t in templates]
    projected, pooled = cached_text(clip.model, clip.tokenizer, prompts, len(names),
                                    lambda tick: _encode(clip, prompts, len(names), len(templates), batch, tick))
    return pooled if pre_projection else projected


def _encode(clip: LoadedCLIP, prompts: list[str], n_names: int, n_templates: int, batch: int,
            tick) -> tuple[torch.Tensor, torch.Tensor]:
    """(projected zero-shot weights [n_names, D], pre-projection means [n_names, width]) in one text pass."""
    model = clip.model
    device = next(model.parameters()).device
    tm = _text_module(model)
    proj = tm.text_projection
    normed, pooled = [], []
    was_training = model.training
    model.eval()
    try:
        tm.text_projection = None  # the pooled output; W_T applied here, so both forms come from one pass
        for i in range(0, len(prompts), batch):
            tokens = clip.tokenizer(prompts[i : i + batch]).to(device)
            p = model.encode_text(tokens).float()
            pooled.append(p)
            normed.append(F.normalize(apply_text_projection(proj, p.to(_dtype(proj, p))).float(), dim=-1))
            tick(min(i + batch, len(prompts)))
    finally:
        tm.text_projection = proj
        model.train(was_training)
    mean = lambda xs: torch.cat(xs).view(n_names, n_templates, -1).mean(1)  # noqa: E731
    return F.normalize(mean(normed), dim=-1), mean(pooled)


def _dtype(proj, like: torch.Tensor) -> torch.dtype:
    if proj is None:
        return like.dtype
    w = proj if isinstance(proj, torch.Tensor) else next(proj.parameters(), None)
    return like.dtype if w is None else w.dtype


def text_projection_of(model: nn.Module):
    """The CLIP model's W_T: a Parameter [width, D] (CLIP), a Linear (custom text towers) or None."""
    return _text_module(model).text_projection


def apply_text_projection(proj, pooled: torch.Tensor) -> torch.Tensor:
    """W_T (``text_projection_of(model)``: a Parameter, a module, or None for none) applied to pooled
    text-transformer outputs, [..., width] -> [..., D]."""
    if proj is None:
        return pooled
    return proj(pooled) if isinstance(proj, nn.Module) else pooled @ proj


def visual_tokens(visual: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One pass of an open_clip ViT returning (pooled embedding [B, D], all tokens [B, 1 + T, D]).

    The tokens are taken after ``ln_post`` and projected by ``proj`` like the CLS embedding (as TGA-ZSR's
    reference model returns them). Other towers raise ``ValueError``.
    """
    visual = getattr(visual, "_orig_mod", visual)  # a compiled tower: toggle and run the module itself
    if not hasattr(visual, "output_tokens") or getattr(visual, "attn_pool", None) is not None \
            or getattr(visual, "pool_type", "tok") != "tok" or getattr(visual, "final_ln_after_pool", False):
        raise ConfigError("patch tokens are only available for open_clip ViT image towers with CLS-token pooling")
    prev = visual.output_tokens
    visual.output_tokens = True
    try:
        pooled, tokens = visual(x)
    finally:
        visual.output_tokens = prev
    if visual.proj is not None:
        tokens = tokens @ visual.proj
    return pooled, torch.cat([pooled[:, None], tokens], dim=1)


class CosineHead(Head):
    """CLIP's zero-shot head at every level of one tree: logits = scale * cos(image, node text)."""

    kind = "cosine"

    def __init__(self, text_features: Sequence[torch.Tensor], logit_scale: float):
        super().__init__()
        self.sizes = [t.shape[0] for t in text_features]
        self.register_buffer("text", F.normalize(torch.cat(list(text_features)).float(), dim=-1))
        self.register_buffer("logit_scale", torch.tensor(float(logit_scale)))

    def forward(self, image_features: torch.Tensor) -> list[torch.Tensor]:
        """[B, D] -> one [B, C_l] tensor per level (a single matmul for all levels)."""
        f = F.normalize(image_features.float(), dim=-1)
        return list((self.logit_scale * f @ self.text.t()).split(self.sizes, dim=-1))

    def node_embeddings(self) -> torch.Tensor:
        return self.text

    def head_state(self) -> dict:
        return {"head": self.kind, "logit_scale": float(self.logit_scale)}

    @classmethod
    def build_classifier(cls, clip, forest, text: TextSpec, state: dict, tensors: dict[str, torch.Tensor],
                         where: str = "the run directory") -> ZeroShotClassifier:
        scale = state.get("logit_scale")
        if scale is not None and (not isinstance(scale, (int, float)) or not math.isfinite(scale) or scale <= 0):
            raise ConfigError(f"{where!r}: head.logit_scale={scale!r} is not a positive finite number; the run "
                             f"directory is damaged, fine-tune again")
        return build_cosine_classifier(clip, forest, text.templates, logit_scale=scale, prompt_names=text.prompt_names)


class ZeroShotClassifier(nn.Module):
    """An image tower with its pixel normalisation inside and one text head per tree.

    ``forward(x)`` takes images in [0, 1], [B, 3, H, W], and returns the default tree's logits, one [B, C_l]
    tensor per level l (level 0 = leaves). ``forward(x, tree=name)`` picks another tree. ``text_spec`` is the text
    the heads' node embeddings were made from (None when not known): methods that build other heads start from it.
    """

    def __init__(self, visual: nn.Module, mean, std, heads: dict[str, Head], image_size: int,
                 text_spec: TextSpec | None = None):
        super().__init__()
        self.text_spec = text_spec
        if not heads:
            raise ConfigError("a zero-shot classifier needs at least one head")
        self.visual = visual
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))
        self.heads = nn.ModuleDict(heads)
        self.default_tree = next(iter(heads))
        self.image_size = image_size

    def image_features(self, x: torch.Tensor) -> torch.Tensor:
        """Unnormalised image embeddings [B, D] of pixels in [0, 1]."""
        return self.visual((x - self.mean) / self.std)

    def image_features_and_tokens(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(embeddings [B, D], every token after ln_post and the projection [B, 1 + T, D], CLS first)."""
        return visual_tokens(self.visual, (x - self.mean) / self.std)

    def forward(self, x: torch.Tensor, tree: str | None = None) -> list[torch.Tensor]:
        return self.heads[tree or self.default_tree](self.image_features(x))

    def head(self, tree: str | None = None) -> Head:
        return self.heads[tree or self.default_tree]


def check_templates(templates: Sequence[str]) -> None:
    """Every prompt template holds exactly one ``{}`` (the class name) and no other field."""
    import string

    for t in templates:
        try:
            fields = [f for _, f, _, _ in string.Formatter().parse(t) if f is not None]
        except ValueError as e:
            raise ConfigError(f"prompt template {t!r} is malformed ({e}); write the class name as {{}}") from None
        if fields != [""]:
            raise ConfigError(f"prompt template {t!r} must hold exactly one {{}} for the class name (and no other "
                             f"field); write literal braces as {{{{ }}}}")


def build_cosine_classifier(
    clip: LoadedCLIP,
    trees: Hierarchy | Forest,
    templates: Sequence[str],
    logit_scale: float | None = None,
    prompt_names: dict[str, str] | None = None,
) -> ZeroShotClassifier:
    """CLIP's zero-shot classifier at every level of every tree (text features computed here, once).

    ``logit_scale`` defaults to the model's own (100 for OpenAI CLIP). ``prompt_names`` maps node names to the
    text put in the templates where they differ.
    """
    forest = trees if isinstance(trees, Forest) else Forest([trees])
    text = TextSpec(templates, prompt_names or {})
    scale = float(clip.model.logit_scale.detach().exp().clamp(max=100)) if logit_scale is None else logit_scale
    heads = {}
    for tree in forest:
        feats = [encode_prompts(clip, text.names(tree.nodes(lvl)), text.templates) for lvl in range(tree.num_levels)]
        heads[tree.name] = CosineHead(feats, scale)
    return ZeroShotClassifier(clip.model.visual, clip.mean, clip.std, heads, clip.image_size, text)
