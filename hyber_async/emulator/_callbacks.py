"""Delivery-report callbacks: final statuses POSTed to each job's ``callback_url``.

When a message becomes final (on the emulated clock) its report is queued for its callback URL.
A POST carries ``callback_batch_size`` reports as a JSON array (example 20), or one report as a
single object when the batch size is 1 (example 19); a report waits at most
``callback_period`` real seconds for its batch to fill. A POST answered with anything but a 2xx
status, or failing at the transport level, is retried after ``min(callback_max_backoff,
callback_backoff * 2 ** (n - 1))`` real seconds, ``callback_max_attempts`` times in all; then its
reports are dropped and counted in ``CallbackStats.dropped``. Reports are sent at least once:
a receiver must be idempotent on ``(message_id, hyber_status)``.

User replies (2-way) queued with ``post_reply`` are POSTed one object each, retried the same way.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections import deque
from typing import Any, Final

import anyio
import attrs
import httpx
import orjson

from ._clock import Clock
from ._config import EmulatorConfig
from ._state import Job
from ._status import delivery_report, final_time

__all__ = ["CallbackStats", "Callbacks"]

TICK: Final = 0.02
"""Real seconds between looks at the clock when nothing is due sooner."""


@attrs.define
class CallbackStats:
    """What the callback sender did so far."""

    posts: int = 0
    """POST attempts made."""
    delivered: int = 0
    """Reports in POSTs answered 2xx."""
    retries: int = 0
    """POST attempts that failed and were retried."""
    dropped: int = 0
    """Reports given up after ``callback_max_attempts`` failed attempts."""
    pending: int = 0
    """Reports due and not sent yet."""
    replies: int = 0
    """User replies in POSTs answered 2xx."""
    replies_dropped: int = 0
    """User replies given up after ``callback_max_attempts`` failed attempts."""


@attrs.define
class _Segment:
    """Due reports of one job: its message ``indices`` from ``position`` on."""

    job: Job
    indices: list[int]
    extra_ids: list[str | None]
    queued_at: float
    position: int = 0


class Callbacks:
    """Queues the reports of final messages and POSTs them while ``run`` runs."""

    def __init__(self, config: EmulatorConfig, clock: Clock) -> None:
        """A sender with ``config``'s batching and retry settings, driven by ``clock``."""
        self._config = config
        self._clock = clock
        self.stats = CallbackStats()
        self._due: list[tuple[float, int, Job, int]] = []
        self._sequence = itertools.count()
        self._queues: dict[str, deque[_Segment]] = {}
        self._workers: dict[str, int] = {}
        self._replies: deque[tuple[str, bytes]] = deque()
        self._running = False

    def schedule(self, job: Job) -> None:
        """Queue the reports of ``job`` for when its messages become final."""
        if job.callback_url is None:
            return
        for path in set(job.paths):
            heapq.heappush(self._due, (final_time(job, path), next(self._sequence), job, path))

    def post_reply(self, url: str, reply: dict[str, Any]) -> None:
        """Queue the user ``reply`` for one POST to ``url`` (sent while ``run`` runs)."""
        self._replies.append((url, orjson.dumps(reply)))

    def _collect(self, now: float) -> None:
        real_now = time.monotonic()
        while self._due and self._due[0][0] <= now:
            _, _, job, path = heapq.heappop(self._due)
            indices = [i for i, p in enumerate(job.paths) if p == path]
            all_extra_ids = job.extra_id_list()
            segment = _Segment(job, indices, [all_extra_ids[i] for i in indices], real_now)
            url = job.callback_url
            assert url is not None
            self._queues.setdefault(url, deque()).append(segment)
            self.stats.pending += len(indices)

    def _take(self, url: str, size: int) -> list[dict[str, Any]]:
        queue = self._queues[url]
        as_string = self._config.callback_batch_size > 1
        reports: list[dict[str, Any]] = []
        while queue and len(reports) < size:
            segment = queue[0]
            end = min(len(segment.indices), segment.position + size - len(reports))
            for k in range(segment.position, end):
                report = delivery_report(
                    segment.job,
                    segment.indices[k],
                    segment.extra_ids[k],
                    number_as_string=as_string,
                )
                reports.append(report)
            segment.position = end
            if end == len(segment.indices):
                queue.popleft()
        self.stats.pending -= len(reports)
        return reports

    def _queued(self, url: str) -> tuple[int, float]:
        """Reports waiting for ``url`` and the real time the oldest was queued."""
        queue = self._queues[url]
        count = sum(len(s.indices) - s.position for s in queue)
        return count, (queue[0].queued_at if queue else 0.0)

    async def run(
        self,
        transport: httpx.AsyncBaseTransport | None = None,
        *,
        task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Send the reports as they become due, until cancelled."""
        if self._running:
            raise RuntimeError("the callbacks of this emulator are already being sent")
        self._running = True
        timeout = httpx.Timeout(self._config.callback_timeout)
        try:
            async with (
                httpx.AsyncClient(transport=transport, timeout=timeout) as http,
                anyio.create_task_group() as tasks,
            ):
                task_status.started()
                while True:
                    self._collect(self._clock.now())
                    for url, queue in self._queues.items():
                        workers = self._workers.get(url, 0)
                        if queue and workers < self._config.callback_concurrency:
                            self._workers[url] = workers + 1
                            tasks.start_soon(self._drain, http, url)
                    while self._replies:
                        tasks.start_soon(self._post_reply, http, *self._replies.popleft())
                    await anyio.sleep(self._sleep())
        finally:
            self._running = False

    def _sleep(self) -> float:
        if not self._due:
            return TICK
        delay = self._clock.real_delay(self._due[0][0] - self._clock.now())
        return TICK if delay is None else min(TICK, delay)

    async def _drain(self, http: httpx.AsyncClient, url: str) -> None:
        size = self._config.callback_batch_size
        try:
            while True:
                count, oldest = self._queued(url)
                if not count:
                    return
                wait = oldest + self._config.callback_period - time.monotonic()
                if count < size and wait > 0:
                    await anyio.sleep(min(wait, TICK))
                    continue
                await self._post(http, url, self._take(url, size))
        finally:
            self._workers[url] -= 1

    async def _post(self, http: httpx.AsyncClient, url: str, reports: list[dict[str, Any]]) -> None:
        body = orjson.dumps(reports if self._config.callback_batch_size > 1 else reports[0])
        if await self._send(http, url, body):
            self.stats.delivered += len(reports)
        else:
            self.stats.dropped += len(reports)

    async def _post_reply(self, http: httpx.AsyncClient, url: str, body: bytes) -> None:
        if await self._send(http, url, body):
            self.stats.replies += 1
        else:
            self.stats.replies_dropped += 1

    async def _send(self, http: httpx.AsyncClient, url: str, body: bytes) -> bool:
        """POST ``body`` until answered 2xx (True) or out of attempts (False)."""
        config = self._config
        headers = {"Content-Type": "application/json"}
        for attempt in range(1, config.callback_max_attempts + 1):
            self.stats.posts += 1
            try:
                response = await http.post(url, content=body, headers=headers)
            except httpx.HTTPError:
                success = False
            else:
                success = response.is_success
            if success:
                return True
            if attempt < config.callback_max_attempts:
                self.stats.retries += 1
                backoff = config.callback_backoff * 2.0 ** (attempt - 1)
                await anyio.sleep(min(config.callback_max_backoff, backoff))
        return False
