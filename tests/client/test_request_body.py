"""A mass request's body goes out as the pieces it was encoded in (``RequestBody``): over a
socket it arrives whole, byte for byte, with a ``Content-Length`` (never chunked), and every
attempt of a resent request carries all of it again."""

from __future__ import annotations

import orjson
import pytest
from _support import CLIENT_ID, LOGIN, PASSWORD, broadcast_campaign, rows
from hostile import Answer, hostile_server

import hyber_async as hy
from hyber_async._body import WRITE_SIZE
from hyber_async._codec import Envelope
from hyber_async._validation import Kind

pytestmark = pytest.mark.anyio

JOB = Answer(200, b'{"job_id": "j-1"}')
REFUSED = Answer(429, b'{"error_code": 42901, "error_text": "slow down"}', (("Retry-After", "0"),))


def client_of(url: str, attempts: int = 1) -> hy.HyberClient:
    retry = hy.RetryPolicy(wait=False, max_attempts=attempts)
    return hy.HyberClient(CLIENT_ID, LOGIN, PASSWORD, base_url=url, retry=retry)


async def test_a_body_of_pieces_arrives_whole_with_a_content_length() -> None:
    """Pieces of every kind (bytes, memoryviews, empty ones), more than one write's worth."""
    big = b"x" * (WRITE_SIZE + 17)
    pieces: list[bytes | memoryview] = [b'{"a":"', memoryview(big)[1:], b"", b'","b":1}']
    body = hy.RequestBody(pieces)
    assert len(body) == len(bytes(body)) == WRITE_SIZE + 16 + 14
    async with hostile_server(JOB) as server, client_of(server.url) as client:
        await client.request("POST", "broadcast", body)
    (received,) = server.requests
    assert received.body == bytes(body)
    assert received.headers["content-length"] == str(len(body))
    assert "transfer-encoding" not in received.headers


async def test_a_refused_send_is_resent_with_its_whole_body() -> None:
    """A 429 and then an acceptance: both attempts carry the same bytes, the chunk's whole
    encoding (the request is rebuilt for each attempt; the pieces are read again)."""
    items = list(rows(5_003))
    async with hostile_server(REFUSED, JOB) as server, client_of(server.url, 2) as client:
        report = await client.stream_broadcast(broadcast_campaign(), items)
    assert report.accepted == 5_003
    first, second = server.requests
    expected = Envelope(broadcast_campaign(), Kind.BROADCAST).body(items)
    assert first.body == second.body == expected
    assert orjson.loads(second.body)["recipients"] == items


def test_an_empty_body_has_no_pieces_and_no_length() -> None:
    body = hy.RequestBody()
    assert (len(body), bytes(body), bool(body)) == (0, b"", False)
    assert "0 bytes" in repr(body)
