"""Class hierarchies with a fixed number of levels over a list of leaf classes.

Level 0 is the leaf (base class); level ``l`` is the ``l``-th ancestor, up to level ``L``.
``num_levels`` is ``L + 1``. A leaf whose path is shorter than ``L`` repeats its top node
(docs/method.md §1), so every leaf has exactly one node at every level. A node is identified by
``(level, name)``: the same name may stand at several levels (padding, or unbalanced trees such
as WordNet's), but at one level a name has exactly one parent.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from ..errors import ConfigError, UnknownKey


def _check_acyclic(paths: dict[str, list[str]], name: str) -> None:
    """No node may be its own ancestor across paths (x: [A, B] and y: [B, A] put A above B and B above A)."""
    above: dict[str, set[str]] = {}
    for path in paths.values():
        for i, node in enumerate(path):
            above.setdefault(node, set()).update(p for p in path[i + 1:] if p != node)
    state: dict[str, int] = {}

    def visit(node: str) -> None:
        state[node] = 1
        for parent in above.get(node, ()):
            if state.get(parent) == 1:
                raise ConfigError(f"cycle at node {parent!r} in hierarchy {name!r}: it is both above and below "
                                 f"{node!r} on different leaves' paths")
            if parent not in state:
                visit(parent)
        state[node] = 2

    for node in above:
        if node not in state:
            visit(node)


class Hierarchy:
    """A tree over ``leaves`` given as one path ``[parent, grandparent, ..., root]`` per leaf.

    Build it with :meth:`from_paths` or :meth:`from_json`. Invalid input raises ``ValueError``
    naming the offending node.
    """

    def __init__(self, leaves: Sequence[str], levels: Sequence[Sequence[str]], name: str = "tree"):
        # levels[l][i] = name of leaf i's ancestor at level l (levels[0] = leaves)
        self.name = name
        self.leaves = list(leaves)
        self._levels = [list(col) for col in levels]
        self._nodes: list[list[str]] = []
        self._index: list[torch.Tensor] = []
        for col in self._levels:
            order = list(dict.fromkeys(col))  # first appearance in leaf order
            pos = {n: i for i, n in enumerate(order)}
            self._nodes.append(order)
            self._index.append(torch.tensor([pos[n] for n in col], dtype=torch.long))

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_paths(
        cls,
        paths: Mapping[str, Sequence[str]],
        leaves: Sequence[str] | None = None,
        num_levels: int | None = None,
        name: str = "tree",
    ) -> Hierarchy:
        """``paths[leaf] = [parent, ..., root]``; ``leaves`` fixes the leaf order (default: ``paths``' order).

        ``num_levels`` (L+1) defaults to the longest path + 1; shorter paths repeat their top node and
        longer ones raise. Raises ``ValueError`` for duplicate leaves, leaves without a path, paths for
        unknown leaves, cycles, a leaf name reused as an inner node, or a node with two parents.
        """
        if not isinstance(paths, Mapping):
            raise ConfigError(f"from_paths: paths must map each leaf to [parent, ..., root] (a dict), got "
                             f"{type(paths).__name__}")
        if any(isinstance(p, str) or not isinstance(p, Sequence) for p in paths.values()):
            raise ConfigError(f"from_paths: each path must be a list of node names, e.g. {{'kit fox': ['canine', "
                             f"'mammal']}}; hierarchy {name!r} has a {type(next(iter(paths.values()))).__name__}")
        if num_levels is not None and (isinstance(num_levels, bool) or not isinstance(num_levels, int)):
            raise ConfigError(f"from_paths: num_levels must be an integer, got {num_levels!r}")
        if leaves is None:
            leaves = list(paths)
        leaves = [str(x) for x in leaves]
        seen: set[str] = set()
        for leaf in leaves:
            if leaf in seen:
                raise ConfigError(f"duplicate leaf {leaf!r} in hierarchy {name!r}: each leaf class must appear once")
            seen.add(leaf)
        for key in paths:
            if key not in seen:
                raise ConfigError(f"unknown leaf {key!r} in hierarchy {name!r}: it has a path but is not a leaf class")
        missing = [leaf for leaf in leaves if leaf not in paths]
        if missing:
            raise ConfigError(f"leaf {missing[0]!r} has no path in hierarchy {name!r} ({len(missing)} leaves lack one)")
        if not leaves:
            raise ConfigError(f"hierarchy {name!r} has no leaves")

        clean: dict[str, list[str]] = {}
        for leaf in leaves:
            if any(p is None for p in paths[leaf]):
                raise ConfigError(f"null node name in the path of leaf {leaf!r} in hierarchy {name!r}")
            path = [str(p) for p in paths[leaf]]
            for i, node in enumerate(path):
                if not node.strip():
                    raise ConfigError(f"empty node name in the path of leaf {leaf!r} in hierarchy {name!r}")
                padding = node in path[:i] and all(p == node for p in path[path.index(node):])
                if node == leaf or (node in path[:i] and not padding):
                    raise ConfigError(f"cycle at node {node!r} in the path of leaf {leaf!r} in hierarchy {name!r}")
                if node in seen:
                    raise ConfigError(
                        f"leaf {node!r} is also used as an inner node (in the path of {leaf!r}) in hierarchy {name!r}"
                    )
            clean[leaf] = path
        _check_acyclic(clean, name)
        depth = max(len(p) for p in clean.values())
        if num_levels is None:
            num_levels = depth + 1
        if num_levels < 1:
            raise ConfigError(f"num_levels must be >= 1, got {num_levels}")
        too_long = [leaf for leaf, p in clean.items() if len(p) > num_levels - 1]
        if too_long:
            raise ConfigError(
                f"leaf {too_long[0]!r} has a path of {len(clean[too_long[0]])} ancestors, more than the "
                f"{num_levels - 1} levels requested for hierarchy {name!r}"
            )
        levels = [list(leaves)]
        for lvl in range(1, num_levels):
            col = []
            for leaf in leaves:
                p = [leaf] + clean[leaf]
                col.append(p[min(lvl, len(p) - 1)])
            levels.append(col)
        # one parent per (level, node)
        for lvl in range(1, num_levels):
            parent_of: dict[str, str] = {}
            for child, parent in zip(levels[lvl - 1], levels[lvl]):
                if parent_of.setdefault(child, parent) != parent:
                    raise ConfigError(
                        f"node {child!r} at level {lvl - 1} has two parents ({parent_of[child]!r} and {parent!r}) "
                        f"in hierarchy {name!r}: a tree needs one parent per node"
                    )
        return cls(leaves, levels, name=name)

    @classmethod
    def from_json(cls, data: str | Path | Mapping, leaves: Sequence[str] | None = None) -> Hierarchy:
        """From ``to_json()``'s dict, a JSON string, or a path to a JSON file."""
        if isinstance(data, Path) or (isinstance(data, str) and not data.lstrip().startswith("{")):
            f = Path(data)
            if not f.is_file():
                raise ConfigError(f"hierarchy file {str(f)!r} does not exist (from_json takes a dict, JSON text or "
                                 f"a path to a JSON file)")
            try:
                data = json.loads(f.read_text())
            except ValueError as e:
                raise ConfigError(f"hierarchy file {str(f)!r} is not valid JSON ({e})") from None
        elif isinstance(data, str):
            try:
                data = json.loads(data)
            except ValueError as e:
                raise ConfigError(f"hierarchy JSON text is not valid JSON ({e})") from None
        if not isinstance(data, Mapping) or "paths" not in data:
            raise ConfigError("hierarchy JSON needs a 'paths' object mapping each leaf to [parent, ..., root]")
        return cls.from_paths(
            data["paths"],
            leaves=leaves if leaves is not None else data.get("leaves"),
            num_levels=data.get("num_levels"),
            name=data.get("name", "tree"),
        )

    def to_json(self) -> dict:
        """A JSON-serialisable dict that :meth:`from_json` turns back into an equal hierarchy."""
        paths = {leaf: [self._levels[lvl][i] for lvl in range(1, self.num_levels)]
                 for i, leaf in enumerate(self.leaves)}
        return {"name": self.name, "num_levels": self.num_levels, "leaves": list(self.leaves), "paths": paths}

    # ------------------------------------------------------------------ queries
    @property
    def num_levels(self) -> int:
        """L + 1 (level 0 = leaves)."""
        return len(self._levels)

    def nodes(self, level: int) -> list[str]:
        """Names of the nodes at ``level``, in order of first appearance along the leaves."""
        self._check_level(level)
        return list(self._nodes[level])

    def num_nodes(self, level: int) -> int:
        self._check_level(level)
        return len(self._nodes[level])

    def ancestor_index(self, level: int) -> torch.Tensor:
        """LongTensor [num_leaves]: leaf index -> index of its ancestor among ``nodes(level)``."""
        self._check_level(level)
        return self._index[level].clone()

    def parent_index(self, level: int) -> torch.Tensor:
        """LongTensor [num_nodes(level)]: node index at ``level`` -> its parent's index at ``level + 1``."""
        self._check_level(level + 1)
        out = torch.empty(self.num_nodes(level), dtype=torch.long)
        out[self._index[level]] = self._index[level + 1]
        return out

    def path(self, leaf: str) -> list[str]:
        """[leaf, parent, ..., root], always ``num_levels`` long."""
        i = self.leaves.index(leaf)
        return [col[i] for col in self._levels]

    def labels(self, leaf_labels: torch.Tensor, level: int) -> torch.Tensor:
        """Level-``level`` labels of a batch of leaf labels."""
        self._check_level(level)
        cpu = leaf_labels.device.type == "cpu"  # (on a GPU the check would cost a sync per batch)
        if cpu and leaf_labels.numel() and (int(leaf_labels.min()) < 0 or int(leaf_labels.max()) >= len(self.leaves)):
            raise ConfigError(f"leaf labels must lie in [0, {len(self.leaves) - 1}] (hierarchy {self.name!r} has "
                             f"{len(self.leaves)} leaves), got [{int(leaf_labels.min())}, {int(leaf_labels.max())}]")
        return self._index[level].to(leaf_labels.device)[leaf_labels]

    def tree_distance(self, level: int = 0) -> torch.Tensor:
        """[n, n]: levels climbed from two level-``level`` nodes until their ancestors coincide (0 on the diagonal)."""
        n = self.num_nodes(level)
        dist = torch.full((n, n), float(self.num_levels - level), dtype=torch.float32)
        dist.fill_diagonal_(0.0)
        idx = torch.arange(n)
        for up in range(1, self.num_levels - level):
            anc = self._map_up(level, level + up)[idx]
            same = anc[:, None] == anc[None, :]
            dist = torch.where(same & (dist > up), torch.full_like(dist, float(up)), dist)
        return dist

    def _map_up(self, level: int, target: int) -> torch.Tensor:
        out = torch.arange(self.num_nodes(level))
        for lvl in range(level, target):
            out = self.parent_index(lvl)[out]
        return out

    def _check_level(self, level: int) -> None:
        if not 0 <= level < self.num_levels:
            raise ConfigError(f"level {level} out of range for hierarchy {self.name!r} with {self.num_levels} levels")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Hierarchy) and self.leaves == other.leaves and self._levels == other._levels

    def __repr__(self) -> str:
        sizes = [self.num_nodes(lvl) for lvl in range(self.num_levels)]
        return f"Hierarchy({self.name!r}, nodes per level={sizes})"

    def describe(self) -> str:
        """An indented text rendering, root first."""
        lines = [f"{self.name}: {self.num_levels} levels, nodes per level "
                 f"{[self.num_nodes(lvl) for lvl in range(self.num_levels)]}"]

        def walk(level: int, node: int, indent: int) -> None:
            name = self._nodes[level][node]
            if level == 0:
                lines.append("  " * indent + f"- {name}")
                return
            children = (self.parent_index(level - 1) == node).nonzero().flatten().tolist()
            if len(children) == 1 and self._nodes[level - 1][children[0]] == name:  # padding
                walk(level - 1, children[0], indent)
                return
            lines.append("  " * indent + f"+ {name} (level {level})")
            for ch in children:
                walk(level - 1, ch, indent + 1)

        top = self.num_levels - 1
        for node in range(self.num_nodes(top)):
            walk(top, node, 1)
        return "\n".join(lines)


class Forest:
    """Several trees over the same leaves (e.g. different WordNet hypernym paths)."""

    def __init__(self, trees: Sequence[Hierarchy]):
        if not trees:
            raise ConfigError("a forest needs at least one tree")
        bad = [t for t in trees if not isinstance(t, Hierarchy)]
        if bad:
            raise ConfigError(f"Forest takes Hierarchy objects, got a {type(bad[0]).__name__} ({bad[0]!r}); build "
                             f"each tree with Hierarchy.from_paths or from_json")
        first = trees[0]
        for t in trees[1:]:
            if t.leaves != first.leaves:
                raise ConfigError(
                    f"tree {t.name!r} has other leaves than tree {first.name!r}; a forest shares its leaves"
                )
        names = [t.name for t in trees]
        if len(set(names)) != len(names):
            raise ConfigError(f"duplicate tree names in forest: {names}")
        self.trees = list(trees)

    @property
    def leaves(self) -> list[str]:
        return self.trees[0].leaves

    def __iter__(self):
        return iter(self.trees)

    def __len__(self) -> int:
        return len(self.trees)

    def __getitem__(self, key: int | str) -> Hierarchy:
        if isinstance(key, str):
            for t in self.trees:
                if t.name == key:
                    return t
            raise UnknownKey(f"no tree {key!r} in forest; trees: {[t.name for t in self.trees]}")
        return self.trees[key]

    def to_json(self) -> dict:
        """The hierarchy-file form (``{"classes", "trees": {name: tree}}``) that ``load_forest`` reads back."""
        return {"classes": list(self.leaves), "trees": {t.name: t.to_json() for t in self.trees}}

    @classmethod
    def from_json(cls, data: Mapping) -> Forest:
        if not isinstance(data, Mapping) or not isinstance(data.get("trees"), (Mapping, list)):
            raise ConfigError("a forest JSON needs 'trees': {name: tree} (the form Forest.to_json and `hirobust tree "
                             "show --json` write)")
        trees = data["trees"]
        return cls([Hierarchy.from_json(t) for t in (trees.values() if isinstance(trees, Mapping) else trees)])
