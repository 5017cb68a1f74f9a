"""Lazy chunking of sync and async iterables: items are pulled only when a chunk is wanted."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterable, Iterable, Iterator, Sequence
from itertools import islice
from typing import Final, TypeVar

from anyio.lowlevel import checkpoint

from ._errors import InvalidValueError

__all__ = ["READ_SLICE", "chunked"]

T = TypeVar("T")

READ_SLICE: Final = 2_500
"""Items read from an iterator (whose own code runs in the caller's event loop) between two
checkpoints, so that a slow generator does not hold the loop for a whole chunk."""


def chunked(items: Iterable[T] | AsyncIterable[T], size: int) -> AsyncGenerator[list[T], None]:
    """Lists of at most ``size`` items, reading the input only as chunks are asked for.

    A ``Sequence`` is sliced; any other iterable is consumed with ``islice``, ``READ_SLICE``
    items at a time with a checkpoint before each; an async iterable is awaited item by item,
    with a checkpoint every ``READ_SLICE`` items (an async generator that never awaits would
    otherwise hold the loop). Empty input yields nothing. The caller closes the generator.
    """
    if size < 1:
        raise InvalidValueError(f"chunk size must be at least 1, got {size}")
    if isinstance(items, AsyncIterable):
        return _async_chunks(items, size)
    if isinstance(items, Sequence):
        return _sequence_chunks(items, size)
    return _iterator_chunks(iter(items), size)


async def _async_chunks(items: AsyncIterable[T], size: int) -> AsyncGenerator[list[T], None]:
    chunk: list[T] = []
    async for item in items:
        chunk.append(item)
        if len(chunk) % READ_SLICE == 0:
            await checkpoint()
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


async def _sequence_chunks(items: Sequence[T], size: int) -> AsyncGenerator[list[T], None]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


async def _iterator_chunks(iterator: Iterator[T], size: int) -> AsyncGenerator[list[T], None]:
    while True:
        chunk: list[T] = []
        while len(chunk) < size:
            await checkpoint()
            read = len(chunk)
            chunk += islice(iterator, min(READ_SLICE, size - read))
            if len(chunk) == read:  # the input is exhausted
                break
        if chunk:
            yield chunk
        if len(chunk) < size:
            return
