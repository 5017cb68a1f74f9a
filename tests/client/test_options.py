"""The options objects of a streaming send and of polling: frozen, checked once, at building."""

from __future__ import annotations

from typing import Any

import attrs
import pytest

import hyber_async as hy
from hyber_async._poller import PollOptions
from hyber_async._sender import SendOptions


@pytest.mark.parametrize(
    ("settings", "error", "match"),
    [
        ({"chunk_size": 0}, ValueError, "chunk_size"),
        ({"chunk_size": hy.MAX_ITEMS + 1}, ValueError, "chunk_size"),
        ({"concurrency": 0}, ValueError, "concurrency"),
        ({"max_rate": 0.0}, hy.ValidationError, "max_rate"),
        ({"max_rate": float("nan")}, hy.ValidationError, "max_rate"),
        ({"on_invalid": "ignore"}, ValueError, "on_invalid"),
    ],
)
def test_bad_send_options_are_refused_when_built(
    settings: dict[str, Any], error: type[Exception], match: str
) -> None:
    """Each send option is checked where the options are built, naming the option."""
    with pytest.raises(error, match=match):
        SendOptions(**settings)


@pytest.mark.parametrize(
    ("chunk_size", "max_rate", "expected"),
    [(1000, None, 1000), (1000, 1000.0, 100), (50, 1000.0, 50), (1000, 0.5, 1)],
)
def test_the_request_size_holds_the_rate(
    chunk_size: int, max_rate: float | None, expected: int
) -> None:
    """A request carries at most a tenth of a second's ``max_rate``, at least one item."""
    assert SendOptions(chunk_size=chunk_size, max_rate=max_rate).request_size == expected


@pytest.mark.parametrize(
    "settings",
    [{"interval": 0}, {"interval": 5, "max_interval": 1}, {"deadline": 0}, {"max_concurrency": 0}],
)
def test_bad_poll_options_are_refused_when_built(settings: dict[str, Any]) -> None:
    """Each poll option is checked where the options are built."""
    with pytest.raises(ValueError, match=">"):
        PollOptions(**settings)


@pytest.mark.parametrize(
    ("options", "field"), [(SendOptions(), "max_rate"), (PollOptions(), "interval")]
)
def test_options_are_frozen(options: object, field: str) -> None:
    """Once checked, options cannot change on their way in."""
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        setattr(options, field, 0.0)
