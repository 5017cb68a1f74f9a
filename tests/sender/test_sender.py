"""stream_batch / stream_broadcast against the in-process emulator: every recipient, one outcome."""

from __future__ import annotations

import math
import sys
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import httpx
import pytest
from _support import CASCADE as CAMPAIGN
from _support import rows

import hyber_async as hy
from hyber_async.emulator import running_server
from hyber_async.testing import EmulatedClient, emulated_client

pytestmark = pytest.mark.anyio

BATCH = hy.Campaign(
    channels=(hy.Channel.SMS,),
    channel_options=hy.ChannelOptions(sms=hy.SmsOptions(alpha_name="GMSU", ttl=300)),
)


def assert_partition(report: hy.SendReport, total: int) -> None:
    """Every recipient read is counted once, and the failures list the non-accepted ones."""
    counts = report.counts
    assert report.read == total
    assert sum(counts.values()) == total
    failures = list(report.failures())
    assert len(failures) == total - counts[hy.Outcome.ACCEPTED]
    assert len({f.index for f in failures}) == len(failures)


@pytest.mark.parametrize("size", [0, 1, 49_999, 50_000, 50_001, 120_001])
async def test_chunk_boundaries_accept_every_recipient_once(
    emulated: EmulatedClient, size: int
) -> None:
    """Inputs around the 50,000 limit are cut into the fewest requests and all accepted once."""
    report = await emulated.client.stream_broadcast(CAMPAIGN, rows(size))
    assert report.complete
    assert report.accepted == size
    assert_partition(report, size)
    assert len(report.job_ids) == math.ceil(size / 50_000)
    assert [job.first_index for job in report.jobs] == list(range(0, size, 50_000))
    assert emulated.emulator.ledger.accepted == size
    assert emulated.emulator.ledger.duplicates() == {}


async def test_async_iterable_of_models(emulated: EmulatedClient) -> None:
    """An async generator of Recipient models is streamed like a list of mappings."""

    async def recipients() -> AsyncIterator[hy.Recipient]:
        for i in range(1_234):
            yield hy.Recipient(380500000000 + i, variables={"name": f"n{i}"})

    report = await emulated.client.stream_broadcast(CAMPAIGN, recipients(), chunk_size=500)
    assert report.accepted == 1_234
    assert len(report.job_ids) == 3
    assert emulated.emulator.ledger.accepted == 1_234


async def test_batch_of_messages_and_mappings(emulated: EmulatedClient) -> None:
    """stream_batch takes Message models and plain mappings mixed."""
    items: list[hy.Message | dict[str, Any]] = [
        hy.Message(380500000001, text="one", extra_id="m-1"),
        {"phone_number": 380500000002, "text": "two", "extra_id": "m-2"},
    ]
    report = await emulated.client.stream_batch(BATCH, items)
    assert report.accepted == 2
    assert emulated.emulator.ledger.count("m-1") == 1
    assert emulated.emulator.ledger.count("m-2") == 1


async def test_missing_extra_ids_get_stable_generated_ones(emulated: EmulatedClient) -> None:
    """A recipient without extra_id is sent as {run_id}-{input index}."""
    rows_without_id = [{"phone_number": 380500000000 + i, "name": "A"} for i in range(3)]
    report = await emulated.client.stream_broadcast(CAMPAIGN, rows_without_id, run_id="run7")
    assert report.accepted == 3
    assert [emulated.emulator.ledger.count(f"run7-{i}") for i in range(3)] == [1, 1, 1]
    assert "extra_id" not in rows_without_id[0]


async def test_invalid_items_in_the_middle_are_not_sent_and_the_rest_go(
    emulated: EmulatedClient,
) -> None:
    """Invalid items are NOT_SENT with a reason naming the field; their chunk-mates are sent."""
    items = list(rows(60_010))
    items[3] = {"phone_number": 12345, "extra_id": "bad-phone", "name": "A"}
    items[55_000] = {"phone_number": 380500000000, "extra_id": "no-name"}
    report = await emulated.client.stream_broadcast(CAMPAIGN, items)
    assert report.accepted == 60_008
    assert report.not_sent == 2
    assert_partition(report, 60_010)
    failures = list(report.failures())
    assert [(f.index, f.extra_id, f.outcome) for f in failures] == [
        (3, "bad-phone", hy.Outcome.NOT_SENT),
        (55_000, "no-name", hy.Outcome.NOT_SENT),
    ]
    assert "recipients[3].phone_number" in failures[0].reason
    assert "%name%" in failures[1].reason
    assert emulated.emulator.ledger.accepted == 60_008
    assert emulated.emulator.ledger.count("bad-phone") == 0


async def test_abort_on_invalid_stops_reading_and_sending(emulated: EmulatedClient) -> None:
    """on_invalid='abort' sends nothing from the invalid chunk on and says why."""
    items = list(rows(25))
    items[12] = {"phone_number": "not a number", "extra_id": "bad", "name": "A"}
    report = await emulated.client.stream_broadcast(
        CAMPAIGN, items, chunk_size=10, on_invalid="abort"
    )
    assert not report.complete
    assert report.aborted is not None
    assert "item 12" in report.aborted
    assert report.read == 20
    assert report.accepted == 10
    assert report.not_sent == 10
    assert emulated.emulator.ledger.accepted == 10


async def test_invalid_campaign_raises_before_sending(emulated: EmulatedClient) -> None:
    """A campaign that breaks a limit raises ValidationError and nothing reaches the server."""
    bad = hy.Campaign(
        channels=(hy.Channel.SMS,),
        channel_options=hy.ChannelOptions(sms=hy.SmsOptions(alpha_name="TOO LONG NAME", ttl=1)),
    )
    with pytest.raises(hy.ValidationError, match=r"channel_options\.sms\.ttl"):
        await emulated.client.stream_broadcast(bad, rows(5))
    assert emulated.emulator.ledger.requests == 0


async def test_sync_mode_gives_per_message_outcomes(emulated: EmulatedClient) -> None:
    """sync=True uses /broadcast/sync; every message accepted is counted, no job ids."""
    report = await emulated.client.stream_broadcast(CAMPAIGN, rows(1_500), sync=True)
    assert report.accepted == 1_500
    assert report.job_ids == []
    assert emulated.emulator.ledger.accepted == 1_500


async def test_throttled_chunks_are_resent_without_duplicates(emulated: EmulatedClient) -> None:
    """429 answers are refusals: the chunk is resent and accepted exactly once."""
    emulated.emulator.faults.update({"rate_limit": 2, "retry_after": 0})
    report = await emulated.client.stream_broadcast(CAMPAIGN, rows(30), chunk_size=10)
    assert report.accepted == 30
    assert emulated.emulator.ledger.accepted == 30
    assert emulated.emulator.ledger.duplicates() == {}
    assert emulated.emulator.ledger.requests == 5


async def test_throttled_beyond_max_attempts_is_not_sent(emulated: EmulatedClient) -> None:
    """A chunk refused on every attempt ends NOT_SENT; nothing of it was accepted."""
    emulated.emulator.faults.update({"rate_limit": 100, "retry_after": 0})
    report = await emulated.client.stream_broadcast(CAMPAIGN, rows(10))
    assert report.not_sent == 10
    assert_partition(report, 10)
    assert emulated.emulator.ledger.accepted == 0


async def test_503_with_retry_after_is_resent(emulated: EmulatedClient) -> None:
    """503 with Retry-After is a refusal: resent, accepted once."""
    emulated.emulator.faults.update({"errors": 1, "error_status": 503, "error_retry_after": 0})
    report = await emulated.client.stream_broadcast(CAMPAIGN, rows(10))
    assert report.accepted == 10
    assert emulated.emulator.ledger.accepted == 10
    assert emulated.emulator.ledger.duplicates() == {}


@pytest.mark.parametrize("after_accept", [False, True])
async def test_500_is_unknown_and_never_resent(
    emulated: EmulatedClient, after_accept: bool
) -> None:
    """A 500 may hide an accepted request: UNKNOWN, sent once, siblings unaffected."""
    emulated.emulator.faults.update({"errors": 1, "error_after_accept": after_accept})
    report = await emulated.client.stream_broadcast(
        CAMPAIGN, rows(30), chunk_size=10, concurrency=1
    )
    assert report.unknown == 10
    assert report.accepted == 20
    assert_partition(report, 30)
    assert [f.extra_id for f in report.failures()] == [f"r-{i}" for i in range(10)]
    assert emulated.emulator.ledger.requests == 3
    assert emulated.emulator.ledger.accepted == (30 if after_accept else 20)
    assert emulated.emulator.ledger.duplicates() == {}


async def test_reset_after_accept_is_unknown_and_not_resent(emulated: EmulatedClient) -> None:
    """A connection lost after the server accepted: UNKNOWN, and the ledger has it once."""
    emulated.emulator.faults.update({"reset": 1})
    report = await emulated.client.stream_broadcast(CAMPAIGN, rows(10))
    assert report.unknown == 10
    assert emulated.emulator.ledger.accepted == 10
    assert emulated.emulator.ledger.requests == 1


@pytest.mark.slow
async def test_answer_slower_than_the_deadline_is_unknown() -> None:
    """A response slower than the call's deadline: UNKNOWN, never resent."""
    async with emulated_client(timeouts=hy.Timeouts(total=0.2)) as env:
        env.emulator.faults.update({"slow": 1, "slow_seconds": 5})
        report = await env.client.stream_broadcast(CAMPAIGN, rows(10))
    assert report.unknown == 10
    assert env.emulator.ledger.requests == 1


@pytest.mark.slow
async def test_connection_refused_is_not_sent() -> None:
    """No server at all: every recipient NOT_SENT after the retries."""
    with anyio.fail_after(10):
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        await listener.aclose()
        async with hy.HyberClient(
            "1", "u", "p", base_url=f"http://127.0.0.1:{port}", retry=hy.RetryPolicy(wait=False)
        ) as client:
            report = await client.stream_broadcast(CAMPAIGN, rows(25), chunk_size=10)
    assert report.not_sent == 25
    assert_partition(report, 25)
    assert all("NotSent" in f.reason or "not sent" in f.reason for f in report.failures())


async def test_cancellation_leaves_a_complete_partition_and_a_usable_client(
    emulated: EmulatedClient,
) -> None:
    """Cancelled after the first chunk: queued NOT_SENT, in flight UNKNOWN, client still works."""
    report = hy.SendReport()
    emulated.emulator.faults.update({"latency": 0.05})
    with anyio.CancelScope() as scope:

        def cancel_after_first(progress: hy.Progress) -> None:
            scope.cancel()

        await emulated.client.stream_broadcast(
            CAMPAIGN,
            rows(100),
            chunk_size=10,
            concurrency=2,
            on_progress=cancel_after_first,
            report=report,
        )
    assert not report.complete
    assert report.accepted >= 10
    assert report.not_sent + report.unknown > 0
    assert_partition(report, report.read)
    ledger = emulated.emulator.ledger.accepted
    assert report.accepted <= ledger <= report.accepted + report.unknown
    emulated.emulator.faults.clear()
    after = await emulated.client.stream_broadcast(CAMPAIGN, rows(5, start=1000))
    assert after.accepted == 5


async def test_concurrency_never_exceeds_the_connection_pool() -> None:
    """concurrency above max_connections is held to the pool size."""
    in_flight = 0
    peak = 0

    async with emulated_client(max_connections=2) as env:
        app = env.emulator

        async def counting(scope: Any, receive: Any, send: Any) -> None:
            nonlocal in_flight, peak
            in_flight += 1
            peak = max(peak, in_flight)
            try:
                await anyio.sleep(0.01)
                await app(scope, receive, send)
            finally:
                in_flight -= 1

        transport = httpx.ASGITransport(app=counting)
        async with (
            httpx.AsyncClient(transport=transport) as http,
            hy.HyberClient(
                env.client.client_id,
                env.client.login,
                env.emulator.config.accounts[0].password,
                base_url=str(env.client.base_url),
                max_connections=2,
                http_client=http,
            ) as client,
        ):
            report = await client.stream_broadcast(CAMPAIGN, rows(100), chunk_size=5, concurrency=8)
    assert report.accepted == 100
    assert peak == 2


async def test_progress_reports_running_counts(emulated: EmulatedClient) -> None:
    """on_progress gets one Progress per chunk with monotonically growing counts."""
    seen: list[hy.Progress] = []

    async def record(progress: hy.Progress) -> None:
        seen.append(progress)

    await emulated.client.stream_broadcast(
        CAMPAIGN, rows(50), chunk_size=10, concurrency=1, on_progress=record
    )
    assert [p.accepted for p in seen] == [10, 20, 30, 40, 50]
    assert seen[-1].done == 50
    assert seen[-1].rate > 0


async def test_max_rate_caps_chunk_size_and_paces_requests(
    emulated: EmulatedClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """max_rate shrinks chunks to a tenth of a second's worth and waits between them."""
    asked: list[float] = []
    real_sleep = anyio.sleep

    async def recording_sleep(delay: float) -> None:
        if sys._getframe(1).f_code.co_name == "_pace":  # only the sender's pacing
            asked.append(delay)
        await real_sleep(0)

    monkeypatch.setattr("hyber_async._sender.anyio.sleep", recording_sleep)
    report = await emulated.client.stream_broadcast(CAMPAIGN, rows(300), max_rate=1_000)
    assert report.accepted == 300
    assert len(report.job_ids) == 3
    # Time does not pass in the recording sleep: chunk k is asked to wait (k - 1) / 10 s.
    assert asked == pytest.approx([0.1, 0.2], abs=0.03)


async def _stateless_sink(scope: Any, receive: Any, send: Any) -> None:
    """Reads and drops each request body, answers a job id: keeps no state at all."""
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b'{"job_id": "j"}'})


async def _peak_traced_bytes(size: int) -> int:
    with running_server(_stateless_sink) as url:
        async with hy.HyberClient("1", "u", "p", base_url=url) as client:
            tracemalloc.start()
            try:
                report = await client.stream_broadcast(CAMPAIGN, rows(size), chunk_size=20_000)
                peak = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
    assert report.accepted == size
    return peak


@pytest.mark.slow
async def test_memory_stays_flat_whatever_the_input_size(anyio_backend: str) -> None:
    """Peak memory for 1,000,000 recipients from a generator, sent over a loopback socket to a
    stateless server, is that of 100,000 (the server thread's own allocations included)."""
    if anyio_backend == "trio":
        pytest.skip("one backend suffices for a memory profile; asyncio runs it")
    small = await _peak_traced_bytes(100_000)
    large = await _peak_traced_bytes(1_000_000)
    assert large < small * 1.25
    assert large < 60 * 2**20


class SourceFailure(Exception):
    """What a caller's source raises in the tests below."""


@pytest.mark.parametrize("kind", ["iterable", "async iterable"])
async def test_a_failing_source_raises_its_own_error_after_settling(
    emulated: EmulatedClient, kind: str
) -> None:
    """A source that raises mid-way: the caller gets that exception itself (no
    ExceptionGroup); the chunks sent before get their answers and the report partitions."""

    def broken() -> Iterator[dict[str, Any]]:
        yield from rows(25)
        raise SourceFailure("row 25 is unreadable")

    async def broken_async() -> AsyncIterator[dict[str, Any]]:
        for row in broken():
            yield row

    source = broken() if kind == "iterable" else broken_async()
    report = hy.SendReport()
    emulated.emulator.faults.update({"latency": 0.02})
    with pytest.raises(SourceFailure, match="row 25"):
        await emulated.client.stream_broadcast(
            CAMPAIGN, source, chunk_size=10, concurrency=2, report=report
        )
    assert report.read == 20
    assert report.accepted == 20
    assert_partition(report, 20)
    assert not report.complete
    assert report.aborted == "SourceFailure: row 25 is unreadable"
    assert emulated.emulator.ledger.accepted == 20


async def test_a_closed_client_sends_nothing_and_raises_its_error() -> None:
    """A send on a closed client: every chunk is NOT_SENT (none left), and the caller gets
    httpx's own error, not an ExceptionGroup."""
    client = hy.HyberClient("1", "user", "password", base_url="http://127.0.0.1:9")
    await client.aclose()
    report = hy.SendReport()
    with pytest.raises(RuntimeError, match="closed"):
        await client.stream_broadcast(CAMPAIGN, rows(30), chunk_size=10, report=report)
    assert report.read > 0
    assert report.not_sent == report.read
    assert report.unknown == 0
    assert_partition(report, report.read)
    # a chunk handed to a worker finds the client closed; one prepared meanwhile is not
    # handed over once the send has stopped for it
    assert all(f.reason.startswith("not sent") for f in report.failures())
    assert all("closed" in f.reason for f in report.failures())


async def test_a_failing_progress_callback_raises_its_own_error(emulated: EmulatedClient) -> None:
    """on_progress raising: its exception, not an ExceptionGroup; the input is read no further
    (a chunk already handed to the worker may still go) and the report partitions."""

    def fail(progress: hy.Progress) -> None:
        raise SourceFailure(f"callback failed after {progress.chunks_done} chunk(s)")

    report = hy.SendReport()
    with pytest.raises(SourceFailure, match="after 1 chunk"):
        await emulated.client.stream_broadcast(
            CAMPAIGN, rows(100), chunk_size=10, concurrency=1, on_progress=fail, report=report
        )
    assert report.accepted in (10, 20)
    assert report.unknown == 0
    assert_partition(report, report.read)
    assert emulated.emulator.ledger.accepted == report.accepted
