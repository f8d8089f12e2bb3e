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


def _options(t) -> tuple:
    """The types a hint allows: ``int | None`` -> (int, NoneType)."""
    return typing.get_args(t) if isinstance(t, types.UnionType) or typing.get_origin(t) is typing.Union else (t,)


def _is_list(t) -> bool:
    return any(typing.get_origin(a) in (list, tuple) for a in _options(t))


def describe_type(t) -> str:
    """A hint in words, for error messages and ``--help``: ``list[int] | None`` -> 'a list of integers, or null'."""
    words = {int: "an integer", float: "a number", bool: "true or false", str: "a string", dict: "a mapping",
             type(None): "null"}
    plural = {int: "integers", float: "numbers", bool: "booleans", str: "strings"}
    parts = []
    for a in _options(t):
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
        if int in _options(t) and float not in _options(t) and isinstance(v, float) and v.is_integer():
            v = int(v)
        fixed[k] = v
    schema = OmegaConf.structured(cls)
    for k, v in fixed.items():
        if dict in _options(hints[k]):
            continue
        try:
            node = OmegaConf.merge(schema, {k: v})[k]
        except (OmegaConfBaseException, TypeError, ValueError):
            key = f"{where}.{k}" if where else k
            raise ValueError(f"{key}={leaf[k]!r}: must be {describe_type(hints[k])}") from None
        node = OmegaConf.to_container(node) if OmegaConf.is_config(node) else node
        fixed[k] = tuple(node) if isinstance(node, list) and typing.get_origin(hints[k]) is tuple else node
    return fixed


def from_dict(cls, data: dict | None, where: str = ""):
    """Build dataclass ``cls`` from ``data``, recursing into dataclass-typed fields; every value is checked against
    its field's type (``_typed``) and then by the dataclass's own range checks."""
    import difflib

    data = data or {}
    if not isinstance(data, dict):
        raise ValueError(f"config section {where or cls.__name__!r} must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        near = difflib.get_close_matches(str(unknown[0]), sorted(names), n=1)
        hint = f"did you mean {(where + '.' if where else '') + near[0]!r}? " if near else ""
        raise ValueError(f"unknown config key {(where + '.' if where else '') + str(unknown[0])!r}; "
                         f"{hint}valid keys: {', '.join(sorted(names))}")
    kwargs, leaf = {}, {}
    for k, v in data.items():
        t = hints[k]
        sub = [a for a in _options(t) if _is_dataclass_type(a)]
        if sub and isinstance(v, dict):
            kwargs[k] = from_dict(sub[0], v, f"{where}.{k}" if where else k)
        elif sub and v is not None:
            key = f"{where}.{k}" if where else k
            raise ValueError(f"config section {key!r} must be a mapping (set its keys as {key}.<key>=value), got "
                             f"{v!r}")
        elif sub:
            kwargs[k] = v
        else:
            leaf[k] = v
    kwargs.update(_typed(cls, leaf, where))
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise ValueError(f"bad config section {where or cls.__name__!r}: {e}") from e


def field_docs(cls) -> dict[str, str]:
    """Each field's one-line doc: the comment at the end of its line in ``cls``'s source (``--help`` lists them)."""
    import inspect
    import io
    import tokenize

    try:
        src = inspect.getsource(cls)
    except (OSError, TypeError):
        return {}
    names = {f.name for f in dataclasses.fields(cls)}
    docs, line_field, above = {}, {}, []  # above: the comment lines just before a field (used when it has none)
    for tok in tokenize.generate_tokens(io.StringIO(src).readline):
        if tok.type == tokenize.NAME and tok.start[1] == 4 and tok.string in names:
            if tok.start[0] not in line_field and above:
                docs.setdefault(tok.string, " ".join(above))
            line_field.setdefault(tok.start[0], tok.string)
            above = []
        elif tok.type == tokenize.COMMENT and tok.start[0] in line_field:
            docs[line_field[tok.start[0]]] = tok.string.lstrip("# ").strip()
        elif tok.type == tokenize.COMMENT and tok.start[1] == 4:
            above.append(tok.string.lstrip("# ").strip())
        elif tok.type == tokenize.NAME and tok.start[1] == 4:
            above = []
    return docs


def _show(v) -> str:
    """A default as the user would type it: null, false, [pgd], 0.00392."""
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(_show(x) for x in v) + "]"
    if dataclasses.is_dataclass(v):
        return "{...}"
    return {None: "null", True: "true", False: "false"}.get(v, str(v)) if isinstance(v, (bool, type(None))) else str(v)


def describe_keys(cls, prefix: str = "", skip: tuple = ()) -> list[str]:
    """``prefix.key = default  (type)  doc`` for every field of ``cls`` and its sections, for ``--help``."""
    lines, docs, hints = [], field_docs(cls), typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        key = f"{prefix}.{f.name}" if prefix else f.name
        sub = [a for a in _options(hints[f.name]) if _is_dataclass_type(a)]
        default = (f.default if f.default is not dataclasses.MISSING else
                   f.default_factory() if f.default_factory is not dataclasses.MISSING else "(required)")
        if sub and dataclasses.is_dataclass(default):
            lines += describe_keys(sub[0], key)
            continue
        text = f"  {key} = {_show(default)}"
        doc = docs.get(f.name, "")
        lines.append(f"{text:<44} {describe_type(hints[f.name])}" + (f"; {doc}" if doc else ""))
    return lines


def to_dict(obj) -> dict:
    return dataclasses.asdict(obj)
