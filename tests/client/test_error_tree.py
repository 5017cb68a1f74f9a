"""One error module: every exception class lives in ``_errors.py``, in its docstring's tree, and
is a ``HyberError``; no code raises a bare ``ValueError`` or ``TypeError``."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path

import pytest

import hyber_async
from hyber_async import _errors

PACKAGE = Path(hyber_async.__file__).parent
MODULES = sorted(
    info.name for info in pkgutil.walk_packages(hyber_async.__path__, prefix="hyber_async.")
)


def exception_classes() -> dict[str, type[BaseException]]:
    """Every exception class defined anywhere in the package, by qualified name."""
    found: dict[str, type[BaseException]] = {}
    for name in MODULES:
        module = importlib.import_module(name)
        for value in vars(module).values():
            if (
                inspect.isclass(value)
                and issubclass(value, BaseException)
                and value.__module__.startswith("hyber_async")
            ):
                found[f"{value.__module__}.{value.__qualname__}"] = value
    return found


CLASSES = exception_classes()


def test_the_walk_finds_the_errors_of_every_layer() -> None:
    """The walk sees the core's, the journal's, the poller's and the CLI's errors."""
    names = {cls.__name__ for cls in CLASSES.values()}
    assert {"HyberError", "JournalWriteError", "PollDeadlineError", "SourceError"} <= names
    assert {"UsageError", "BodyTooLargeError", "InvalidValueError"} <= names


@pytest.mark.parametrize("qualname", sorted(CLASSES))
def test_every_exception_class_is_in_the_error_module_and_its_tree(qualname: str) -> None:
    """Defined in ``_errors``, drawn in its docstring's tree, a ``HyberError``."""
    cls = CLASSES[qualname]
    assert cls.__module__ == "hyber_async._errors"
    assert issubclass(cls, _errors.HyberError)
    tree = (_errors.__doc__ or "").split("::", 1)[1].split("\n\n")[1]
    assert f" {cls.__name__} " in f" {tree} ".replace("\n", " ")


def test_the_tree_names_only_classes_of_the_module() -> None:
    """Every name drawn in the tree is an exception class of ``_errors``."""
    tree = (_errors.__doc__ or "").split("::", 1)[1].split("\n\n")[1]
    drawn = [line.split("── ", 1)[-1] for line in tree.splitlines() if "── " in line]
    for name in ["HyberError"] + [entry.split(" ", 1)[0] for entry in drawn]:
        assert issubclass(getattr(_errors, name), _errors.HyberError), name


def test_the_errors_users_catch_are_exported() -> None:
    """Every public error but the command line's is exported by ``hyber_async``."""
    cli_only = {"SourceError", "UsageError", "BodyTooLargeError"}
    for name in _errors.__all__:
        value = getattr(_errors, name)
        if inspect.isclass(value) and issubclass(value, BaseException) and name not in cli_only:
            assert getattr(hyber_async, name) is value, name


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("hyber_async", "PollDeadlineError"),
        ("hyber_async.journal", "JournalError"),
        ("hyber_async.journal", "JournalLockedError"),
        ("hyber_async.journal", "JournalMismatchError"),
        ("hyber_async.journal", "JournalNotFoundError"),
        ("hyber_async.journal", "JournalWriteError"),
        ("hyber_async.cli._sources", "SourceError"),
        ("hyber_async.cli._common", "UsageError"),
    ],
)
def test_moved_errors_stay_importable_where_they_were(module: str, name: str) -> None:
    """A moved class is still importable from where it was exported."""
    assert getattr(importlib.import_module(module), name) is getattr(_errors, name)


def bare_raises(path: Path) -> list[str]:
    """``raise ValueError(...)`` / ``raise TypeError(...)`` (the builtins) in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Raise) and node.exc is not None:
            target = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            if isinstance(target, ast.Name) and target.id in ("ValueError", "TypeError"):
                found.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    return found


def test_no_code_raises_a_bare_value_or_type_error() -> None:
    """Argument errors are ``InvalidValueError`` / ``InvalidCallError``: ``HyberError`` is the
    root of every error, and ``except ValueError`` / ``except TypeError`` still catch them."""
    found = [hit for path in sorted(PACKAGE.rglob("*.py")) for hit in bare_raises(path)]
    assert found == []
    assert issubclass(_errors.InvalidValueError, ValueError)
    assert issubclass(_errors.InvalidCallError, TypeError)
    assert issubclass(_errors.WireTypeError, TypeError)
