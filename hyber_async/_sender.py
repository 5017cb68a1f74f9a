"""The streaming mass sender behind ``stream_batch`` and ``stream_broadcast``.

One producer reads the input lazily, a slice of ``SLICE`` items at a time, and converts, checks
and encodes each slice before reading the next (with a checkpoint before each step, so that a
service's event loop is never held for long); once a chunk's slices are in, it hands the chunk
over a zero-buffer stream to ``concurrency`` workers that POST it. So at most one slice of
items and ``concurrency + 1`` encoded chunks exist at once, whatever the size of the input.

Every chunk's state lives in its ``ChunkRecord``; the workers move it from ``PENDING`` through
``IN_FLIGHT`` to a final state, and a cancelled call moves what is left to ``NOT_SENT``
(queued) or ``UNKNOWN`` (in flight), so the report always partitions what was read.

A failure that is not a chunk's own (the input raises, the client is closed, the journal
refuses the input or cannot be written) stops the send: nothing more is read nor handed to
the workers, the chunks they hold get their answers, and the failure itself is raised once
all is settled. No chunk is sent unless the journal recorded it in flight first.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import logging
import math
import uuid
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable
from itertools import repeat
from typing import TYPE_CHECKING, Any, Final, Literal

import anyio
import attrs
import orjson
from anyio.lowlevel import checkpoint

from ._body import RequestBody
from ._chunking import sliced
from ._codec import Envelope, decode_answer, match_sync_results, to_wire_items
from ._errors import HyberError, InvalidValueError, Problem, ValidationError
from ._models import JobAccepted, Kind, SyncResult
from ._send_report import (
    ChunkRecord,
    ChunkState,
    Outcome,
    Progress,
    RecipientOutcome,
    SendReport,
    outcome_of_error,
)
from ._transport import Requester
from ._validation import MAX_ITEMS, all_strings, check_items
from .journal import JournalMismatchError, JournalWriteError

if TYPE_CHECKING:
    from .journal import Journal

__all__ = [
    "DEFAULT_CONCURRENCY",
    "ChunkPoster",
    "OnInvalid",
    "ProgressCallback",
    "SendOptions",
    "endpoint",
    "fingerprint",
    "paced_chunk_size",
    "send_in_chunks",
]

logger = logging.getLogger("hyber_async")

DEFAULT_CONCURRENCY = 4
"""Requests in flight per campaign: enough to overlap encoding with the network on two cores."""

SLICE: Final = 2_500
"""Items read, then converted and checked, then encoded, between two checkpoints: a
millisecond or so of work, so that a service's event loop is never held for long by a send
(``benchmarks/loop_stall.py``), and few enough that a slice's items are dropped before the next
slice is made (``_Draft``)."""

OnInvalid = Literal["skip", "abort"]
ProgressCallback = Callable[[Progress], Awaitable[None] | None]


@attrs.frozen(eq=False)
class SendOptions:
    """The options of one streaming send (see ``HyberClient.stream_broadcast``), checked once."""

    chunk_size: int = MAX_ITEMS
    concurrency: int = DEFAULT_CONCURRENCY
    sync: bool = False
    max_rate: float | None = None
    on_progress: ProgressCallback | None = None
    on_invalid: OnInvalid = "skip"
    run_id: str | None = None
    report: SendReport | None = None
    journal: Journal | None = None
    quota: float | None = None
    """The client's known quota (its rate controller's seed), in messages per second."""

    def __attrs_post_init__(self) -> None:
        if not 1 <= self.chunk_size <= MAX_ITEMS:
            message = f"chunk_size must be between 1 and {MAX_ITEMS}, got {self.chunk_size}"
            raise InvalidValueError(message)
        if self.concurrency < 1:
            raise InvalidValueError(f"concurrency must be at least 1, got {self.concurrency}")
        max_rate = self.max_rate
        if max_rate is not None and not (math.isfinite(max_rate) and max_rate > 0):
            message = f"must be a positive finite number of recipients per second, got {max_rate}"
            raise ValidationError([Problem("max_rate", message)])
        if self.on_invalid not in ("skip", "abort"):
            raise InvalidValueError(
                f"on_invalid must be 'skip' or 'abort', got {self.on_invalid!r}"
            )

    @property
    def request_size(self) -> int:
        """Items per request: ``chunk_size``, shrunk to a tenth of a second's worth of
        ``max_rate`` or of ``quota``, whichever is lower."""
        rates = [rate for rate in (self.max_rate, self.quota) if rate is not None]
        return paced_chunk_size(self.chunk_size, min(rates, default=None))


class ChunkPoster:
    """Posts prepared chunks and settles each one; a reconciliation's resend shares it."""

    def __init__(
        self,
        client: Requester,
        path: str,
        report: SendReport,
        *,
        journal: Journal | None,
        on_progress: ProgressCallback | None = None,
    ) -> None:
        self.client = client
        self.path = path
        self.sync = path.endswith("/sync")
        self.report = report
        self.journal = journal
        self.on_progress = on_progress
        self.counts = dict.fromkeys(Outcome, 0)
        self.unfinished: dict[int, ChunkRecord] = {}
        """Chunks prepared but not final yet, by number: queued or in flight."""
        self.started = anyio.current_time()
        self.chunks_done = 0
        self.failure: Exception | None = None
        """What stopped the send (see ``stop``), raised once everything in flight has settled."""
        self.stopped: str | None = None
        """Why the send stopped, in words, once it has."""
        self.journal_failed = False
        """Whether ``failure`` is the journal's: raised as ``JournalWriteError``."""

    async def _worker(self, receive: anyio.abc.ObjectReceiveStream[ChunkRecord]) -> None:
        async with receive:
            async for record in receive:
                await self.post_chunk(record)

    async def post_chunk(self, record: ChunkRecord) -> None:
        """POST one prepared chunk, journaled as in flight first, and settle it.

        A chunk the journal could not record in flight is not sent (``NOT_SENT``); an error
        that is not the server's answer (a closed client, a failing ``on_progress``) stops
        the send.
        """
        try:
            record.state = ChunkState.IN_FLIGHT
            if self.save(record):
                await self._post(record)
            else:
                reason = "not sent: the journal could not record it in flight"
                self.finish(record, ChunkState.NOT_SENT, reason)
            await self._progress()
        except Exception as error:
            self.stop(error)

    async def _post(self, record: ChunkRecord) -> None:
        closed = self.client.is_closed
        try:
            response = await self.client.request(
                "POST", self.path, record.body, items=record.sent, throttling=self.report.throttling
            )
        except HyberError as error:
            record.error_code = getattr(error, "error_code", None)
            self.finish(record, ChunkState(outcome_of_error(error).value), str(error))
        except Exception:
            if closed:  # httpx refuses a closed client's request before anything leaves
                self.finish(record, ChunkState.NOT_SENT, "not sent: the client is closed")
            raise
        else:
            try:
                if self.sync:
                    self._apply_sync_answer(record, decode_answer(response, SyncResult))
                else:
                    record.job_id = decode_answer(response, JobAccepted).job_id
            except HyberError as error:
                self.finish(record, ChunkState.UNKNOWN, str(error))
            else:
                self.finish(record, ChunkState.ACCEPTED, None)

    async def post_chunks(self, records: list[ChunkRecord], concurrency: int) -> None:
        """Post ``records`` (their ``body`` ready) as a send would, ``concurrency`` at once."""
        limiter = anyio.CapacityLimiter(min(concurrency, self.client.max_connections))

        async def post(record: ChunkRecord) -> None:
            async with limiter:
                await self.post_chunk(record)

        try:
            async with anyio.create_task_group() as tasks:
                for record in records:
                    record.state = ChunkState.PENDING
                    self.unfinished[record.number] = record
                    tasks.start_soon(post, record)
        finally:
            self._settle_unfinished()

    def _apply_sync_answer(self, record: ChunkRecord, answer: SyncResult) -> None:
        """Give each sent item of a sync request the outcome the server answered for it."""
        members = record.members()
        results = match_sync_results(answer, [extra_id for _, _, extra_id in members])
        for (index, phone, extra_id), result in zip(members, results, strict=True):
            if result is None:
                reason = "missing from the sync answer, or in it more than once"
                record.excluded.append(
                    RecipientOutcome(index, phone, extra_id, Outcome.UNKNOWN, reason)
                )
            elif result.accepted is not True and result.error_code is None:
                reason = "the sync answer does not say whether it was accepted"
                record.excluded.append(
                    RecipientOutcome(index, phone, extra_id, Outcome.UNKNOWN, reason)
                )
            elif result.accepted is False or result.error_code is not None:
                reason = result.error_text or "rejected by the server"
                record.excluded.append(
                    RecipientOutcome(
                        index, phone, extra_id, Outcome.REJECTED, reason, result.error_code
                    )
                )

    def finish(
        self, record: ChunkRecord, state: ChunkState, reason: str | None, *, journal: bool = True
    ) -> None:
        """Move ``record`` to a final ``state``, count its items, and journal it."""
        record.state = state
        record.reason = reason
        logger.debug(
            "chunk %d (items %d to %d): %s%s",
            record.number,
            record.first_index,
            record.first_index + record.size - 1,
            state.value,
            f" ({reason})" if reason else "",
        )
        self.unfinished.pop(record.number, None)
        if journal:
            self.save(record)
        if state is ChunkState.ACCEPTED:
            record.body = RequestBody()
        for outcome, count in record.counts().items():
            self.counts[outcome] += count
        self.chunks_done += 1

    def save(self, record: ChunkRecord) -> bool:
        """Journal ``record``'s current state, when the send has a journal.

        False when the journal failed to (disk full, I/O error): the send stops, and the
        chunk's state holds in memory only.
        """
        if self.journal is None or not record.digest:
            return True
        try:
            self.journal.save(record)
        except Exception as error:
            what = f"chunk {record.number} as {record.state.value}"
            reason = f"the journal {self.journal!r} could not record {what}: {error}"
            self.stop(error, reason, journal=True)
            return False
        return True

    def stop(self, failure: Exception, reason: str | None = None, *, journal: bool = False) -> None:
        """Stop the send for ``failure`` (the first one counts): nothing more is read."""
        if self.failure is None:
            self.failure = failure
            self.stopped = reason or f"{type(failure).__name__}: {failure}"
            self.journal_failed = journal

    def raise_failure(self) -> None:
        """Raise what stopped the send, if anything did (once everything has settled)."""
        failure = self.failure
        if failure is None:
            return
        if self.journal_failed:
            raise JournalWriteError(
                f"{self.stopped}. The send stopped with every recipient read settled in memory: "
                f"{self.report!r}. On a resume, the chunks whose end the journal missed read as "
                "UNKNOWN: reconcile them",
                journal=repr(self.journal),
                report=self.report,
            ) from failure
        raise failure

    def _settle_unfinished(self) -> None:
        """Settle the chunks a cancellation or a stop left: queued or in flight.

        Queued chunks were not sent (``NOT_SENT``); chunks in flight may have been (``UNKNOWN``).
        """
        queued = f"not sent: {self.stopped}" if self.stopped else "cancelled before sending"
        for record in list(self.unfinished.values()):
            if record.state is ChunkState.PENDING:
                self.finish(record, ChunkState.NOT_SENT, queued)
            else:
                self.finish(record, ChunkState.UNKNOWN, "cancelled while in flight")

    async def _progress(self) -> None:
        if self.on_progress is None:
            return
        counts = self.counts
        progress = Progress(
            read=self.report.read,
            accepted=counts[Outcome.ACCEPTED],
            rejected=counts[Outcome.REJECTED],
            not_sent=counts[Outcome.NOT_SENT],
            unknown=counts[Outcome.UNKNOWN],
            chunks_done=self.chunks_done,
            elapsed=anyio.current_time() - self.started,
            throttling=attrs.evolve(self.report.throttling),
        )
        result = self.on_progress(progress)
        if inspect.isawaitable(result):
            await result


IN_FLIGHT_AT_STOP = "in flight when the previous run stopped: reconcile before sending again"


async def _digest(body: RequestBody) -> bytes:
    """What the journal keeps of a request body to recognise the same input on a resume,
    hashed a piece at a time (a checkpoint before each): the digest of ``bytes(body)``."""
    hasher = hashlib.blake2b(digest_size=16)
    for piece in body.pieces():
        await checkpoint()
        hasher.update(piece)
    return hasher.digest()


def paced_chunk_size(chunk_size: int, max_rate: float | None) -> int:
    """The chunk size a send uses: ``max_rate`` caps it at a tenth of a second's worth."""
    return chunk_size if max_rate is None else min(chunk_size, math.ceil(max_rate / 10))


def fingerprint(kind: Kind, envelope: Envelope, chunk_size: int, sync: bool) -> str:
    """What identifies a campaign to a journal: endpoint, envelope and chunking."""
    identity = [kind.value, sync, chunk_size, envelope.wire]
    return hashlib.sha256(orjson.dumps(identity, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _wire_chunk(items: list[Any], first: int, run_id: str) -> tuple[list[Any], list[Any] | None]:
    """The chunk in wire form, every item with an ``extra_id`` (``{run_id}-{input index}``),
    and each item's ``extra_id`` when they were read on the way (for ``check_items``).

    An item without one gets the stable ``{run_id}-{input index}``. The common case, plain
    dicts that all carry one, is settled by a single pass in C (``dict.get`` refuses anything
    but a dict) and returns the chunk's own list unchanged.
    """
    try:
        # One pass, no Python loop: ``dict.get`` raises TypeError for any item that is not a
        # plain dict (a model, another mapping), and yields None for a dict without an
        # extra_id; so no None and no TypeError means every item is a dict that has one.
        # All strings (the usual case, one pass in C) means no None without looking for one.
        extra_ids = list(map(dict.get, items, repeat("extra_id")))
        if all_strings(extra_ids) or None not in extra_ids:
            return items, extra_ids
    except TypeError:  # a model or another mapping among them
        pass
    wire = to_wire_items(items)
    for offset, item in enumerate(wire):
        if type(item) is dict and item.get("extra_id") is None:
            wire[offset] = {**item, "extra_id": f"{run_id}-{first + offset}"}
    return wire, None


@attrs.define(eq=False)
class _Draft:
    """A chunk being prepared, a slice of the input at a time.

    Only each slice's encoded form is kept (and the outcomes of the items left out): a slice's
    items are dropped once encoded, so the items of a whole chunk are never alive at once and
    the allocator reuses the memory of one slice for the next (holding whole chunks of fresh
    objects made every chunk cost its size in page faults). The rare paths that need the
    items of earlier slices again (an abort, a slice that cannot be encoded) decode them from
    those slices, as ``ChunkRecord.members`` does.
    """

    first: int
    """Input position of the chunk's first item."""
    size: int = 0
    """Items read into it so far."""
    pieces: list[memoryview] = attrs.field(factory=list)
    """Each slice's sent items, encoded: a JSON array without its brackets."""
    sent: int = 0
    """Items encoded into ``pieces``."""
    excluded: list[RecipientOutcome] = attrs.field(factory=list)
    left_out: list[int] = attrs.field(factory=list)
    """Input positions of the invalid items (not sent), in order."""
    unencodable: TypeError | None = None
    aborted: str | None = None
    """Why the send aborts at this chunk (``on_invalid="abort"``), once it does."""

    @property
    def unencodable_reason(self) -> str:
        """The reason given to each item of a chunk that cannot be encoded."""
        return f"not sent: the chunk cannot be encoded as JSON ({self.unencodable})"

    def positions(self, start: int, end: int) -> list[int]:
        """Input positions from ``start`` to ``end`` (excluded) of the items not left out."""
        left_out = set(self.left_out)
        return [index for index in range(start, end) if index not in left_out]

    def fail_encoding(self, error: TypeError, first: int) -> None:
        """A slice starting at ``first`` cannot be encoded: nothing of the chunk will be sent,
        and the items already encoded are ``NOT_SENT`` with the reason."""
        self.unencodable = error
        self._settle_encoded(first, self.unencodable_reason)

    def abort(self, wire: list[Any], first: int, invalid: dict[int, list[Problem]]) -> None:
        """The slice ``wire`` starting at ``first`` holds ``invalid`` items: the send aborts,
        nothing of the chunk is sent, each item read gets its outcome."""
        first_bad = min(invalid)
        self.aborted = f"invalid input at item {first_bad}: {invalid[first_bad][0]}"
        reason = f"not sent: the send was aborted at invalid item {first_bad}"
        self._settle_encoded(first, reason)
        for offset, item in enumerate(wire):
            index = first + offset
            if index in invalid:
                self.excluded.append(_invalid_outcome(index, item, invalid[index]))
            else:
                self.excluded.append(_item_outcome(index, item, Outcome.NOT_SENT, reason))

    def _settle_encoded(self, end: int, reason: str) -> None:
        """The items encoded so far (read before ``end``) are ``NOT_SENT`` for ``reason``:
        their outcomes, from their encoded form; the encoding is dropped."""
        if self.pieces:
            encoded = orjson.loads(b"[" + b",".join(self.pieces) + b"]")
            positions = self.positions(self.first, end)
            self.excluded.extend(
                _item_outcome(index, item, Outcome.NOT_SENT, reason)
                for index, item in zip(positions, encoded, strict=True)
            )
        self.pieces, self.sent = [], 0


class _Sender(ChunkPoster):
    """One streaming send: reads, checks and encodes the input, and posts it."""

    def __init__(
        self,
        client: Requester,
        envelope: Envelope,
        options: SendOptions,
        report: SendReport,
    ) -> None:
        journal = options.journal
        super().__init__(
            client,
            endpoint(envelope.kind, options.sync),
            report,
            journal=journal,
            on_progress=options.on_progress,
        )
        self.kind = envelope.kind
        self.envelope = envelope
        self.chunk_size = options.request_size
        self.concurrency = min(options.concurrency, client.max_connections)
        self.max_rate = options.max_rate
        self.on_invalid = options.on_invalid
        self.journal_entries = journal.entries() if journal is not None else {}
        empty = envelope.body([])
        split = empty.index(b"[]") + 1  # the item list comes first: its ``[`` ends the head
        self.body_head, self.body_tail = empty[:split], empty[split:]
        self.next_send = self.started

    async def run(self, items: Iterable[Any] | AsyncIterable[Any]) -> None:
        send, receive = anyio.create_memory_object_stream[ChunkRecord](0)
        try:
            async with anyio.create_task_group() as tg:
                for _ in range(self.concurrency):
                    tg.start_soon(self._worker, receive.clone())
                receive.close()
                async with send:
                    try:
                        await self._produce(items, send)
                    except Exception as error:  # the input raised: settle what was sent
                        self.stop(error)
            if self.stopped is not None and self.report.aborted is None:
                self.report.aborted = self.stopped
            self.report.complete = self.report.aborted is None
        finally:
            self._settle_unfinished()
        self.raise_failure()

    async def _produce(
        self,
        items: Iterable[Any] | AsyncIterable[Any],
        send: anyio.abc.ObjectSendStream[ChunkRecord],
    ) -> None:
        draft = _Draft(self.report.read)
        async with contextlib.aclosing(sliced(items, self.chunk_size, SLICE)) as slices:
            async for part in slices:
                if self.stopped is not None:
                    return
                await self._take(draft, part)
                if draft.aborted is not None or draft.size == self.chunk_size:
                    if not await self._hand_over(draft, send):
                        return
                    draft = _Draft(self.report.read)
        if draft.size and self.stopped is None:
            await self._hand_over(draft, send)

    async def _hand_over(
        self, draft: _Draft, send: anyio.abc.ObjectSendStream[ChunkRecord]
    ) -> bool:
        """Record a prepared chunk and hand it to the workers; False when the send stops."""
        body = self._body(draft.pieces)
        chunk_digest = await _digest(body) if self.journal is not None and body else b""
        try:
            record = self._record(draft, body, chunk_digest)
        except JournalMismatchError as refusal:
            self.stop(refusal, str(refusal))
            return False
        if record is None:
            return self.report.aborted is None
        await self._pace(record.sent)
        if self.stopped is not None:
            return False
        await send.send(record)
        return True

    async def _take(self, draft: _Draft, items: list[Any]) -> None:
        """Convert, check and encode one slice of the input into ``draft``, keeping only its
        encoded form and the outcomes of the items left out (two checkpoints: one before the
        check, one before the encoding)."""
        first = draft.first + draft.size
        await checkpoint()
        wire, extra_ids = _wire_chunk(items, first, self.report.run_id)
        problems = check_items(wire, self.envelope.rules, first_index=first, extra_ids=extra_ids)
        draft.size += len(items)
        sent = wire
        if problems:
            invalid = _by_item(problems)
            if self.on_invalid == "abort":
                draft.abort(wire, first, invalid)
                return
            draft.excluded.extend(
                _invalid_outcome(index, wire[index - first], found)
                for index, found in invalid.items()
            )
            draft.left_out.extend(invalid)
            sent = [item for offset, item in enumerate(wire) if first + offset not in invalid]
        if not sent:
            return
        if draft.unencodable is None:
            await checkpoint()
            try:
                draft.pieces.append(memoryview(orjson.dumps(sent))[1:-1])
            except TypeError as exc:  # orjson.JSONEncodeError too; the rules should prevent it
                draft.fail_encoding(exc, first)
            else:
                draft.sent += len(sent)
                return
        positions = draft.positions(first, first + len(items))
        reason = draft.unencodable_reason
        draft.excluded.extend(
            _item_outcome(index, item, Outcome.NOT_SENT, reason)
            for index, item in zip(positions, sent, strict=True)
        )

    def _body(self, pieces: list[memoryview]) -> RequestBody:
        """``self.envelope.body`` of the chunk's items, byte for byte, as its encoded slices
        between the envelope's head and tail (never joined: see ``RequestBody``)."""
        if not pieces:
            return RequestBody()
        parts: list[bytes | memoryview] = [self.body_head]
        for piece in pieces:
            parts += (piece, b",")
        parts[-1] = self.body_tail
        return RequestBody(parts)

    def _record(self, draft: _Draft, body: RequestBody, chunk_digest: bytes) -> ChunkRecord | None:
        """Record a prepared chunk in the report (no await: all of it or nothing); ``None``
        when nothing of it is to be sent."""
        report = self.report
        report.read += draft.size
        record = ChunkRecord(number=len(report.chunks), first_index=draft.first, size=draft.size)
        report.chunks.append(record)
        record.excluded = draft.excluded
        if draft.aborted is not None:
            report.aborted = draft.aborted
            self.finish(record, ChunkState.NOT_SENT, draft.aborted)
            return None
        if draft.left_out:
            record.indices = draft.positions(draft.first, draft.first + draft.size)
        if draft.unencodable is not None:
            self.finish(record, ChunkState.NOT_SENT, draft.unencodable_reason)
            return None
        if not draft.sent:
            self.finish(record, ChunkState.NOT_SENT, "every item of the chunk is invalid")
            return None
        record.sent = draft.sent
        record.body = body
        if self.journal is not None:
            record.digest = chunk_digest
            if self._resumed(record):
                return None
        self.unfinished[record.number] = record
        return record

    def _resumed(self, record: ChunkRecord) -> bool:
        """Take the journal's word for a chunk it has seen; True when it is not to be sent."""
        previous = self.journal_entries.get(record.number)
        if previous is None:
            return False
        if (previous.first_index, previous.size, previous.digest) != (
            record.first_index,
            record.size,
            record.digest,
        ):
            self.finish(
                record, ChunkState.NOT_SENT, "refused: not the journal's input", journal=False
            )
            raise JournalMismatchError(
                f"chunk {record.number} (input items {record.first_index} to "
                f"{record.first_index + record.size - 1}) differs from the journal: the input "
                "changed since the first run; nothing of it was sent"
            )
        if previous.state in (ChunkState.PENDING, ChunkState.NOT_SENT):
            return False
        record.job_id = previous.job_id
        record.error_code = previous.error_code
        record.excluded = previous.excluded
        if previous.state in (ChunkState.ACCEPTED, ChunkState.REJECTED):
            self.finish(record, previous.state, previous.reason, journal=False)
        else:
            reason = previous.reason if previous.state is ChunkState.UNKNOWN else None
            self.finish(record, ChunkState.UNKNOWN, reason or IN_FLIGHT_AT_STOP)
        return True

    async def _pace(self, count: int) -> None:
        """Hold the rate under ``max_rate`` recipients per second."""
        if self.max_rate is None:
            return
        now = anyio.current_time()
        if self.next_send > now:
            await anyio.sleep(self.next_send - now)
        self.next_send = max(now, self.next_send) + count / self.max_rate


def endpoint(kind: Kind, sync: bool) -> str:
    """The path of the endpoint a chunk of ``kind`` goes to."""
    return f"{kind.value}/sync" if sync else kind.value


def _by_item(problems: list[Problem]) -> dict[int, list[Problem]]:
    grouped: dict[int, list[Problem]] = {}
    for problem in problems:
        assert problem.index is not None
        grouped.setdefault(problem.index, []).append(problem)
    return grouped


def _item_outcome(index: int, item: Any, outcome: Outcome, reason: str) -> RecipientOutcome:
    """The outcome of an item that is not part of any request (invalid, or aborted before)."""
    phone = extra_id = None
    if isinstance(item, dict):
        phone = item.get("phone_number")
        given = item.get("extra_id")
        extra_id = given if isinstance(given, str) else None
    return RecipientOutcome(index, phone, extra_id, outcome, reason, sent=False)


def _invalid_outcome(index: int, item: Any, problems: list[Problem]) -> RecipientOutcome:
    reason = "invalid: " + "; ".join(f"{p.field}: {p.message}" for p in problems)
    return _item_outcome(index, item, Outcome.NOT_SENT, reason)


async def send_in_chunks(
    client: Requester,
    envelope: Envelope,
    items: Iterable[Any] | AsyncIterable[Any],
    options: SendOptions,
) -> SendReport:
    """Send any number of items in requests of ``options.request_size`` items at most.

    Each request wraps its items in ``envelope`` (the campaign, checked for its kind); see
    ``HyberClient.stream_broadcast`` for the options.
    """
    kind = envelope.kind
    run_id = options.run_id
    report = options.report if options.report is not None else SendReport()
    report.run_id = run_id or report.run_id or uuid.uuid4().hex[:16]
    report.endpoint = endpoint(kind, options.sync)
    journal = options.journal
    if journal is not None:
        identity = fingerprint(kind, envelope, options.request_size, options.sync)
        recorded = journal.open_run(identity, report.run_id)
        if run_id is not None and recorded != run_id:
            raise JournalMismatchError(f"the journal records run {recorded!r}, not {run_id!r}")
        report.run_id = recorded
    await _Sender(client, envelope, options, report).run(items)
    return report
