"""``HyberClient``, the public facade: the endpoints of the API over one ``Transport``.

The transport (``_transport.py``) owns the connection pool, the credentials and the retries; the
engines (``_sender.py``, ``_poller.py``, ``_reconcile.py``) take this client or its transport
through the small protocols they declare, so none of them imports this module.
"""

from __future__ import annotations

import math
import re
from collections.abc import AsyncIterable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, Literal, TypeVar, cast, overload
from urllib.parse import quote

import httpx
import orjson

from ._body import RequestBody
from ._codec import Envelope, converter, decode_answer, match_sync_results, to_wire_items
from ._config import (
    DEFAULT_ANSWER_LIMITS,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_RETRY,
    DEFAULT_TIMEOUTS,
    DR_SITE_URL,
    MESSAGE_SITE_URL,
    AnswerLimits,
    RetryPolicy,
    Timeouts,
)
from ._errors import (
    InvalidCallError,
    NotFoundError,
    Problem,
    UnexpectedResponseError,
    ValidationError,
)
from ._models import (
    AdvancedDeliveryReport,
    BatchRequest,
    BroadcastRequest,
    Campaign,
    JobAccepted,
    JobStatus,
    Kind,
    Message,
    MessageAccepted,
    MessageRequest,
    Recipient,
    SimpleDeliveryReport,
    SyncResult,
)
from ._poller import (
    DEFAULT_INTERVAL,
    DEFAULT_MAX_INTERVAL,
    CampaignSummary,
    JobPoller,
    PollOptions,
    finish_polling,
)
from ._rate import RateController, Throttling
from ._reconcile import NO_DR_HOST, reconcile
from ._send_report import SendReport
from ._sender import (
    DEFAULT_CONCURRENCY,
    OnInvalid,
    ProgressCallback,
    SendOptions,
    send_in_chunks,
)
from ._status_answer import StatusAnswer, StatusCounter, read_status_answer
from ._transport import Transport, _Secret, base_url_of, host_of, setting, with_extra_ids
from ._validation import MAX_ITEMS, check_items, check_message
from .journal import Journal

__all__ = ["HyberClient"]

T = TypeVar("T")
_JOB_ID = re.compile(r"[A-Za-z0-9_~-][A-Za-z0-9._~-]*")
"""A job id is one path segment of unreserved URL characters (the API issues UUIDs)."""
BatchItem = Message | Mapping[str, Any]
BroadcastItem = Recipient | Mapping[str, Any]
Detail = Literal["simple", "advanced"]
"""The two forms of a delivery-report lookup."""

_JOB_ID_MAX = 256
"""The longest job id ``get_status`` takes (the API issues 36-character UUIDs)."""


class HyberClient:
    """An async client of the Hyber JSON V2 mass-messaging API.

    Use it as an async context manager; it owns one pooled ``httpx.AsyncClient`` (or uses the
    ``http_client`` you pass, and leaves it open). ``client_id``, ``login``, ``password`` and
    ``base_url`` fall back to ``$HYBER_CLIENT_ID``, ``$HYBER_LOGIN``, ``$HYBER_PASSWORD`` and
    ``$HYBER_BASE_URL``; ``site="eu"`` means ``https://proxy-eu.hyber.im`` for the mass
    endpoints, ``https://dr-v2-eu.hyber.im`` for delivery-report lookups (``dr_base_url=``
    or ``$HYBER_DR_BASE_URL`` otherwise) and ``https://api-v2-eu.hyber.im`` for single messages
    (``message_base_url=`` otherwise; ``base_url`` by default).

    Every method validates its input before sending (``ValidationError``), bounds the whole call
    by ``timeouts.total`` and retries by ``retry``; see ``RetryPolicy`` for what is resent.

    Every send of the client (all its campaigns) goes through one adaptive rate controller
    that learns the account's quota in messages per second from the server's refusals (429,
    503 with ``Retry-After``): it backs off on them, probes upward while answers are clean,
    and serves waiting requests in FIFO order (see ``hyber_async._rate``). ``rate_control=False``
    turns it off; ``rate_limit=`` seeds it with a known quota (messages per second) to start
    at instead of sending unpaced (in slow start) until the first refusal. A campaign's
    ``max_rate`` caps it.
    """

    def __init__(
        self,
        client_id: str | None = None,
        login: str | None = None,
        password: str | None = None,
        *,
        site: str | None = None,
        base_url: str | None = None,
        timeouts: Timeouts = DEFAULT_TIMEOUTS,
        retry: RetryPolicy = DEFAULT_RETRY,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        http_client: httpx.AsyncClient | None = None,
        dr_base_url: str | None = None,
        answer_limits: AnswerLimits = DEFAULT_ANSWER_LIMITS,
        message_base_url: str | None = None,
        rate_control: bool = True,
        rate_limit: float | None = None,
    ) -> None:
        secret = None if password is None else _Secret(password)
        del password  # from here on only redacting holders show in a traceback's locals
        client_id = setting(client_id, "HYBER_CLIENT_ID", "client_id")
        self.login: str = setting(login, "HYBER_LOGIN", "login")
        secret = _Secret(
            setting(None if secret is None else secret.reveal(), "HYBER_PASSWORD", "password")
        )
        main_url = base_url_of(site, base_url)
        self.dr_base_url: httpx.URL | None = host_of(
            "dr_base_url", dr_base_url, site, DR_SITE_URL, "HYBER_DR_BASE_URL"
        )
        """Where the delivery-report lookups go: ``dr_base_url``, else
        ``https://dr-v2-{site}.hyber.im`` for a ``site``, else ``$HYBER_DR_BASE_URL``. Never
        ``base_url``: without one of these, lookups and ``reconcile`` raise ``ValidationError``."""
        self.message_base_url: httpx.URL = (
            host_of("message_base_url", message_base_url, site, MESSAGE_SITE_URL, None) or main_url
        )
        """Where ``send_message`` goes: ``message_base_url``, else
        ``https://api-v2-{site}.hyber.im`` for a ``site``, else ``base_url``."""
        self._transport = Transport(
            client_id,
            self.login,
            secret,
            main_url,
            timeouts=timeouts,
            retry=retry,
            max_connections=max_connections,
            answer_limits=answer_limits,
            http_client=http_client,
            rate=_rate_controller(rate_control, rate_limit),
        )

    @property
    def client_id(self) -> str:
        """The account's client id: the first segment of every request's path."""
        return self._transport.client_id

    @property
    def base_url(self) -> httpx.URL:
        """Where the mass endpoints and status requests go."""
        return self._transport.base_url

    @property
    def timeouts(self) -> Timeouts:
        """The per-phase timeouts and the deadline of each call."""
        return self._transport.timeouts

    @property
    def retry(self) -> RetryPolicy:
        """When and how often a request is sent again."""
        return self._transport.retry

    @property
    def answer_limits(self) -> AnswerLimits:
        """How much of an answer is read at most (see ``AnswerLimits``)."""
        return self._transport.answer_limits

    @property
    def max_connections(self) -> int:
        """Requests this client keeps in flight at most (the size of its connection pool)."""
        return self._transport.max_connections

    @property
    def _known_quota(self) -> float | None:
        """The quota the rate controller was seeded with (``rate_limit=``), if any."""
        rate = self._transport.rate
        return None if rate is None else rate.seed

    @property
    def _http(self) -> httpx.AsyncClient:
        """The transport's pooled ``httpx.AsyncClient``."""
        return self._transport._http

    def __repr__(self) -> str:
        # getattr: a client whose constructor failed half-way still has a repr
        base_url = getattr(self, "base_url", None)
        return (
            f"HyberClient(client_id={getattr(self, 'client_id', None)!r}, "
            f"login={getattr(self, 'login', None)!r}, "
            f"base_url={None if base_url is None else str(base_url)!r})"
        )

    async def __aenter__(self) -> HyberClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool, unless it was passed in by the caller."""
        await self._transport.aclose()

    @property
    def is_closed(self) -> bool:
        """Whether the connection pool is closed: a request then fails before it leaves."""
        return self._transport.is_closed

    # --- the five endpoints -----------------------------------------------------------------

    async def send_batch(
        self, campaign: Campaign | BatchRequest, messages: Sequence[BatchItem] | None = None
    ) -> JobAccepted:
        """Send up to 50,000 messages, each with its own text; returns the job to poll."""
        return await self._send(Kind.BATCH, "batch", campaign, messages, JobAccepted)

    async def send_batch_sync(
        self, campaign: Campaign | BatchRequest, messages: Sequence[BatchItem] | None = None
    ) -> SyncResult:
        """Send up to 50,000 messages and wait for the per-message answer."""
        return await self._send(Kind.BATCH, "batch/sync", campaign, messages, SyncResult)

    async def send_broadcast(
        self,
        campaign: Campaign | BroadcastRequest,
        recipients: Sequence[BroadcastItem] | None = None,
    ) -> JobAccepted:
        """Send the campaign's texts to up to 50,000 recipients; returns the job to poll."""
        return await self._send(Kind.BROADCAST, "broadcast", campaign, recipients, JobAccepted)

    async def send_broadcast_sync(
        self,
        campaign: Campaign | BroadcastRequest,
        recipients: Sequence[BroadcastItem] | None = None,
    ) -> SyncResult:
        """Send to up to 50,000 recipients and wait for the per-message answer."""
        return await self._send(Kind.BROADCAST, "broadcast/sync", campaign, recipients, SyncResult)

    async def get_status(self, job_id: str) -> JobStatus:
        """The status report of every message of a job."""
        return (await self.read_status(job_id)).status

    async def read_status(self, job_id: str, *, keep_messages: bool = True) -> StatusAnswer:
        """The status report of a job, parsed but not typed: its ``messages`` as JSON objects,
        counted cheaply by ``poll_jobs``, its typed ``status`` built on first access.

        With ``keep_messages=False`` the answer is counted as it arrives, a piece at a time
        (``StatusCounter``), and keeps no message: only ``tally()`` (what ``wait_for_jobs``
        reads; a third cheaper, and no answer is ever held whole, as bytes or as objects).
        """
        if not isinstance(job_id, str) or _JOB_ID.fullmatch(job_id) is None:
            raise ValidationError([Problem("job_id", f"must be a job id, got {job_id!r:.80}")])
        if len(job_id) > _JOB_ID_MAX:
            message = f"must be at most {_JOB_ID_MAX} characters, got {len(job_id)}"
            raise ValidationError([Problem("job_id", message)])
        path = f"status/{job_id}"
        if keep_messages:
            return await read_status_answer(await self.request("GET", path))
        counter = StatusCounter()  # the body is counted as it arrives, never held whole
        return await counter.answer(await self._transport.request("GET", path, sink=counter))

    # --- any number of items ---------------------------------------------------------------

    async def stream_batch(
        self,
        campaign: Campaign,
        messages: Iterable[BatchItem] | AsyncIterable[BatchItem],
        *,
        chunk_size: int = MAX_ITEMS,
        concurrency: int = DEFAULT_CONCURRENCY,
        sync: bool = False,
        max_rate: float | None = None,
        on_progress: ProgressCallback | None = None,
        on_invalid: OnInvalid = "skip",
        run_id: str | None = None,
        report: SendReport | None = None,
        journal: Journal | None = None,
    ) -> SendReport:
        """Send any number of batch messages; see ``stream_broadcast`` for the options."""
        envelope = Envelope(campaign, Kind.BATCH)  # the campaign is checked before the options
        options = SendOptions(
            chunk_size=chunk_size,
            concurrency=concurrency,
            sync=sync,
            max_rate=max_rate,
            on_progress=on_progress,
            on_invalid=on_invalid,
            run_id=run_id,
            report=report,
            journal=journal,
            quota=self._known_quota,
        )
        return await send_in_chunks(self._transport, envelope, messages, options)

    async def stream_broadcast(
        self,
        campaign: Campaign,
        recipients: Iterable[BroadcastItem] | AsyncIterable[BroadcastItem],
        *,
        chunk_size: int = MAX_ITEMS,
        concurrency: int = DEFAULT_CONCURRENCY,
        sync: bool = False,
        max_rate: float | None = None,
        on_progress: ProgressCallback | None = None,
        on_invalid: OnInvalid = "skip",
        run_id: str | None = None,
        report: SendReport | None = None,
        journal: Journal | None = None,
    ) -> SendReport:
        """Send the campaign to any number of recipients and account for every one.

        ``recipients`` is any iterable or async iterable of ``Recipient`` or plain mappings
        with the wire keys; it is read lazily, ``chunk_size`` at a time, and at most
        ``concurrency + 1`` encoded chunks exist at once. Options:

        - ``chunk_size``: items per request (at most 50,000);
        - ``concurrency``: requests in flight (never above the client's ``max_connections``);
        - ``sync``: use the ``/sync`` endpoint and get an outcome per message;
        - ``max_rate``: at most this many recipients per second (chunks shrink to a tenth of a
          second's worth so that the rate holds; so they do to a tenth of a second's worth of
          the client's ``rate_limit``, a known quota);
        - ``on_progress``: called (or awaited) with a ``Progress`` after each finished chunk;
        - ``on_invalid``: ``"skip"`` reports an invalid item as ``NOT_SENT`` and sends the
          rest; ``"abort"`` stops reading and sending at the first invalid item;
        - ``run_id``: prefix of the ``extra_id`` generated as ``{run_id}-{input index}`` for
          items without one (random by default);
        - ``report``: a ``SendReport`` to fill, which stays yours if the call is cancelled;
        - ``journal``: a ``hyber_async.journal.SqliteJournal`` recording every chunk durably;
          the same call with the same journal and input resumes a campaign that stopped.

        Invalid campaign options raise ``ValidationError`` before anything is sent. After that
        nothing raises for a failed chunk: the returned ``SendReport`` partitions the input into
        ``ACCEPTED``, ``REJECTED``, ``NOT_SENT`` and ``UNKNOWN``. A chunk is resent only when it
        provably did not reach the server or was refused (see ``RetryPolicy``).

        A failure that is not a chunk's own (the input raises, the client is closed, the journal
        refuses the input or cannot be written: ``JournalWriteError``) stops reading; it is
        raised once the chunks in flight have settled, ``report`` partitioning what was read.
        """
        envelope = Envelope(campaign, Kind.BROADCAST)  # checked before the options
        options = SendOptions(
            chunk_size=chunk_size,
            concurrency=concurrency,
            sync=sync,
            max_rate=max_rate,
            on_progress=on_progress,
            on_invalid=on_invalid,
            run_id=run_id,
            report=report,
            journal=journal,
            quota=self._known_quota,
        )
        return await send_in_chunks(self._transport, envelope, recipients, options)

    # --- following a campaign ----------------------------------------------------------------

    def poll_jobs(
        self,
        job_ids: Iterable[str],
        *,
        interval: float = DEFAULT_INTERVAL,
        max_interval: float = DEFAULT_MAX_INTERVAL,
        deadline: float | None = None,
        max_concurrency: int | None = None,
    ) -> JobPoller:
        """Poll the jobs until every message is final, yielding a ``JobUpdate`` per change.

        See ``hyber_async.poll_jobs`` for the back-off, the deadline and failed jobs.
        """
        options = PollOptions(interval, max_interval, deadline, max_concurrency)
        return JobPoller(self, job_ids, options)

    async def wait_for_jobs(
        self,
        job_ids: Iterable[str],
        *,
        interval: float = DEFAULT_INTERVAL,
        max_interval: float = DEFAULT_MAX_INTERVAL,
        deadline: float | None = None,
        max_concurrency: int | None = None,
    ) -> CampaignSummary:
        """Poll the jobs to the end and return the ``CampaignSummary`` (see ``poll_jobs``)."""
        options = PollOptions(interval, max_interval, deadline, max_concurrency)
        return await finish_polling(JobPoller(self, job_ids, options))

    # --- plumbing ----------------------------------------------------------------------------

    async def _send(
        self,
        kind: Kind,
        path: str,
        campaign: Campaign | BatchRequest | BroadcastRequest,
        items: Sequence[Any] | None,
        answer: type[T],
    ) -> T:
        if isinstance(campaign, (BatchRequest, BroadcastRequest)):
            expected = BatchRequest if kind is Kind.BATCH else BroadcastRequest
            if not isinstance(campaign, expected) or items is not None:
                raise InvalidCallError(f"pass a Campaign and items, or one {expected.__name__}")
            items = campaign.messages if isinstance(campaign, BatchRequest) else campaign.recipients
            campaign = campaign.campaign
        if items is None:
            raise InvalidCallError(f"{kind.items_key} are required")
        envelope = Envelope(campaign, kind)
        if not 0 < len(items) <= MAX_ITEMS:
            message = f"must hold 1 to {MAX_ITEMS} items, got {len(items)}"
            raise ValidationError([Problem(kind.items_key, message)])
        wire = to_wire_items(items)
        problems = check_items(wire, envelope.rules)
        if problems:
            raise ValidationError(problems)
        extra_ids = tuple(i["extra_id"] for i in wire if i.get("extra_id") is not None)
        response = await self.request("POST", path, envelope.body(wire), extra_ids, items=len(wire))
        try:
            result = decode_answer(response, answer)
            if isinstance(result, SyncResult):
                return cast(T, _in_request_order(response, result, wire))
            return result
        except UnexpectedResponseError as exc:
            raise with_extra_ids(exc, extra_ids) from None

    @overload
    async def get_delivery_report(
        self,
        *,
        message_id: str | None = None,
        extra_id: str | None = None,
        detail: Literal["simple"] = "simple",
    ) -> SimpleDeliveryReport | None: ...

    @overload
    async def get_delivery_report(
        self,
        *,
        message_id: str | None = None,
        extra_id: str | None = None,
        detail: Literal["advanced"],
    ) -> AdvancedDeliveryReport | None: ...

    async def get_delivery_report(
        self,
        *,
        message_id: str | None = None,
        extra_id: str | None = None,
        detail: Detail = "simple",
    ) -> SimpleDeliveryReport | AdvancedDeliveryReport | None:
        """The delivery report of one message, by ``message_id`` or by your ``extra_id``.

        It is looked up on ``dr_base_url``: a ``SimpleDeliveryReport`` (``detail="simple"``)
        or an ``AdvancedDeliveryReport`` with a report per channel tried
        (``detail="advanced"``). A message not final yet has ``status`` -1.

        ``None`` only for the not-found answer: a 404 whose body is the API's error object
        (``{"error_code": int, "error_text": str}``). Any other answer that is not the
        documented shape (an HTML 404 page, another service's error) raises
        (``NotFoundError``, ``UnexpectedResponseError``): it proves nothing. Without a
        ``dr_base_url`` (or ``site``) it raises ``ValidationError`` and sends nothing.
        """
        if (message_id is None) == (extra_id is None):
            raise InvalidCallError("give exactly one of message_id= and extra_id=")
        if detail not in ("simple", "advanced"):
            problem = Problem("detail", f"must be 'simple' or 'advanced', got {detail!r}")
            raise ValidationError([problem])
        if self.dr_base_url is None:
            raise ValidationError([NO_DR_HOST])
        key = (
            quote(message_id, safe="")
            if message_id is not None
            else f"external/{quote(str(extra_id), safe='')}"
        )
        try:
            response = await self.request("GET", f"api/dr/{key}/{detail}", base=self.dr_base_url)
        except NotFoundError as error:
            if error.error_code is not None and error.error_text is not None:
                return None
            raise
        if detail == "simple":
            return decode_answer(response, SimpleDeliveryReport)
        return decode_answer(response, AdvancedDeliveryReport)

    async def send_message(
        self,
        campaign: Campaign | MessageRequest,
        phone_number: int | None = None,
        *,
        extra_id: str | None = None,
    ) -> MessageAccepted:
        """Send one message to ``phone_number``; returns its ``message_id``.

        It goes through the single-message endpoint, on ``message_base_url``.

        ``campaign`` carries the channels and their options, each channel's text in its
        options (as for a broadcast; ``%key%`` is sent as written). Pass a ``Campaign`` with
        ``phone_number`` (and ``extra_id``), or one ``MessageRequest``. The request is
        validated before sending (``ValidationError``) and resent only when it provably was
        not processed, as every POST (see ``RetryPolicy``).
        """
        if isinstance(campaign, MessageRequest):
            if phone_number is not None or extra_id is not None:
                raise InvalidCallError("pass a Campaign and phone_number, or one MessageRequest")
            request = campaign
        elif phone_number is None:
            raise InvalidCallError("phone_number is required")
        else:
            request = MessageRequest(campaign, phone_number, extra_id)
        Envelope(request.campaign, Kind.BROADCAST)  # start_time is checked before it is written
        wire = converter.unstructure(request)
        problems = check_message(wire)
        if problems:
            raise ValidationError(problems)
        extra_ids = () if request.extra_id is None else (request.extra_id,)
        body = orjson.dumps(wire)
        response = await self.request(
            "POST", "", body, extra_ids, base=self.message_base_url, items=1
        )
        try:
            return decode_answer(response, MessageAccepted)
        except UnexpectedResponseError as exc:
            raise with_extra_ids(exc, extra_ids) from None

    async def reconcile(
        self, report: SendReport, *, resend: bool = False, journal: Journal | None = None
    ) -> SendReport:
        """Resolve the ``UNKNOWN`` recipients of ``report`` by looking up their ``extra_id``.

        Found ones become ``ACCEPTED``; the others ``NOT_SENT``, and with ``resend=True``
        they are sent again (once: a request is atomic, so a chunk is probed by its first and
        last recipient, and looked up one by one only when those two disagree). Pass the
        send's ``journal`` to record the outcome. Returns ``report``, updated in place.

        The lookups go to ``dr_base_url`` (see ``get_delivery_report``): without one it raises
        ``ValidationError`` before looking anything up; a lookup answer that is neither a report
        nor the not-found answer raises as itself, and the chunks not resolved yet stay
        ``UNKNOWN``.

        "Not found" proves nothing while the server may still be processing the request: a
        request can be accepted after its sender timed out or died. Reconcile, and above all
        resend, only once the server has had time to settle.
        """
        return await reconcile(self, report, resend=resend, journal=journal)

    async def request(
        self,
        method: str,
        path: str,
        content: bytes | RequestBody | None = None,
        extra_ids: Sequence[str] = (),
        *,
        base: httpx.URL | None = None,
        items: int = MAX_ITEMS,
        throttling: Throttling | None = None,
    ) -> httpx.Response:
        """Send one request to ``path`` with retries (see ``Transport.request``)."""
        return await self._transport.request(
            method, path, content, extra_ids, base=base, items=items, throttling=throttling
        )


def _rate_controller(rate_control: bool, rate_limit: float | None) -> RateController | None:
    """The client's rate controller: ``None`` when turned off; seeded with ``rate_limit``."""
    if rate_limit is not None and not (
        type(rate_limit) in (int, float) and math.isfinite(rate_limit) and rate_limit > 0
    ):
        message = f"must be a positive finite number of messages per second, got {rate_limit!r}"
        raise ValidationError([Problem("rate_limit", message)])
    if not rate_control:
        if rate_limit is not None:
            message = "seeds the rate controller: it needs rate_control=True"
            raise ValidationError([Problem("rate_limit", message)])
        return None
    return RateController(rate_limit)


def _in_request_order(
    response: httpx.Response, answer: SyncResult, wire: Sequence[Mapping[str, Any]]
) -> SyncResult:
    """``answer`` with one result per sent item, in request order.

    ``UnexpectedResponseError`` when it does not name each item's result unambiguously (see
    ``match_sync_results``).
    """
    matched = match_sync_results(answer, [item.get("extra_id") for item in wire])
    if len(answer.messages) != len(wire) or None in matched:
        detail = (
            f"the sync answer holds {len(answer.messages)} results for {len(wire)} items, "
            "not one per item by extra_id"
        )
        raise UnexpectedResponseError(response, detail=detail)
    return SyncResult(tuple(r for r in matched if r is not None))
