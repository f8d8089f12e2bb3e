"""Typed configs: dataclasses built from YAML files plus ``key.sub=value`` overrides.

Unknown keys are errors that name the key and list the valid ones. Values like ``2/255`` become floats.
"""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

import yaml

from ..errors import ConfigError, NotFound
from ..typed import YamlLoader, describe_type, is_dataclass_type, parse_numbers, parse_value, type_options


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
        raise NotFound(f"config file {str(path)!r} does not exist (nor is it a packaged config such as "
                                f"paper/hiro)")
    try:
        data = yaml.load(path.read_text(), Loader=YamlLoader) or {}
    except yaml.YAMLError as e:
        where = f" (line {e.problem_mark.line + 1})" if getattr(e, "problem_mark", None) else ""
        raise ConfigError(f"config file {str(path)!r} is not valid YAML{where}: {getattr(e, 'problem', None) or e}") \
            from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(path)!r} must hold a mapping at the top level")
    return parse_numbers(data)


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """``["train.epochs=2", "eval.eps=2/255"]`` applied to a nested dict (a copy)."""
    import copy

    data = copy.deepcopy(data)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key.sub=value")
        key, value = item.split("=", 1)
        parts = key.strip().split(".")
        node = data
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {p!r} is not a section")
        try:
            node[parts[-1]] = parse_value(value)
        except ValueError as e:
            raise ConfigError(f"override {item!r}: {e}") from e
    return data


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
        sub = [a for a in type_options(hints[f.name]) if is_dataclass_type(a)]
        default = (f.default if f.default is not dataclasses.MISSING else
                   f.default_factory() if f.default_factory is not dataclasses.MISSING else "(required)")
        if sub and dataclasses.is_dataclass(default):
            lines += describe_keys(sub[0], key)
            continue
        text = f"  {key} = {_show(default)}"
        doc = docs.get(f.name, "")
        lines.append(f"{text:<44} {describe_type(hints[f.name])}" + (f"; {doc}" if doc else ""))
    return lines


def print_config(cfg) -> int:
    """``--print-config``: the resolved config as YAML on stdout; exit code 0."""
    import json

    print(yaml.safe_dump(json.loads(json.dumps(dataclasses.asdict(cfg), default=str)), sort_keys=False,
                         allow_unicode=True), end="")
    return 0
