"""A minimal HTTP/1.1 sink for benchmarks: reads each request, answers a fixed job id.

It parses nothing but the request head's Content-Length, so it costs as little CPU as a server
can, and every contender of a benchmark pays the same for it. Run: ``python _sink.py PORT``.
"""

from __future__ import annotations

import asyncio
import sys

ANSWER = b'{"job_id":"66591729-cb47-5ef9-964b-949dc6aff84f"}'
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
    len(ANSWER),
    ANSWER,
)


class Sink(asyncio.Protocol):
    """One keep-alive connection: skip each body, answer ``RESPONSE``."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.buffer = bytearray()
        self.remaining: int | None = None

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            if self.remaining is None:
                end = self.buffer.find(b"\r\n\r\n")
                if end < 0:
                    return
                head = bytes(self.buffer[:end]).lower()
                del self.buffer[: end + 4]
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip() == b"content-length":
                        length = int(value)
                self.remaining = length
            if len(self.buffer) < self.remaining:
                return
            del self.buffer[: self.remaining]
            self.remaining = None
            self.transport.write(RESPONSE)


async def serve(port: int) -> None:
    """Serve on 127.0.0.1:``port`` until killed; print a line once listening."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Sink, "127.0.0.1", port)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1])))
