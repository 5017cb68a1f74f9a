"""The client's adaptive rate controller: backs off on refusals, probes up on clean answers,
honours Retry-After as a floor for the whole queue, stays under max_rate, can be turned off or
seeded, shares the quota between campaigns, and never loses nor duplicates a refused chunk.

The controller's arithmetic is tested on explicit times; behaviour against the emulator's
quota is asserted by counts (refusals, cuts, accepted recipients), never by durations.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import anyio
import pytest
from _support import batch_campaign, make_client
from anyio import wait_all_tasks_blocked

import hyber_async as hy
from hyber_async._rate import RateController
from hyber_async.emulator import EmulatorConfig
from hyber_async.testing import emulated_client


def test_unseeded_it_does_not_pace_until_the_first_refusal() -> None:
    rate = RateController()
    assert rate.limit(0.0) is None
    assert [rate.reserve(1000, 0.0) for _ in range(3)] == [0.0, 0.0, 0.0]


@pytest.mark.anyio
async def test_slow_start_sends_one_request_then_doubles_per_clean_round_trip() -> None:
    """Before the first cut an unseeded controller limits what is in flight, not the rate:
    one request until an answer, then the window grows by each answer that came back fast
    (1, 1, 2, 4 requests), not by a slow one; the first cut ends it."""
    rate = RateController()
    started: list[int] = []

    async def request(i: int) -> None:
        await rate.acquire(100)
        started.append(i)

    def answer(took: float, now: float) -> None:
        rate.done(100)
        rate.accepted(100, now, sent_at=now - took)

    async with anyio.create_task_group() as tasks:
        for i in range(12):
            tasks.start_soon(request, i)
        await wait_all_tasks_blocked()
        assert len(started) == 1  # one request until the first answer
        for expected in (2, 4, 8):
            for _ in range(rate.in_flight // 100):  # every request in flight answers
                answer(0.010, 1.0)
            await wait_all_tasks_blocked()
            assert len(started) == expected  # the window doubled on clean answers
        assert rate.window == 400
        answer(0.050, 1.1)  # 5x the fastest round-trip: a queue at the server
        await wait_all_tasks_blocked()
        assert rate.window == 400
        assert len(started) == 9  # only its own place was freed
        rate.refused(sent_at=1.05, floor=0.0, now=1.2)  # the first cut ends the slow start
        assert rate.cuts == 1
        assert rate.window is None
        tasks.cancel_scope.cancel()


def test_a_queue_that_lasts_becomes_the_new_base_and_the_window_grows_again() -> None:
    rate = RateController()
    rate.accepted(100, 1.0, sent_at=0.99)  # 10 ms: the fastest
    rate.accepted(100, 1.5, sent_at=1.45)  # 50 ms: queued, no growth
    assert rate.window == 100
    rate.accepted(100, 2.6, sent_at=2.55)  # the fast one is more than a window old
    assert rate.window == 200
    assert RateController(1000).window is None  # seeded: no slow start


def test_a_refusal_cuts_to_beta_of_the_accepted_rate_and_holds_the_queue() -> None:
    rate = RateController(beta=0.8, recovery=2.0)
    for t in (0.1, 0.2, 0.3, 0.4):
        rate.accepted(250, t)  # 1,000 accepted over the last second
    rate.refused(sent_at=0.45, floor=0.5, now=0.5)
    assert rate.cuts == 1
    assert rate.w_max == pytest.approx(1000)
    assert rate.limit(0.5) == pytest.approx(800)
    # the refused request and every other one wait for the floor, in the queue
    assert rate.reserve(100, 0.5) == pytest.approx(0.5)
    # a refusal of a request sent before the cut does not cut again
    rate.refused(sent_at=0.49, floor=0.0, now=0.6)
    assert rate.cuts == 1
    assert rate.throttled == 2
    # one sent after it does: the limit keeps falling while refusals go on
    rate.refused(sent_at=0.7, floor=0.0, now=0.8)
    assert rate.cuts == 2
    assert rate.limit(0.8) < 800 * 0.9


def test_a_refusal_with_nothing_accepted_yet_only_holds_the_queue() -> None:
    rate = RateController()
    rate.refused(sent_at=0.0, floor=1.5, now=0.1)
    assert rate.limit(0.1) is None
    assert rate.reserve(10, 0.1) == pytest.approx(1.5)


def test_clean_answers_climb_back_to_the_cut_rate_then_probe_above() -> None:
    rate = RateController(beta=0.8, recovery=2.0)
    rate.accepted(1000, 0.0)
    rate.refused(sent_at=0.0, floor=0.0, now=0.5)
    at = [rate.limit(0.5 + t) for t in (0.0, 1.0, 2.0, 3.0, 4.0, 6.0)]
    assert at == sorted(at)  # never falls without a refusal
    assert at[0] == pytest.approx(800)
    assert at[2] == pytest.approx(1000)  # back at w_max after ``recovery``
    assert at[3] < 1000 * 1.1  # flat around it ...
    assert at[5] > 1000 * 2  # ... then probes well above it


def test_seeded_it_starts_at_the_known_quota_and_paces_from_the_first_request() -> None:
    rate = RateController(500)
    assert rate.limit(0.0) == 500
    assert rate.reserve(100, 10.0) == 0.0
    assert rate.reserve(100, 10.0) == pytest.approx(0.2)
    with pytest.raises(ValueError, match="initial"):
        RateController(0)


def test_client_keywords_turn_it_off_or_seed_it() -> None:
    assert make_client(rate_control=False)._transport.rate is None
    seeded = make_client(rate_limit=300)._transport.rate
    assert seeded is not None
    assert seeded.w_max == 300
    for bad in (0, -1, math.inf, "fast"):
        with pytest.raises(hy.ValidationError, match="rate_limit"):
            make_client(rate_limit=bad)
    with pytest.raises(hy.ValidationError, match="rate_control=True"):
        make_client(rate_control=False, rate_limit=100)


def messages(prefix: str, n: int) -> list[dict[str, Any]]:
    return [
        {"phone_number": 380_500_000_000 + i, "text": "Hi", "extra_id": f"{prefix}-{i}"}
        for i in range(n)
    ]


QUOTA = EmulatorConfig(time_scale=0, rate_limit=4000, quota_burst=0.25)
"""A quota small enough that a burst of requests meets it at once."""


@pytest.mark.anyio
async def test_refused_chunks_are_resent_once_and_every_recipient_is_accepted_once() -> None:
    async with emulated_client(QUOTA, retry=hy.RetryPolicy(max_attempts=10)) as emulated:
        report = await emulated.client.stream_batch(
            batch_campaign(), messages("a", 4000), chunk_size=250, concurrency=4
        )
        ledger = emulated.emulator.ledger
        assert report.accepted == 4000
        assert ledger.duplicates() == {}
        assert ledger.accepted == 4000
        refused = emulated.emulator.quota.as_dict()["refused"]
        assert refused >= 1  # the quota was met ...
        assert report.throttling.throttled == refused  # ... and each refusal shows
        assert report.throttling.rate_limit is not None  # the controller learned a limit
        assert report.throttling.waited > 0
        rate = emulated.client._transport.rate
        assert rate is not None
        assert rate.cuts >= 1
        assert rate.in_flight == 0  # every attempt, refused or not, freed its place


@pytest.mark.anyio
async def test_with_the_controller_off_a_refusal_still_is_resent_and_nothing_is_learned() -> None:
    async with emulated_client(
        QUOTA, rate_control=False, retry=hy.RetryPolicy(max_attempts=50, max_retry_after=0.05)
    ) as emulated:
        report = await emulated.client.stream_batch(
            batch_campaign(), messages("b", 2000), chunk_size=250
        )
        assert report.accepted == 2000
        assert emulated.emulator.ledger.duplicates() == {}
        assert report.throttling.throttled >= 1
        assert report.throttling.rate_limit is None
        assert report.throttling.waited == 0


@pytest.mark.anyio
async def test_max_rate_stays_a_ceiling_under_the_controller() -> None:
    """A campaign's max_rate paces it below a quota the controller never meets."""
    async with emulated_client(QUOTA) as emulated:
        report = await emulated.client.stream_batch(
            batch_campaign(), messages("c", 600), max_rate=2000
        )
        assert report.accepted == 600
        assert emulated.emulator.quota.as_dict()["refused"] == 0
        assert report.throttling.throttled == 0
        assert report.chunks[0].size == 200  # a tenth of a second's worth of max_rate


@pytest.mark.anyio
async def test_two_campaigns_on_one_client_share_the_quota_fairly() -> None:
    """Both wait in one FIFO queue: while both run, each gets about half of the requests."""
    order: list[str] = []
    async with emulated_client(QUOTA, retry=hy.RetryPolicy(max_attempts=10)) as emulated:

        def progress(name: str) -> Callable[[hy.Progress], None]:
            def note(_: hy.Progress) -> None:
                order.append(name)

            return note

        async def campaign(name: str) -> None:
            await emulated.client.stream_batch(
                batch_campaign(), messages(name, 2500), chunk_size=250, on_progress=progress(name)
            )

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(campaign, "x")
            tasks.start_soon(campaign, "y")
        assert emulated.emulator.ledger.accepted == 5000
        assert emulated.emulator.ledger.duplicates() == {}
        assert emulated.emulator.quota.as_dict()["refused"] >= 1
    first_half = order[: len(order) // 2]
    assert abs(first_half.count("x") - first_half.count("y")) <= 4


@pytest.mark.anyio
async def test_progress_shows_the_limit_and_the_refusals() -> None:
    seen: list[hy.Progress] = []
    async with emulated_client(QUOTA, retry=hy.RetryPolicy(max_attempts=10)) as emulated:
        await emulated.client.stream_batch(
            batch_campaign(), messages("p", 3000), chunk_size=250, on_progress=seen.append
        )
    assert seen[-1].throttling.throttled >= 1
    assert seen[-1].throttling.rate_limit is not None
    assert seen[0].throttling.throttled <= seen[-1].throttling.throttled


@pytest.mark.anyio
async def test_a_deadline_reached_while_waiting_in_the_queue_is_not_sent() -> None:
    """Nothing left while the request waited its turn: NotSentError, never UNKNOWN."""
    async with emulated_client(timeouts=hy.Timeouts(total=0.2), rate_limit=1000) as emulated:
        rate = emulated.client._transport.rate
        assert rate is not None
        now = anyio.current_time()
        rate.refused(sent_at=now, floor=60.0, now=now)  # the queue is held for a minute
        with pytest.raises(hy.NotSentError, match="waiting for the rate controller"):
            await emulated.client.send_batch(batch_campaign(), messages("d", 1))
        report = await emulated.client.stream_batch(batch_campaign(), messages("e", 3))
        assert report.not_sent == 3
        assert emulated.emulator.ledger.requests == 0


@pytest.mark.anyio
async def test_a_quota_of_requests_is_learned_through_the_messages_they_carry() -> None:
    """Chunks of one size: a limit in requests per second is one in messages per second."""
    config = EmulatorConfig(time_scale=0, request_rate_limit=40, quota_burst=1.0)
    async with emulated_client(config, retry=hy.RetryPolicy(max_attempts=10)) as emulated:
        report = await emulated.client.stream_batch(
            batch_campaign(), messages("r", 4000), chunk_size=50
        )
        assert report.accepted == 4000
        assert emulated.emulator.ledger.duplicates() == {}
        figures = emulated.emulator.quota.as_dict()
        assert figures["refused"] >= 1
        assert figures["refused"] < figures["admitted"] / 4  # it learned, not kept knocking
        rate = emulated.client._transport.rate
        assert rate is not None
        assert rate.cuts >= 1


@pytest.mark.anyio
async def test_a_known_quota_sizes_the_chunks_and_paces_from_the_start() -> None:
    """Seeded with the quota, requests are a tenth of a second's worth and none is refused."""
    async with emulated_client(QUOTA, rate_limit=3000) as emulated:
        report = await emulated.client.stream_batch(batch_campaign(), messages("k", 900))
        assert [chunk.size for chunk in report.chunks] == [300, 300, 300]
        assert report.accepted == 900
        assert emulated.emulator.quota.as_dict()["refused"] == 0
        assert report.throttling.rate_limit is not None
