"""Dataclasses from plain dicts, every value checked against its field's type hint (OmegaConf) and then by the
dataclass's own range checks (``__post_init__``); unknown keys are errors that name the key and the nearest valid
one. Values given as text (``2/255``, ``1e-3``, ``[a,b]``) are parsed as the command line means them.

The library's configs (a method's options, :mod:`hirobust.settings`) are built with :func:`from_dict`; the
application reads YAML files and ``key=value`` overrides into the dicts (:mod:`hirobust.app.config`).
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError


class YamlLoader(yaml.SafeLoader):
    """YAML with only true/false as booleans (YAML 1.1 also reads on/off/yes/no, so `amp: off` became False), and a
    key given twice in one mapping refused (YAML would keep the last one silently)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"key {key!r} is given twice",
                                                        key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


YamlLoader.yaml_implicit_resolvers = {k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:bool"]
                                   for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
YamlLoader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                              list("tTfF"))

_FRACTION = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*/\s*(\d+(?:\.\d+)?)\s*$")
_FLOAT = re.compile(r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$")  # YAML 1.1 reads 1e-3 as a string


def parse_value(text: str) -> Any:
    """YAML scalar/list parsing, plus ``a/b`` fractions (``2/255``)."""
    if text.strip().lower() in ("nan", "inf", "+inf", "-inf", "infinity", "-infinity"):
        return float(text)  # a number, so range checks can name it (and reject it)
    m = _FRACTION.match(text)
    if m:
        if float(m.group(2)) == 0:
            raise ConfigError(f"value {text!r} divides by zero; write a number such as 4/255")
        return float(m.group(1)) / float(m.group(2))
    if _FLOAT.match(text) and not text.strip().lstrip("+-").isdigit():
        return float(text)
    try:
        value = yaml.load(text, Loader=YamlLoader)
    except yaml.YAMLError as e:
        raise ConfigError(f"value {text!r} is not valid (YAML: {str(e).splitlines()[0]}); quote it or fix the "
                         f"brackets, e.g. key=[a,b]") from e
    if isinstance(value, list):
        return [parse_value(v) if isinstance(v, str) else v for v in value]
    return value


def parse_numbers(obj):
    """``obj`` (YAML data) with numbers written as text (``2/255``, ``1e-3``) turned into floats."""
    if isinstance(obj, str) and (_FRACTION.match(obj) or _FLOAT.match(obj)):
        return parse_value(obj)
    if isinstance(obj, dict):
        return {k: parse_numbers(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [parse_numbers(v) for v in obj]
    return obj


def is_dataclass_type(t) -> bool:
    return isinstance(t, type) and dataclasses.is_dataclass(t)


def type_options(t) -> tuple:
    """The types a hint allows: ``int | None`` -> (int, NoneType)."""
    return typing.get_args(t) if isinstance(t, types.UnionType) or typing.get_origin(t) is typing.Union else (t,)


def _is_list(t) -> bool:
    return any(typing.get_origin(a) in (list, tuple) for a in type_options(t))


def describe_type(t) -> str:
    """A hint in words, for error messages and ``--help``: ``list[int] | None`` -> 'a list of integers, or null'."""
    words = {int: "an integer", float: "a number", bool: "true or false", str: "a string", dict: "a mapping",
             type(None): "null"}
    plural = {int: "integers", float: "numbers", bool: "booleans", str: "strings"}
    parts = []
    for a in type_options(t):
        origin, args = typing.get_origin(a), typing.get_args(a)
        if origin is list:
            parts.append(f"a list of {plural.get(args[0], 'values') if args else 'values'}")
        elif origin is tuple:
            parts.append(f"a list of {len(args)} {plural.get(args[0], 'values')}")
        else:
            parts.append(words.get(a, getattr(a, "__name__", str(a))))
    return ", or ".join(parts)


def _typed(cls, leaf: dict, where: str) -> dict:
    """``leaf`` (field -> value of the fields that are not sections) checked and converted against ``cls``'s type
    hints by OmegaConf: a wrong type names the key, the value and the expected type. Lists also take ``a,b`` and a
    single item; an integral float fills an integer field (``1e3``)."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    hints = typing.get_type_hints(cls)
    fixed = {}
    for k, v in leaf.items():
        t = hints[k]
        if isinstance(v, Path):
            v = str(v)
        if _is_list(t) and isinstance(v, str):
            v = [parse_value(x.strip()) for x in v.split(",") if x.strip()]
        if int in type_options(t) and float not in type_options(t) and isinstance(v, float) and v.is_integer():
            v = int(v)
        fixed[k] = v
    schema = OmegaConf.structured(cls)
    for k, v in fixed.items():
        if dict in type_options(hints[k]):
            continue
        try:
            node = OmegaConf.merge(schema, {k: v})[k]
        except (OmegaConfBaseException, TypeError, ValueError):
            key = f"{where}.{k}" if where else k
            raise ConfigError(f"{key}={leaf[k]!r}: must be {describe_type(hints[k])}") from None
        node = OmegaConf.to_container(node) if OmegaConf.is_config(node) else node
        fixed[k] = tuple(node) if isinstance(node, list) and typing.get_origin(hints[k]) is tuple else node
    return fixed


def from_dict(cls, data: dict | None, where: str = ""):
    """Build dataclass ``cls`` from ``data``, recursing into dataclass-typed fields; every value is checked against
    its field's type (``_typed``) and then by the dataclass's own range checks."""
    import difflib

    data = data or {}
    if not isinstance(data, dict):
        raise ConfigError(f"config section {where or cls.__name__!r} must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        near = difflib.get_close_matches(str(unknown[0]), sorted(names), n=1)
        hint = f"did you mean {(where + '.' if where else '') + near[0]!r}? " if near else ""
        raise ConfigError(f"unknown config key {(where + '.' if where else '') + str(unknown[0])!r}; "
                         f"{hint}valid keys: {', '.join(sorted(names))}")
    kwargs, leaf = {}, {}
    for k, v in data.items():
        t = hints[k]
        sub = [a for a in type_options(t) if is_dataclass_type(a)]
        if sub and isinstance(v, dict):
            kwargs[k] = from_dict(sub[0], v, f"{where}.{k}" if where else k)
        elif sub and v is not None:
            key = f"{where}.{k}" if where else k
            raise ConfigError(f"config section {key!r} must be a mapping (set its keys as {key}.<key>=value), got "
                             f"{v!r}")
        elif sub:
            kwargs[k] = v
        else:
            leaf[k] = v
    kwargs.update(_typed(cls, leaf, where))
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise ConfigError(f"bad config section {where or cls.__name__!r}: {e}") from e
