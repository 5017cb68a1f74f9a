"""The streaming mass sender behind ``stream_batch`` and ``stream_broadcast``.

One producer reads the input lazily, a chunk at a time; converts, checks and encodes the chunk;
and hands it over a zero-buffer stream to ``concurrency`` workers that POST it. So at most
``concurrency + 1`` encoded chunks exist at once, whatever the size of the input.

Every chunk's state lives in its ``ChunkRecord``; the workers move it from ``PENDING`` through
``IN_FLIGHT`` to a final state, and a cancelled call moves what is left to ``NOT_SENT``
(queued) or ``UNKNOWN`` (in flight), so the report always partitions what was read.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import math
import uuid
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable
from itertools import repeat
from typing import TYPE_CHECKING, Any, Literal

import anyio
import attrs
import orjson

from ._chunking import chunked
from ._codec import Envelope, decode_answer, to_wire_items
from ._errors import HyberError, Problem
from ._models import Campaign, JobAccepted, SyncResult
from ._send_report import (
    ChunkRecord,
    ChunkState,
    Outcome,
    Progress,
    RecipientOutcome,
    SendReport,
    outcome_of_error,
)
from ._validation import MAX_ITEMS, Kind, check_items

if TYPE_CHECKING:
    from ._client import HyberClient

__all__ = ["DEFAULT_CONCURRENCY", "OnInvalid", "ProgressCallback", "stream"]

logger = logging.getLogger("hyber_async")

DEFAULT_CONCURRENCY = 4
"""Requests in flight per campaign: enough to overlap encoding with the network on two cores."""

OnInvalid = Literal["skip", "abort"]
ProgressCallback = Callable[[Progress], Awaitable[None] | None]


@attrs.define(eq=False)
class _Prepared:
    """A chunk ready to send: its record and its encoded body.

    The items' dicts are let go once encoded; the few chunks that do not end accepted read
    their members back from the body.
    """

    record: ChunkRecord
    body: bytes
    items_key: str
    indices: list[int] | None
    """Input positions of the sent items when some of the chunk were left out, else ``None``."""

    def members(self) -> list[tuple[int, Any, str]]:
        """``(input index, phone_number, extra_id)`` of each sent item, in request order."""
        sent = orjson.loads(self.body)[self.items_key]
        first = self.record.first_index
        positions = self.indices or range(first, first + len(sent))
        return [
            (index, item.get("phone_number"), item["extra_id"])
            for index, item in zip(positions, sent, strict=True)
        ]


class _Sender:
    """One streaming send: its options, its report and its running counts."""

    def __init__(
        self,
        client: HyberClient,
        kind: Kind,
        envelope: Envelope,
        *,
        chunk_size: int,
        concurrency: int,
        sync: bool,
        max_rate: float | None,
        on_progress: ProgressCallback | None,
        on_invalid: OnInvalid,
        report: SendReport,
    ) -> None:
        self.client = client
        self.kind = kind
        self.envelope = envelope
        self.path = f"{kind.value}/sync" if sync else kind.value
        self.sync = sync
        self.chunk_size = chunk_size
        self.concurrency = concurrency
        self.max_rate = max_rate
        self.on_progress = on_progress
        self.on_invalid = on_invalid
        self.report = report
        self.counts = dict.fromkeys(Outcome, 0)
        self.unfinished: dict[int, _Prepared] = {}
        """Chunks prepared but not final yet, by number: queued or in flight."""
        self.started = anyio.current_time()
        self.next_send = self.started
        self.chunks_done = 0

    async def run(self, items: Iterable[Any] | AsyncIterable[Any]) -> None:
        send, receive = anyio.create_memory_object_stream[_Prepared](0)
        try:
            async with anyio.create_task_group() as tg:
                for _ in range(self.concurrency):
                    tg.start_soon(self._worker, receive.clone())
                receive.close()
                async with send:
                    await self._produce(items, send)
            self.report.complete = self.report.aborted is None
        finally:
            self._settle_unfinished()

    async def _produce(
        self,
        items: Iterable[Any] | AsyncIterable[Any],
        send: anyio.abc.ObjectSendStream[_Prepared],
    ) -> None:
        async with contextlib.aclosing(chunked(items, self.chunk_size)) as chunks:
            async for chunk in chunks:
                prepared = self._prepare(chunk)
                if prepared is None:
                    if self.report.aborted is not None:
                        return
                    continue
                await self._pace(prepared.record.sent)
                await send.send(prepared)

    def _prepare(self, items: list[Any]) -> _Prepared | None:
        """Convert, check and encode one chunk; record it. ``None`` when nothing is to be sent."""
        report = self.report
        first = report.read
        report.read += len(items)
        record = ChunkRecord(number=len(report.chunks), first_index=first, size=len(items))
        report.chunks.append(record)
        wire = to_wire_items(items)
        _give_extra_ids(wire, first, report.run_id)
        problems = check_items(wire, self.envelope.rules, first_index=first)
        indices: list[int] | None = None
        if problems:
            invalid = _by_item(problems)
            if self.on_invalid == "abort":
                self._abort(record, wire, invalid)
                return None
            record.excluded.extend(
                _invalid_outcome(index, wire[index - first], found)
                for index, found in invalid.items()
            )
            indices = [i for i in range(first, first + len(wire)) if i not in invalid]
            wire = [wire[i - first] for i in indices]
            if not wire:
                self._finish(record, ChunkState.NOT_SENT, "every item of the chunk is invalid")
                return None
        record.sent = len(wire)
        prepared = _Prepared(record, self.envelope.body(wire), self.kind.items_key, indices)
        self.unfinished[record.number] = prepared
        return prepared

    def _abort(
        self, record: ChunkRecord, wire: list[Any], invalid: dict[int, list[Problem]]
    ) -> None:
        first = record.first_index
        first_bad = min(invalid)
        self.report.aborted = f"invalid input at item {first_bad}: {invalid[first_bad][0]}"
        for offset, item in enumerate(wire):
            index = first + offset
            if index in invalid:
                record.excluded.append(_invalid_outcome(index, item, invalid[index]))
            else:
                reason = f"not sent: the send was aborted at invalid item {first_bad}"
                record.excluded.append(_item_outcome(index, item, Outcome.NOT_SENT, reason))
        self._finish(record, ChunkState.NOT_SENT, self.report.aborted)

    async def _pace(self, count: int) -> None:
        """Hold the rate under ``max_rate`` recipients per second."""
        if self.max_rate is None:
            return
        now = anyio.current_time()
        if self.next_send > now:
            await anyio.sleep(self.next_send - now)
        self.next_send = max(now, self.next_send) + count / self.max_rate

    async def _worker(self, receive: anyio.abc.ObjectReceiveStream[_Prepared]) -> None:
        async with receive:
            async for prepared in receive:
                await self._deliver(prepared)

    async def _deliver(self, prepared: _Prepared) -> None:
        record = prepared.record
        record.state = ChunkState.IN_FLIGHT
        try:
            response = await self.client.request("POST", self.path, prepared.body)
        except HyberError as error:
            record.error_code = getattr(error, "error_code", None)
            state = ChunkState(outcome_of_error(error).value)
            self._finish(record, state, str(error), prepared)
        else:
            try:
                if self.sync:
                    self._apply_sync_answer(prepared, decode_answer(response, SyncResult))
                else:
                    record.job_id = decode_answer(response, JobAccepted).job_id
            except HyberError as error:
                self._finish(record, ChunkState.UNKNOWN, str(error), prepared)
            else:
                self._finish(record, ChunkState.ACCEPTED, None, prepared)
        await self._progress()

    def _apply_sync_answer(self, prepared: _Prepared, answer: SyncResult) -> None:
        """Give each sent item of a sync request the outcome the server answered for it."""
        results = answer.messages
        members = prepared.members()
        in_order = len(results) == len(members) and all(
            r.extra_id == m[2] for r, m in zip(results, members, strict=True)
        )
        by_extra_id = {} if in_order else {r.extra_id: r for r in results}
        for position, (index, phone, extra_id) in enumerate(members):
            result = results[position] if in_order else by_extra_id.get(extra_id)
            if result is None:
                reason = "missing from the sync answer"
                prepared.record.excluded.append(
                    RecipientOutcome(index, phone, extra_id, Outcome.UNKNOWN, reason)
                )
            elif result.accepted is False or result.error_code is not None:
                reason = result.error_text or "rejected by the server"
                prepared.record.excluded.append(
                    RecipientOutcome(
                        index, phone, extra_id, Outcome.REJECTED, reason, result.error_code
                    )
                )

    def _finish(
        self,
        record: ChunkRecord,
        state: ChunkState,
        reason: str | None,
        prepared: _Prepared | None = None,
    ) -> None:
        """Move ``record`` to a final ``state`` and count its items."""
        record.state = state
        record.reason = reason
        self.unfinished.pop(record.number, None)
        if prepared is not None and state is not ChunkState.ACCEPTED:
            record.members = prepared.members()
        own = 0
        for item in record.excluded:
            self.counts[item.outcome] += 1
            own += item.outcome is not Outcome.NOT_SENT
        outcome = state.outcome
        assert outcome is not None
        self.counts[outcome] += record.sent - own
        self.chunks_done += 1

    def _settle_unfinished(self) -> None:
        """After a cancellation: queued chunks were not sent, in-flight ones may have been."""
        for prepared in list(self.unfinished.values()):
            if prepared.record.state is ChunkState.PENDING:
                state, reason = ChunkState.NOT_SENT, "cancelled before sending"
            else:
                state, reason = ChunkState.UNKNOWN, "cancelled while in flight"
            self._finish(prepared.record, state, reason, prepared)

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
        )
        result = self.on_progress(progress)
        if inspect.isawaitable(result):
            await result


def _give_extra_ids(wire: list[Any], first: int, run_id: str) -> None:
    """Give every item without an ``extra_id`` the stable ``{run_id}-{input index}``."""
    try:
        if None not in map(dict.get, wire, repeat("extra_id")):
            return
    except TypeError:  # a non-dict item, which validation will name
        pass
    for offset, item in enumerate(wire):
        if type(item) is dict and item.get("extra_id") is None:
            wire[offset] = {**item, "extra_id": f"{run_id}-{first + offset}"}


def _by_item(problems: list[Problem]) -> dict[int, list[Problem]]:
    grouped: dict[int, list[Problem]] = {}
    for problem in problems:
        assert problem.index is not None
        grouped.setdefault(problem.index, []).append(problem)
    return grouped


def _item_outcome(index: int, item: Any, outcome: Outcome, reason: str) -> RecipientOutcome:
    if isinstance(item, dict):
        extra_id = item.get("extra_id")
        return RecipientOutcome(
            index,
            item.get("phone_number"),
            extra_id if isinstance(extra_id, str) else None,
            outcome,
            reason,
        )
    return RecipientOutcome(index, None, None, outcome, reason)


def _invalid_outcome(index: int, item: Any, problems: list[Problem]) -> RecipientOutcome:
    reason = "invalid: " + "; ".join(f"{p.field}: {p.message}" for p in problems)
    return _item_outcome(index, item, Outcome.NOT_SENT, reason)


async def stream(
    client: HyberClient,
    kind: Kind,
    campaign: Campaign,
    items: Iterable[Any] | AsyncIterable[Any],
    *,
    chunk_size: int = MAX_ITEMS,
    concurrency: int = DEFAULT_CONCURRENCY,
    sync: bool = False,
    max_rate: float | None = None,
    on_progress: ProgressCallback | None = None,
    on_invalid: OnInvalid = "skip",
    run_id: str | None = None,
    report: SendReport | None = None,
) -> SendReport:
    """Send any number of items as ``kind`` requests of at most ``chunk_size``; see
    ``HyberClient.stream_broadcast`` for the options."""
    envelope = Envelope(campaign, kind)
    if not 1 <= chunk_size <= MAX_ITEMS:
        raise ValueError(f"chunk_size must be between 1 and {MAX_ITEMS}, got {chunk_size}")
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, got {concurrency}")
    if max_rate is not None:
        if max_rate <= 0:
            raise ValueError(f"max_rate must be positive, got {max_rate}")
        chunk_size = min(chunk_size, math.ceil(max_rate / 10))
    if on_invalid not in ("skip", "abort"):
        raise ValueError(f"on_invalid must be 'skip' or 'abort', got {on_invalid!r}")
    report = report if report is not None else SendReport()
    report.run_id = run_id or report.run_id or uuid.uuid4().hex[:16]
    sender = _Sender(
        client,
        kind,
        envelope,
        chunk_size=chunk_size,
        concurrency=min(concurrency, client.max_connections),
        sync=sync,
        max_rate=max_rate,
        on_progress=on_progress,
        on_invalid=on_invalid,
        report=report,
    )
    await sender.run(items)
    return report
