"""Running a workload with the ordinary ``HyberClient`` and recording it."""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import httpx

from .._client import HyberClient
from .._config import DEFAULT_RETRY, DEFAULT_TIMEOUTS, RetryPolicy, Timeouts
from .._errors import APIError, HyberError
from .._models import JobAccepted
from .._poller import Counts, PollDeadlineError
from .._send_report import Outcome, outcome_of_error
from ._recorder import Recorder
from ._workload import Workload

__all__ = ["follow_jobs", "loadtest_client", "run_workload"]


@contextlib.asynccontextmanager
async def loadtest_client(
    recorder: Recorder,
    *,
    connections: int,
    base_url: str | None = None,
    client_id: str | None = None,
    login: str | None = None,
    password: str | None = None,
    timeouts: Timeouts = DEFAULT_TIMEOUTS,
    retry: RetryPolicy = DEFAULT_RETRY,
    transport: httpx.AsyncBaseTransport | None = None,
) -> AsyncIterator[HyberClient]:
    """An ordinary ``HyberClient`` whose every answer (each attempt) ``recorder`` counts by
    status, with a pool of ``connections``. The settings fall back to the environment as the
    client's do; ``transport`` (e.g. ``httpx.ASGITransport``) replaces the network. Its rate
    control is off: the load test offers the load it is told (its schedule, its connections),
    not what a controller's slow start or pacing would let through; a refused request waits
    its own ``Retry-After``."""
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with (
        httpx.AsyncClient(
            timeout=timeouts.to_httpx(),
            limits=limits,
            transport=transport,
            event_hooks={"response": [recorder.on_response]},
        ) as http,
        HyberClient(
            client_id,
            login,
            password,
            base_url=base_url,
            timeouts=timeouts,
            retry=retry,
            max_connections=connections,
            http_client=http,
            rate_control=False,
        ) as client,
    ):
        yield client


async def _send(  # noqa: PLR0912 -- one branch per way a request can end, as the outcomes table
    client: HyberClient, workload: Workload, campaign: Any, items: list[Any]
) -> tuple[dict[Outcome, int], str | None, str | None]:
    """Send one request; the outcomes of its recipients, what failed (if it did), and the
    accepted job's id (async endpoints)."""
    n = len(items)
    try:
        if workload.kind == "broadcast":
            if workload.sync:
                answer: Any = await client.send_broadcast_sync(campaign, items)
            else:
                answer = await client.send_broadcast(campaign, items)
        elif workload.sync:
            answer = await client.send_batch_sync(campaign, items)
        else:
            answer = await client.send_batch(campaign, items)
    except HyberError as exc:
        if isinstance(exc, APIError):
            label = f"{exc.status_code}/{exc.error_code}"
        else:
            label = type(exc).__name__
        return {outcome_of_error(exc): n}, label, None
    if isinstance(answer, JobAccepted):
        return {Outcome.ACCEPTED: n}, None, answer.job_id
    counts = dict.fromkeys(Outcome, 0)
    for result in answer.messages[:n]:
        if result.accepted is True and result.error_code is None:
            counts[Outcome.ACCEPTED] += 1
        elif result.accepted is False or result.error_code is not None:
            counts[Outcome.REJECTED] += 1
        else:
            counts[Outcome.UNKNOWN] += 1
    counts[Outcome.UNKNOWN] += max(0, n - len(answer.messages))
    return counts, None, None


async def run_workload(  # noqa: C901 -- the open and the closed loop share setup and teardown
    client: HyberClient,
    workload: Workload,
    recorder: Recorder | None = None,
    *,
    at: Callable[[float, Recorder], Any] | None = None,
) -> Recorder:
    """Run ``workload`` through ``client``, recording into ``recorder`` (a new one when
    ``None``), and return it once every request has been answered.

    ``at`` is called with the seconds elapsed and the recorder about every 0.1 s (a live view).
    """
    recorder = recorder if recorder is not None else Recorder()
    recorder.info.update(
        target_rate=workload.target_rate,
        duration_s=workload.duration,
        mode="open" if workload.open_loop else "closed",
        ramp=list(workload.ramp) if workload.ramp else None,
        max_in_flight=workload.max_in_flight,
        connections=workload.connections if workload.open_loop else workload.max_in_flight,
        chunk_size=workload.chunk_size,
        endpoint=workload.endpoint,
    )
    campaign = workload.campaign()
    cpu = time.process_time()
    start = recorder.origin = anyio.current_time()

    async def one(intended: float, first: int) -> None:
        items = workload.items(first)
        actual = anyio.current_time() - start
        recorder.started(actual, len(items))
        try:
            outcomes, error, job_id = await _send(client, workload, campaign, items)
        finally:
            end = anyio.current_time() - start
        recorder.finished(intended, actual, end, outcomes, error)
        if job_id is not None:
            recorder.job_starts[job_id] = actual

    async def tick(done: anyio.Event) -> None:
        assert at is not None
        while not done.is_set():
            at(anyio.current_time() - start, recorder)
            with anyio.move_on_after(0.1):
                await done.wait()

    done = anyio.Event()
    async with anyio.create_task_group() as ticker:
        if at is not None:
            ticker.start_soon(tick, done)
        async with anyio.create_task_group() as tasks:
            if workload.open_loop:
                slots = anyio.Semaphore(workload.connections)

                async def slotted(intended: float, first: int) -> None:
                    try:
                        await one(intended, first)
                    finally:
                        slots.release()

                for k, t in enumerate(workload.schedule()):
                    await anyio.sleep_until(start + t)
                    await slots.acquire()
                    tasks.start_soon(slotted, t, k * workload.chunk_size)
                recorder.send_window = max(workload.duration, anyio.current_time() - start)
            else:
                assert workload.max_in_flight is not None
                counter = itertools.count()

                async def loop() -> None:
                    while anyio.current_time() - start < workload.duration:
                        first = next(counter) * workload.chunk_size
                        await one(anyio.current_time() - start, first)

                for _ in range(workload.max_in_flight):
                    tasks.start_soon(loop)
        if workload.max_in_flight is not None:
            recorder.send_window = max(workload.duration, recorder.elapsed)
        done.set()
    if at is not None:
        at(anyio.current_time() - start, recorder)
    recorder.cpu_seconds += time.process_time() - cpu
    return recorder


async def follow_jobs(
    client: HyberClient, recorder: Recorder, *, deadline: float, interval: float = 1.0
) -> None:
    """Poll every job the run had accepted until all its messages are final, or ``deadline``
    seconds have passed; record in ``recorder`` the time from each request's start to the poll
    that saw its job final (weighted by its messages: an upper bound, within ``interval``) and
    the messages delivered, expired, failed and still pending."""
    follow = dict.fromkeys(("jobs", "final_jobs", "delivered", "expired", "failed", "pending"), 0)
    follow["jobs"] = len(recorder.job_starts)
    last: dict[str, Counts] = {}
    if recorder.job_starts:
        poller = client.poll_jobs(
            list(recorder.job_starts), interval=interval, max_interval=interval, deadline=deadline
        )
        poller.keep_answers = False  # counts are all it records: free each answer once counted
        try:
            async for update in poller:
                last[update.job_id] = update.counts
                if update.final and update.error is None:
                    seen = anyio.current_time() - recorder.origin
                    since = seen - recorder.job_starts[update.job_id]
                    micros = min(max(round(since * 1e6), 1), 3_600_000_000)
                    recorder.to_final.record_value(micros, max(update.counts.total, 1))
                    follow["final_jobs"] += 1
        except PollDeadlineError:
            pass
    for counts in last.values():
        follow["delivered"] += counts.delivered
        follow["expired"] += counts.expired
        follow["failed"] += counts.failed
        follow["pending"] += counts.pending
    recorder.follow = follow
