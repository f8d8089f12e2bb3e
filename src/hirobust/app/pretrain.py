"""Contrastive pretraining of the embedded benchmark's small CLIP, with captions naming nodes of every level.

Each training image gets a caption "<template> <concept>", where the concept is the image's class or one of
its ancestors in any tree. Many images in a batch share a concept, so the contrastive loss is the
multi-positive (UniCL-style) form: in both directions (image->text, text->image) the target is uniform over
every pair whose caption's concept lies above (or is) the image's class. Only the batch's distinct captions
are encoded. Superclass prompts then work zero-shot, as they do for OpenAI CLIP.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn.functional as F

from ..data import ZSDataset, dataset_forest, get_dataset
from ..hierarchy import Forest
from ..hierarchy.wordnet import cache_dir
from ..io import write_json
from ..methods.base import Trainable
from ..models.clip import LoadedCLIP, load_clip
from ..train import Trainer
from .schema import PretrainConfig, TrainConfig


class ContrastivePretrain(Trainable):
    """Multi-positive image-text contrastive loss over the concepts of a forest (trains the whole CLIP)."""

    name = "pretrain"

    def __init__(self, clip: LoadedCLIP, forest: Forest, templates: list[str], leaf_caption_prob: float = 0.5,
                 augment: bool = True):
        super().__init__()
        self.clip = clip
        self.model = clip.model
        self.image_size = clip.image_size
        self.augment = augment
        self.leaf_prob = leaf_caption_prob
        leaves = forest.leaves
        concepts: dict[str, torch.Tensor] = {}
        for tree in forest:
            for lvl in range(tree.num_levels):
                anc = tree.ancestor_index(lvl)
                for j, node in enumerate(tree.nodes(lvl)):
                    concepts[node] = concepts.get(node, torch.zeros(len(leaves), dtype=torch.bool)) | (anc == j)
        self.concepts = list(concepts)
        member = torch.stack([concepts[c] for c in self.concepts])  # [K, n_leaves]
        self.register_buffer("member", member, persistent=False)
        self.register_buffer("leaf_concept", torch.tensor([self.concepts.index(name) for name in leaves]),
                             persistent=False)
        self.n_templates = len(templates)
        captions = [t.format(c) for c in self.concepts for t in templates]
        self.register_buffer("tokens", clip.tokenizer(captions), persistent=False)  # [K * T, ctx]
        mean = torch.tensor(clip.mean).view(1, -1, 1, 1)
        std = torch.tensor(clip.std).view(1, -1, 1, 1)
        self.register_buffer("pix_mean", mean, persistent=False)
        self.register_buffer("pix_std", std, persistent=False)

    def trainable_parameters(self):
        return ((n, p) for n, p in self.model.named_parameters() if p.requires_grad)

    def trainable_state(self):
        return ((n, p.detach()) for n, p in self.trainable_parameters())

    def load_trainable_state(self, state):
        self.model.load_state_dict(state, strict=False)

    def after_step(self):
        with torch.no_grad():
            self.model.logit_scale.clamp_(0, math.log(100))

    def _augment(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        b = x.shape[0]
        shift = (torch.randint(-2, 3, (b, 2), generator=g, device=x.device).float() * 2 / x.shape[-1])
        flip = torch.rand(b, generator=g, device=x.device) < 0.5
        theta = torch.zeros(b, 2, 3, device=x.device)
        theta[:, 0, 0] = torch.where(flip, -1.0, 1.0)
        theta[:, 1, 1] = 1.0
        theta[:, :, 2] = shift
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False)

    def forward(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator, index=None) -> dict:
        if self.augment:
            x = self._augment(x, generator)
        b = x.shape[0]
        # caption concept: the class itself with prob leaf_prob, else a uniformly chosen strict ancestor concept
        not_self = torch.arange(len(self.concepts), device=x.device) != self.leaf_concept[y][:, None]
        anc = self.member[:, y].t() & not_self
        rnd = torch.rand(b, len(self.concepts), generator=generator, device=x.device) * anc
        pick_anc = rnd.argmax(1)
        use_leaf = (torch.rand(b, generator=generator, device=x.device) < self.leaf_prob) | (anc.sum(1) == 0)
        concept = torch.where(use_leaf, self.leaf_concept[y], pick_anc)
        template = torch.randint(self.n_templates, (b,), generator=generator, device=x.device)
        caption = concept * self.n_templates + template
        uniq, _ = torch.unique(caption, return_inverse=True)
        img = F.normalize(self.model.encode_image((x - self.pix_mean) / self.pix_std), dim=-1)
        txt = F.normalize(self.model.encode_text(self.tokens[uniq]), dim=-1)
        logits = self.model.logit_scale.exp() * img @ txt.t()  # [B, U]
        target = self.member[uniq // self.n_templates][:, y].t().float()  # [B, U] caption concept covers image class
        i2t = -(target / target.sum(1, keepdim=True) * logits.log_softmax(1)).sum(1).mean()
        t2i = -(target / target.sum(0, keepdim=True) * logits.log_softmax(0)).sum(0).mean()
        return {"loss": (i2t + t2i) / 2, "i2t": i2t, "t2i": t2i, "scale": self.model.logit_scale.exp()}


def pretrained_path(cfg: PretrainConfig) -> Path:
    return cache_dir() / "models" / f"{cfg.model}-{cfg.dataset}-{cfg.key()}.safetensors"


@torch.no_grad()
def zero_shot_accuracy(clip: LoadedCLIP, data: ZSDataset, forest: Forest, batch_size: int = 1000) -> dict:
    """{tree: {level: accuracy}} of the cosine zero-shot classifier on ``data``."""
    from ..models.zeroshot import build_cosine_classifier

    clf = build_cosine_classifier(clip, forest, data.templates, prompt_names=data.prompt_names).eval()
    device = next(clf.parameters()).device
    out = {}
    for tree in forest:
        correct = torch.zeros(tree.num_levels)
        for x, y in data.batches(batch_size, image_size=clip.image_size):
            logits = clf(x.to(device), tree=tree.name)
            for lvl, z in enumerate(logits):
                correct[lvl] += (z.argmax(1).cpu() == tree.labels(y, lvl)).sum()
        out[tree.name] = {str(lvl): float(correct[lvl] / len(data)) for lvl in range(tree.num_levels)}
    return out


def pretrain(cfg: PretrainConfig, device: str = "cpu", progress: bool = True, force: bool = False) -> tuple[Path, dict]:
    """Train (or reuse from the cache) the embedded CLIP; returns (checkpoint path, metrics)."""
    path = pretrained_path(cfg)
    meta_path = path.with_suffix(".json")
    if path.exists() and meta_path.exists() and not force:
        _publish_embedded(cfg, path)
        return path, json.loads(meta_path.read_text())
    torch.manual_seed(cfg.seed)
    clip = load_clip(cfg.model, None, device=device, seed=None)  # from the generator seeded just above
    train = get_dataset(cfg.dataset, cfg.train_split, root=cfg.data_root)
    test = get_dataset(cfg.dataset, "test", root=cfg.data_root)
    forest = dataset_forest(train)
    captions = forest
    if cfg.caption_trees is not None:  # captions name only these trees' nodes (the others stay unknown names)
        from ..hierarchy import Forest

        captions = Forest([forest[t] for t in cfg.caption_trees])
    task = ContrastivePretrain(clip, captions, train.templates, cfg.leaf_caption_prob, cfg.augment)
    tcfg = TrainConfig(epochs=cfg.epochs, batch_size=cfg.batch_size, optimizer="adamw", lr=cfg.lr,
                       weight_decay=cfg.weight_decay, warmup_steps=cfg.warmup_steps, betas=(0.9, 0.98), seed=cfg.seed)
    run_dir = cache_dir() / "models" / f"pretrain-{cfg.key()}"
    t0 = time.perf_counter()
    summary = Trainer(tcfg, device).fit(task, train, run_dir, progress=progress, describe=asdict(cfg))
    clip.model.eval()
    acc = zero_shot_accuracy(clip, test, forest)
    from ..models.clip import export_open_clip

    export_open_clip(clip.model, cfg.model, run_dir / "export")
    path.parent.mkdir(parents=True, exist_ok=True)
    (run_dir / "export" / "open_clip_model.safetensors").replace(path)
    meta = {"config": asdict(cfg), "zero_shot_accuracy": acc, "zero_shot_n": len(test),
            "seconds": time.perf_counter() - t0,
            "train_images_per_second": summary["images_per_second"], "final_loss": summary["history"][-1]}
    write_json(meta, meta_path)
    _publish_embedded(cfg, path)
    return path, meta


def _publish_embedded(cfg: PretrainConfig, path: Path) -> None:
    """The default pretraining of an architecture is its "embedded" weights: kept under the name the library's
    ``load_clip(name, "embedded")`` reads (:func:`hirobust.models.clip.embedded_path`)."""
    from ..io import copy_file
    from ..models.clip import embedded_path

    if cfg.key() == PretrainConfig(model=cfg.model).key():
        dest = embedded_path(cfg.model)
        if not dest.exists() or dest.stat().st_size != path.stat().st_size:
            copy_file(path, dest)
