"""The package's shape (docs/architecture.md): the library never imports the application, no module imports
itself back through others (function-level imports included), no module is over 400 lines, and the command line
maps only hirobust's own errors to exit 2."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "src" / "hirobust"
MAX_LINES = 400


def _modules() -> dict[str, Path]:
    out = {}
    for f in sorted(PKG.rglob("*.py")):
        parts = list(f.relative_to(PKG.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = f
    return out


def _imports(name: str, f: Path, known: set[str]) -> set[str]:
    """The hirobust modules ``name`` imports anywhere in its body (resolved; ``from . import x`` -> ``pkg.x``)."""
    pkg = name if f.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    tree = ast.parse(f.read_text())
    for node in ast.walk(tree):  # imports only for type checkers are not imports at run time
        if isinstance(node, ast.If) and getattr(node.test, "id", getattr(node.test, "attr", None)) == "TYPE_CHECKING":
            node.body = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("hirobust")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")
                base = base[:len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            elif node.module and node.module.startswith("hirobust"):
                mod = node.module
            else:
                continue
            for a in node.names:  # a submodule imported by name, else the module itself
                found.add(f"{mod}.{a.name}" if f"{mod}.{a.name}" in known else mod)
    return {m for m in found if m in known and m != name}


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    mods = _modules()
    return {name: _imports(name, f, set(mods)) for name, f in mods.items()}


def _is_app(m: str) -> bool:
    return m == "hirobust.app" or m.startswith("hirobust.app.")


def test_the_library_never_imports_the_application(graph):
    bad = {m: sorted(d for d in deps if _is_app(d)) for m, deps in graph.items()
           if not _is_app(m) and m != "hirobust.__main__"}
    assert {m: d for m, d in bad.items() if d} == {}


def test_no_import_cycles(graph):
    # package __init__ files re-export their submodules (pkg -> pkg.sub is not a cycle of concepts)
    edges = {m: {d for d in deps if not m.startswith(d + ".") and not d.startswith(m + ".")}
             for m, deps in graph.items()}
    state, stack, cycles = {}, [], []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for d in sorted(edges[m]):
            if state.get(d) == 1:
                cycles.append(stack[stack.index(d):] + [d])
            elif d not in state:
                visit(d)
        stack.pop()
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m)
    assert cycles == []


def test_the_cycle_check_finds_a_cycle(tmp_path):
    """The checker itself: a two-module loop is reported."""
    (tmp_path / "a.py").write_text("from .b import x\n")
    (tmp_path / "b.py").write_text("def f():\n    from .a import y\n")
    known = {"hirobust.a", "hirobust.b"}
    assert _imports("hirobust.a", tmp_path / "a.py", known) == {"hirobust.b"}
    assert _imports("hirobust.b", tmp_path / "b.py", known) == {"hirobust.a"}


def test_no_module_is_over_400_lines():
    long = {str(f.relative_to(PKG)): n for f in PKG.rglob("*.py") if (n := len(f.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_the_command_line_maps_only_hirobust_errors_to_exit_2(capsys):
    """A HirobustError is one line, exit 2; any other exception (a bug) propagates with its traceback."""
    from hirobust.app import cli
    from hirobust.errors import ConfigError

    def user_error(args):
        raise ConfigError("bad value x=1; use x=2")

    def bug(args):
        raise ValueError("internal invariant broken")

    old = dict(cli.COMMANDS)
    try:
        cli.COMMANDS["compare"] = user_error
        assert cli.main(["compare", "somewhere"]) == 2
        err = capsys.readouterr().err.strip()
        assert err == "hirobust compare: error: bad value x=1; use x=2"
        cli.COMMANDS["compare"] = bug
        with pytest.raises(ValueError, match="internal invariant"):
            cli.main(["compare", "somewhere"])
    finally:
        cli.COMMANDS.clear()
        cli.COMMANDS.update(old)
