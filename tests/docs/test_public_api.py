"""The public surface: ``__all__`` pinned, every name importable and documented, typed."""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import importlib.resources
import inspect
import itertools
import zipfile
from pathlib import Path
from typing import Any

import pytest

import hyber_async as hy

EXPECTED_ALL = [
    "DEFAULT_ANSWER_LIMITS",
    "DEFAULT_RETRY",
    "DEFAULT_TIMEOUTS",
    "MAX_ITEMS",
    "APIError",
    "AdvancedDeliveryReport",
    "AnswerLimits",
    "AuthenticationError",
    "BadRequestError",
    "BatchRequest",
    "BroadcastRequest",
    "Campaign",
    "CampaignSummary",
    "Channel",
    "ChannelOptions",
    "ChannelTtl",
    "ChunkRecord",
    "ChunkState",
    "Counts",
    "DeliveryReport",
    "DeliveryReportReceiver",
    "ErrorCode",
    "HyberClient",
    "HyberError",
    "HyberStatus",
    "InvalidCallError",
    "InvalidItem",
    "InvalidValueError",
    "JobAccepted",
    "JobPoller",
    "JobRef",
    "JobStatus",
    "JobUpdate",
    "JournalError",
    "JournalLockedError",
    "JournalMismatchError",
    "JournalNotFoundError",
    "JournalOpenError",
    "JournalWriteError",
    "Message",
    "MessageAccepted",
    "MessageRequest",
    "MessageResult",
    "MessageStatus",
    "NotFoundError",
    "NotSentError",
    "Outcome",
    "OutcomeUnknownError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "PollDeadlineError",
    "Problem",
    "Progress",
    "PushOptions",
    "RateLimitError",
    "Recipient",
    "RecipientOutcome",
    "ReportParseError",
    "RequestBody",
    "RetryPolicy",
    "SendReport",
    "ServerError",
    "SimpleDeliveryReport",
    "SmsOptions",
    "Status",
    "StatusAnswer",
    "SyncResult",
    "Throttling",
    "Timeouts",
    "UnexpectedResponseError",
    "UserReply",
    "UserReplyReceiver",
    "ValidationError",
    "ViberOptions",
    "WhatsAppOptions",
    "WireTypeError",
    "__version__",
    "converter",
    "parse_delivery_reports",
    "parse_user_replies",
    "poll_jobs",
    "wait_for_jobs",
]
"""The public names, in the isort-style order ruff uses (CONSTANTS, Classes, functions)."""

DOCUMENTED = [name for name in EXPECTED_ALL if name != "__version__"]
PACKAGE = Path(hy.__file__).parent


def isort_key(name: str) -> tuple[int, str]:
    """Order of ``__all__``: SCREAMING_CASE, then CamelCase, then everything else."""
    if name.isupper() and len(name) > 1:
        return 0, name
    if name[:1].isupper():
        return 1, name
    return 2, name


def attribute_docstrings(module: Any) -> dict[str, str]:
    """Docstrings written under module-level assignments of ``module`` (PEP 257 style)."""
    body = ast.parse(inspect.getsource(module)).body
    docs: dict[str, str] = {}
    for statement, following in itertools.pairwise(body):
        if not (
            isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            continue
        if isinstance(statement, ast.Assign):
            targets = statement.targets
        elif isinstance(statement, ast.AnnAssign):
            targets = [statement.target]
        else:
            continue
        for target in targets:
            if isinstance(target, ast.Name):
                docs[target.id] = following.value.value
    return docs


def defining_module(name: str) -> Any:
    """The private module that ``hyber_async/__init__.py`` imports ``name`` from."""
    tree = ast.parse(inspect.getsource(hy))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and any(a.name == name for a in node.names):
            return importlib.import_module(f"hyber_async.{node.module}")
    raise LookupError(name)


def test_all_is_pinned() -> None:
    """__all__ is exactly the reviewed list: adding or removing a name is deliberate."""
    assert hy.__all__ == EXPECTED_ALL


def test_all_is_sorted_and_unique() -> None:
    """__all__ is in isort-style order without duplicates."""
    assert hy.__all__ == sorted(set(hy.__all__), key=isort_key)


def test_star_import_gives_all() -> None:
    """``from hyber_async import *`` binds exactly the names of __all__."""
    namespace: dict[str, Any] = {}
    exec("from hyber_async import *", namespace)
    assert sorted(set(namespace) - {"__builtins__"}) == sorted(EXPECTED_ALL)


@pytest.mark.parametrize("name", EXPECTED_ALL)
def test_name_is_importable(name: str) -> None:
    """Each public name can be imported from the package."""
    module = importlib.import_module("hyber_async")
    assert getattr(module, name) is not None


@pytest.mark.parametrize("name", DOCUMENTED)
def test_name_has_a_docstring(name: str) -> None:
    """Classes and functions carry their own docstring; constants one under their assignment."""
    obj = getattr(hy, name)
    if inspect.isclass(obj):
        doc = vars(obj).get("__doc__")
    elif inspect.isfunction(obj):
        doc = obj.__doc__
    else:
        doc = attribute_docstrings(defining_module(name)).get(name)
    assert doc
    assert doc.strip()


@pytest.mark.parametrize("name", [n for n in DOCUMENTED if inspect.isclass(getattr(hy, n))])
def test_public_methods_have_docstrings(name: str) -> None:
    """Every public method and property of a public class is documented."""
    undocumented = []
    for attribute, value in vars(getattr(hy, name)).items():
        if attribute.startswith("_"):
            continue
        function = value.fget if isinstance(value, property) else value
        function = getattr(function, "__func__", function)
        if inspect.isfunction(function) and not function.__doc__:
            undocumented.append(attribute)
    assert undocumented == []


def test_version_matches_the_distribution() -> None:
    """__version__ is the installed distribution's version."""
    assert hy.__version__ == importlib.metadata.version("hyber-async")


def test_py_typed_is_in_the_package() -> None:
    """The PEP 561 marker is a file of the package."""
    assert importlib.resources.files("hyber_async").joinpath("py.typed").is_file()


def test_wheel_ships_py_typed(tmp_path: Path) -> None:
    """The built wheel contains hyber_async/py.typed."""
    wheel_builder = pytest.importorskip("hatchling.builders.wheel")
    builder = wheel_builder.WheelBuilder(str(PACKAGE.parent))
    (wheel,) = builder.build(directory=str(tmp_path), versions=["standard"])
    with zipfile.ZipFile(wheel) as archive:
        assert "hyber_async/py.typed" in archive.namelist()


PUBLIC_MODULES = ["hyber_async.journal", "hyber_async.testing", "hyber_async.emulator"]
"""The public modules beside the package root, whose names are documented too."""
MODULE_NAMES = [
    (module, name) for module in PUBLIC_MODULES for name in importlib.import_module(module).__all__
]


@pytest.mark.parametrize(("module", "name"), MODULE_NAMES)
def test_public_module_names_are_documented(module: str, name: str) -> None:
    """Every name of a public module's __all__ is documented, its public methods too."""
    obj = getattr(importlib.import_module(module), name)
    if inspect.isclass(obj) or inspect.isfunction(obj):
        assert (obj.__doc__ or "").strip()
    if inspect.isclass(obj):
        for attribute, value in vars(obj).items():
            function = value.fget if isinstance(value, property) else value
            function = getattr(function, "__func__", function)
            if not attribute.startswith("_") and inspect.isfunction(function):
                assert (function.__doc__ or "").strip(), f"{name}.{attribute}"
