"""A mass request's body, kept as the pieces it was encoded in and sent as they are."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Final

import httpx

__all__ = ["WRITE_SIZE", "RequestBody"]

WRITE_SIZE: Final = 1 << 20
"""Bytes of a body handed to the connection at a time (pieces grouped up to about this)."""


class RequestBody(httpx.AsyncByteStream):
    """A request body as the pieces it was encoded in: ``bytes(body)`` is the whole of it.

    A mass request is encoded a slice of its items at a time. Joining the slices into one
    ``bytes`` of several megabytes for every request made the process map that much fresh memory
    each time (a page fault for every 4 KB: about 19,000 per 1,000,000 recipients, as many as
    the rest of a send); sent as they are, in writes of about ``WRITE_SIZE`` bytes, the pieces
    need no such copy. Joining is left to the rare readers that need the whole (the members of
    a chunk that did not end accepted, a resend that leaves out what was found).

    It is the request's stream itself (an ``httpx.AsyncByteStream``), read as many times as the
    request is attempted: httpx would wrap any other async iterable in an async generator of its
    own, which a connection reset mid-body leaves unfinished (trio then warns of it).
    """

    __slots__ = ("_pieces", "_size")

    def __init__(self, pieces: Iterable[bytes | memoryview] = ()) -> None:
        self._pieces = tuple(pieces)
        self._size = sum(len(piece) for piece in self._pieces)

    def __len__(self) -> int:
        return self._size

    def __bytes__(self) -> bytes:
        return b"".join(self._pieces)

    def __repr__(self) -> str:
        return f"RequestBody({self._size} bytes in {len(self._pieces)} pieces)"

    def pieces(self) -> tuple[bytes | memoryview, ...]:
        """The pieces, in order."""
        return self._pieces

    def __aiter__(self) -> _Writes:
        return _Writes(iter(self._pieces))


class _Writes:
    """The writes of one sending of a body: its pieces grouped up to about ``WRITE_SIZE``
    bytes, each group one ``bytes`` (a lone ``bytes`` piece is handed on without a copy).

    A plain async iterator rather than an async generator, so that a request abandoned
    mid-body (a reset connection) leaves nothing to finalise."""

    __slots__ = ("_pieces",)

    def __init__(self, pieces: Iterator[bytes | memoryview]) -> None:
        self._pieces = pieces

    def __aiter__(self) -> _Writes:
        return self

    async def __anext__(self) -> bytes:
        group: list[bytes | memoryview] = []
        size = 0
        for piece in self._pieces:
            group.append(piece)
            size += len(piece)
            if size >= WRITE_SIZE:
                break
        if not group:
            raise StopAsyncIteration
        return b"".join(group)
