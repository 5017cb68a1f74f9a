"""The import graph of ``hyber_async``, read from the source (every import, those made only for
type checking (under ``TYPE_CHECKING``) or inside functions included): no cycle, and lower layers
never import higher ones.

Layers, lowest first: the core (``hyber_async`` and its top-level modules), ``emulator``,
``testing``, ``loadtest``, ``cli``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import hyber_async

PACKAGE = Path(hyber_async.__file__).parent
LAYERS = ["core", "emulator", "testing", "loadtest", "cli"]
"""Lowest first: a module imports from its own layer or a lower one."""


def modules() -> dict[str, tuple[Path, bool]]:
    """Every module of the package by dotted name, with its file and whether it is a package."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        found[".".join(parts)] = (path, is_package)
    return found


def import_graph() -> dict[str, set[str]]:
    """Each module's imports of the package's own modules, wherever in the file they are."""
    known = modules()
    graph: dict[str, set[str]] = {}
    for name, (path, is_package) in known.items():
        package = name if is_package else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                    base = f"{anchor}.{base}" if base else anchor
                for alias in node.names:  # ``from . import x`` imports the module ``x``
                    submodule = f"{base}.{alias.name}"
                    targets.add(submodule if submodule in known else base)
        graph[name] = {t for t in targets if t in known and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle through each module that is part of one (depth-first search)."""
    found: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                found.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


GRAPH = import_graph()


def layer(module: str) -> str:
    """The layer of a module: the subpackage it is in, or ``core``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else "core"


def test_the_graph_is_read() -> None:
    """The graph sees the imports it must judge (the checks themselves are not vacuous)."""
    assert "hyber_async._transport" in GRAPH["hyber_async._client"]
    assert "hyber_async._sender" in GRAPH["hyber_async._reconcile"]
    assert "hyber_async.emulator" in GRAPH["hyber_async.testing"]
    assert "hyber_async.cli._sources" in GRAPH["hyber_async.cli._send"]
    assert {layer(m) for m in GRAPH} == set(LAYERS)
    assert cycles({"a": {"b"}, "b": {"a"}}) == [["a", "b", "a"]]


def test_no_import_cycle() -> None:
    """No module imports, even for type checking only, one that imports it back."""
    assert cycles(GRAPH) == []


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_no_module_imports_a_higher_layer(module: str) -> None:
    """core < emulator < testing < loadtest < cli."""
    rank = LAYERS.index(layer(module))
    higher = sorted(t for t in GRAPH[module] if LAYERS.index(layer(t)) > rank)
    assert higher == []


@pytest.mark.parametrize(
    ("module", "allowed"),
    [
        ("hyber_async._errors", set()),
        ("hyber_async._models", {"hyber_async._errors"}),
        ("hyber_async._validation", {"hyber_async._errors", "hyber_async._models"}),
    ],
)
def test_the_domain_modules_sit_at_the_bottom_of_the_core(module: str, allowed: set[str]) -> None:
    """The errors, then the models (``Kind`` included), then the rule set: each imports only
    those below it."""
    assert GRAPH[module] <= allowed
