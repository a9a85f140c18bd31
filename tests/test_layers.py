"""The layer contracts and the import graph, read from the source (an import-linter equivalent, in the suite).

Contracts (any import, lazy or not, including type-checking ones): the core never imports the front ends or
Textual; `core/coreml` never imports `core/runtimes` (runtimes use conversion, not the reverse); the app's widgets
and screens never import its engine; the engine (run in a child process) never imports Textual. And no import
cycle anywhere in `rnnt_tui`, counting every import (top-level, lazy inside a function, under TYPE_CHECKING):
neither between modules nor between packages (a package's own modules are one node, each subpackage another;
`__main__` is an entry point above everything and is left out).
"""

from __future__ import annotations

import ast
from pathlib import Path

import rnnt_tui

ROOT = Path(rnnt_tui.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> tuple[set[str], set[str]]:
    """(every module imported anywhere in the file, those imported at the top level outside TYPE_CHECKING)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    everything: set[str] = set()
    top: set[str] = set()
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]

    def names(node: ast.AST) -> list[str]:
        if isinstance(node, ast.Import):
            return [a.name for a in node.names]
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            return [f"{base}.{a.name}" for a in node.names] + [base]
        return []

    for node in ast.walk(tree):
        everything.update(names(node))

    def visit(body: list[ast.stmt]) -> None:
        for stmt in body:
            if isinstance(stmt, ast.If) and "TYPE_CHECKING" in ast.unparse(stmt.test):
                continue
            if isinstance(stmt, ast.Import | ast.ImportFrom):
                top.update(names(stmt))
            elif isinstance(stmt, ast.If | ast.Try):
                visit(stmt.body)
                visit(getattr(stmt, "orelse", []))

    visit(tree.body)
    return everything, top


MODULES = {_module_name(p): p for p in ROOT.rglob("*.py")}
GRAPH = {name: _imports(path) for name, path in MODULES.items()}


def _own(targets: set[str]) -> set[str]:
    """The rnnt_tui modules among imported names (`pkg.mod.attr` counts as `pkg.mod`)."""
    found = set()
    for target in targets:
        while target and target not in MODULES:
            target = target.rpartition(".")[0]
        if target:
            found.add(target)
    return found


def _violations(source_prefix: str, forbidden: tuple[str, ...]) -> list[str]:
    return [f"{name} imports {target}" for name, (everything, _) in GRAPH.items()
            if name == source_prefix or name.startswith(source_prefix + ".")
            for target in sorted(everything) if any(target == f or target.startswith(f + ".") for f in forbidden)]


def test_the_graph_is_read() -> None:
    assert len(GRAPH) > 60 and "rnnt_tui.core.pipeline.pipeline" in GRAPH


def test_core_never_imports_the_front_ends_or_textual() -> None:
    assert _violations("rnnt_tui.core", ("rnnt_tui.app", "rnnt_tui.cli", "textual")) == []


def test_coreml_conversion_does_not_import_the_runtimes() -> None:
    assert _violations("rnnt_tui.core.coreml", ("rnnt_tui.core.runtimes",)) == []


def test_widgets_and_screens_never_import_the_engine() -> None:
    engine = ("rnnt_tui.app.engine", "rnnt_tui.app.engine_process", "rnnt_tui.app.engine_child")
    assert _violations("rnnt_tui.app.widgets", engine) + _violations("rnnt_tui.app.screens", engine) == []


def test_the_engine_process_never_imports_textual() -> None:
    assert _violations("rnnt_tui.app.engine", ("textual",)) == []
    assert _violations("rnnt_tui.app.engine_process", ("textual", "rnnt_tui.app.messages")) == []
    assert _violations("rnnt_tui.app.engine_child", ("textual", "rnnt_tui.app.messages")) == []


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every cycle a depth-first walk meets (empty: the graph is acyclic)."""
    cycles: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def walk(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt.startswith(node + "."):
                continue  # a package importing its own submodule
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt):], nxt])
            elif nxt not in state:
                walk(nxt)
        stack.pop()
        state[node] = 2

    for name in sorted(edges):
        if name not in state:
            walk(name)
    return cycles


def _module_edges() -> dict[str, set[str]]:
    """Module -> the rnnt_tui modules it imports anywhere (lazy and TYPE_CHECKING imports included)."""
    return {name: {t for t in _own(everything) - {name} if not t.startswith(name + ".")}
            for name, (everything, _) in GRAPH.items()}


def _package_of(module: str) -> str:
    return module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]


#: package cycles that are another engineer's to remove (the app's split moves `app/format` and `app/choices`
#: below its widgets and screens): listed so every other package cycle fails, and deleted once they are gone
APP_SPLIT_PENDING = {frozenset({"rnnt_tui.app", "rnnt_tui.app.widgets"}),
                     frozenset({"rnnt_tui.app", "rnnt_tui.app.screens"})}


def test_no_import_cycle_between_modules() -> None:
    assert _cycles(_module_edges()) == []


def _package_edges(module_edges: dict[str, set[str]]) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for name, targets in module_edges.items():
        if name.endswith(".__main__"):
            continue
        source = _package_of(name)
        for target in targets:
            other = _package_of(target)
            if other != source and frozenset({source, other}) not in APP_SPLIT_PENDING:
                edges.setdefault(source, set()).add(other)
    return edges


def test_no_import_cycle_between_packages() -> None:
    edges = _package_edges(_module_edges())
    assert "rnnt_tui.core.pipeline" in edges and "rnnt_tui.core.bundle" in edges
    assert _cycles(edges) == []


def test_the_cycle_checks_have_teeth() -> None:
    """A lazy import back is found: the pipeline opening a recording itself (as it once did, inside a function)
    closes the pipeline ⇄ bundle cycle again."""
    assert _cycles({"a.x": {"b.y"}, "b.y": {"a.x"}}) == [["a.x", "b.y", "a.x"]]
    edges = _module_edges()
    edges["rnnt_tui.core.pipeline.pipeline"] = {*edges["rnnt_tui.core.pipeline.pipeline"],
                                                "rnnt_tui.core.bundle.replay"}
    cycles = _cycles(_package_edges(edges))
    assert any({"rnnt_tui.core.pipeline", "rnnt_tui.core.bundle"} <= set(c) for c in cycles), cycles
