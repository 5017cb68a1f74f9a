"""Lazy chunking of sync and async iterables: items are pulled only when a chunk is wanted."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterable, Iterable, Sequence
from itertools import islice
from typing import TypeVar

from ._errors import InvalidValueError

__all__ = ["chunked"]

T = TypeVar("T")


async def chunked(
    items: Iterable[T] | AsyncIterable[T], size: int
) -> AsyncGenerator[list[T], None]:
    """Yield lists of at most ``size`` items, reading the input only as chunks are asked for.

    A ``Sequence`` is sliced; any other iterable is consumed with ``islice``; an async iterable
    is awaited item by item. Empty input yields nothing.
    """
    if size < 1:
        raise InvalidValueError(f"chunk size must be at least 1, got {size}")
    if isinstance(items, AsyncIterable):
        chunk: list[T] = []
        async for item in items:
            chunk.append(item)
            if len(chunk) == size:
                yield chunk
                chunk = []
        if chunk:
            yield chunk
    elif isinstance(items, Sequence):
        for start in range(0, len(items), size):
            yield list(items[start : start + size])
    else:
        iterator = iter(items)
        while chunk := list(islice(iterator, size)):
            yield chunk
