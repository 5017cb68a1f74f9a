"""poll_jobs / wait_for_jobs against scripted status sequences (respx), asyncio and trio."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import pytest
import respx
from _support import ENDPOINT, make_client
from trio.testing import MockClock

import hyber_async as hy
from hyber_async._poller import (
    CampaignSummary,
    Counts,
    JobUpdate,
    PollDeadlineError,
    poll_jobs,
    summarize,
    wait_for_jobs,
)

FAST: dict[str, Any] = {"interval": 0.001, "max_interval": 0.004}
"""Poll intervals that keep the tests quick."""


def msg(i: int, state: str) -> dict[str, Any]:
    """One status-report message of recipient ``i`` in ``state``."""
    item: dict[str, Any] = {
        "phone_number": str(380960000000 + i),
        "message_id": f"m{i}",
        "processed": False,
        "accepted": True,
    }
    item.update(
        {
            "pending": {"status": -1},
            "sms": {"status": 2, "substatus": 23, "hyber_status": 23011},
            "viber": {"status": 2, "substatus": 23, "hyber_status": 23033},
            "template": {"status": 2, "substatus": 23, "hyber_status": 23043},
            "expired": {"error_code": 35015, "error_text": "SMS expired"},
            "rejected": {"error_code": 36024, "error_text": "Phone number incorrect"},
            "undelivered": {"status": 3, "substatus": 34, "hyber_status": 34001},
        }[state]
    )
    return item


def report(*states: str) -> list[dict[str, Any]]:
    """A status report with one message per state."""
    return [msg(i, state) for i, state in enumerate(states)]


Step = list[dict[str, Any]] | int
"""One scripted answer: a report's messages, or an HTTP error status."""


class ScriptedAPI:
    """Answers GET /status/{job_id} from a per-job script (the last step repeats)."""

    def __init__(self, router: respx.MockRouter, scripts: dict[str, list[Step]]) -> None:
        self.scripts = scripts
        self.calls: dict[str, int] = dict.fromkeys(scripts, 0)
        self.times: dict[str, list[float]] = {job: [] for job in scripts}
        self.in_flight = 0
        self.max_in_flight = 0
        self.latency = 0.0
        route = router.get(url__regex=rf"^{ENDPOINT}/status/(?P<job_id>[^/]+)$")
        route.side_effect = self.answer

    async def answer(self, request: httpx.Request, job_id: str) -> httpx.Response:
        """The next step of ``job_id``'s script, after counting the request as in flight."""
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await anyio.sleep(self.latency)
        finally:
            self.in_flight -= 1
        self.times[job_id].append(anyio.current_time())
        script = self.scripts[job_id]
        step = script[min(self.calls[job_id], len(script) - 1)]
        self.calls[job_id] += 1
        if isinstance(step, int):
            return httpx.Response(step, json={"error_code": 1, "error_text": "scripted"})
        return httpx.Response(200, json={"messages": step})


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    """A respx router; every request must match a route."""
    with respx.mock(assert_all_called=False) as mock:
        yield mock


async def collect(updates: Any) -> list[JobUpdate]:
    """Every update of an iteration."""
    return [update async for update in updates]


@pytest.mark.anyio
async def test_polls_one_job_to_completion(router: respx.MockRouter) -> None:
    """Updates follow the job's progress and the last one is final."""
    ScriptedAPI(
        router,
        {"j": [report("pending", "pending"), report("sms", "pending"), report("sms", "expired")]},
    )
    async with make_client() as client:
        updates = await collect(poll_jobs(client, ["j"], **FAST))
    assert [(u.counts.delivered, u.counts.expired, u.counts.pending) for u in updates] == [
        (0, 0, 2),
        (1, 0, 1),
        (1, 1, 0),
    ]
    assert [u.final for u in updates] == [False, False, True]
    assert updates[-1].status == hy.converter.structure(
        {"messages": report("sms", "expired")}, hy.JobStatus
    )


@pytest.mark.anyio
async def test_unchanged_polls_yield_no_update(router: respx.MockRouter) -> None:
    """Polls that find the same counts are not reported again."""
    pending = report("pending")
    api = ScriptedAPI(router, {"j": [pending, pending, pending, report("viber")]})
    async with make_client() as client:
        updates = await collect(poll_jobs(client, ["j"], **FAST))
    assert (len(updates), api.calls["j"]) == (2, 4)


@pytest.mark.anyio
async def test_processed_false_is_not_a_failure(router: respx.MockRouter) -> None:
    """processed: false on a delivered message counts as delivered, on status -1 as pending."""
    ScriptedAPI(router, {"j": [report("pending", "sms"), report("sms", "sms")]})
    async with make_client() as client:
        updates = await collect(poll_jobs(client, ["j"], **FAST))
    assert updates[0].counts == Counts(delivered=1, pending=1)
    assert updates[-1].counts == Counts(delivered=2)


@pytest.mark.anyio
async def test_empty_report_is_not_final(router: respx.MockRouter) -> None:
    """A job whose report has no messages yet is polled again."""
    api = ScriptedAPI(router, {"j": [[], report("sms")]})
    async with make_client() as client:
        updates = await collect(poll_jobs(client, ["j"], **FAST))
    assert [u.final for u in updates] == [False, True]
    assert api.calls["j"] == 2


@pytest.mark.anyio
async def test_wait_for_jobs_summarises_every_job(router: respx.MockRouter) -> None:
    """The summary counts outcomes over all jobs, per channel and per error_code."""
    ScriptedAPI(
        router,
        {
            "a": [report("pending", "pending"), report("sms", "expired")],
            "b": [report("viber", "template", "rejected", "undelivered")],
        },
    )
    async with make_client() as client:
        summary = await wait_for_jobs(client, ["a", "b"], **FAST)
    assert summary.counts == Counts(delivered=3, expired=1, failed=2)
    assert summary.by_channel == {
        "sms": Counts(delivered=1, expired=1),
        "viber": Counts(delivered=2),
        "not told": Counts(failed=2),
    }
    assert summary.by_error_code == {35015: 1, 36024: 1}
    assert (summary.jobs, summary.complete) == (2, True)


@pytest.mark.anyio
async def test_deadline_raises_naming_pending_jobs(router: respx.MockRouter) -> None:
    """A job that never finishes ends the polling with PollDeadlineError naming it."""
    ScriptedAPI(router, {"done": [report("sms")], "stuck": [report("sms", "pending")]})
    updates: list[JobUpdate] = []

    async def follow(client: hy.HyberClient) -> None:
        async for update in poll_jobs(client, ["done", "stuck"], deadline=0.05, **FAST):
            updates.append(update)

    async with make_client() as client:
        with pytest.raises(PollDeadlineError) as caught:
            await follow(client)
    assert caught.value.pending == {"stuck": Counts(delivered=1, pending=1)}
    assert caught.value.summary.pending_jobs == ("stuck",)
    assert not caught.value.summary.complete
    assert {u.job_id for u in updates if u.final} == {"done"}
    assert isinstance(caught.value, hy.HyberError)


@pytest.mark.anyio
async def test_wait_for_jobs_deadline_carries_partial_summary(router: respx.MockRouter) -> None:
    """wait_for_jobs raises PollDeadlineError whose summary has what was known."""
    ScriptedAPI(router, {"stuck": [report("sms", "pending")]})
    async with make_client() as client:
        with pytest.raises(PollDeadlineError) as caught:
            await wait_for_jobs(client, ["stuck"], deadline=0.02, **FAST)
    assert caught.value.summary.counts == Counts(delivered=1, pending=1)


@pytest.mark.anyio
@pytest.mark.parametrize("status", [429, 500, 502, 503])
async def test_throttling_and_server_errors_on_get_are_retried(
    router: respx.MockRouter, status: int
) -> None:
    """429 and 5xx answers to a status GET are retried and polling completes."""
    api = ScriptedAPI(router, {"j": [status, status, report("sms")]})
    async with make_client() as client:
        updates = await collect(poll_jobs(client, ["j"], **FAST))
    assert [(u.final, u.error) for u in updates] == [(True, None)]
    assert api.calls["j"] == 3


@pytest.mark.anyio
async def test_failed_job_reported_and_others_go_on(router: respx.MockRouter) -> None:
    """A job whose GET fails for good yields an error update; the other job still completes."""
    api = ScriptedAPI(router, {"gone": [404], "ok": [report("pending"), report("sms")]})
    async with make_client() as client:
        updates = await collect(poll_jobs(client, ["gone", "ok"], **FAST))
    [failed] = [u for u in updates if u.job_id == "gone"]
    assert isinstance(failed.error, hy.APIError)
    assert failed.error.status_code == 404
    assert (failed.final, failed.status) == (False, None)
    assert [u.final for u in updates if u.job_id == "ok"] == [False, True]
    assert api.calls["gone"] == 1


@pytest.mark.anyio
async def test_retries_exhausted_job_lands_in_failed_jobs(router: respx.MockRouter) -> None:
    """After the client's retries are exhausted the job is in summary.failed_jobs."""
    api = ScriptedAPI(router, {"down": [503], "ok": [report("sms")]})
    async with make_client(retry=hy.RetryPolicy(max_attempts=3, wait=False)) as client:
        summary = await wait_for_jobs(client, ["down", "ok"], **FAST)
    assert list(summary.failed_jobs) == ["down"]
    assert isinstance(summary.failed_jobs["down"], hy.ServerError)
    assert (summary.counts, summary.complete, api.calls["down"]) == (Counts(delivered=1), False, 3)


@pytest.mark.anyio
@pytest.mark.parametrize(("connections", "max_concurrency", "bound"), [(3, None, 3), (4, 2, 2)])
async def test_concurrency_never_exceeds_the_bound(
    router: respx.MockRouter, connections: int, max_concurrency: int | None, bound: int
) -> None:
    """Status requests in flight never exceed min(max_concurrency, client.max_connections)."""
    jobs = {f"j{i}": [report("pending"), report("sms")] for i in range(12)}
    api = ScriptedAPI(router, jobs)
    api.latency = 0.002
    async with make_client(max_connections=connections) as client:
        poller = poll_jobs(client, jobs, max_concurrency=max_concurrency, **FAST)
        assert poller.max_concurrency == bound
        summary = await wait_for_jobs(client, jobs, max_concurrency=max_concurrency, **FAST)
    assert api.max_in_flight == bound
    assert summary.counts == Counts(delivered=12)


@pytest.mark.anyio
async def test_duplicate_job_ids_polled_once(router: respx.MockRouter) -> None:
    """A job id given twice is polled and counted once."""
    api = ScriptedAPI(router, {"j": [report("sms")]})
    async with make_client() as client:
        summary = await wait_for_jobs(client, ["j", "j"], **FAST)
    assert (summary.jobs, api.calls["j"]) == (1, 1)


@pytest.mark.anyio
async def test_breaking_out_stops_polling(router: respx.MockRouter) -> None:
    """After the caller breaks out of the loop, no further request is made."""
    api = ScriptedAPI(router, {"j": [report("pending")]})
    async with make_client() as client:
        async for _ in poll_jobs(client, ["j"], **FAST):
            break
        await anyio.sleep(0.02)
    assert api.calls["j"] == 1


@pytest.mark.anyio
async def test_no_jobs_is_an_empty_complete_summary(router: respx.MockRouter) -> None:
    """Waiting for no jobs returns at once with an empty, complete summary."""
    async with make_client() as client:
        summary = await wait_for_jobs(client, [], **FAST)
    assert summary == CampaignSummary()
    assert summary.complete


@pytest.mark.parametrize(
    "settings",
    [{"interval": 0}, {"interval": 5, "max_interval": 1}, {"deadline": 0}, {"max_concurrency": 0}],
)
def test_bad_settings_are_refused(settings: dict[str, Any]) -> None:
    """Non-positive intervals, deadline or concurrency raise ValueError."""
    with pytest.raises(ValueError, match=">"):
        poll_jobs(make_client(), ["j"], **settings)


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", [("trio", {"clock": MockClock(autojump_threshold=0)})])
async def test_backoff_doubles_while_unchanged_and_resets_on_change(
    router: respx.MockRouter,
) -> None:
    """On trio's virtual clock: waits double up to max_interval, with jitter, reset on change."""
    pending, half = report("pending", "pending"), report("sms", "pending")
    api = ScriptedAPI(router, {"j": [pending] * 6 + [half, half, report("sms", "sms")]})
    async with make_client() as client:
        await collect(poll_jobs(client, ["j"], interval=1.0, max_interval=8.0))
    times = api.times["j"]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    waits = [1.0, 2.0, 4.0, 8.0, 8.0, 8.0, 1.0, 2.0]
    assert len(gaps) == len(waits)
    for gap, wait in zip(gaps, waits, strict=True):
        assert 0.5 * wait <= gap <= wait + 1e-6


def test_summarize_derives_channels_from_known_codes() -> None:
    """Known hyber_status / error_code values name the channel, and so does
    delivered_sms_parts (documented as missing unless the message went to SMS); a pending
    message's channel is "not yet known", a final one's whose status names none "not told"."""
    messages = report("sms", "viber", "template", "expired", "undelivered", "pending")
    messages.append({**msg(6, "undelivered"), "delivered_sms_parts": 0})
    status = hy.converter.structure({"messages": messages}, hy.JobStatus)
    summary = summarize({"j": status})
    assert {k: v.total for k, v in summary.by_channel.items()} == {
        "sms": 3,
        "viber": 2,
        "not told": 1,
        "not yet known": 1,
    }
    assert summary.pending_jobs == ("j",)


def test_summaries_add_up() -> None:
    """Adding summaries adds their counts, channels and error codes."""
    one = summarize({"a": hy.converter.structure({"messages": report("expired")}, hy.JobStatus)})
    two = summarize({"b": hy.converter.structure({"messages": report("sms")}, hy.JobStatus)})
    total = one + two
    assert (total.jobs, total.counts) == (2, Counts(delivered=1, expired=1))
    assert total.by_channel == {"sms": Counts(delivered=1, expired=1)}
    assert total.by_error_code == {35015: 1}
