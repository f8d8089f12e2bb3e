"""Class hierarchies: :class:`Hierarchy` (one tree), :class:`Forest` (several over the same leaves), shipped trees."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from .core import Forest, Hierarchy

__all__ = ["Hierarchy", "Forest", "available", "load_tree_file", "load_forest", "load_tree"]


def available() -> list[str]:
    """Names of the datasets with a shipped hierarchy file."""
    files = resources.files(__package__).joinpath("data").iterdir()
    return sorted(f.name[:-5] for f in files if f.name.endswith(".json"))


def load_tree_file(name_or_path: str | Path | dict) -> dict:
    """The raw JSON of a shipped hierarchy (by dataset name), of a file path, or the dict itself."""
    if isinstance(name_or_path, dict):
        return name_or_path
    p = Path(name_or_path)
    if p.suffix == ".json" or p.exists():
        if not p.exists():
            raise FileNotFoundError(f"hierarchy file {str(p)!r} does not exist")
        return json.loads(p.read_text())
    res = resources.files(__package__).joinpath("data", f"{name_or_path}.json")
    if not res.is_file():
        raise ValueError(
            f"no shipped hierarchy for {name_or_path!r}; shipped: {', '.join(available())} (or pass a JSON file path)"
        )
    return json.loads(res.read_text())


def load_forest(
    name_or_path: str | Path | dict, trees: list[str] | None = None, classes: list[str] | None = None
) -> Forest:
    """The trees of a hierarchy file, all or those named, over ``classes`` (default: the file's class order).

    A file either holds ``{"classes", "num_levels", "trees": {name: {"paths": ...}}}`` (several trees) or one
    tree as written by :meth:`Hierarchy.to_json`. ``classes`` that the file does not cover raise ``ValueError``.
    """
    data = load_tree_file(name_or_path)
    if "trees" not in data:
        data = {"classes": data.get("leaves"), "num_levels": data.get("num_levels"),
                "trees": {data.get("name", "tree"): data}}
    leaves = list(classes) if classes is not None else data.get("classes")
    names = trees or list(data["trees"])
    unknown = [t for t in names if t not in data["trees"]]
    if unknown:
        raise ValueError(f"no tree {unknown[0]!r} in hierarchy {_label(name_or_path)!r}; it has {list(data['trees'])}")
    out = []
    for t in names:
        spec = data["trees"][t]
        paths = spec["paths"]
        if leaves is not None:
            missing = [c for c in leaves if c not in paths]
            if missing:
                raise ValueError(
                    f"hierarchy {_label(name_or_path)!r} (tree {t!r}) does not cover class {missing[0]!r} "
                    f"({len(missing)} classes missing); give a tree whose paths name every class of the dataset"
                )
            paths = {c: paths[c] for c in leaves}
        out.append(Hierarchy.from_paths(paths, leaves=leaves, num_levels=spec.get("num_levels", data.get("num_levels")),
                                        name=t))
    return Forest(out)


def load_tree(name_or_path: str | Path | dict, tree: str | None = None, classes: list[str] | None = None) -> Hierarchy:
    """One tree of a hierarchy file: ``tree`` or the file's default (first) tree."""
    data = load_tree_file(name_or_path)
    if tree is None and "trees" in data:
        tree = data.get("default") or next(iter(data["trees"]))
    return load_forest(name_or_path, trees=[tree] if tree else None, classes=classes)[0]


def _label(src) -> str:
    return src.get("name", "tree") if isinstance(src, dict) else str(src)
