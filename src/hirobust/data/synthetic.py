"""A small, seeded, synthetic hierarchical image dataset for fast tests.

Every node of a balanced tree owns a random smooth colour pattern; an image of leaf k is the sum of
the patterns of k's ancestors at every level (coarse levels weigh more), plus noise, squashed to
[0, 1]. Leaves that share a parent therefore look alike, as real subclasses do.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

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
        raise ValueError(f"unknown split {split!r} for synthetic; use train, val or test")
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
