"""A hostile HTTP/1.1 server on 127.0.0.1 whose every answer a test scripts.

Each ``Answer`` sets the status, the headers, the body and its size (a huge body is generated
block by block, never built in memory), the timing (a delay before the answer, a trickle
between blocks) and a reset (the connection aborted before the answer or in the middle of its
body). The server records what it received (``requests``) and how many body bytes of each
answer it managed to send before the client went away (``sent``), so that a test can prove
how much of an answer the client read without looking at a clock::

    async with hostile_server(Answer(200, b'{"job_id": "j"}', size=10**8)) as server:
        ...  # point a client at server.url
    assert server.sent[0] < 10**7

Every connection is answered once and closed (``Connection: close``). Run it inside an
``@pytest.mark.anyio`` test: it serves on the test's event loop, asyncio or trio.
"""

from __future__ import annotations

import contextlib
import socket
import struct
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Literal

import anyio
import attrs
from anyio.abc import SocketAttribute, SocketStream

__all__ = ["Answer", "HostileServer", "Received", "hostile_server"]

BLOCK = 64 * 1024


@attrs.frozen
class Answer:
    """One scripted answer.

    ``body`` is sent first; with ``size``, ``filler`` is repeated after it until the body is
    ``size`` bytes long (sent a ``block`` at a time, never built whole). ``delay`` seconds pass
    before the status line, ``trickle`` seconds between blocks. ``reset="connect"`` aborts the
    connection (TCP RST) as soon as it is accepted, before reading anything (the answer to the
    next request is then the next one of the script); ``reset="before"`` aborts it after
    reading the request, without answering; ``reset="mid"`` aborts
    it after ``reset_after`` bytes of the body. ``content_length=False`` sends the body
    chunked instead of with a ``Content-Length``.
    """

    status: int = 200
    body: bytes = b""
    headers: Sequence[tuple[str, str]] = (("Content-Type", "application/json"),)
    size: int | None = None
    filler: bytes = b" "
    delay: float = 0.0
    trickle: float = 0.0
    block: int = BLOCK
    reset: Literal["connect", "before", "mid"] | None = None
    reset_after: int = 0
    content_length: bool = True

    @property
    def length(self) -> int:
        """The length of the whole body."""
        return len(self.body) if self.size is None else max(self.size, len(self.body))

    def blocks(self) -> AsyncIterator[bytes]:
        """The body, ``block`` bytes at a time (cut at ``reset_after`` for a mid reset)."""
        return self._blocks()

    async def _blocks(self) -> AsyncIterator[bytes]:
        end = self.reset_after if self.reset == "mid" else self.length
        head = self.body[:end]
        for start in range(0, len(head), self.block):
            yield head[start : start + self.block]
        remaining = end - len(head)
        if remaining <= 0:
            return
        filler = (self.filler * (self.block // len(self.filler) + 1))[: self.block]
        while remaining > 0:
            if self.trickle:
                await anyio.sleep(self.trickle)
            piece = filler[: min(remaining, self.block)]
            remaining -= len(piece)
            yield piece


@attrs.frozen
class Received:
    """One request as the server read it."""

    method: str
    path: str
    headers: dict[str, str] = attrs.field(repr=False)
    """Lower-cased names; not in the repr, which a traceback with locals prints (the
    ``Authorization`` header is among them)."""
    body: bytes = attrs.field(repr=False)


Script = Sequence[Answer] | Callable[[Received], Answer]


@attrs.define
class HostileServer:
    """The running server: where it listens, what it received and what it sent."""

    url: str
    script: Script
    requests: list[Received] = attrs.Factory(list)
    sent: list[int] = attrs.Factory(list)
    """Body bytes of each answer written before it ended or the client went away."""
    finished: list[bool] = attrs.Factory(list)
    """Whether each answer was written whole."""
    pending_resets: int = 0
    """Connections still to abort as soon as they are accepted (``reset="connect"``)."""

    def __attrs_post_init__(self) -> None:
        if not callable(self.script):
            self.pending_resets = sum(a.reset == "connect" for a in self.script)
            self.script = [a for a in self.script if a.reset != "connect"] or [Answer()]

    def answer_for(self, request: Received) -> Answer:
        """The scripted answer to ``request``: the next of a sequence (the last one repeats),
        or what a callable script returns."""
        if callable(self.script):
            return self.script(request)
        index = min(len(self.requests) - 1, len(self.script) - 1)
        return self.script[index]

    async def handle(self, stream: SocketStream) -> None:
        """Read one request from ``stream`` and answer it as scripted."""
        async with stream:
            if self.pending_resets:
                self.pending_resets -= 1
                _abort(stream)
                return
            try:
                request = await _read_request(stream)
            except (anyio.EndOfStream, anyio.BrokenResourceError, ValueError):
                return
            self.requests.append(request)
            answer = self.answer_for(request)
            slot = len(self.sent)
            self.sent.append(0)
            self.finished.append(False)
            if answer.delay:
                await anyio.sleep(answer.delay)
            if answer.reset == "before":
                _abort(stream)
                return
            try:
                await stream.send(_head(answer))
                async for block in answer.blocks():
                    await stream.send(_framed(block, answer))
                    self.sent[slot] += len(block)
                if answer.reset == "mid":
                    _abort(stream)
                    return
                if not answer.content_length:
                    await stream.send(b"0\r\n\r\n")
                self.finished[slot] = True
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                return


@contextlib.asynccontextmanager
async def hostile_server(
    *answers: Answer, script: Script | None = None
) -> AsyncIterator[HostileServer]:
    """Serve ``answers`` in order (the last repeats), or what ``script(request)`` returns, on
    a free port of 127.0.0.1 until the block ends."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(SocketAttribute.local_port)
    server = HostileServer(f"http://127.0.0.1:{port}", script or answers or (Answer(),))
    async with listener, anyio.create_task_group() as tasks:
        tasks.start_soon(listener.serve, server.handle)
        try:
            yield server
        finally:
            tasks.cancel_scope.cancel()


async def _read_request(stream: SocketStream) -> Received:
    data = b""
    while b"\r\n\r\n" not in data:
        data += await stream.receive()
    head, _, body = data.partition(b"\r\n\r\n")
    request_line, *lines = head.decode("latin-1").split("\r\n")
    method, path, _ = request_line.split(" ", 2)
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        body += await stream.receive()
    return Received(method, path, headers, body)


def _head(answer: Answer) -> bytes:
    lines = [f"HTTP/1.1 {answer.status} Scripted", *(f"{n}: {v}" for n, v in answer.headers)]
    if answer.content_length:
        lines.append(f"Content-Length: {answer.length}")
    else:
        lines.append("Transfer-Encoding: chunked")
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _framed(block: bytes, answer: Answer) -> bytes:
    if answer.content_length:
        return block
    return f"{len(block):x}\r\n".encode() + block + b"\r\n"


def _abort(stream: SocketStream) -> None:
    """Close the connection with a TCP RST instead of an orderly FIN."""
    raw: socket.socket = stream.extra(SocketAttribute.raw_socket)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
