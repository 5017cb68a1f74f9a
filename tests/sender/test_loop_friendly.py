"""Issue 14: sending gives the event loop its turn between slices of a chunk. Counted in turns,
never in time."""

from __future__ import annotations

from typing import Any

import anyio
import httpx
import pytest
from anyio.lowlevel import checkpoint
from test_sender import CAMPAIGN, assert_partition, rows

import hyber_async as hy
from hyber_async._codec import Envelope
from hyber_async._sender import SLICE, SendOptions, send_in_chunks
from hyber_async._validation import Kind


class Heartbeat:
    """A task that counts its turns: one per checkpoint, until cancelled."""

    def __init__(self) -> None:
        self.turns = 0

    async def run(self) -> None:
        while True:
            self.turns += 1
            await checkpoint()


class InstantServer:
    """A ``Requester`` whose answers come back without a single turn of the loop, so every
    turn the heartbeat gets during a send is one the sender gave."""

    max_connections = 4
    is_closed = False

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def request(
        self,
        method: str,
        path: str,
        content: bytes | hy.RequestBody | None = None,
        *,
        items: int = 0,
        throttling: Any = None,
    ) -> httpx.Response:
        assert content is not None
        self.bodies.append(bytes(content))
        return httpx.Response(200, json={"job_id": f"job-{len(self.bodies)}"})


async def send_beside_heartbeat(items: Any, chunk_size: int) -> tuple[int, InstantServer]:
    """Send ``items`` to an ``InstantServer`` beside a heartbeat; its turns during the send."""
    server = InstantServer()
    heartbeat = Heartbeat()
    envelope = Envelope(CAMPAIGN, Kind.BROADCAST)
    async with anyio.create_task_group() as tg:
        tg.start_soon(heartbeat.run)
        await checkpoint()
        before = heartbeat.turns
        sent = await send_in_chunks(server, envelope, items, SendOptions(chunk_size=chunk_size))
        turns = heartbeat.turns - before
        tg.cancel_scope.cancel()
    assert sent.accepted == sent.read
    assert_partition(sent, sent.read)
    return turns, server


@pytest.mark.anyio
@pytest.mark.parametrize("source", ["list", "generator"])
async def test_a_send_gives_the_loop_a_turn_between_slices(source: str) -> None:
    """A chunk is checked and encoded a slice at a time: the heartbeat runs at least twice per
    slice of every chunk (before, the chunk was prepared in one go: a turn or two per chunk)."""
    chunks, chunk_size = 3, 4 * SLICE
    items: Any = rows(chunks * chunk_size)
    if source == "list":
        items = list(items)
    turns, server = await send_beside_heartbeat(items, chunk_size)
    assert len(server.bodies) == chunks
    assert turns >= chunks * 2 * (chunk_size // SLICE)


@pytest.mark.anyio
async def test_a_body_encoded_in_slices_is_the_whole_encoding() -> None:
    """The request body is byte for byte ``Envelope.body`` of the chunk: a journal's digests
    from before still recognise the same input."""
    items = list(rows(2 * SLICE + 7))
    _, server = await send_beside_heartbeat(items, len(items))
    (body,) = server.bodies
    assert body == Envelope(CAMPAIGN, Kind.BROADCAST).body(items)


def test_heartbeat_helper_counts() -> None:
    """The heartbeat counts one turn per checkpoint (a sanity check of the helper)."""
    heartbeat = Heartbeat()

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(heartbeat.run)
            for _ in range(5):
                await checkpoint()
            tg.cancel_scope.cancel()

    anyio.run(main)
    assert heartbeat.turns >= 5
