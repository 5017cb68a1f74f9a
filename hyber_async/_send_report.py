"""The outcome model: every recipient passed in ends in exactly one ``Outcome``.

A campaign is sent in chunks; each ``ChunkRecord`` holds the whole state of one chunk (its input
range, its request's fate, the items that were not part of it), so that a journal can record it
as it changes. The ``SendReport`` is the sum of its chunks: counts per outcome, the jobs with their
input ranges, and every recipient that was not accepted, one by one.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from typing import Any

import attrs
import orjson

from ._body import RequestBody
from ._config import not_processed
from ._errors import APIError, HyberError, OutcomeUnknownError
from ._rate import Throttling

__all__ = [
    "ChunkRecord",
    "ChunkState",
    "JobRef",
    "Outcome",
    "Progress",
    "RecipientOutcome",
    "SendReport",
    "outcome_of_error",
]


class Outcome(str, enum.Enum):
    """What became of one recipient."""

    ACCEPTED = "accepted"
    """In an accepted job, or accepted with a ``message_id`` by a sync endpoint."""
    REJECTED = "rejected"
    """The server refused it (see ``error_code``)."""
    NOT_SENT = "not_sent"
    """Provably never left: invalid, connection never made, throttled, or cancelled before."""
    UNKNOWN = "unknown"
    """The request may have reached the server (timeout or reset after writing, 5xx, cancelled
    in flight). Never resent automatically: reconcile by ``extra_id``."""


class ChunkState(str, enum.Enum):
    """The life of one chunk: ``PENDING -> IN_FLIGHT -> one of the four final states``."""

    PENDING = "pending"
    IN_FLIGHT = "in_flight"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    NOT_SENT = "not_sent"
    UNKNOWN = "unknown"

    @property
    def outcome(self) -> Outcome | None:
        """The outcome of the chunk's items, or ``None`` while it is not final."""
        return _FINAL.get(self)


_FINAL = {
    ChunkState.ACCEPTED: Outcome.ACCEPTED,
    ChunkState.REJECTED: Outcome.REJECTED,
    ChunkState.NOT_SENT: Outcome.NOT_SENT,
    ChunkState.UNKNOWN: Outcome.UNKNOWN,
}


def outcome_of_error(error: HyberError) -> Outcome:
    """The outcome of a request that ended in ``error`` (after the client's own retries).

    Provably not processed (``not_processed``: a connection failure, 429, 503 with
    ``Retry-After``): ``NOT_SENT``. Other 5xx, timeouts and resets after writing may have been:
    ``UNKNOWN``. Any other answer of the server is a refusal of the request: ``REJECTED``.
    """
    if not_processed(error):
        return Outcome.NOT_SENT
    if isinstance(error, OutcomeUnknownError):
        return Outcome.UNKNOWN
    if isinstance(error, APIError):
        return Outcome.REJECTED
    return Outcome.UNKNOWN


@attrs.frozen
class RecipientOutcome:
    """One recipient that was not accepted, and why."""

    index: int
    """Position in the caller's input (0-based)."""
    phone_number: object
    extra_id: str | None
    outcome: Outcome
    reason: str
    error_code: int | None = None
    sent: bool = attrs.field(default=True, repr=False)
    """Whether the item was part of the request (``False`` for an invalid item)."""


@attrs.frozen
class JobRef:
    """An accepted async job and the input range of its chunk."""

    job_id: str
    first_index: int
    """Input position of the chunk's first item."""
    size: int
    """Items read into the chunk (``accepted`` of them are in the job)."""
    accepted: int


@attrs.define(eq=False)
class ChunkRecord:
    """The whole state of one chunk, in one place: what a journal records and restores.

    ``body`` is the request as sent (the encoded items with the campaign envelope, as the
    pieces they were encoded in: ``bytes(record.body)`` is the whole). It is kept
    while the chunk is queued or in flight, and afterwards only when the chunk did not end
    accepted, so that its recipients can be listed, reconciled and sent again; an accepted
    campaign costs no memory per recipient.
    """

    number: int
    first_index: int
    size: int
    state: ChunkState = ChunkState.PENDING
    job_id: str | None = None
    reason: str | None = None
    error_code: int | None = None
    sent: int = 0
    """Items that went into the request (``size`` minus the invalid ones)."""
    excluded: list[RecipientOutcome] = attrs.field(factory=list)
    """Items of the chunk with an outcome of their own: invalid ones (``NOT_SENT``, not part of
    the request) and items whose own answer differs from the chunk's (rejected or missing in a
    sync answer, or found and accepted by reconciliation)."""
    body: RequestBody = attrs.field(factory=RequestBody, repr=False)
    indices: list[int] | None = attrs.field(default=None, repr=False)
    """Input positions of the sent items when some of the chunk were left out, else ``None``."""
    digest: bytes = attrs.field(default=b"", repr=False)
    """Digest of the body as first prepared, by which a journal recognises the same input."""

    @property
    def outcome(self) -> Outcome | None:
        """The outcome of the chunk's sent items, or ``None`` while not final."""
        return self.state.outcome

    def members(self) -> list[tuple[int, Any, str]]:
        """``(input index, phone_number, extra_id)`` of each sent item, in request order."""
        if not self.body:
            return []
        request = orjson.loads(bytes(self.body))
        items = request.get("recipients", request.get("messages", []))
        positions = self.indices or range(self.first_index, self.first_index + len(items))
        return [
            (index, item.get("phone_number"), item["extra_id"])
            for index, item in zip(positions, items, strict=True)
        ]

    def sent_with_own_outcome(self) -> int:
        """Sent items counted through ``excluded`` rather than through the chunk's state."""
        return sum(item.sent for item in self.excluded)

    def counts(self) -> dict[Outcome, int]:
        """The chunk's items per outcome.

        Those in ``excluded`` count by their own outcome, the other sent ones by the chunk's
        state (not counted while it is not final).
        """
        counts = dict.fromkeys(Outcome, 0)
        for item in self.excluded:
            counts[item.outcome] += 1
        if self.outcome is not None:
            counts[self.outcome] += self.sent - self.sent_with_own_outcome()
        return counts


@attrs.frozen
class Progress:
    """Running counts, handed to ``on_progress`` after each finished chunk."""

    read: int
    accepted: int
    rejected: int
    not_sent: int
    unknown: int
    chunks_done: int
    elapsed: float
    """Seconds since the send started."""
    throttling: Throttling = attrs.field(factory=Throttling)
    """The rate controller's current limit, and the waits and refusals of this send so far."""

    @property
    def done(self) -> int:
        """Recipients with a final outcome."""
        return self.accepted + self.rejected + self.not_sent + self.unknown

    @property
    def rate(self) -> float:
        """Recipients with a final outcome per second so far."""
        return self.done / self.elapsed if self.elapsed > 0 else 0.0


@attrs.define(eq=False)
class SendReport:
    """The result of ``stream_batch`` / ``stream_broadcast``: a partition of the input.

    Every recipient read from the input is counted in exactly one of ``accepted``,
    ``rejected``, ``not_sent`` and ``unknown``. Accepted ones are summarised by job; every other
    one can be listed with ``failures()``. When the call was cancelled or aborted, ``complete``
    is false and the recipients from input position ``read`` on were never read nor sent.

    Pass your own ``SendReport()`` as ``report=`` to keep it when the call is cancelled.
    """

    run_id: str = ""
    """Prefix of the ``extra_id`` generated for recipients that had none."""
    endpoint: str = ""
    """Path of the endpoint the chunks went to (``broadcast``, ``batch/sync``, ...)."""
    chunks: list[ChunkRecord] = attrs.field(factory=list)
    read: int = 0
    """Recipients read from the input."""
    complete: bool = False
    """True when the whole input was read and every chunk reached a final state."""
    aborted: str | None = None
    """Why sending stopped early (``on_invalid="abort"``, a journal that refused the input or
    could not be written, a source that raised, a closed client), if it did."""
    throttling: Throttling = attrs.field(factory=Throttling)
    """How long its requests waited at the client's rate controller, how many refusals (429,
    503 with ``Retry-After``) they met, and the controller's limit at the last one."""

    def count(self, outcome: Outcome) -> int:
        """Recipients with ``outcome``."""
        return self.counts[outcome]

    @property
    def accepted(self) -> int:
        """Recipients accepted by the server."""
        return self.count(Outcome.ACCEPTED)

    @property
    def rejected(self) -> int:
        """Recipients refused by the server."""
        return self.count(Outcome.REJECTED)

    @property
    def not_sent(self) -> int:
        """Recipients that provably never reached the server."""
        return self.count(Outcome.NOT_SENT)

    @property
    def unknown(self) -> int:
        """Recipients that may or may not have been accepted: reconcile them."""
        return self.count(Outcome.UNKNOWN)

    @property
    def counts(self) -> dict[Outcome, int]:
        """Recipients per outcome."""
        totals = dict.fromkeys(Outcome, 0)
        for chunk in self.chunks:
            for outcome, count in chunk.counts().items():
                totals[outcome] += count
        return totals

    @property
    def jobs(self) -> list[JobRef]:
        """Accepted async jobs with their chunk's input range, in input order."""
        return [
            JobRef(c.job_id, c.first_index, c.size, c.sent - c.sent_with_own_outcome())
            for c in self.chunks
            if c.job_id is not None and c.state is ChunkState.ACCEPTED
        ]

    @property
    def job_ids(self) -> list[str]:
        """Ids of the accepted async jobs, in input order."""
        return [job.job_id for job in self.jobs]

    def failures(self) -> Iterator[RecipientOutcome]:
        """Every recipient that was not accepted, in input order, with its reason."""
        for chunk in self.chunks:
            outcome = chunk.outcome
            own = {item.index: item for item in chunk.excluded}
            merged = [item for item in own.values() if item.outcome is not Outcome.ACCEPTED]
            if outcome is not None and outcome is not Outcome.ACCEPTED:
                reason = chunk.reason or outcome.value
                merged.extend(
                    RecipientOutcome(index, phone, extra_id, outcome, reason, chunk.error_code)
                    for index, phone, extra_id in chunk.members()
                    if index not in own
                )
            yield from sorted(merged, key=_by_index)

    def __repr__(self) -> str:
        counts = ", ".join(f"{o.value}={n}" for o, n in self.counts.items())
        return (
            f"SendReport(read={self.read}, {counts}, jobs={len(self.jobs)}, "
            f"complete={self.complete})"
        )


def _by_index(item: RecipientOutcome) -> int:
    return item.index
