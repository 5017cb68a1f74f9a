"""The emulator: an ASGI app of the API's endpoints, plus its Python handle.

API routes, under ``/{client_id}/``: ``POST batch``, ``POST batch/sync``, ``POST broadcast``,
``POST broadcast/sync``, ``GET status/{job_id}``, ``POST /{client_id}`` itself (one message,
chapter 2), and the delivery-report lookups (chapter 5), ``GET api/dr/{message_id}/{detail}``
and ``GET api/dr/external/{extra_id}/{detail}``, ``detail`` being ``simple`` or ``advanced``
(Hyber serves single messages on ``api-v2-{site}.hyber.im`` and lookups on
``dr-v2-{site}.hyber.im``; the emulator serves all under its one base URL). A lookup answers
the message as it is now (see ``simple_report`` and ``advanced_report``); by ``extra_id``, the
message accepted last with it; 404 (40401) when no message of this client has that id.
Admin routes (no auth; a local tool), under ``/_emulator/``: ``GET ledger`` (``?extra_id=X``
adds its ``count``, ``?counts=1`` every count), ``GET|POST|DELETE faults``, ``GET|POST clock``
(``{"advance": seconds}``), ``GET|POST quota`` (the account quota: its limits and
refusals; POST changes limits, see ``_quota.py``), ``GET callbacks``,
``GET messages/{message_id}`` (the message as rendered for each channel, and its status),
``POST replies`` (``{"url", "message_id" or
"extra_id", ...content}``: see ``Emulator.reply``).
For load tests (see ``_load``): ``GET stats`` (API answers by status, requests in flight) and
``POST stall`` (``{"seconds": s}``: hold every API answer that long).

The error answers are ``{"error_code", "error_text"}`` with the HTTP status of the table in
``ErrorCodes``; validation reuses the project's one rule set, so the texts name the item
(index and ``extra_id``) and the field.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import random
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
from datetime import datetime, timezone
from typing import Any, Final
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo

import anyio
import attrs
import httpx
import orjson
from anyio.abc import TaskStatus

from .._codec import parse_start_time
from .._errors import InvalidValueError, Problem
from .._models import ErrorCode, Kind
from .._validation import MAX_ITEMS, MESSAGE_KEYS, check_message, check_request, item_rules
from ._callbacks import Callbacks
from ._cascade import Cascade
from ._clock import Clock
from ._config import Account, EmulatorConfig
from ._faults import Fault
from ._ledger import Ledger
from ._load import AnswerStats
from ._quota import Quota
from ._state import Job, Store
from ._status import advanced_report, simple_report, status_items, status_json

__all__ = ["Emulator", "ErrorCodes", "create_app"]

Scope = MutableMapping[str, Any]
ASGIMessage = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[ASGIMessage]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Resetter = Callable[[Any], bool]
"""Given an ASGI ``scope["client"]``, reset that connection; ``False`` if it is not ours."""

KYIV: Final = ZoneInfo("Europe/Kyiv")
"""The time zone of a ``start_time`` without an offset [doc]."""
_LISTED_PROBLEMS: Final = 5
_DR_PREFIX: Final = ("api", "dr")
_DR_EXTERNAL: Final = "external/"
_DR_ANSWERS: Final = {"simple": simple_report, "advanced": advanced_report}
REPLY_CONTENT: Final = (
    "text_from_subscriber",
    "file_name",
    "media",
    "image_url",
    "video_url",
    "audio_url",
    "doc_url",
    "location",
)
"""The content fields of a user reply (chapter 6 and 8), which ``Emulator.reply`` takes."""


class ErrorCodes:
    """``error_code`` of each error answer, and its HTTP status.

    Only 36024 is documented; the others are the emulator's own, ``status * 100 + n``.
    """

    PHONE_NUMBER_INCORRECT: Final = ErrorCode.PHONE_NUMBER_INCORRECT
    """400, or ``accepted: false`` in a sync answer: a bad ``phone_number`` [doc]."""
    MALFORMED_JSON: Final = 40001
    """400: the body is not a JSON object."""
    INVALID_REQUEST: Final = 40002
    """400: a field breaks the protocol; ``error_text`` names item and field."""
    UNAUTHORIZED: Final = 40101
    """401: no Basic auth, or unknown login and password."""
    FORBIDDEN: Final = 40301
    """403: the credentials belong to another ``client_id``."""
    NOT_FOUND: Final = 40401
    """404: unknown path, a job id this client does not have, or a lookup of a message it
    does not have (the answer the client reads as "not found")."""
    METHOD_NOT_ALLOWED: Final = 40501
    """405: e.g. GET on ``batch``."""
    TOO_MANY_ITEMS: Final = 41301
    """413: more than 50,000 items, or a body above ``max_body_bytes``."""
    UNSUPPORTED_MEDIA_TYPE: Final = 41501
    """415: a POST without ``Content-Type: application/json``."""
    THROTTLED: Final = 42901
    """429: the ``rate_limit`` fault, or the account quota."""
    SERVER_ERROR: Final = 50001
    """5xx: the ``errors`` / ``error_rate`` faults (``status * 100 + 1``)."""


@attrs.frozen
class _Answer:
    status: int
    body: bytes
    headers: tuple[tuple[bytes, bytes], ...] = ()


def _json(status: int, data: object, headers: tuple[tuple[bytes, bytes], ...] = ()) -> _Answer:
    return _Answer(status, orjson.dumps(data), headers)


def _error(
    status: int, code: int, text: str, headers: tuple[tuple[bytes, bytes], ...] = ()
) -> _Answer:
    return _json(status, {"error_code": code, "error_text": text}, headers)


def _json_object(body: bytes) -> dict[str, Any] | _Answer:
    """The request ``body`` as a JSON object, or the 400 answer saying why it is not one."""
    try:
        wire = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        return _error(400, ErrorCodes.MALFORMED_JSON, f"Malformed JSON: {exc}")
    if not isinstance(wire, dict):
        return _error(400, ErrorCodes.MALFORMED_JSON, "The body must be a JSON object")
    return wire


def _problems_text(problems: Sequence[Problem]) -> str:
    listed = "; ".join(str(p) for p in problems[:_LISTED_PROBLEMS])
    more = len(problems) - _LISTED_PROBLEMS
    return listed + (f"; and {more} more" if more > 0 else "")


def _fault_answer(fault: Fault) -> _Answer:
    assert fault.status is not None
    headers: tuple[tuple[bytes, bytes], ...] = ()
    if fault.retry_after is not None:
        headers = ((b"retry-after", f"{fault.retry_after:g}".encode()),)
    if fault.status == 429:
        return _error(429, ErrorCodes.THROTTLED, "Too many requests", headers)
    code = fault.status * 100 + 1
    return _error(fault.status, code, "Internal error (injected by the emulator)", headers)


def _start_epoch(value: object) -> float | None:
    if not isinstance(value, str):
        return None
    parsed = parse_start_time(value)
    if isinstance(parsed, str):
        parsed = datetime.fromisoformat(parsed).replace(tzinfo=KYIV)
    return parsed.timestamp()


def _is_phone_problem(problem: Problem, key: str) -> bool:
    return problem.index is not None and problem.field == f"{key}[{problem.index}].phone_number"


class Emulator:
    """A faithful local Hyber server: an ASGI app (the object itself) and its handle.

    - ``config``: the ``EmulatorConfig`` it runs with;
    - ``ledger``: what it accepted (``accepted``, ``count(extra_id)``, ``duplicates()``);
    - ``faults``: the faults in force, changeable at any time;
    - ``quota``: the account quota (``quota.update``, ``quota.as_dict()``), likewise;
    - ``clock``: the emulated clock (``now()``, ``advance(seconds)``);
    - ``callbacks``: the delivery-report sender (``callbacks.stats``);
    - ``store``: the jobs, in columnar storage (``status(job_id)`` and ``message(message_id)``
      give their JSON views);
    - ``run()``: the background work (delivery-report callbacks); an ASGI server runs it
      through the lifespan protocol, ``hyber_async.testing`` in its task group.

    ``callback_transport`` sends the callbacks through that httpx transport instead of the
    network (e.g. ``httpx.ASGITransport(app=your_receiver)``).
    """

    def __init__(
        self,
        config: EmulatorConfig | None = None,
        *,
        callback_transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """An emulator with ``config`` (the defaults, with the demo account, when ``None``)."""
        self.config = config if config is not None else EmulatorConfig()
        self.clock = Clock(self.config.time_scale)
        self.faults = self.config.faults.copy()
        self.faults.seed(self.config.seed)
        self.quota = Quota(self.config.quota_settings())
        self.ledger = Ledger()
        self.store = Store(self.config.seed)
        self.callbacks = Callbacks(self.config, self.clock)
        self.callback_transport = callback_transport
        self._cascades: dict[tuple[str, ...], Cascade] = {}
        self._resetters: list[Resetter] = []
        self.stats = AnswerStats()
        """API answers by status and requests in flight (``GET /_emulator/stats``)."""
        self._latency_rng = random.Random(f"latency/{self.config.seed}")
        self._stalled_until = 0.0

    def __repr__(self) -> str:
        return f"Emulator(jobs={len(self.store)}, ledger={self.ledger!r})"

    @property
    def app(self) -> Emulator:
        """The ASGI app: the emulator itself."""
        return self

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Do the background work (send delivery reports) until cancelled."""
        await self.callbacks.run(self.callback_transport, task_status=task_status)

    def stall(self, seconds: float) -> None:
        """Hold every API answer, of the requests in flight and of those arriving meanwhile,
        until ``seconds`` from now (a server pause)."""
        if type(seconds) not in (int, float) or not 0 <= seconds < float("inf"):
            raise InvalidValueError(f"stall seconds must be a number >= 0, got {seconds!r}")
        self._stalled_until = max(self._stalled_until, time.monotonic() + seconds)

    # --- Python views --------------------------------------------------------------------

    def status(self, job_id: str) -> list[dict[str, Any]] | None:
        """The status report items of ``job_id`` now, as the status endpoint answers them."""
        job = self.store.job(job_id)
        return None if job is None else status_items(job, self.clock.now_ms())

    def message(self, message_id: str) -> dict[str, Any] | None:
        """Everything about one message: its job, index, phone number, ``extra_id``, the
        channel options as rendered for it, and its status item now."""
        found = self.store.find_message(message_id)
        if found is None:
            return None
        job, index = found
        return {
            "job_id": job.job_id,
            "index": index,
            "phone_number": job.phones[index],
            "extra_id": job.extra_id_list()[index],
            "channels": list(job.channels),
            "content": job.render(index),
            "status": status_items(job, self.clock.now_ms(), [index])[0],
        }

    def reply(
        self,
        url: str,
        *,
        message_id: str | None = None,
        extra_id: str | None = None,
        **content: str,
    ) -> dict[str, Any]:
        """Make the subscriber of an accepted message reply (2-way, chapter 6): the reply is
        queued for one POST to ``url``, sent and retried like the delivery reports (while
        ``run`` runs), and returned.

        The message is ``message_id``'s, or the last one accepted with ``extra_id``; the reply
        comes on the first of Viber and WhatsApp in its cascade. ``content`` holds reply fields
        of ``REPLY_CONTENT`` (default: a ``text_from_subscriber``). A Viber reply is shaped as
        the documented Viber example (``phone`` with ``+``, Kyiv time, ``message_id``,
        ``extra_id``, ``text_to_subscriber``), a WhatsApp one as the WhatsApp example (UTC time,
        ``umid``: the emulator gives the message id). Raises ``LookupError`` when there is no
        such message and ``ValueError`` for a message without Viber or WhatsApp, or an unknown
        or non-string content field.
        """
        if message_id is not None:
            found = self.store.find_message(message_id)
        else:
            latest = self.ledger.latest(extra_id) if extra_id else None
            job = None if latest is None else self.store.job(latest[0])
            found = None if job is None or latest is None else (job, latest[1])
        if found is None:
            which = f"message_id {message_id!r}" if message_id else f"extra_id {extra_id!r}"
            raise LookupError(f"no accepted message with {which}")
        job, index = found
        channel = next((c for c in job.channels if c in ("viber", "whatsapp")), None)
        if channel is None:
            raise InvalidValueError(
                f"replies come from Viber or WhatsApp, not {list(job.channels)}"
            )
        unknown = sorted(k for k, v in content.items() if k not in REPLY_CONTENT)
        if unknown or not all(type(v) is str for v in content.values()):
            raise InvalidValueError(
                f"reply content: string fields of {REPLY_CONTENT} only ({unknown})"
            )
        now = self.clock.now()
        phone = str(job.phones[index])
        reply: dict[str, Any]
        if channel == "viber":
            reply = {
                "phone": f"+{phone}",
                "time": datetime.fromtimestamp(now, KYIV).strftime("%Y-%m-%d %H:%M:%S"),
                "channel": channel,
                "message_id": job.message_id(index),
                "extra_id": job.extra_id_list()[index],
                "text_to_subscriber": job.render(index)[channel].get("text"),
            }
        else:
            reply = {
                "channel": channel,
                "phone": phone,
                "time": datetime.fromtimestamp(now, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "umid": job.message_id(index),
            }
        reply.update(content or {"text_from_subscriber": "Reply from the emulator"})
        self.callbacks.post_reply(url, reply)
        return reply

    # --- ASGI ----------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection (``http`` or ``lifespan``)."""
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            path: str = scope["path"]
            if path == "/_emulator" or path.startswith("/_emulator/"):
                body = await _read_body(receive, self.config.max_body_bytes)
                await _send_answer(send, self._admin(scope, body))
            else:
                await self._api(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        await receive()
        async with anyio.create_task_group() as tasks:
            try:
                await tasks.start(self.run)
            except Exception as exc:
                await send({"type": "lifespan.startup.failed", "message": str(exc)})
                return
            await send({"type": "lifespan.startup.complete"})
            await receive()
            tasks.cancel_scope.cancel()
        await send({"type": "lifespan.shutdown.complete"})

    async def _api(self, scope: Scope, receive: Receive, send: Send) -> None:
        stats = self.stats
        capacity = self.config.capacity
        if capacity is not None and stats.in_flight >= capacity:
            stats.shed += 1
            await _read_body(receive, self.config.max_body_bytes)
            retry_after = self.config.capacity_retry_after
            headers = ((b"retry-after", f"{retry_after:g}".encode()),)
            await self._answer(send, _error(503, ErrorCodes.SERVER_ERROR, "Over capacity", headers))
            return
        stats.in_flight += 1
        stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
        try:
            await self._api_request(scope, receive, send)
        finally:
            stats.in_flight -= 1

    async def _answer(self, send: Send, answer: _Answer) -> None:
        """Send an API ``answer`` once any stall is over, and count it."""
        stalled = self._stalled_until - time.monotonic()
        if stalled > 0:
            await anyio.sleep(stalled)
        self.stats.answers[answer.status] = self.stats.answers.get(answer.status, 0) + 1
        await _send_answer(send, answer)

    async def _api_request(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.ledger.record_request()
        fault = self.faults.take()
        if fault.reset_before:
            await self._reset(scope, receive, "reset_before")
            return
        body = await _read_body(receive, self.config.max_body_bytes)
        latency = fault.latency + self.config.latency.draw(self._latency_rng)
        if latency:
            await anyio.sleep(latency)
        if fault.status is not None and not fault.after_accept:
            answer = _fault_answer(fault)
        else:
            answer = self._handle(scope, body)
            if fault.status is not None:
                answer = _fault_answer(fault)
        if fault.reset:
            await self._reset(scope, receive, "reset")
            return
        if fault.slow and not await _sleep_unless_disconnected(receive, fault.slow):
            return
        await self._answer(send, answer)

    async def _reset(self, scope: Scope, receive: Receive, fault: str) -> None:
        """Reset the connection of ``scope`` (a socket server), or raise what a client's
        transport would (in-process)."""
        client = scope.get("client")
        if any(reset(client) for reset in self._resetters):
            while (await receive())["type"] != "http.disconnect":
                pass
            return
        raise httpx.ReadError(f"connection reset by the emulator ({fault} fault)")

    # --- the API -------------------------------------------------------------------------

    def _authenticate(self, scope: Scope) -> Account | None:
        header = dict(scope["headers"]).get(b"authorization", b"")
        scheme, _, token = header.partition(b" ")
        if scheme.lower() != b"basic":
            return None
        try:
            login, sep, password = base64.b64decode(token, validate=True).partition(b":")
        except (binascii.Error, ValueError):
            return None
        if not sep:
            return None
        for account in self.config.accounts:
            login_ok = hmac.compare_digest(account.login.encode(), login)
            password_ok = hmac.compare_digest(account.password.encode(), password)
            if login_ok and password_ok:
                return account
        return None

    def _handle(self, scope: Scope, body: bytes | None) -> _Answer:
        account = self._authenticate(scope)
        if account is None:
            headers = ((b"www-authenticate", b'Basic realm="hyber"'),)
            text = "Unauthorized: wrong or missing login and password"
            return _error(401, ErrorCodes.UNAUTHORIZED, text, headers)
        parts = scope["path"].strip("/").split("/")
        client_id, route = parts[0], tuple(parts[1:])
        if client_id != account.client_id:
            text = f"Forbidden: these credentials are not those of client {client_id!r}"
            return _error(403, ErrorCodes.FORBIDDEN, text)
        method = scope["method"]
        if route[:2] == _DR_PREFIX:
            if method != "GET":
                return _not_allowed("GET")
            return self._dr_lookup(account, scope["path"])
        if len(route) == 2 and route[0] == "status":
            if method != "GET":
                return _not_allowed("GET")
            return self._status(account, route[1])
        sends = {
            ("batch",): (Kind.BATCH, False),
            ("batch", "sync"): (Kind.BATCH, True),
            ("broadcast",): (Kind.BROADCAST, False),
            ("broadcast", "sync"): (Kind.BROADCAST, True),
        }
        if route not in sends and route != ():
            return _error(404, ErrorCodes.NOT_FOUND, f"Not found: {scope['path']}")
        if method != "POST":
            return _not_allowed("POST")
        content_type = dict(scope["headers"]).get(b"content-type", b"")
        if content_type.partition(b";")[0].strip().lower() != b"application/json":
            text = "Content-Type must be application/json"
            return _error(415, ErrorCodes.UNSUPPORTED_MEDIA_TYPE, text)
        if body is None:
            return self._too_large()
        if route == ():
            return self._send_message(account, body)
        kind, sync = sends[route]
        return self._send(account, kind, sync, body)

    def _status(self, account: Account, job_id: str) -> _Answer:
        job = self.store.job(job_id)
        if job is None or job.client_id != account.client_id:
            return _error(404, ErrorCodes.NOT_FOUND, f"Job {job_id!r} not found")
        return _Answer(200, status_json(job, self.clock.now_ms()))

    def _dr_lookup(self, account: Account, path: str) -> _Answer:
        """``api/dr/{message_id}/{detail}`` or ``api/dr/external/{extra_id}/{detail}``; the
        ``extra_id`` is everything between the two (it may hold a ``/``)."""
        parts = path.lstrip("/").split("/", 3)
        rest, _, detail = (parts[3] if len(parts) == 4 else "").rpartition("/")
        answer = _DR_ANSWERS.get(detail)
        found: tuple[Job, int] | None = None
        if answer is None:
            return _error(404, ErrorCodes.NOT_FOUND, f"Not found: {path}")
        if rest.startswith(_DR_EXTERNAL):
            extra_id: str | None = rest[len(_DR_EXTERNAL) :]
            what = f"extra_id {extra_id!r}"
            latest = self.ledger.latest(extra_id) if extra_id else None
            job = None if latest is None else self.store.job(latest[0])
            if job is not None and latest is not None:
                found = job, latest[1]
        elif rest and "/" not in rest:
            what = f"message_id {rest!r}"
            found = self.store.find_message(rest)
            extra_id = None if found is None else found[0].extra_id_list()[found[1]]
        else:
            return _error(404, ErrorCodes.NOT_FOUND, f"Not found: {path}")
        if found is None or found[0].client_id != account.client_id:
            return _error(404, ErrorCodes.NOT_FOUND, f"No message with {what}")
        job, index = found
        return _json(200, answer(job, index, extra_id, self.clock.now_ms()))

    def _send_message(self, account: Account, body: bytes) -> _Answer:
        """One message (chapter 2): checked as a broadcast of one recipient, stored as a job of
        one message (recorded in the ledger, cascaded, reported), answered with its id."""
        wire = _json_object(body)
        if isinstance(wire, _Answer):
            return wire
        throttled = self._throttle(account, 1)
        if throttled is not None:
            return throttled
        problems = check_message(wire)
        if problems:
            code = ErrorCodes.INVALID_REQUEST
            if problems[0].field == "phone_number":
                code = ErrorCodes.PHONE_NUMBER_INCORRECT
            return _error(400, code, _problems_text(problems))
        envelope = {key: value for key, value in wire.items() if key not in MESSAGE_KEYS}
        item = {key: wire[key] for key in MESSAGE_KEYS if key in wire}
        job = self._create_job(account, Kind.BROADCAST, envelope, [item], body, literal=True)
        self.ledger.record(job.extra_ids, 0, job_id=job.job_id)
        return _json(200, {"message_id": job.message_id(0)})

    def _send(self, account: Account, kind: Kind, sync: bool, body: bytes) -> _Answer:
        wire = _json_object(body)
        if isinstance(wire, _Answer):
            return wire
        key = kind.items_key
        problems = check_request(wire, kind)
        items = wire.get(key)
        if isinstance(items, list) and len(items) > MAX_ITEMS:
            return _error(413, ErrorCodes.TOO_MANY_ITEMS, _problems_text(problems))
        throttled = self._throttle(account, len(items) if isinstance(items, list) else 1)
        if throttled is not None:
            return throttled
        rejected: set[int] = set()
        if problems:
            phone_problems = [p for p in problems if _is_phone_problem(p, key)]
            if not sync or len(phone_problems) != len(problems):
                code = ErrorCodes.INVALID_REQUEST
                if _is_phone_problem(problems[0], key):
                    code = ErrorCodes.PHONE_NUMBER_INCORRECT
                return _error(400, code, _problems_text(problems))
            rejected = {p.index for p in phone_problems if p.index is not None}
        assert isinstance(items, list)
        accepted = [m for i, m in enumerate(items) if i not in rejected] if rejected else items
        job = self._create_job(account, kind, wire, accepted, body) if accepted else None
        if job is not None:
            self.ledger.record(job.extra_ids, len(rejected), job_id=job.job_id)
        else:
            self.ledger.record_rejected(len(rejected))
        if not sync:
            assert job is not None
            return _json(200, {"job_id": job.job_id})
        return _json(200, {"messages": _sync_results(items, rejected, job)})

    def _throttle(self, account: Account, messages: int) -> _Answer | None:
        """The 429 answer when the quota refuses a send of ``messages``, else ``None``."""
        wait = self.quota.admit(account.client_id, messages)
        if wait is None:
            return None
        return _fault_answer(Fault(status=429, retry_after=wait))

    def _cascade(self, channels: tuple[str, ...]) -> Cascade:
        cascade = self._cascades.get(channels)
        if cascade is None:
            cascade = self._cascades[channels] = Cascade(channels, self.config.outcomes)
        return cascade

    def _create_job(
        self,
        account: Account,
        kind: Kind,
        wire: Mapping[str, Any],
        items: list[Any],
        body: bytes,
        *,
        literal: bool = False,
    ) -> Job:
        """Store the accepted ``items`` as a new job and schedule its reports; ``literal``
        (a single message): its texts hold no ``%key%`` placeholders to fill."""
        cascade = self._cascade(tuple(wire["channels"]))
        digest = hashlib.blake2b(body, digest_size=16).hexdigest()
        paths = cascade.draw(random.Random(f"{self.config.seed}/{digest}"), len(items))
        now = self.clock.now()
        start = _start_epoch(wire.get("start_time"))
        job = Job(
            job_id=self.store.new_job_id(),
            client_id=account.client_id,
            kind=kind,
            envelope=wire,
            items=items,
            placeholders=frozenset() if literal else item_rules(wire, kind).placeholders,
            cascade=cascade,
            paths=paths,
            accepted_at=now,
            start=now if start is None else max(now, start),
        )
        self.store.add(job)
        self.callbacks.schedule(job)
        return job

    def _too_large(self) -> _Answer:
        """The answer to a request body over ``max_body_bytes`` (API and admin routes)."""
        text = f"Request body larger than {self.config.max_body_bytes} bytes"
        return _error(413, ErrorCodes.TOO_MANY_ITEMS, text)

    # --- admin ---------------------------------------------------------------------------

    def _admin(self, scope: Scope, body: bytes | None) -> _Answer:  # noqa: C901, PLR0912 -- a flat route table
        route = scope["path"].strip("/").split("/")[1:]
        method = scope["method"]
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        if body is None:
            return self._too_large()
        try:
            data = orjson.loads(body) if body else {}
        except orjson.JSONDecodeError as exc:
            return _error(400, ErrorCodes.MALFORMED_JSON, f"Malformed JSON: {exc}")
        if not isinstance(data, dict):
            return _error(400, ErrorCodes.MALFORMED_JSON, "The body must be a JSON object")
        if route == ["ledger"] and method == "GET":
            report = self.ledger.snapshot(counts=query.get("counts", ["0"])[0] in ("1", "true"))
            if "extra_id" in query:
                report["count"] = self.ledger.count(query["extra_id"][0])
            return _json(200, report)
        if route == ["faults"] and method in ("GET", "POST", "DELETE"):
            try:
                if method == "POST":
                    self.faults.update(data)
                elif method == "DELETE":
                    self.faults.clear()
            except (TypeError, ValueError) as exc:
                return _error(400, ErrorCodes.INVALID_REQUEST, str(exc))
            return _json(200, self.faults.as_dict())
        if route == ["clock"] and method in ("GET", "POST"):
            advance = data.get("advance", 0)
            if type(advance) not in (int, float):
                text = f"advance must be a number of seconds >= 0, got {advance!r}"
                return _error(400, ErrorCodes.INVALID_REQUEST, text)
            try:
                self.clock.advance(advance)
            except ValueError as exc:
                return _error(400, ErrorCodes.INVALID_REQUEST, f"advance: {exc}")
            return _json(200, {"now": self.clock.now_ms(), "time_scale": self.clock.time_scale})
        if route == ["quota"] and method in ("GET", "POST"):
            try:
                self.quota.update(data)
            except (TypeError, ValueError) as exc:
                return _error(400, ErrorCodes.INVALID_REQUEST, str(exc))
            return _json(200, self.quota.as_dict())
        if route == ["callbacks"] and method == "GET":
            return _json(200, attrs.asdict(self.callbacks.stats))
        if route == ["stats"] and method == "GET":
            return _json(200, self.stats.as_dict())
        if route == ["stall"] and method == "POST":
            try:
                self.stall(data.get("seconds", 0))
            except ValueError as exc:
                return _error(400, ErrorCodes.INVALID_REQUEST, str(exc))
            return _json(200, {"stalled_until": self._stalled_until})
        if route == ["replies"] and method == "POST":
            return self._reply(data)
        if len(route) == 2 and route[0] == "messages" and method == "GET":
            found = self.message(route[1])
            if found is None:
                return _error(404, ErrorCodes.NOT_FOUND, f"Message {route[1]!r} not found")
            return _json(200, found)
        return _error(404, ErrorCodes.NOT_FOUND, f"Not found: {method} {scope['path']}")

    def _reply(self, data: dict[str, Any]) -> _Answer:
        """``POST /_emulator/replies``: 202 and the reply queued, 404 or 400 otherwise."""
        content = dict(data)
        url, message_id, extra_id = (
            content.pop(k, None) for k in ("url", "message_id", "extra_id")
        )
        if type(url) is not str or not url.startswith(("http://", "https://")):
            return _error(400, ErrorCodes.INVALID_REQUEST, "url must be an http(s) URL")
        if not (type(message_id) is str or (message_id is None and type(extra_id) is str)):
            text = "give the message replied to as message_id or extra_id (a string)"
            return _error(400, ErrorCodes.INVALID_REQUEST, text)
        try:
            reply = self.reply(url, message_id=message_id, extra_id=extra_id, **content)
        except LookupError as exc:
            return _error(404, ErrorCodes.NOT_FOUND, str(exc))
        except (TypeError, ValueError) as exc:
            return _error(400, ErrorCodes.INVALID_REQUEST, str(exc))
        return _json(202, {"reply": reply})


def _not_allowed(allowed: str) -> _Answer:
    text = f"Method not allowed (use {allowed})"
    return _error(405, ErrorCodes.METHOD_NOT_ALLOWED, text, ((b"allow", allowed.encode()),))


def _echo_phone(value: object) -> str | None:
    return None if value is None or isinstance(value, (dict, list)) else str(value)


def _sync_results(items: list[Any], rejected: set[int], job: Job | None) -> list[dict[str, Any]]:
    """The per-message answer of a sync endpoint, in request order (example 17)."""
    results: list[dict[str, Any]] = []
    append = results.append
    accepted = 0
    for i, item in enumerate(items):
        extra_id = item.get("extra_id") if isinstance(item, dict) else None
        if i in rejected:
            result: dict[str, Any] = {"processed": False}
            phone = _echo_phone(item.get("phone_number"))
            if phone is not None:
                result["phone_number"] = phone
            if extra_id is not None:
                result["extra_id"] = extra_id
            result["accepted"] = False
            result["error_code"] = ErrorCodes.PHONE_NUMBER_INCORRECT
            result["error_text"] = "Phone number incorrect"
        else:
            assert job is not None
            result = {
                "processed": True,
                "phone_number": str(item["phone_number"]),
                "message_id": job.message_id(accepted),
            }
            if extra_id is not None:
                result["extra_id"] = extra_id
            result["accepted"] = True
            accepted += 1
        append(result)
    return results


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole request body, or ``None`` when it is larger than ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks)
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _send_answer(send: Send, answer: _Answer) -> None:
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(answer.body)).encode()),
        *answer.headers,
    ]
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    await send({"type": "http.response.body", "body": answer.body})


async def _sleep_unless_disconnected(receive: Receive, seconds: float) -> bool:
    """Sleep ``seconds``; ``False`` if the client went away meanwhile (nothing to answer)."""
    disconnected = False
    async with anyio.create_task_group() as tasks:

        async def watch() -> None:
            nonlocal disconnected
            while (await receive())["type"] != "http.disconnect":
                pass
            disconnected = True
            tasks.cancel_scope.cancel()

        tasks.start_soon(watch)
        await anyio.sleep(seconds)
        tasks.cancel_scope.cancel()
    return not disconnected


def create_app(
    config: EmulatorConfig | None = None,
    *,
    callback_transport: httpx.AsyncBaseTransport | None = None,
) -> Emulator:
    """A new ``Emulator`` (an ASGI app with its ledger, faults and clock) for ``config``."""
    return Emulator(config, callback_transport=callback_transport)
