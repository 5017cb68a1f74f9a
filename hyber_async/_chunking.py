"""Lazy reading of sync and async iterables in slices that respect chunk edges: items are
pulled only when the next slice is wanted."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterable, Iterable, Iterator, Sequence
from itertools import islice
from typing import TypeVar

from anyio.lowlevel import checkpoint

from ._errors import InvalidValueError

__all__ = ["sliced"]

T = TypeVar("T")


def sliced(
    items: Iterable[T] | AsyncIterable[T], chunk_size: int, slice_size: int
) -> AsyncGenerator[list[T], None]:
    """Lists of at most ``slice_size`` items, in input order, none of which crosses a chunk's
    edge (a multiple of ``chunk_size`` items from the start); the input is read only as slices
    are asked for.

    A ``Sequence`` is sliced; any other iterable is consumed with ``islice``, a checkpoint
    before each slice; an async iterable is awaited item by item, with a checkpoint before each
    slice is handed on (an async generator that never awaits would otherwise hold the loop).
    Empty input yields nothing. The caller closes the generator.
    """
    if chunk_size < 1 or slice_size < 1:
        message = f"chunk and slice sizes must be at least 1, got {chunk_size} and {slice_size}"
        raise InvalidValueError(message)
    if isinstance(items, AsyncIterable):
        return _async_slices(items, chunk_size, slice_size)
    if isinstance(items, Sequence):
        return _sequence_slices(items, chunk_size, slice_size)
    return _iterator_slices(iter(items), chunk_size, slice_size)


async def _async_slices(
    items: AsyncIterable[T], chunk_size: int, slice_size: int
) -> AsyncGenerator[list[T], None]:
    part: list[T] = []
    wanted, room = min(slice_size, chunk_size), chunk_size
    async for item in items:
        part.append(item)
        if len(part) == wanted:
            await checkpoint()
            yield part
            room = room - wanted or chunk_size
            part, wanted = [], min(slice_size, room)
    if part:
        yield part


async def _sequence_slices(
    items: Sequence[T], chunk_size: int, slice_size: int
) -> AsyncGenerator[list[T], None]:
    for chunk_start in range(0, len(items), chunk_size):
        chunk_end = min(chunk_start + chunk_size, len(items))
        for start in range(chunk_start, chunk_end, slice_size):
            yield list(items[start : min(start + slice_size, chunk_end)])


async def _iterator_slices(
    iterator: Iterator[T], chunk_size: int, slice_size: int
) -> AsyncGenerator[list[T], None]:
    room = chunk_size
    while True:
        await checkpoint()
        wanted = min(slice_size, room)
        part = list(islice(iterator, wanted))
        if part:
            yield part
        if len(part) < wanted:  # the input is exhausted
            return
        room = room - wanted or chunk_size
