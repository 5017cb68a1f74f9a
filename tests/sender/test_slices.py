"""Issue 14: a send reads, checks and encodes its input a slice at a time and drops each slice's
items once encoded, so a chunk's items are never alive at once; the paths that need earlier
slices again (an abort, a slice that cannot be encoded) still give every item its outcome."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any, ClassVar

import anyio
import pytest
from _support import rows
from test_loop_friendly import InstantServer
from test_sender import CAMPAIGN, assert_partition

import hyber_async as hy
from hyber_async import _sender
from hyber_async._chunking import sliced
from hyber_async._codec import Envelope
from hyber_async._sender import SLICE, SendOptions, send_in_chunks
from hyber_async._validation import Kind

pytestmark = pytest.mark.anyio


async def _slices(items: Any, chunk_size: int, slice_size: int) -> list[list[int]]:
    found = []
    async for part in sliced(items, chunk_size, slice_size):
        found.append(part)
    return found


async def _async_numbers(n: int) -> AsyncIterator[int]:
    for i in range(n):
        yield i


@pytest.mark.parametrize("source", ["list", "iterator", "async"])
@pytest.mark.parametrize(
    ("n", "chunk_size", "slice_size"),
    [(0, 5, 2), (1, 5, 2), (10, 5, 2), (11, 5, 2), (23, 7, 3), (23, 3, 7), (9, 9, 9), (12, 4, 4)],
)
async def test_slices_cover_the_input_in_order_and_never_cross_a_chunk_edge(
    source: str, n: int, chunk_size: int, slice_size: int
) -> None:
    """Every item once, in order; no slice longer than asked; each slice in one chunk."""
    items: Any = {
        "list": list(range(n)),
        "iterator": iter(range(n)),
        "async": _async_numbers(n),
    }[source]
    found = await _slices(items, chunk_size, slice_size)
    assert [i for part in found for i in part] == list(range(n))
    assert all(0 < len(part) <= slice_size for part in found)
    assert all(part[0] // chunk_size == part[-1] // chunk_size for part in found)


async def test_an_iterator_is_read_only_as_slices_are_asked_for() -> None:
    """Taking one slice pulls that slice's items from the input, no more."""
    pulled = 0

    def numbers() -> Iterator[int]:
        nonlocal pulled
        for i in range(100):
            pulled += 1
            yield i

    slices = sliced(numbers(), 10, 4)
    assert await slices.__anext__() == [0, 1, 2, 3]
    assert pulled == 4
    await slices.aclose()


@pytest.mark.parametrize("sizes", [(0, 1), (1, 0)])
async def test_slice_sizes_below_one_are_refused(sizes: tuple[int, int]) -> None:
    with pytest.raises(hy.InvalidValueError):
        sliced([1], *sizes)


class Row(dict[str, Any]):
    """A recipient that counts how many of its kind are alive (orjson encodes it as a dict)."""

    alive: ClassVar[int] = 0
    peak: ClassVar[int] = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        Row.alive += 1
        Row.peak = max(Row.peak, Row.alive)

    def __del__(self) -> None:
        Row.alive -= 1


async def test_a_chunks_items_are_never_alive_at_once() -> None:
    """Sending chunks of 8 slices from a generator, at most about two slices of its items are
    alive at any time (before: a whole chunk and the next one's as it was read)."""
    Row.alive = Row.peak = 0
    chunk_size = 8 * SLICE
    server = InstantServer()
    envelope = Envelope(CAMPAIGN, Kind.BROADCAST)
    source = (Row(row) for row in rows(3 * chunk_size))
    report = await send_in_chunks(server, envelope, source, SendOptions(chunk_size=chunk_size))
    assert report.accepted == 3 * chunk_size
    assert len(server.bodies) == 3
    assert Row.peak <= 2 * SLICE + 1


async def test_an_abort_in_a_later_slice_settles_every_item_of_its_chunk() -> None:
    """The third slice of the second chunk holds an invalid item: the earlier slices' items
    (already encoded, their objects gone) are NOT_SENT with their own phone and extra_id, the
    bad one names its field, nothing of the chunk is sent and nothing after its slice read."""
    chunk_size = 4 * SLICE
    bad = chunk_size + 2 * SLICE + 5
    items = list(rows(3 * chunk_size))
    items[bad] = {**items[bad], "phone_number": "not a number"}
    server = InstantServer()
    envelope = Envelope(CAMPAIGN, Kind.BROADCAST)
    options = SendOptions(chunk_size=chunk_size, on_invalid="abort")
    report = await send_in_chunks(server, envelope, items, options)
    assert len(server.bodies) == 1
    assert report.read == chunk_size + 3 * SLICE
    assert report.accepted == chunk_size
    assert_partition(report, report.read)
    assert report.aborted is not None
    assert f"item {bad}" in report.aborted
    failures = {f.index: f for f in report.failures()}
    assert sorted(failures) == list(range(chunk_size, report.read))
    assert f"recipients[{bad}].phone_number" in failures[bad].reason
    for index in (chunk_size, chunk_size + SLICE + 1, bad - 1, bad + 1):
        failure = failures[index]
        assert (failure.phone_number, failure.extra_id) == (380_500_000_000 + index, f"r-{index}")
        assert failure.reason == f"not sent: the send was aborted at invalid item {bad}"
        assert not failure.sent


async def test_a_slice_that_cannot_be_encoded_settles_its_whole_chunk(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Should the second slice of a chunk fail to encode (the rule set bypassed for ``name``
    here), every item of that chunk is NOT_SENT: an invalid one with its own reason, the others,
    before and after the bad slice, with the encoding's, each with its phone and extra_id; the
    other chunks go."""
    check_items = _sender.check_items

    def without_name_rules(*args: Any, **kwargs: Any) -> list[hy.Problem]:
        return [p for p in check_items(*args, **kwargs) if "name" not in p.field]

    monkeypatch.setattr(_sender, "check_items", without_name_rules)
    chunk_size = 3 * SLICE
    unencodable, invalid = chunk_size + SLICE + 7, chunk_size + 3
    items = list(rows(3 * chunk_size))
    items[unencodable] = {**items[unencodable], "name": {"a set"}}
    items[invalid] = {**items[invalid], "phone_number": 12}
    server = InstantServer()
    envelope = Envelope(CAMPAIGN, Kind.BROADCAST)
    report = await send_in_chunks(server, envelope, items, SendOptions(chunk_size=chunk_size))
    assert len(server.bodies) == 2
    assert report.accepted == 2 * chunk_size
    assert_partition(report, 3 * chunk_size)
    assert [c.state for c in report.chunks] == [
        hy.ChunkState.ACCEPTED,
        hy.ChunkState.NOT_SENT,
        hy.ChunkState.ACCEPTED,
    ]
    failures = {f.index: f for f in report.failures()}
    assert sorted(failures) == list(range(chunk_size, 2 * chunk_size))
    assert "phone_number" in failures[invalid].reason
    for index in (chunk_size, invalid + 1, unencodable - 1, unencodable, 2 * chunk_size - 1):
        failure = failures[index]
        assert (failure.phone_number, failure.extra_id) == (380_500_000_000 + index, f"r-{index}")
        assert "cannot be encoded as JSON" in failure.reason


async def test_a_stop_in_the_middle_of_a_chunk_sends_nothing_of_it() -> None:
    """The input raising in a chunk's third slice: the chunks before it are sent and settled,
    nothing of the interrupted chunk is sent, and the input's error is raised."""

    class Broken(Exception):
        pass

    def source() -> Iterator[dict[str, Any]]:
        yield from rows(2 * SLICE * 2 + SLICE * 2 + 3)
        raise Broken

    server = InstantServer()
    envelope = Envelope(CAMPAIGN, Kind.BROADCAST)
    report = hy.SendReport()
    options = SendOptions(chunk_size=4 * SLICE, report=report)
    with pytest.raises(Broken):
        await send_in_chunks(server, envelope, source(), options)
    assert len(server.bodies) == 1
    assert report.read == report.accepted == 4 * SLICE
    assert not report.complete


async def test_a_cancelled_send_between_slices_records_nothing_half_prepared() -> None:
    """Cancelling while a chunk's slices are being prepared (here: once the first chunk is
    answered) leaves every item recorded with one outcome, and no chunk recorded in part."""
    server = InstantServer()
    envelope = Envelope(CAMPAIGN, Kind.BROADCAST)
    report = hy.SendReport()
    with anyio.CancelScope() as scope:
        options = SendOptions(
            chunk_size=4 * SLICE, report=report, on_progress=lambda _: scope.cancel()
        )
        await send_in_chunks(server, envelope, rows(40 * SLICE), options)
    assert scope.cancel_called
    assert 4 * SLICE <= report.read < 40 * SLICE
    assert report.read % (4 * SLICE) == 0
    assert_partition(report, report.read)
