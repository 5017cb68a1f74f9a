"""Reconciliation: turn ``UNKNOWN`` recipients into known ones by looking up their ``extra_id``.

A batch or broadcast request is accepted or refused as a whole, so a chunk whose request may
have been processed is probed by its first and last recipient: both found means the chunk was
accepted, neither found means it was not. Only when the two disagree (a store that lags, a
partial answer) is every recipient of the chunk looked up. Recipients found become ``ACCEPTED``;
the others become ``NOT_SENT``, and are sent again only when the caller asks.

Lookups go to the client's ``dr_base_url`` (the documented ``dr-v2-{site}`` host), never to the
send host, and only the documented not-found answer counts as "not found": without a
``dr_base_url`` nothing is looked up, and an answer of any other shape stops reconciliation
with its error (the chunks not resolved yet stay ``UNKNOWN``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

import anyio
import attrs
import httpx
import orjson

from ._body import RequestBody
from ._errors import Problem, ValidationError
from ._send_report import ChunkRecord, ChunkState, Outcome, RecipientOutcome, SendReport
from ._sender import ChunkPoster
from ._transport import Requester

if TYPE_CHECKING:
    from .journal import Journal

__all__ = ["FOUND", "NOT_FOUND", "NO_DR_HOST", "ReportLookup", "reconcile"]

FOUND = "found by its extra_id at reconciliation"
NOT_FOUND = "not found by its extra_id at reconciliation"
LOOKUP_CONCURRENCY = 8
"""Lookups in flight at once (capped by the client's pool)."""
NO_DR_HOST = Problem(
    "dr_base_url",
    "is required to look up delivery reports (and so to reconcile or resend): pass "
    "dr_base_url= or site=, or set $HYBER_DR_BASE_URL; base_url= is the send host, whose "
    "answers prove nothing about a message",
)


class ReportLookup(Requester, Protocol):
    """What reconciliation needs of a client: lookups by ``extra_id``, and requests to resend."""

    @property
    def dr_base_url(self) -> httpx.URL | None:
        """Where the lookups go; ``None`` when there is nowhere to look."""

    async def get_delivery_report(self, *, extra_id: str) -> object | None:
        """The report of the message sent with ``extra_id``; ``None`` when not found."""


async def reconcile(
    client: ReportLookup,
    report: SendReport,
    *,
    resend: bool = False,
    journal: Journal | None = None,
) -> SendReport:
    """Resolve every ``UNKNOWN`` chunk of ``report``; see ``HyberClient.reconcile``."""
    if client.dr_base_url is None:
        raise ValidationError([NO_DR_HOST])
    limiter = anyio.CapacityLimiter(min(LOOKUP_CONCURRENCY, client.max_connections))

    async def found(extra_id: str) -> bool:
        async with limiter:
            return await client.get_delivery_report(extra_id=extra_id) is not None

    poster = ChunkPoster(client, report.endpoint, report, journal=journal)
    to_resend: list[ChunkRecord] = []
    for chunk in report.chunks:
        await _resolve_own_unknowns(chunk, found, poster)
        if chunk.state is not ChunkState.UNKNOWN or not chunk.body:
            continue
        own = {item.index for item in chunk.excluded}
        members = [m for m in chunk.members() if m[0] not in own]
        if not members:
            continue
        probes = await _lookup(found, {members[0][2], members[-1][2]})
        if all(probes.values()):
            poster.finish(chunk, ChunkState.ACCEPTED, FOUND)
            continue
        found_ids: set[str] = set()
        if any(probes.values()):
            seen = await _lookup(found, {extra_id for _, _, extra_id in members})
            found_ids = {extra_id for extra_id, hit in seen.items() if hit}
        chunk.excluded.extend(
            RecipientOutcome(index, phone, extra_id, Outcome.ACCEPTED, FOUND)
            for index, phone, extra_id in members
            if extra_id in found_ids
        )
        missing = [m for m in members if m[2] not in found_ids]
        if not missing:
            poster.finish(chunk, ChunkState.ACCEPTED, FOUND)
        elif resend:
            _keep_only(chunk, missing)
            to_resend.append(chunk)
        else:
            poster.finish(chunk, ChunkState.NOT_SENT, NOT_FOUND)
    if to_resend:
        await poster.post_chunks(to_resend, LOOKUP_CONCURRENCY)
    poster.raise_failure()
    return report


Lookup = Callable[[str], Awaitable[bool]]


async def _resolve_own_unknowns(chunk: ChunkRecord, found: Lookup, poster: ChunkPoster) -> None:
    """Resolve the recipients a sync answer left out (``UNKNOWN`` one by one).

    Found ones are ``ACCEPTED``, the others ``NOT_SENT``. They are not resent: their chunk was
    answered.
    """
    unknown = [item for item in chunk.excluded if item.outcome is Outcome.UNKNOWN]
    if not unknown:
        return
    seen = await _lookup(found, {item.extra_id for item in unknown if item.extra_id})

    def resolved(item: RecipientOutcome) -> RecipientOutcome:
        if item.outcome is not Outcome.UNKNOWN:
            return item
        if seen.get(item.extra_id or ""):
            return attrs.evolve(item, outcome=Outcome.ACCEPTED, reason=FOUND)
        return attrs.evolve(item, outcome=Outcome.NOT_SENT, reason=NOT_FOUND)

    chunk.excluded = [resolved(item) for item in chunk.excluded]
    poster.save(chunk)


async def _lookup(found: Lookup, extra_ids: set[str]) -> dict[str, bool]:
    """Whether each of ``extra_ids`` is found; the first lookup error is raised as itself."""
    seen: dict[str, bool] = {}
    errors: list[Exception] = []

    async def one(extra_id: str) -> None:
        try:
            seen[extra_id] = await found(extra_id)
        except Exception as exc:
            errors.append(exc)
            tasks.cancel_scope.cancel()

    async with anyio.create_task_group() as tasks:
        for extra_id in extra_ids:
            tasks.start_soon(one, extra_id)
    if errors:
        raise errors[0]
    return seen


def _keep_only(chunk: ChunkRecord, missing: list[tuple[int, Any, str]]) -> None:
    """Rebuild ``chunk``'s body with only its ``missing`` recipients, to send them again.

    ``sent`` stays: the recipients found are counted through ``excluded``.
    """
    request = orjson.loads(bytes(chunk.body))
    key = "recipients" if "recipients" in request else "messages"
    wanted = {extra_id for _, _, extra_id in missing}
    request[key] = [item for item in request[key] if item["extra_id"] in wanted]
    chunk.body = RequestBody([orjson.dumps(request)])
    chunk.indices = [index for index, _, _ in missing]
