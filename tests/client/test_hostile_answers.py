"""Answers a server should never give: wrong types, oversized bodies, fewer, more, reordered or
duplicated results, resets. Each is scripted on the hostile loopback server (``hostile.py``);
whatever it answers, every recipient ends in one outcome that the answer proves, and what the
client reads of an answer stays bounded (counted on the server's side, never by a clock)."""

from __future__ import annotations

import gzip
import tracemalloc
import zlib
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from _support import CLIENT_ID, LOGIN, PASSWORD, broadcast_campaign
from hostile import Answer, Received, hostile_server

import hyber_async as hy

pytestmark = pytest.mark.anyio

ROWS = [
    {"phone_number": 380_500_000_000 + i, "extra_id": f"r-{i}", "name": "Ann"} for i in range(4)
]
HUGE = 200 * 1024 * 1024
"""The size of a hostile answer body: far beyond any limit, never built in memory."""
READ_BOUND = 32 * 1024 * 1024
"""What the server may manage to send of a huge answer before the client stops reading: the
client's limit plus the socket buffers of both ends (a few MB on loopback)."""

PARTIAL_READ = pytest.mark.filterwarnings(
    "ignore:Async generator .* was garbage collected before it had been exhausted:ResourceWarning"
)
"""For a test whose client stops reading an answer part-way: trio warns that httpx's inner
async generators were left unexhausted (it closes them all the same)."""


def client_of(url: str, **kwargs: Any) -> hy.HyberClient:
    """A client of the hostile server at ``url``, retrying without delays."""
    kwargs.setdefault("retry", hy.RetryPolicy(wait=False, max_attempts=1))
    return hy.HyberClient(CLIENT_ID, LOGIN, PASSWORD, base_url=url, **kwargs)


async def stream(url: str, *, sync: bool = False, **kwargs: Any) -> hy.SendReport:
    """Stream ``ROWS`` in one chunk to the hostile server at ``url``."""
    async with client_of(url, **kwargs) as client:
        return await client.stream_broadcast(broadcast_campaign(), ROWS, sync=sync)


def outcomes(report: hy.SendReport) -> list[hy.Outcome]:
    """The outcome of each row, in input order (the report partitions the input)."""
    assert report.complete
    assert report.read == len(ROWS)
    assert sum(report.counts.values()) == len(ROWS)
    failed = {f.index: f.outcome for f in report.failures()}
    return [failed.get(i, hy.Outcome.ACCEPTED) for i in range(len(ROWS))]


def sync_answer(edit: Callable[[list[dict[str, Any]]], list[dict[str, Any]]]) -> Any:
    """A script answering each sync request with its results (all accepted but ``r-1``,
    rejected) passed through ``edit``."""

    def script(request: Received) -> Answer:
        results = []
        for item in orjson.loads(request.body)["recipients"]:
            result: dict[str, Any] = {
                "processed": True,
                "phone_number": str(item["phone_number"]),
                "message_id": f"m-{item['extra_id']}",
                "extra_id": item["extra_id"],
                "accepted": True,
            }
            if item["extra_id"] == "r-1":
                result.update(accepted=False, error_code=36024, error_text="Phone incorrect")
            results.append(result)
        return Answer(200, orjson.dumps({"messages": edit(results)}))

    return script


A, R, U = hy.Outcome.ACCEPTED, hy.Outcome.REJECTED, hy.Outcome.UNKNOWN


# --- wrong types ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b'{"job_id": null}',
        b"{}",
        b'{"job_id": false}',
        b'{"job_id": ""}',
        b'{"job_id": 17}',
        b'{"job_id": ["j"]}',
        b'["j"]',
        b"null",
    ],
)
async def test_an_answer_without_a_job_id_string_is_unknown(body: bytes) -> None:
    """A 200 whose job id is null, missing, false, empty or not a string accepts nothing: the
    chunk is UNKNOWN (never a job "None"), and the direct call raises UnexpectedResponseError
    with the extra_ids to reconcile."""
    async with hostile_server(Answer(200, body)) as server:
        report = await stream(server.url)
        async with client_of(server.url) as client:
            with pytest.raises(hy.UnexpectedResponseError, match=r"JobAccepted\.job_id") as caught:
                await client.send_broadcast(broadcast_campaign(), ROWS)
    assert outcomes(report) == [U] * 4
    assert report.job_ids == []
    assert caught.value.extra_ids == tuple(r["extra_id"] for r in ROWS)


@pytest.mark.parametrize("accepted", ["false", "true", 0, 1, None])
async def test_a_sync_result_whose_accepted_is_not_a_boolean_is_unknown(accepted: Any) -> None:
    """``"accepted": "false"`` (or "true", 0, 1) is not a boolean: the answer is unreadable and
    the chunk UNKNOWN. A result without ``accepted`` (null) does not say it was accepted."""

    def edit(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
        results[2]["accepted"] = accepted
        return results

    async with hostile_server(script=sync_answer(edit)) as server:
        report = await stream(server.url, sync=True)
    expected = [A, R, U, A] if accepted is None else [U] * 4
    assert outcomes(report) == expected


# --- fewer, more, reordered, duplicated results ---------------------------------------------


SYNC_EDITS: list[tuple[str, Callable[[list[dict[str, Any]]], list[dict[str, Any]]], list[Any]]] = [
    ("in-order", lambda r: r, [A, R, A, A]),
    ("fewer", lambda r: r[:2], [A, R, U, U]),
    ("fewer-from-the-front", lambda r: r[2:], [U, U, A, A]),
    ("reordered", lambda r: r[::-1], [A, R, A, A]),
    ("rotated", lambda r: r[1:] + r[:1], [A, R, A, A]),
    ("more", lambda r: [*r, {**r[0], "extra_id": "stranger"}], [A, R, A, A]),
    ("duplicated", lambda r: [r[0], r[1], r[1], r[3]], [A, U, U, A]),
    (
        "duplicated-conflicting",
        lambda r: [r[0], r[1], {**r[1], "accepted": True}, r[2], r[3]],
        [A, U, A, A],
    ),
    ("no-extra-ids", lambda r: [{**x, "extra_id": None} for x in r[::-1]], [U] * 4),
    ("empty", lambda r: [], [U] * 4),
]


@pytest.mark.parametrize(
    ("edit", "expected"), [e[1:] for e in SYNC_EDITS], ids=[e[0] for e in SYNC_EDITS]
)
async def test_a_sync_answer_is_attributed_by_extra_id_never_by_guess(
    edit: Callable[[list[dict[str, Any]]], list[dict[str, Any]]], expected: list[Any]
) -> None:
    """Each recipient gets the one result that names its extra_id; one missing from the answer,
    or named twice, is UNKNOWN; results for nobody are ignored. ``r-1`` is rejected, so a
    result given to the wrong recipient would show."""
    async with hostile_server(script=sync_answer(edit)) as server:
        report = await stream(server.url, sync=True)
    assert outcomes(report) == expected


async def test_a_direct_sync_call_returns_results_in_request_order() -> None:
    """send_broadcast_sync puts a reordered answer back into request order."""
    async with (
        hostile_server(script=sync_answer(lambda r: r[::-1])) as server,
        client_of(server.url) as client,
    ):
        result = await client.send_broadcast_sync(broadcast_campaign(), ROWS)
    assert [m.extra_id for m in result.messages] == [r["extra_id"] for r in ROWS]
    assert [m.accepted for m in result.messages] == [True, False, True, True]


@pytest.mark.parametrize(
    ("edit", "expected"),
    [e[1:] for e in SYNC_EDITS if U in e[2]],
    ids=[e[0] for e in SYNC_EDITS if U in e[2]],
)
async def test_a_direct_sync_call_refuses_an_answer_it_cannot_attribute(
    edit: Callable[[list[dict[str, Any]]], list[dict[str, Any]]], expected: list[Any]
) -> None:
    """Fewer, duplicated or unnamed results: UnexpectedResponseError with every extra_id."""
    async with hostile_server(script=sync_answer(edit)) as server, client_of(server.url) as client:
        with pytest.raises(hy.UnexpectedResponseError, match="results for 4 items") as caught:
            await client.send_broadcast_sync(broadcast_campaign(), ROWS)
    assert caught.value.extra_ids == tuple(r["extra_id"] for r in ROWS)


# --- oversized answers ----------------------------------------------------------------------


@PARTIAL_READ
@pytest.mark.parametrize("content_length", [True, False], ids=["content-length", "chunked"])
async def test_a_huge_success_answer_is_not_read_and_the_chunk_is_unknown(
    content_length: bool,
) -> None:
    """A 200 MB answer that is valid JSON (a job id and spaces): the client reads it only up
    to its limit, so the server cannot send it all; the chunk is UNKNOWN, not accepted."""
    answer = Answer(200, b'{"job_id": "j"}', size=HUGE, content_length=content_length)
    async with hostile_server(answer) as server:
        report = await stream(server.url)
    assert outcomes(report) == [U] * 4
    assert "longer than" in report.chunks[0].reason
    assert server.sent[0] < READ_BOUND
    assert not server.finished[0]


@PARTIAL_READ
async def test_a_huge_error_answer_is_kept_truncated() -> None:
    """A 200 MB 400: the error keeps the first ``base_bytes`` of the body, no more is read."""
    limits = hy.AnswerLimits(base_bytes=4096)
    answer = Answer(400, b'{"error_code": 1, "error_text": "' + b"x" * 10_000, size=HUGE)
    async with (
        hostile_server(answer) as server,
        client_of(server.url, answer_limits=limits) as client,
    ):
        with pytest.raises(hy.BadRequestError) as caught:
            await client.send_broadcast(broadcast_campaign(), ROWS)
    assert caught.value.response.content == answer.body[:4096]
    assert server.sent[0] < READ_BOUND


async def test_the_limit_follows_the_item_count_and_the_configuration() -> None:
    """The same ordinary sync answer passes the default limit and is refused by a limit of
    16 bytes per item, with the chunk UNKNOWN; the limit is ``base + per item * items``."""
    limits = hy.AnswerLimits(base_bytes=16, bytes_per_item=16)
    assert limits.for_items(4) == 80
    async with hostile_server(script=sync_answer(lambda r: r)) as server:
        assert outcomes(await stream(server.url, sync=True)) == [A, R, A, A]
        report = await stream(server.url, sync=True, answer_limits=limits)
    assert outcomes(report) == [U] * 4
    assert "longer than the 80 bytes allowed for 4 items" in report.chunks[0].reason


@pytest.mark.parametrize("value", [0, -1, 1.5, "1"])
def test_answer_limits_are_positive_integers(value: Any) -> None:
    """A limit that is not a positive integer is refused when configured."""
    with pytest.raises(ValueError, match="positive integer"):
        hy.AnswerLimits(base_bytes=value)


async def test_a_compressed_error_answer_is_read_decompressed() -> None:
    """A gzip-encoded 400: the error carries the decompressed body and its error code."""
    body = gzip.compress(b'{"error_code": 36024, "error_text": "Phone number incorrect"}')
    answer = Answer(400, body, headers=(("Content-Encoding", "gzip"),))
    async with hostile_server(answer) as server, client_of(server.url) as client:
        with pytest.raises(hy.BadRequestError) as caught:
            await client.send_broadcast(broadcast_campaign(), ROWS)
    assert caught.value.error_code == 36024
    assert caught.value.error_text == "Phone number incorrect"


def _bomb(size: int) -> bytes:
    """A gzip body of ``size`` zero bytes: about a thousandth of that on the wire."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    block = bytes(1 << 20)
    parts = [compressor.compress(block) for _ in range(size >> 20)]
    return b"".join([*parts, compressor.flush()])


@PARTIAL_READ
async def test_a_compressed_bomb_is_never_inflated_past_the_limit() -> None:
    """A 1 GB body of zeros in 1 MB of gzip, answering a 4-recipient send (limit ~68 KB): the
    chunk is UNKNOWN, and the client never holds more than its limit of it, not even for a
    moment (httpx's decoder inflated each 64 KB read whole: up to 64 MB at once)."""
    bomb = _bomb(1 << 30)
    answer = Answer(200, bomb, headers=(("Content-Encoding", "gzip"),))
    async with hostile_server(answer) as server:
        tracemalloc.start()
        try:
            report = await stream(server.url)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert outcomes(report) == [hy.Outcome.UNKNOWN] * len(ROWS)
    assert "longer than" in (report.chunks[0].reason or "")
    assert peak < 8 * 1024 * 1024


@pytest.mark.parametrize(
    ("encoding", "body"),
    [
        ("deflate", zlib.compress(b'{"job_id": "j-1"}')),
        ("deflate", zlib.compress(b'{"job_id": "j-1"}')[2:-4]),  # raw deflate, no zlib header
        ("identity", b'{"job_id": "j-1"}'),
    ],
    ids=["deflate", "raw-deflate", "identity"],
)
async def test_an_answer_in_an_encoding_asked_for_is_read(encoding: str, body: bytes) -> None:
    answer = Answer(200, body, headers=(("Content-Encoding", encoding),))
    async with hostile_server(answer) as server:
        report = await stream(server.url)
    assert report.job_ids == ["j-1"]
    assert server.requests[0].headers["accept-encoding"] == "gzip, deflate"


@PARTIAL_READ
@pytest.mark.parametrize(
    ("encoding", "body"),
    [
        ("br", b'{"job_id": "j-1"}'),
        ("gzip", gzip.compress(b'{"job_id": "j-1"}')[:-12] + b"garbage!garbage!"),
        ("gzip", b'{"job_id": "j-1"}'),
    ],
    ids=["not-asked-for", "corrupt", "not-compressed"],
)
async def test_an_answer_that_cannot_be_decoded_is_unknown(encoding: str, body: bytes) -> None:
    """Nothing of it can be trusted, but the request arrived: UNKNOWN, never resent."""
    answer = Answer(200, body, headers=(("Content-Encoding", encoding),))
    async with hostile_server(answer) as server:
        report = await stream(server.url, retry=hy.RetryPolicy(wait=False, max_attempts=3))
    assert outcomes(report) == [hy.Outcome.UNKNOWN] * len(ROWS)
    assert len(server.requests) == 1


# --- timing and resets ----------------------------------------------------------------------


@PARTIAL_READ
@pytest.mark.parametrize(
    "answer",
    [
        Answer(reset="before"),
        Answer(200, b'{"job_id": "j"}', size=100_000, reset="mid", reset_after=1000),
        Answer(200, b'{"job_id": "j"}', size=100_000, trickle=0.05, block=1000),
    ],
    ids=["reset-before", "reset-mid", "trickle-past-the-deadline"],
)
async def test_a_broken_or_stalled_answer_is_unknown(answer: Answer) -> None:
    """The request arrived; its answer never did (whole): the chunk is UNKNOWN."""
    timeouts = hy.Timeouts(total=0.5)
    async with hostile_server(answer) as server:
        report = await stream(server.url, timeouts=timeouts)
    assert outcomes(report) == [U] * 4
    assert len(server.requests) == 1


# --- arguments the transport cannot carry ---------------------------------------------------


@pytest.mark.parametrize("max_rate", [float("nan"), float("inf"), -1.0, 0.0])
async def test_a_max_rate_that_is_not_a_positive_finite_number_is_refused(
    max_rate: float,
) -> None:
    """NaN and infinity are refused like any other bad option, before anything is sent."""
    async with hostile_server() as server, client_of(server.url) as client:
        with pytest.raises(hy.ValidationError, match="max_rate"):
            await client.stream_broadcast(broadcast_campaign(), ROWS, max_rate=max_rate)
    assert server.requests == []


async def test_an_overlong_job_id_is_a_validation_error() -> None:
    """A 100,000-character job id is refused by name, not by httpx.InvalidURL."""
    async with hostile_server() as server, client_of(server.url) as client:
        with pytest.raises(hy.ValidationError, match="job_id: must be at most 256"):
            await client.get_status("a" * 100_000)
    assert server.requests == []


async def test_a_path_too_long_for_a_url_is_a_validation_error() -> None:
    """Any request whose URL cannot be built is a ValidationError, not httpx.InvalidURL."""
    async with hostile_server() as server, client_of(server.url, dr_base_url=server.url) as client:
        with pytest.raises(hy.ValidationError, match="path: cannot be sent"):
            await client.get_delivery_report(message_id="m" * 100_000)
    assert server.requests == []


# --- a status answer counted as it arrives ----------------------------------------------------

STATUS = orjson.dumps(
    {"messages": [{"status": 2, "hyber_status": 23011, "extra_id": f"e{i}"} for i in range(3000)]}
)


@PARTIAL_READ
async def test_a_status_answer_cut_and_read_again_is_counted_once() -> None:
    """The first answer is cut mid-body (the poll is a GET: retried); the body counted as it
    arrives starts again with the second: every message counted once."""
    cut = Answer(200, STATUS, reset="mid", reset_after=len(STATUS) // 2)
    async with hostile_server(cut, Answer(200, STATUS)) as server:
        retry = hy.RetryPolicy(wait=False, max_attempts=3)
        async with client_of(server.url, retry=retry) as client:
            answer = await client.read_status("job-1", keep_messages=False)
    assert len(server.requests) == 2
    assert sum((await answer.tally()).values()) == 3000


@PARTIAL_READ
async def test_a_status_answer_counted_as_it_arrives_keeps_its_limit() -> None:
    """Counted as it arrives, a status answer is still held to ``AnswerLimits``: past it, the
    rest is never read, and the poll fails with ``UnexpectedResponseError``."""
    limits = hy.AnswerLimits(base_bytes=1024, bytes_per_item=1)
    answer = Answer(200, STATUS[:-2], size=HUGE, filler=b',{"status":2}')
    async with (
        hostile_server(answer) as server,
        client_of(server.url, answer_limits=limits) as client,
    ):
        with pytest.raises(hy.UnexpectedResponseError, match="longer than"):
            await client.read_status("job-1", keep_messages=False)
    assert server.sent[0] < READ_BOUND
