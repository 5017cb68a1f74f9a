"""Following jobs to the end: polling their status reports, and the campaign summary.

``poll_jobs(client, job_ids)`` is an async iterator of ``JobUpdate``s: it polls every job, at
most ``client.max_connections`` requests at a time, yields an update whenever a job's counts
change, and stops once every message of every job is final. ``wait_for_jobs`` runs it to the end
and returns the ``CampaignSummary``. Both work on asyncio and trio (anyio).

Each call to ``__anext__`` does its own polling round inside its own task group, so no task
outlives it: breaking out of ``async for`` leaves nothing running and needs no ``aclose()``
(a generator yielding from inside a task group could not promise that).
"""

from __future__ import annotations

import random
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from typing import Final, Protocol

import anyio
import attrs
from anyio.lowlevel import checkpoint

from ._errors import HyberError, InvalidValueError, PollDeadlineError
from ._models import Channel, ErrorCode, HyberStatus, JobStatus, Status
from ._status_answer import StatusAnswer, Tally

__all__ = [
    "CHANNEL_OF_CODE",
    "DEFAULT_INTERVAL",
    "DEFAULT_MAX_INTERVAL",
    "PENDING_CHANNEL",
    "UNTOLD_CHANNEL",
    "CampaignSummary",
    "Counts",
    "JobPoller",
    "JobUpdate",
    "PollDeadlineError",
    "PollOptions",
    "StatusReader",
    "finish_polling",
    "poll_jobs",
    "summarize",
    "summarize_tallies",
    "wait_for_jobs",
]

PENDING_CHANNEL: Final = "not yet known"
"""The ``by_channel`` key of messages not final yet: their last channel is not known yet."""
UNTOLD_CHANNEL: Final = "not told"
"""The ``by_channel`` key of final messages whose status names no channel."""

DEFAULT_INTERVAL: Final = 2.0
"""Seconds between polls of a job that is changing."""
DEFAULT_MAX_INTERVAL: Final = 60.0
"""Cap of the back-off while a job does not change."""


class StatusReader(Protocol):
    """What the poller needs of a client: its pool size and the status of a job."""

    @property
    def max_connections(self) -> int:
        """Requests kept in flight at most."""

    async def read_status(self, job_id: str, *, keep_messages: bool = True) -> StatusAnswer:
        """The status answer of job ``job_id``, parsed but not typed (see ``StatusAnswer``);
        with ``keep_messages=False``, counted as it arrives and keeping no message."""


@attrs.frozen
class PollOptions:
    """How jobs are polled (see ``poll_jobs``), checked once."""

    interval: float = DEFAULT_INTERVAL
    max_interval: float = DEFAULT_MAX_INTERVAL
    deadline: float | None = None
    max_concurrency: int | None = None

    def __attrs_post_init__(self) -> None:
        if not 0 < self.interval <= self.max_interval:
            raise InvalidValueError("interval must be > 0 and <= max_interval")
        if self.deadline is not None and self.deadline <= 0:
            raise InvalidValueError("deadline must be > 0 seconds")
        if self.max_concurrency is not None and self.max_concurrency < 1:
            raise InvalidValueError("max_concurrency must be >= 1")


CHANNEL_OF_CODE: Final[Mapping[int, str]] = {
    HyberStatus.SMS_DELIVERED: Channel.SMS.value,
    HyberStatus.VIBER_DELIVERED: Channel.VIBER.value,
    HyberStatus.VIBER_TEMPLATE_DELIVERED: Channel.VIBER.value,
    HyberStatus.SMS_EXPIRED: Channel.SMS.value,
}
"""The channel that a known ``hyber_status`` or ``error_code`` tells (section 9 of the
documentation lists these only); a message with ``delivered_sms_parts`` went to SMS (the field
is documented as missing otherwise)."""

EXPIRED_CODES: Final = frozenset({HyberStatus.SMS_EXPIRED, ErrorCode.SMS_EXPIRED})
"""``hyber_status`` / ``error_code`` values that mean "expired" rather than "failed"."""


@attrs.frozen
class Counts:
    """Messages by outcome. ``pending`` ones are not final yet (or not known to be)."""

    delivered: int = 0
    """``status`` 2."""
    expired: int = 0
    """``error_code`` or ``hyber_status`` 35015 (SMS expired, the end of the cascade)."""
    failed: int = 0
    """Any other ``error_code``, or ``status`` 3 with another ``hyber_status``."""
    pending: int = 0
    """Neither: ``status`` -1 or absent."""

    @property
    def total(self) -> int:
        """All messages counted."""
        return self.delivered + self.expired + self.failed + self.pending

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            self.delivered + other.delivered,
            self.expired + other.expired,
            self.failed + other.failed,
            self.pending + other.pending,
        )


@attrs.frozen
class CampaignSummary:
    """What happened to the messages of a set of jobs.

    ``by_channel`` splits ``counts`` by the channel that the message's documented status tells
    (``"sms"``, ``"viber"``: its ``hyber_status`` or ``error_code``, or ``delivered_sms_parts``
    for SMS); ``"not yet known"`` for messages still pending, ``"not told"`` for final ones whose
    status names no channel; ``by_error_code`` counts the messages carrying each ``error_code``;
    ``pending_jobs`` are the jobs not final yet (a job whose report is still empty, or was never
    read, is pending with no messages counted); ``failed_jobs`` maps the id of each job whose
    polling failed for good to the error (its messages keep their last known counts).
    """

    jobs: int = 0
    counts: Counts = Counts()
    by_channel: Mapping[str, Counts] = attrs.field(factory=dict)
    by_error_code: Mapping[int, int] = attrs.field(factory=dict)
    pending_jobs: tuple[str, ...] = ()
    failed_jobs: Mapping[str, HyberError] = attrs.field(factory=dict)

    @property
    def complete(self) -> bool:
        """True when every message of every job is known to be final."""
        return not self.pending_jobs and not self.failed_jobs

    def __add__(self, other: CampaignSummary) -> CampaignSummary:
        channels = dict(self.by_channel)
        for channel, counts in other.by_channel.items():
            channels[channel] = channels.get(channel, Counts()) + counts
        return CampaignSummary(
            jobs=self.jobs + other.jobs,
            counts=self.counts + other.counts,
            by_channel=channels,
            by_error_code=dict(Counter(self.by_error_code) + Counter(other.by_error_code)),
            pending_jobs=self.pending_jobs + other.pending_jobs,
            failed_jobs={**self.failed_jobs, **other.failed_jobs},
        )


def summarize(statuses: Mapping[str, JobStatus]) -> CampaignSummary:
    """The summary of status reports, given by job id."""
    return summarize_tallies(
        {
            job_id: Counter(
                (m.error_code, m.status, m.hyber_status, m.delivered_sms_parts is not None)
                for m in status.messages
            )
            for job_id, status in statuses.items()
        }
    )


def summarize_tallies(tallies: Mapping[str, Tally]) -> CampaignSummary:
    """The summary of status reports counted by their outcome fields (``StatusAnswer.tally``),
    given by job id: each distinct combination is classified once, whatever its count."""
    by_outcome: Counter[tuple[str, str]] = Counter()
    errors: Counter[int] = Counter()
    pending_jobs: list[str] = []
    for job_id, tally in tallies.items():
        pending = 0
        for (code, status, hyber_status, has_parts), count in tally.items():
            channel, outcome = _classify(code, status, hyber_status, has_parts)
            by_outcome[channel, outcome] += count
            if code is not None:
                errors[code] += count
            if outcome == "pending":
                pending += count
        if pending or not tally:
            pending_jobs.append(job_id)
    by_channel: dict[str, Counts] = {}
    for (channel, outcome), count in by_outcome.items():
        by_channel[channel] = by_channel.get(channel, Counts()) + Counts(**{outcome: count})
    total = sum(by_channel.values(), Counts())
    return CampaignSummary(len(tallies), total, by_channel, dict(errors), tuple(pending_jobs))


def _classify(
    code: int | None, status: int | None, hyber_status: int | None, has_parts: bool
) -> tuple[str, str]:
    """``(channel, outcome)`` of a message with these outcome fields (see ``CampaignSummary``)."""
    channel_of = CHANNEL_OF_CODE
    if code is not None:
        outcome = "expired" if code in EXPIRED_CODES else "failed"
        channel = channel_of.get(code) or channel_of.get(hyber_status or 0)
    else:
        if status == Status.DELIVERED:
            outcome = "delivered"
        elif status == Status.UNDELIVERED:
            outcome = "expired" if hyber_status in EXPIRED_CODES else "failed"
        else:
            outcome = "pending"
        channel = channel_of.get(hyber_status or 0)
    if channel is None:
        if has_parts:
            channel = Channel.SMS.value
        else:
            channel = PENDING_CHANNEL if outcome == "pending" else UNTOLD_CHANNEL
    return channel, outcome


@attrs.frozen
class JobUpdate:
    """A change in one job: its latest status report, or the error that ended its polling.

    ``final`` is True once every message of the job is final (an empty report is not final: the
    job has not been processed yet). An update with ``final`` or ``error`` set is the job's
    last one.
    """

    job_id: str
    answer: StatusAnswer | None
    """The latest status answer as parsed JSON; None when ``error`` is set (or the poller does
    not keep answers: ``JobPoller.keep_answers``)."""
    counts: Counts
    """The counts of ``status`` (the last known ones when ``error`` is set)."""
    final: bool
    error: HyberError | None = None
    """Why polling this job stopped before it was final (retries exhausted, an error answer)."""

    @property
    def status(self) -> JobStatus | None:
        """The latest status report as typed models (None when ``error`` is set).

        Built on first access (a model per message, every field checked: about twice the
        parse of the answer), so polling pays for it only when it is read. Raises
        ``UnexpectedResponseError`` when a message does not read as a ``MessageStatus``.
        """
        return None if self.answer is None else self.answer.status


@attrs.define
class _Job:
    job_id: str
    due: float = 0.0
    wait: float = 0.0
    summary: CampaignSummary = attrs.field(
        default=attrs.Factory(lambda self: CampaignSummary(1, pending_jobs=(self.job_id,)), True)
    )
    read: bool = False
    """A report of this job was read at least once."""
    done: bool = False


class JobPoller:
    """The async iterator returned by ``poll_jobs``; ``summary`` is readable at any time."""

    def __init__(
        self, client: StatusReader, job_ids: Iterable[str], options: PollOptions = PollOptions()
    ) -> None:
        limit = client.max_connections
        if options.max_concurrency is not None:
            limit = min(limit, options.max_concurrency)
        self._client = client
        self._jobs = {job_id: _Job(job_id) for job_id in job_ids}
        self.interval = options.interval
        self.max_interval = options.max_interval
        self.deadline = options.deadline
        self.max_concurrency = limit
        """Status requests in flight at most: ``max_concurrency`` capped by the client's pool."""
        self.keep_answers = True
        """Whether updates carry their parsed answer (``JobUpdate.answer`` and ``status``);
        ``finish_polling`` turns it off, wanting only the summary, so that each answer is counted
        a piece at a time as it arrives and never held whole (``keep_messages=False``)."""
        self._ready: deque[JobUpdate] = deque()
        self._ends_at: float | None = None

    @property
    def summary(self) -> CampaignSummary:
        """The campaign summary from the latest report of every job."""
        return sum((job.summary for job in self._jobs.values()), CampaignSummary())

    def __aiter__(self) -> JobPoller:
        return self

    async def __anext__(self) -> JobUpdate:
        # The caller's previous update (a parsed answer of up to 50,000 messages) is freed
        # when the next is handed over: each such release gets its own turn of the loop.
        await checkpoint()
        now = anyio.current_time()
        if self._ends_at is None and self.deadline is not None:
            self._ends_at = now + self.deadline
        while not self._ready:
            waiting = [job for job in self._jobs.values() if not job.done]
            if not waiting:
                raise StopAsyncIteration
            now = anyio.current_time()
            if self._ends_at is not None and now >= self._ends_at:
                raise self._deadline_error(waiting)
            # at most one poll per request slot per round: each update holds a parsed answer
            # of up to 50,000 messages until read, so only so many wait for the caller at once
            due = [job for job in waiting if job.due <= now][: self.max_concurrency]
            ends_at = self._ends_at if self._ends_at is not None else float("inf")
            with anyio.move_on_after(ends_at - now):
                if due:
                    await self._round(due)
                else:
                    await anyio.sleep(min(job.due for job in waiting) - now)
        return self._ready.popleft()

    async def _round(self, jobs: list[_Job]) -> None:
        async with anyio.create_task_group() as tg:
            for job in jobs:  # at most max_concurrency of them
                tg.start_soon(self._poll, job)

    async def _poll(self, job: _Job) -> None:
        try:
            answer = await self._client.read_status(job.job_id, keep_messages=self.keep_answers)
            tally = await answer.tally()
        except HyberError as exc:
            job.done = True
            job.summary = attrs.evolve(job.summary, pending_jobs=(), failed_jobs={job.job_id: exc})
            self._ready.append(JobUpdate(job.job_id, None, job.summary.counts, False, exc))
            return
        summary = summarize_tallies({job.job_id: tally})
        final = not summary.pending_jobs
        changed = summary.counts != job.summary.counts or not job.read
        job.summary = summary
        job.read = True
        if changed or final:
            kept = answer if self.keep_answers else None
            self._ready.append(JobUpdate(job.job_id, kept, summary.counts, final))
        job.done = final
        job.wait = self.interval if changed else min(self.max_interval, job.wait * 2)
        job.due = anyio.current_time() + job.wait * (1.0 - 0.5 * random.random())

    def _deadline_error(self, waiting: list[_Job]) -> PollDeadlineError:
        pending = {job.job_id: job.summary.counts for job in waiting}
        return PollDeadlineError(self.deadline or 0.0, pending, self.summary)


def poll_jobs(
    client: StatusReader,
    job_ids: Iterable[str],
    *,
    interval: float = DEFAULT_INTERVAL,
    max_interval: float = DEFAULT_MAX_INTERVAL,
    deadline: float | None = None,
    max_concurrency: int | None = None,
) -> JobPoller:
    """Poll the status of ``job_ids`` until every message is final; yield ``JobUpdate``s.

    Every job is polled at once, then again after a wait: ``interval`` after a poll that changed
    its counts, otherwise twice the previous wait, at most ``max_interval``; each wait is scaled
    by a random factor in ``[0.5, 1]`` (jitter). An update is yielded for the first report of
    each job and whenever its counts change. At most ``max_concurrency`` requests are in flight
    (default and cap: ``client.max_connections``); each one is retried by the client's
    ``RetryPolicy`` (429, 5xx, transport errors).

    A job whose polling still fails (retries exhausted, an error answer such as 401 or 404, or
    an invalid job id) yields a last update with ``error`` set and is not polled again; the
    other jobs go on, and the iteration ends normally. When ``deadline`` seconds (counted from
    the first ``__anext__``) pass first, in-flight polls are cancelled and ``PollDeadlineError``
    is raised, naming the jobs still pending. Duplicate job ids are polled once.
    """
    options = PollOptions(interval, max_interval, deadline, max_concurrency)
    return JobPoller(client, job_ids, options)


async def finish_polling(poller: JobPoller) -> CampaignSummary:
    """Run ``poller`` to its end and return its campaign summary (its updates are not kept)."""
    poller.keep_answers = False
    async for _ in poller:
        pass
    return poller.summary


async def wait_for_jobs(
    client: StatusReader,
    job_ids: Iterable[str],
    *,
    interval: float = DEFAULT_INTERVAL,
    max_interval: float = DEFAULT_MAX_INTERVAL,
    deadline: float | None = None,
    max_concurrency: int | None = None,
) -> CampaignSummary:
    """Poll ``job_ids`` to the end (see ``poll_jobs``) and return the campaign summary.

    Jobs whose polling failed are in ``summary.failed_jobs`` (then ``summary.complete`` is
    False). Raises ``PollDeadlineError`` (with the summary so far) when ``deadline`` passes.
    """
    options = PollOptions(interval, max_interval, deadline, max_concurrency)
    return await finish_polling(JobPoller(client, job_ids, options))
