"""A small, seeded, synthetic hierarchical image dataset for fast tests.

Every node of a balanced tree owns a random smooth colour pattern; an image of leaf k is the sum of
the patterns of k's ancestors at every level (coarse levels weigh more), plus noise, squashed to
[0, 1]. Leaves that share a parent therefore look alike, as real subclasses do.

``synthetic-mix<m>`` (:func:`make_synthetic_mix`, docs/synthetic.md) is a control built the same way: its label
tree is the visual tree with a fraction ``m`` of the leaves shuffled, so one knob moves the superclasses from visual
clusters (``m = 0``) to random groupings of leaves (``m = 1``) while the images stay the same.
"""

from __future__ import annotations

import re

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from .base import ZSDataset

LEVEL_WORDS = ["item", "group", "family", "order", "kingdom", "domain"]
TEMPLATES = ["a photo of a {}.", "an image of the {}."]


def synthetic_paths(branching: int = 2, num_levels: int = 3) -> dict[str, list[str]]:
    """``{leaf: [parent, ..., root]}``: ``branching ** num_levels`` leaves, ``branching`` nodes at the top level."""
    n_leaves = branching ** num_levels
    paths = {}
    for i in range(n_leaves):
        path = [f"{LEVEL_WORDS[lvl]} {i // branching ** lvl}" for lvl in range(1, num_levels)]
        paths[f"{LEVEL_WORDS[0]} {i}"] = path
    return paths


def make_synthetic(
    split: str = "train", n_per_class: int = 64, branching: int = 2, num_levels: int = 3, image_size: int = 16,
    noise: float = 0.6, seed: int = 0, unlabelled: bool = False,
) -> ZSDataset:
    """Train and test splits share the patterns (``seed``) and differ in their noise."""
    paths = synthetic_paths(branching, num_levels)
    leaves = list(paths)
    g = torch.Generator().manual_seed(seed)
    n_leaves = len(leaves)  # branching ** num_levels
    coarse = image_size // 4
    patterns = []
    for lvl in range(num_levels):
        n_nodes = n_leaves // branching ** lvl
        p = torch.randn(n_nodes, 3, coarse, coarse, generator=g)
        p = F.interpolate(p, size=(image_size, image_size), mode="bilinear", align_corners=False)
        patterns.append(p * (1.0 + 0.5 * lvl))
    if split not in ("train", "val", "test"):
        raise ConfigError(f"unknown split {split!r} for synthetic; use train, val or test")
    gs = torch.Generator().manual_seed(seed * 1000 + {"train": 1, "test": 2, "val": 3}[split])
    labels = torch.arange(n_leaves).repeat_interleave(n_per_class)
    x = sum(patterns[lvl][labels // branching ** lvl] for lvl in range(num_levels))
    x = x + noise * torch.randn(x.shape, generator=gs)
    images = (torch.sigmoid(x) * 255).round().to(torch.uint8)
    return ZSDataset(
        name="synthetic", classnames=leaves, templates=list(TEMPLATES),
        hierarchy={"name": "synthetic", "num_levels": num_levels, "leaves": leaves, "paths": paths},
        images=images, labels=torch.full_like(labels, -1) if unlabelled else labels,
    )


# ---------------------------------------------------------------------------------------------------------------
# synthetic-mix: one knob from "superclasses are visual clusters" (mix = 0) to "random groupings of leaves" (mix = 1)
# ---------------------------------------------------------------------------------------------------------------

MIX_PREFIX = "synthetic-mix"
MIX_SIZES = {"train": 300, "val": 100, "test": 100}  # images per leaf class
MIX_SPLIT_SEEDS = {"train": 1, "test": 2, "val": 3}
# visual weight of a node's pattern, from the leaf (level 0) up to the root; every level weighs the same below the
# root so that leaves are as distinct from their siblings as groups are from theirs; the root is a shared background
MIX_LEVEL_WEIGHTS = (1.0, 1.0, 1.0, 0.5, 0.5, 0.5)


def mix_slots(n_leaves: int, mix: float, seed: int = 0) -> torch.Tensor:
    """long [n_leaves]: the visual slot whose label path leaf ``i`` takes (a permutation of ``range(n_leaves)``).

    ``round(mix * n_leaves)`` leaves (a seeded, nested choice: the leaves moved at a smaller ``mix`` are moved at
    every larger one) are deranged among their own slots, so each of them lands in another leaf's slot; the rest
    keep theirs. One chosen leaf alone cannot move, so a count of 1 becomes 2.
    """
    if not 0.0 <= mix <= 1.0:
        raise ConfigError(f"mix must be in [0, 1], got {mix}")
    g = torch.Generator().manual_seed(seed * 1000 + 7)
    order = torch.randperm(n_leaves, generator=g)
    k = int(mix * n_leaves + 0.5)
    k = 2 if k == 1 and n_leaves > 1 else k
    chosen = order[:k]
    slots = torch.arange(n_leaves)
    if k >= 2:
        perm = torch.randperm(k, generator=g)
        while bool((perm == torch.arange(k)).any()):  # rejection: a uniform derangement (about e tries)
            perm = torch.randperm(k, generator=g)
        slots[chosen] = chosen[perm]
    return slots


def mix_paths(slots: torch.Tensor, branching: int = 3, num_levels: int = 4) -> dict[str, list[str]]:
    """``{leaf: [parent, ..., root]}`` of the label tree: leaf ``i`` takes the visual path of slot ``slots[i]``.

    The visual tree is balanced: slot ``s``'s level-``l`` ancestor is ``s // branching ** l`` and the top level
    (``num_levels - 1``) is one root. ``slots`` is a permutation, so the label tree is balanced in the same way.
    """
    paths = {}
    for i, s in enumerate(slots.tolist()):
        paths[f"{LEVEL_WORDS[0]} {i}"] = [f"{LEVEL_WORDS[lvl]} {s // branching ** lvl}" for lvl in range(1, num_levels)]
    return paths


def visual_patterns(branching: int = 3, num_levels: int = 4, image_size: int = 28, seed: int = 0) -> torch.Tensor:
    """float [n_leaves, 3, H, W]: leaf ``v``'s clean image before squashing, the weighted sum of the smooth random
    patterns of its visual ancestors (``v`` itself, its group, ..., the root)."""
    n_leaves = branching ** (num_levels - 1)
    g = torch.Generator().manual_seed(seed)
    coarse = image_size // 4
    leaf = torch.arange(n_leaves)
    out = torch.zeros(n_leaves, 3, image_size, image_size)
    for lvl in range(num_levels):
        p = torch.randn(n_leaves // branching ** lvl, 3, coarse, coarse, generator=g)
        p = F.interpolate(p, size=(image_size, image_size), mode="bilinear", align_corners=False)
        out += MIX_LEVEL_WEIGHTS[lvl] * p[leaf // branching ** lvl]
    return out


def smooth_noise(n: int, image_size: int, g: torch.Generator) -> torch.Tensor:
    """float [n, 3, H, W]: unit-variance noise at the patterns' own (coarse) scale, bilinearly upsampled."""
    coarse = image_size // 4
    z = torch.randn(n, 3, coarse, coarse, generator=g)
    return F.interpolate(z, size=(image_size, image_size), mode="bilinear", align_corners=False)


def make_synthetic_mix(
    split: str = "train", mix: float = 0.0, n_per_class: int | None = None, branching: int = 3, num_levels: int = 4,
    image_size: int = 28, noise: float = 4.0, pixel_noise: float = 0.3, gain: float = 0.6, seed: int = 0,
) -> ZSDataset:
    """``branching ** (num_levels - 1)`` leaves whose label tree is the visual tree with a fraction ``mix`` of
    leaves shuffled (:func:`mix_slots`); images: uint8 [N, 3, H, W], labels: long [N] (leaf index).

    An image of leaf ``i`` is ``sigmoid(gain * (pattern_i + noise * smooth + pixel_noise * white))``; patterns
    (``seed``) and noise (``seed`` and ``split``) do not depend on ``mix``: only the hierarchy changes with it.
    ``n_per_class`` defaults to :data:`MIX_SIZES`.
    """
    if split not in MIX_SPLIT_SEEDS:
        raise ConfigError(f"unknown split {split!r} for {MIX_PREFIX}; use train, val or test")
    if not 2 <= num_levels <= len(LEVEL_WORDS):
        raise ConfigError(f"num_levels must be in [2, {len(LEVEL_WORDS)}], got {num_levels}")
    n_per_class = MIX_SIZES[split] if n_per_class is None else n_per_class
    n_leaves = branching ** (num_levels - 1)
    paths = mix_paths(mix_slots(n_leaves, mix, seed), branching, num_levels)
    leaves = list(paths)
    labels = torch.arange(n_leaves).repeat_interleave(n_per_class)
    gs = torch.Generator().manual_seed(seed * 1000 + MIX_SPLIT_SEEDS[split])
    x = visual_patterns(branching, num_levels, image_size, seed)[labels]
    x += noise * smooth_noise(len(labels), image_size, gs)
    x += pixel_noise * torch.randn(x.shape, generator=gs)
    images = (torch.sigmoid(gain * x) * 255).round().to(torch.uint8)
    return ZSDataset(  # the tree's name becomes a module key downstream: no "." in it, so no mix value
        name=f"{MIX_PREFIX}{mix:g}", classnames=leaves, templates=list(TEMPLATES),
        hierarchy={"name": MIX_PREFIX, "num_levels": num_levels, "leaves": leaves, "paths": paths},
        images=images, labels=labels,
    )


def parse_mix(name: str) -> float | None:
    """The ``mix`` of a dataset name ``synthetic-mix<m>`` (``m`` a decimal in [0, 1]); ``None`` for other names.

    A name with the prefix but a malformed or out-of-range ``m`` raises ``ValueError``.
    """
    if not name.startswith(MIX_PREFIX):
        return None
    text = name[len(MIX_PREFIX):]
    if not re.fullmatch(r"\d+(\.\d+)?|\.\d+", text):
        raise ConfigError(f"malformed dataset name {name!r}: use {MIX_PREFIX}<m> with m a decimal in [0, 1], "
                         f"e.g. {MIX_PREFIX}0, {MIX_PREFIX}0.5, {MIX_PREFIX}1")
    mix = float(text)
    if not 0.0 <= mix <= 1.0:
        raise ConfigError(f"dataset {name!r}: mix must be in [0, 1], got {mix:g}")
    return mix


def leaf_prototypes(ds: ZSDataset) -> torch.Tensor:
    """float [n_classes, 3 * H * W]: the mean image (in [0, 1]) of each leaf class of an in-memory dataset."""
    x = ds.images.flatten(1).float() / 255.0
    sums = torch.zeros(len(ds.classnames), x.shape[1]).index_add_(0, ds.labels, x)
    counts = torch.bincount(ds.labels, minlength=len(ds.classnames)).clamp(min=1)
    return sums / counts[:, None]


def visual_coherence(ds: ZSDataset, level: int = 1, tree: str | None = None) -> float:
    """Mean pixel distance between leaf prototypes under different level-``level`` nodes of the label tree over
    the mean distance between prototypes under the same node: > 1 when superclasses are visual clusters,
    about 1 when they are random groupings of leaves."""
    from ..hierarchy import load_forest

    forest = load_forest(ds.hierarchy, trees=[tree] if tree else None, classes=ds.classnames)
    anc = forest[0].ancestor_index(level)  # [n_leaves]
    dist = torch.cdist(leaf_prototypes(ds), leaf_prototypes(ds))  # [n, n]
    same = anc[:, None] == anc[None, :]
    within = same & ~torch.eye(len(anc), dtype=torch.bool)
    if not within.any() or same.all():
        raise ConfigError(f"level {level} has no two leaves under one node or only one node: no coherence to measure")
    return float(dist[~same].mean() / dist[within].mean())


# synthetic-knob: the control of issue 20 ("synthetic control v2"): the images of synthetic-mix and one tree per
# knob value, each with node names of its own, so one pretrained model can learn every grouping from its captions
KNOB_NAME = "synthetic-knob"
KNOB_MIXES = (0.0, 0.1, 0.2, 0.3, 0.5, 1.0)
KNOB_WORDS = ("alpha", "beta", "gamma", "delta", "epsilon", "eta")
KNOB_ARBITRARY = "m1_arbitrary"  # the m = 1 grouping under names no pretraining caption uses ("zeta ...")


def knob_tree_name(mix: float) -> str:
    """The tree of knob value ``mix`` in ``synthetic-knob`` (``m0``, ``m0_3``, ``m1``: no "." in a tree name)."""
    return f"m{mix:g}".replace(".", "_")


def make_synthetic_knob(split: str = "train", n_per_class: int | None = None, image_size: int = 28,
                        seed: int = 0) -> ZSDataset:
    """synthetic-mix's images (the same for every knob value) with one label tree per value of
    :data:`KNOB_MIXES` (:func:`knob_tree_name`), their inner nodes prefixed by a word of :data:`KNOB_WORDS`
    ("beta group 3"), and :data:`KNOB_ARBITRARY`: the m = 1 grouping under "zeta" names. The root, "order 0", is
    shared. Pretraining on the first trees' captions (``pretrain.caption_trees``) gives one model that knows every
    grouping by name, whatever the pixels say (the semantic arm at m = 1), and none of the arbitrary tree's names."""
    base = make_synthetic_mix(split, 0.0, n_per_class=n_per_class, image_size=image_size, seed=seed)
    leaves = base.classnames
    n_levels = base.hierarchy["num_levels"]
    trees = {}
    for mix, word in [*zip(KNOB_MIXES, KNOB_WORDS), (1.0, "zeta")]:
        paths = mix_paths(mix_slots(len(leaves), mix, seed), 3, n_levels)
        named = {leaf: [f"{word} {n}" if lvl < n_levels - 2 else n for lvl, n in enumerate(path)]
                 for leaf, path in paths.items()}
        name = KNOB_ARBITRARY if word == "zeta" else knob_tree_name(mix)
        trees[name] = {"name": name, "num_levels": n_levels, "leaves": leaves, "paths": named}
    from dataclasses import replace

    return replace(base, name=KNOB_NAME, hierarchy={"classes": leaves, "trees": trees})
