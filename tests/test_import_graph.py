"""latode's subpackages depend on each other in one direction only.

Every ``latode.*`` import in ``latode/`` counts — at module level, inside functions and
under ``if TYPE_CHECKING:`` — and so does a literal ``importlib.import_module("latode...")``:
an import deferred into a function still makes the two packages one unit that cannot be
understood, tested or changed apart (issue #23). Nodes are the subpackages
(``latode.estimators``, ``latode.tracking``, ...), each top-level module (``latode.cli``,
``latode.exceptions``, ...) and the package root ``latode`` (its ``__init__``), which a
``from latode import name`` of something that is not a submodule reaches.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "latode"


def module_name(path: Path) -> str:
    parts = ["latode", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def node_of(module: str) -> str:
    """``latode.estimators._base`` -> ``latode.estimators``; ``latode.cli`` stays itself."""
    return ".".join(module.split(".")[:2])


def is_module(name: str) -> bool:
    relative = Path(*name.split(".")[1:]) if "." in name else Path()
    return (PACKAGE / relative).is_dir() or (PACKAGE / relative).with_suffix(".py").is_file()


def imported_modules(path: Path) -> set[str]:
    """Every ``latode`` module ``path`` imports, wherever the import statement is."""
    this = module_name(path)
    package = this if path.name == "__init__.py" else this.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            # ``from latode import estimators`` imports the submodule; a name that is no
            # submodule (``from latode import __version__``) comes from ``source`` itself.
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                found.add(submodule if is_module(submodule) else source)
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(
                node.func, "id", None)) == "import_module" and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            found.add(node.args[0].value)
    return {name for name in found if name == "latode" or name.startswith("latode.")}


def import_graph() -> dict[str, dict[str, set[str]]]:
    """``graph[a][b]``: the modules of node ``a`` that import something of node ``b``."""
    graph: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for path in sorted(PACKAGE.rglob("*.py")):
        this = module_name(path)
        for imported in imported_modules(path):
            # A name imported from the root that is no submodule (``__version__``) is the
            # root's; any other module belongs to its subpackage or is its own node.
            target = node_of(imported) if is_module(imported) else "latode"
            if target != node_of(this):
                graph[node_of(this)][target].add(this)
    return graph


def find_cycle(graph: dict[str, dict[str, set[str]]]) -> list[str] | None:
    """One cycle of nodes (first node repeated at the end), or None."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, {})):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)) is not None:
                return cycle
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)) is not None:
            return cycle
    return None


def test_the_scanner_sees_function_level_and_relative_imports(tmp_path, monkeypatch):
    code = tmp_path / "latode"
    (code / "sub").mkdir(parents=True)
    (code / "__init__.py").write_text("")
    (code / "other.py").write_text("")
    (code / "sub" / "__init__.py").write_text("")
    (code / "sub" / "a.py").write_text(
        "def f():\n    from latode.other import g\n"
        "from . import b\nfrom .. import other\nfrom latode import __version__\n"
        "import importlib\nimportlib.import_module('latode.other')\n")
    (code / "sub" / "b.py").write_text("")
    monkeypatch.setattr(f"{__name__}.PACKAGE", code)
    assert imported_modules(code / "sub" / "a.py") == {
        "latode", "latode.other", "latode.sub.b"}
    graph = import_graph()
    assert {k: dict(v) for k, v in graph.items()} == {
        "latode.sub": {"latode.other": {"latode.sub.a"}, "latode": {"latode.sub.a"}}}


def test_find_cycle():
    assert find_cycle({"a": {"b": set()}, "b": {"c": set()}}) is None
    assert find_cycle({"a": {"b": set()}, "b": {"a": set()}}) == ["a", "b", "a"]


def test_no_import_cycle_between_subpackages():
    graph = import_graph()
    cycle = find_cycle(graph)
    if cycle is not None:
        where = "; ".join(f"{a} -> {b} in {sorted(graph[a][b])}"
                          for a, b in zip(cycle, cycle[1:]))
        pytest.fail(f"import cycle {' -> '.join(cycle)} ({where})")


def test_estimators_do_not_import_tracking():
    # Tracking is a client of the estimators (it registers its fit hook with them).
    assert "latode.tracking" not in import_graph().get("latode.estimators", {})
