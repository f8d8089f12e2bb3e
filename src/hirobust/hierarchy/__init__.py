"""Class hierarchies: :class:`Hierarchy` (one tree), :class:`Forest` (several over the same leaves), shipped trees."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from ..errors import ConfigError, NotFound
from .core import Forest, Hierarchy

__all__ = ["Hierarchy", "Forest", "available", "load_tree_file", "load_forest", "load_tree"]


def available() -> list[str]:
    """Names of the datasets with a shipped hierarchy file."""
    files = resources.files(__package__).joinpath("data").iterdir()
    return sorted(f.name[:-5] for f in files if f.name.endswith(".json"))


def _no_duplicates(pairs: list) -> dict:
    keys = [k for k, _ in pairs]
    dup = next((k for k in keys if keys.count(k) > 1), None)
    if dup is not None:
        raise ConfigError(f"duplicate key {dup!r}")
    return dict(pairs)


def read_json(path: Path) -> object:
    """A JSON file, with duplicate keys rejected; errors name the file."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{str(path)!r} is a directory, not a JSON file")
    if not path.is_file():
        raise NotFound(f"{str(path)!r} does not exist")
    try:
        return json.loads(path.read_text(), object_pairs_hook=_no_duplicates)
    except (json.JSONDecodeError, ValueError, UnicodeDecodeError) as e:
        raise ConfigError(f"{str(path)!r} is not a valid JSON file: {e}") from e


def load_tree_file(name_or_path: str | Path | dict) -> dict:
    """The raw JSON of a shipped hierarchy (by dataset name), of a file path, or the dict itself; checked to be
    a hierarchy file (``{"trees": {...}}`` or one tree's ``{"paths": {...}}``)."""
    if isinstance(name_or_path, dict):
        return _check_file(name_or_path, "the hierarchy")
    p = Path(name_or_path)
    if p.suffix == ".json" or p.exists():
        if not p.exists():
            raise NotFound(f"hierarchy file {str(p)!r} does not exist")
        if p.is_dir():
            raise ConfigError(f"hierarchy {str(p)!r} is a directory; give a hierarchy JSON file")
        return _check_file(read_json(p), repr(str(p)))
    res = resources.files(__package__).joinpath("data", f"{name_or_path}.json")
    if not res.is_file():
        raise ConfigError(
            f"no shipped hierarchy for {name_or_path!r}; shipped: {', '.join(available())} (or pass a JSON file path)"
        )
    return json.loads(res.read_text())


def _check_file(data, where: str) -> dict:
    """Shapes and types of a hierarchy file, each error naming the file and the offending entry."""
    if not isinstance(data, dict):
        raise ConfigError(f"hierarchy {where} must hold a JSON object (with 'trees' or 'paths'), not a "
                         f"{type(data).__name__}")
    trees = data.get("trees")
    if isinstance(trees, list):  # the list form Forest.to_json wrote before: one tree dict each
        data = {**data, "trees": {t.get("name", f"tree{i}") if isinstance(t, dict) else i: t
                                  for i, t in enumerate(trees)}}
    elif trees is None and "paths" not in data:
        raise ConfigError(f"hierarchy {where} has neither 'trees' nor 'paths'")
    if "trees" in data and not isinstance(data["trees"], dict):
        raise ConfigError(f"hierarchy {where}: 'trees' must map tree names to trees")
    specs = data["trees"].items() if "trees" in data else [(data.get("name", "tree"), data)]
    for name, spec in specs:
        if not isinstance(spec, dict) or not isinstance(spec.get("paths"), dict):
            raise ConfigError(f"hierarchy {where}, tree {name!r}: 'paths' must map each leaf to [parent, ..., root]")
        for leaf, path in spec["paths"].items():
            if not isinstance(path, list) or any(not isinstance(n, str) for n in path):
                raise ConfigError(f"hierarchy {where}, tree {name!r}: the path of {leaf!r} must be a list of node "
                                 f"names (strings), got {path!r}")
        for holder in (spec, data):
            n = holder.get("num_levels")
            if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
                raise ConfigError(f"hierarchy {where}: num_levels must be an integer >= 1, got {n!r}")
        if "." in str(name):
            raise ConfigError(f"hierarchy {where}: tree name {name!r} must not contain '.'")
    return data


def load_forest(
    name_or_path: str | Path | dict, trees: list[str] | None = None, classes: list[str] | None = None,
    also: list[str] | None = None,
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
        from ..errors import did_you_mean

        raise ConfigError(f"no tree {unknown[0]!r}{did_you_mean(unknown[0], data['trees'])} in hierarchy "
                         f"{_label(name_or_path)!r}; it has {list(data['trees'])}")
    out = []
    for t in names:
        spec = data["trees"][t]
        paths = spec["paths"]
        if leaves is not None:
            missing = [c for c in leaves if c not in paths]
            if missing:
                raise ConfigError(
                    f"hierarchy {_label(name_or_path)!r} (tree {t!r}) does not cover class {missing[0]!r} "
                    f"({len(missing)} classes missing); give a tree whose paths name every class of the dataset"
                )
            extra = [c for c in paths if c not in leaves and c not in (also or [])]
            if extra:  # a path for a class the dataset does not have: a typo or the wrong file, never dropped
                raise ConfigError(
                    f"hierarchy {_label(name_or_path)!r} (tree {t!r}) names class {extra[0]!r}, which the dataset does "
                    f"not have ({len(extra)} such); its classes: {', '.join(leaves)}"
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
