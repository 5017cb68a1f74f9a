"""The import graph, read from the source (every import, ``TYPE_CHECKING`` and function-level
ones included): lower layers never import higher ones, and the modules listed below sit in no
import cycle.

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

CYCLE_FREE = {
    "hyber_async._chunking",
    "hyber_async._codec",
    "hyber_async._config",
    "hyber_async._errors",
    "hyber_async._models",
    "hyber_async._reports",
    "hyber_async._validation",
    "hyber_async.journal",
    "hyber_async.testing",
}
"""Modules checked to be in no import cycle, besides every module of ``emulator`` and ``cli``.
The client and its engines (``_client``, ``_sender``, ``_poller``, ``_reconcile``) still
import each other under ``TYPE_CHECKING``; they join this set once they no longer do."""


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def read_graph() -> dict[str, set[str]]:
    """Each module of the package and the modules of the package it imports."""
    trees = {module_name(p): (p, ast.parse(p.read_text("utf-8"))) for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in trees}
    for name, (path, tree) in trees.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = package.split(".")
                base = base[: len(base) - node.level + 1] if node.level else []
                source = ".".join([*base, *([node.module] if node.module else [])])
                # ``from package import module`` imports the module, anything else the source
                targets = [
                    f"{source}.{a.name}" if f"{source}.{a.name}" in trees else source
                    for a in node.names
                ]
            else:
                continue
            graph[name] |= {t for t in targets if t in trees and t != name}
    return graph


GRAPH = read_graph()


def layer(module: str) -> str:
    """The layer of a module: the subpackage it is in, or ``core``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else "core"


def test_the_graph_is_read() -> None:
    """The reading finds relative, absolute and ``TYPE_CHECKING`` imports."""
    assert "hyber_async._errors" in GRAPH["hyber_async._models"]
    assert "hyber_async.emulator" in GRAPH["hyber_async.testing"]
    assert "hyber_async._client" in GRAPH["hyber_async._sender"]  # under TYPE_CHECKING
    assert "hyber_async.cli._sources" in GRAPH["hyber_async.cli._send"]
    assert {layer(m) for m in GRAPH} >= {"core", "emulator", "testing", "cli"}


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_no_module_imports_a_higher_layer(module: str) -> None:
    """core < emulator < testing < loadtest < cli."""
    rank = LAYERS.index(layer(module))
    higher = sorted(t for t in GRAPH[module] if LAYERS.index(layer(t)) > rank)
    assert higher == []


def cycle_of(start: str) -> list[str]:
    """The modules of an import cycle through ``start`` (a path back to it), or ``[]``."""
    paths = {target: [start, target] for target in GRAPH[start]}
    todo = list(paths)
    while todo:
        module = todo.pop()
        if module == start:
            return paths[module]
        for target in GRAPH[module]:
            if target not in paths:
                paths[target] = [*paths[module], target]
                todo.append(target)
    return []


CHECKED = sorted(
    m for m in GRAPH if m in CYCLE_FREE or layer(m) in ("emulator", "cli") or m == "hyber_async"
)


@pytest.mark.parametrize("module", CHECKED)
def test_no_import_cycle_through(module: str) -> None:
    """Not even under ``TYPE_CHECKING``."""
    assert cycle_of(module) == []


def test_the_cycle_check_finds_a_cycle() -> None:
    """The client and the sender still import each other (``TYPE_CHECKING``): found."""
    assert cycle_of("hyber_async._sender")[-1] == "hyber_async._sender"


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
