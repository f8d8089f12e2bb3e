"""Typed configs: dataclasses built from YAML files plus ``key.sub=value`` overrides.

Unknown keys are errors that name the key and list the valid ones. Values like ``2/255`` become floats.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from pathlib import Path
from typing import Any

import yaml


class _Loader(yaml.SafeLoader):
    """YAML with only true/false as booleans (YAML 1.1 also reads on/off/yes/no, so `amp: off` became False)."""


_Loader.yaml_implicit_resolvers = {k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:bool"]
                                   for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                              list("tTfF"))

_FRACTION = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*/\s*(\d+(?:\.\d+)?)\s*$")
_FLOAT = re.compile(r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$")  # YAML 1.1 reads 1e-3 as a string


def parse_value(text: str) -> Any:
    """YAML scalar/list parsing, plus ``a/b`` fractions (``2/255``)."""
    if text.strip().lower() in ("nan", "inf", "+inf", "-inf", "infinity", "-infinity"):
        return float(text)  # a number, so range checks can name it (and reject it)
    m = _FRACTION.match(text)
    if m:
        return float(m.group(1)) / float(m.group(2))
    if _FLOAT.match(text) and not text.strip().lstrip("+-").isdigit():
        return float(text)
    try:
        value = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as e:
        raise ValueError(f"value {text!r} is not valid (YAML: {str(e).splitlines()[0]}); quote it or fix the "
                         f"brackets, e.g. key=[a,b]") from e
    if isinstance(value, list):
        return [parse_value(v) if isinstance(v, str) else v for v in value]
    return value


def _fractions(obj):
    if isinstance(obj, str) and (_FRACTION.match(obj) or _FLOAT.match(obj)):
        return parse_value(obj)
    if isinstance(obj, dict):
        return {k: _fractions(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_fractions(v) for v in obj]
    return obj


def packaged_config(path: str | Path) -> Path:
    """``path`` if it is a file; else the config shipped in the package under that name (``configs/paper/hiro.yaml``,
    ``paper/hiro.yaml`` or ``paper/hiro`` all name the packaged paper config), so commands work from an installed
    wheel as from a checkout."""
    from importlib import resources

    p = Path(path)
    if p.is_file():
        return p
    rel = p.as_posix().removeprefix("configs/")
    rel = rel if rel.endswith((".yaml", ".yml")) else rel + ".yaml"
    res = Path(str(resources.files("hirobust").joinpath("configs", *rel.split("/"))))
    return res if res.is_file() else p


def load_yaml(path: str | Path) -> dict:
    path = packaged_config(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {str(path)!r} does not exist (nor is it a packaged config such as "
                                f"paper/hiro)")
    try:
        data = yaml.load(path.read_text(), Loader=_Loader) or {}
    except yaml.YAMLError as e:
        raise ValueError(f"config file {str(path)!r} is not valid YAML: {e}") from e
    if not isinstance(data, dict):
        raise ValueError(f"config file {str(path)!r} must hold a mapping at the top level")
    return _fractions(data)


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """``["train.epochs=2", "eval.eps=2/255"]`` applied to a nested dict (a copy)."""
    import copy

    data = copy.deepcopy(data)
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} is not of the form key.sub=value")
        key, value = item.split("=", 1)
        parts = key.strip().split(".")
        node = data
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ValueError(f"override {item!r}: {p!r} is not a section")
        try:
            node[parts[-1]] = parse_value(value)
        except ValueError as e:
            raise ValueError(f"override {item!r}: {e}") from e
    return data


def _is_dataclass_type(t) -> bool:
    return isinstance(t, type) and dataclasses.is_dataclass(t)


def from_dict(cls, data: dict | None, where: str = ""):
    """Build dataclass ``cls`` from ``data``, recursing into dataclass-typed fields."""
    data = data or {}
    if not isinstance(data, dict):
        raise ValueError(f"config section {where or cls.__name__!r} must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"unknown config key {(where + '.' if where else '') + unknown[0]!r}; "
                         f"valid keys: {', '.join(sorted(names))}")
    kwargs = {}
    for k, v in data.items():
        t = hints[k]
        sub = [a for a in (typing.get_args(t) if isinstance(t, types.UnionType) or typing.get_origin(t) is
                           typing.Union else (t,)) if _is_dataclass_type(a)]
        if sub and isinstance(v, dict):
            kwargs[k] = from_dict(sub[0], v, f"{where}.{k}" if where else k)
        elif sub and v is not None:
            key = f"{where}.{k}" if where else k
            raise ValueError(f"config section {key!r} must be a mapping (set its keys as {key}.<key>=value), got "
                             f"{v!r}")
        else:
            kwargs[k] = v
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise ValueError(f"bad config section {where or cls.__name__!r}: {e}") from e


def to_dict(obj) -> dict:
    return dataclasses.asdict(obj)
