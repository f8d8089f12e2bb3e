"""Held-out folds of a tree's leaves: the zero-shot protocol of the embedded benchmark (docs/method.md §5).

A fold is the list of leaves held out of fine-tuning; the others are trained on. :func:`make_folds` deals the
leaves of every level-1 superclass round-robin over ``k`` folds (a seeded order inside each superclass, the
start rotated so the folds stay the same size), so that

- every leaf is held out in exactly one fold (the folds partition the leaves);
- a superclass with at least two leaves keeps a seen leaf in every fold (at most ⌈n/k⌉ < n of its n leaves are
  held out when k ≥ 2), where the tree allows it;
- with a tree and a seed, the folds are always the same.

:func:`check_folds` refuses what would make a fold meaningless, before any training: an unknown leaf, a fold
that leaves no class to train on, an empty fold, and (when asked) folds that do not hold out every leaf.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from ..errors import ConfigError
from .core import Hierarchy


def make_folds(tree: Hierarchy, k: int, seed: int = 0) -> list[list[str]]:
    """``k`` folds of held-out leaves (each in the tree's leaf order) partitioning ``tree.leaves``."""
    if not isinstance(k, int) or k < 2:
        raise ConfigError(f"folds: k must be an integer >= 2 (one fold holds out every leaf of its share), got {k!r}")
    if k > len(tree.leaves):
        raise ConfigError(f"folds: k={k} is more than the {len(tree.leaves)} leaves of tree {tree.name!r}; use at "
                          f"most {len(tree.leaves)}")
    rng = random.Random(seed)
    level = 1 if tree.num_levels > 1 else 0
    anc = tree.ancestor_index(level).tolist()
    groups: dict[int, list[str]] = {}
    for leaf, a in zip(tree.leaves, anc):
        groups.setdefault(a, []).append(leaf)
    folds: list[list[str]] = [[] for _ in range(k)]
    start = 0
    for a in sorted(groups, key=lambda g: (-len(groups[g]), g)):  # large superclasses first: sizes stay even
        members = groups[a][:]
        rng.shuffle(members)
        for i, leaf in enumerate(members):
            folds[(start + i) % k].append(leaf)
        start = (start + len(members)) % k
    order = {leaf: i for i, leaf in enumerate(tree.leaves)}
    return [sorted(f, key=order.__getitem__) for f in folds]


def check_folds(tree: Hierarchy, folds: Sequence[Sequence[str]], cover: bool = True) -> None:
    """Raise :class:`ConfigError` naming the problem when a fold is empty, names a leaf the tree does not have,
    holds out every leaf (nothing to train on), or (``cover``) when some leaf is held out in no fold."""
    if not folds:
        raise ConfigError("folds: no fold given; give at least one list of held-out leaves, or folds.k")
    leaves = set(tree.leaves)
    for i, fold in enumerate(folds):
        if not fold:
            raise ConfigError(f"fold {i} holds out no leaf; every fold needs at least one held-out leaf")
        unknown = [c for c in fold if c not in leaves]
        if unknown:
            raise ConfigError(f"fold {i} names {unknown[0]!r}, which is not a leaf of tree {tree.name!r}; its leaves: "
                              f"{', '.join(tree.leaves)}")
        if leaves <= set(fold):
            raise ConfigError(f"fold {i} holds out every leaf of tree {tree.name!r}, so nothing is left to fine-tune "
                              f"on; hold out fewer")
    if cover:
        missing = [c for c in tree.leaves if not any(c in f for f in folds)]
        if missing:
            raise ConfigError(f"folds do not hold out leaf {missing[0]!r} in any fold (cover=true asks every leaf "
                              f"to be unseen once); add it to a fold or set cover=false")


def seen_classes(tree: Hierarchy, fold: Sequence[str]) -> list[str]:
    """The leaves trained on when ``fold`` is held out, in the tree's leaf order."""
    held = set(fold)
    return [c for c in tree.leaves if c not in held]


def superclasses_without_seen_leaf(tree: Hierarchy, fold: Sequence[str], level: int = 1) -> list[str]:
    """The level-``level`` nodes all of whose leaves are held out by ``fold`` (these superclasses are unseen)."""
    anc = tree.ancestor_index(level).tolist()
    seen = {a for leaf, a in zip(tree.leaves, anc) if leaf not in set(fold)}
    return [n for i, n in enumerate(tree.nodes(level)) if i not in seen]
