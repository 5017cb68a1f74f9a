"""Callbacks: parsing the delivery reports and user replies Hyber posts, and their receivers.

``parse_delivery_reports(body)`` turns a callback body (one report object or a JSON array of
them) into ``DeliveryReport``s, ``parse_user_replies(body)`` into ``UserReply``s (2-way); both
raise ``ReportParseError`` and nothing else.

``DeliveryReportReceiver`` is the endpoint behind a campaign's ``callback_url``, and
``UserReplyReceiver`` the one behind your reply URL: each a raw ASGI app (mount it in FastAPI or
Starlette, or serve it alone with any ASGI server) and an aiohttp handler
(``receiver.aiohttp_handler``). It authenticates the caller with a shared secret, parses the body,
reports the items it cannot read, drops those it has already handled, and awaits your handler for
each new one.
"""

from __future__ import annotations

import abc
import base64
import binascii
import hashlib
import hmac
import logging
import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any, ClassVar, Final, Generic, TypeVar

import anyio
import attrs
import orjson
from cattrs.gen import make_dict_unstructure_fn

from ._codec import converter, make_flat_structure_fn
from ._errors import BodyTooLargeError, InvalidValueError, ReportParseError
from ._models import DeliveryReport

if TYPE_CHECKING:
    from aiohttp import web

__all__ = [
    "DEFAULT_DEDUP_SIZE",
    "DEFAULT_MAX_BODY_SIZE",
    "DeliveryReportReceiver",
    "InvalidHandler",
    "InvalidItem",
    "ReplyHandler",
    "ReportHandler",
    "UserReply",
    "UserReplyReceiver",
    "parse_delivery_reports",
    "parse_user_replies",
]

logger = logging.getLogger("hyber_async")

DEFAULT_DEDUP_SIZE: Final = 100_000
"""Keys remembered for de-duplication: about 17 MB (measured: ~170 bytes per key, whatever the
size of the ids), the callbacks of a 100,000-message campaign (a repeated callback comes back
soon, if at all)."""

DEFAULT_MAX_BODY_SIZE: Final = 32 * 1024 * 1024
"""Largest callback body accepted (bytes): about 100,000 batched reports."""

T = TypeVar("T")

ReportHandler = Callable[[DeliveryReport], Awaitable[object]]
"""Your coroutine function, awaited once for each new delivery report."""

_SECRET_FORM: Final = re.compile(r"[A-Za-z0-9._~-]{16,}")
_parse_item = converter.get_structure_hook(DeliveryReport)


@attrs.frozen
class InvalidItem:
    """An item of a callback body that could not be read: it is skipped, logged, and handed to
    the receiver's ``on_invalid`` hook, while the valid items of the same body are handled."""

    index: int
    """Its position in the body (0 for a body that is a single object)."""
    raw: str
    """The item as JSON text (re-encoded from the body)."""
    reason: str
    """Why it was refused, naming the field."""


InvalidHandler = Callable[[InvalidItem], Awaitable[object]]
"""Your coroutine function, awaited once for each item of a callback body that is invalid."""


def _read_items(
    body: bytes, parse_one: Callable[[Any], T], what: str
) -> tuple[list[T], list[InvalidItem]]:
    """The items of a callback body (one object or an array) read by ``parse_one``, and those
    it refused (``TypeError`` or ``ValueError``). A body that is not JSON raises."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ReportParseError(f"{what} body is not JSON: {exc}") from None
    items = data if type(data) is list else [data]
    valid: list[T] = []
    invalid: list[InvalidItem] = []
    for index, item in enumerate(items):
        try:
            valid.append(parse_one(item))
        except (TypeError, ValueError) as exc:
            invalid.append(InvalidItem(index, orjson.dumps(item).decode(), str(exc)))
    return valid, invalid


def _strict(read: tuple[list[T], list[InvalidItem]], what: str) -> list[T]:
    valid, invalid = read
    if invalid:
        raise ReportParseError(f"{what} {invalid[0].index}: {invalid[0].reason}")
    return valid


def _parse_report(item: Any) -> DeliveryReport:
    report: DeliveryReport = _parse_item(item, DeliveryReport)
    number = report.number
    if not (number > 0 if isinstance(number, int) else number.isascii() and number.isdigit()):
        raise ReportParseError(f"number must be a phone number, got {number!r}")
    return report


def parse_delivery_reports(body: bytes) -> list[DeliveryReport]:
    """The delivery reports of a callback body: one report object or a JSON array of them.

    Unknown fields are ignored and unknown status codes are kept; ``number`` may be a JSON
    number or a string of digits. Anything else (invalid JSON or UTF-8, nesting too deep, an item
    that is not an object, a missing ``number``, a field of the wrong JSON type) raises
    ``ReportParseError``, which names the item and the field; no other exception escapes.
    An empty array gives an empty list.
    """
    return _strict(_read_items(body, _parse_report, "delivery report"), "delivery report")


@attrs.frozen
class UserReply:
    """A subscriber's reply to a Viber or WhatsApp message (2-way), POSTed to your reply URL.

    Every field of the documentation is kept; only ``phone`` is required. A reply carries one
    of: ``text_from_subscriber``, ``image_url``, ``video_url``, ``audio_url``, ``doc_url`` with
    ``text_from_subscriber``, ``location``, or (Viber) ``media`` with ``file_name``. A reply to
    a deep link has no ``message_id``; WhatsApp replies carry ``umid`` instead.
    """

    phone: str
    """The subscriber's number, as sent: with or without a leading ``+``."""
    time: str | None = None
    """As sent: ``"2016-12-07 20:55:09"`` (Kyiv time, Viber) or ``"2019-11-26T08:13:39Z"``
    (UTC, WhatsApp)."""
    channel: str | None = None
    """``"viber"`` or ``"whatsapp"``."""
    message_id: str | None = None
    """The message replied to."""
    extra_id: str | None = None
    """Your ``extra_id`` of the message replied to."""
    umid: str | None = None
    """The transport id of the message replied to (WhatsApp)."""
    text_to_subscriber: str | None = None
    """The text of the message replied to (null after an image-only or file-only message)."""
    text_from_subscriber: str | None = None
    """The subscriber's text."""
    file_name: str | None = None
    """The name of a shared file."""
    media: str | None = None
    """The link of a shared file (Viber); links are kept by Hyber for one day."""
    image_url: str | None = None
    """The link of a shared image."""
    video_url: str | None = None
    """The link of a shared video."""
    audio_url: str | None = None
    """The link of a shared audio."""
    doc_url: str | None = None
    """The link of a shared document."""
    location: str | None = None
    """A shared location, ``"latitude,longitude"``."""

    @property
    def phone_number(self) -> int:
        """The subscriber's phone number as an integer (without the ``+``)."""
        return int(self.phone.removeprefix("+"))


ReplyHandler = Callable[[UserReply], Awaitable[object]]
"""Your coroutine function, awaited once for each new user reply."""

_parse_reply_item = make_flat_structure_fn(UserReply)
converter.register_structure_hook(UserReply, _parse_reply_item)
converter.register_unstructure_hook(
    UserReply, make_dict_unstructure_fn(UserReply, converter, _cattrs_omit_if_default=True)
)
_PHONE: Final = re.compile(r"\+?[0-9]{1,20}")


def _parse_reply(item: Any) -> UserReply:
    reply = _parse_reply_item(item, UserReply)
    if not (reply.phone.isascii() and _PHONE.fullmatch(reply.phone)):
        raise ReportParseError(f"phone must be a phone number, got {reply.phone!r}")
    return reply


def parse_user_replies(body: bytes) -> list[UserReply]:
    """The user replies of a callback body: one reply object or a JSON array of them.

    Unknown fields are ignored; ``phone`` may have a leading ``+`` (or be a JSON number).
    Anything else (invalid JSON, an item that is not an object, a missing or malformed
    ``phone``, a field of the wrong JSON type) raises ``ReportParseError``, which names the item
    and the field; no other exception escapes.
    """
    return _strict(_read_items(body, _parse_reply, "user reply"), "user reply")


class _RecentKeys:
    """Keys being handled, and the ``size`` most recently handled (least recent forgotten
    first). Keys are fixed-size digests, so memory is bounded by bytes whatever the ids' size."""

    __slots__ = ("_done", "_in_flight", "size")

    def __init__(self, size: int) -> None:
        self._done: OrderedDict[bytes, None] = OrderedDict()
        self._in_flight: dict[bytes, anyio.Event] = {}
        self.size = size

    async def claim(self, key: bytes) -> bool:
        """True when the caller is to handle ``key`` (then ``done`` or ``release`` it); False
        when it was handled already. While another caller handles it, wait for its outcome."""
        while True:
            if key in self._done:
                self._done.move_to_end(key)
                return False
            event = self._in_flight.get(key)
            if event is None:
                self._in_flight[key] = anyio.Event()
                return True
            await event.wait()

    def done(self, key: bytes) -> None:
        """``key`` was handled: remember it, and wake the callers waiting for it."""
        self._in_flight.pop(key).set()
        done = self._done
        done[key] = None
        if len(done) > self.size:
            done.popitem(last=False)

    def release(self, key: bytes) -> None:
        """Handling ``key`` failed: forget it, so that a waiting or later copy handles it."""
        self._in_flight.pop(key).set()


def _digest(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()


_Answer = tuple[int, bytes, list[tuple[bytes, bytes]]]
_TEXT: Final = (b"content-type", b"text/plain; charset=utf-8")
_JSON: Final = (b"content-type", b"application/json")


def _text(status: int, text: str, *headers: tuple[bytes, bytes]) -> _Answer:
    return status, text.encode() + b"\n", [_TEXT, *headers]


class _CallbackReceiver(abc.ABC, Generic[T]):
    """What both receivers share: the secret, the parsing, de-duplication, the answers, and
    the ASGI and aiohttp integrations. A subclass names its items and says how to read them."""

    _what: ClassVar[str]
    """The item, as log lines and errors name it."""
    _plural: ClassVar[str]
    """The item count's key in the 200 answer."""
    _basic_auth: ClassVar[bool]
    """Whether the secret may also come as the password of HTTP Basic auth."""

    def __init__(
        self,
        handler: Callable[[T], Awaitable[object]],
        *,
        secret: str,
        on_invalid: InvalidHandler | None = None,
        dedup_size: int = DEFAULT_DEDUP_SIZE,
        max_body_size: int = DEFAULT_MAX_BODY_SIZE,
    ) -> None:
        if not _SECRET_FORM.fullmatch(secret):
            raise InvalidValueError(
                "secret must be at least 16 URL-safe characters [A-Za-z0-9._~-]"
            )
        if dedup_size < 0 or max_body_size < 1:
            raise InvalidValueError("dedup_size must be >= 0 and max_body_size >= 1")
        self.handler = handler
        self.on_invalid = on_invalid
        self._secret = secret.encode("ascii")
        self._recent = _RecentKeys(dedup_size)
        self.max_body_size = max_body_size

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(handler={self.handler!r}, secret=[redacted], "
            f"dedup_size={self._recent.size}, max_body_size={self.max_body_size})"
        )

    @abc.abstractmethod
    def _read(self, body: bytes) -> tuple[list[T], list[InvalidItem]]:
        """The valid and the invalid items of ``body``; ``ReportParseError`` if not JSON."""

    @abc.abstractmethod
    def _key(self, item: T) -> bytes | None:
        """The de-duplication key of ``item`` (a digest), or None for "always handle"."""

    # --- the decisions, shared by both integrations ----------------------------------------

    def _authorized(self, path: str, authorization: str | None) -> bool:
        segment = path.rstrip("/").rpartition("/")[2]
        in_path = hmac.compare_digest(segment.encode("utf-8", "replace"), self._secret)
        return in_path or (self._basic_auth and self._basic_password_matches(authorization))

    def _basic_password_matches(self, authorization: str | None) -> bool:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            credentials = base64.b64decode(token.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        return hmac.compare_digest(credentials.partition(b":")[2], self._secret)

    def _refuse(
        self, method: str, path: str, authorization: str | None, content_length: str | None
    ) -> _Answer | None:
        """The answer to send without reading the body, or None to go on."""
        if method != "POST":
            return _text(405, "method not allowed", (b"allow", b"POST"))
        if not self._authorized(path, authorization):
            logger.warning("%ss dropped: caller without the receiver's secret", self._what)
            challenge = [(b"www-authenticate", b'Basic realm="reports"')] * self._basic_auth
            return _text(401, "unauthorized", *challenge)
        if content_length and content_length.isdigit() and int(content_length) > self.max_body_size:
            return _text(413, "body too large")
        return None

    async def _deliver(self, body: bytes) -> _Answer:
        what = self._what
        try:
            items, invalid = self._read(body)
        except ReportParseError as exc:
            logger.warning("malformed %s callback: %s", what, exc)
            return _text(400, str(exc))
        for bad in invalid:
            logger.warning(
                "invalid %s %d skipped: %s; item: %s", what, bad.index, bad.reason, bad.raw[:200]
            )
            if self.on_invalid is not None:
                try:
                    await self.on_invalid(bad)
                except Exception:
                    logger.exception("on_invalid failed on %s %d", what, bad.index)
                    return _text(500, "on_invalid failed")
        recent = self._recent
        new = 0
        for item in items:
            key = self._key(item)
            if key is not None and not await recent.claim(key):
                logger.debug("duplicate %s skipped", what)
                continue
            try:
                await self.handler(item)
            except BaseException as exc:
                if key is not None:
                    recent.release(key)
                if not isinstance(exc, Exception):
                    raise
                logger.exception("%s handler failed", what)
                return _text(500, "handler failed")
            if key is not None:
                recent.done(key)
            new += 1
        total = len(items) + len(invalid)
        answer = orjson.dumps({self._plural: total, "new": new, "invalid": len(invalid)})
        return 200, answer, [_JSON]

    # --- ASGI ------------------------------------------------------------------------------

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[MutableMapping[str, Any]]],
        send: Callable[[MutableMapping[str, Any]], Awaitable[None]],
    ) -> None:
        """The ASGI application (HTTP; lifespan events are acknowledged)."""
        if scope["type"] == "lifespan":
            while True:
                event = await receive()
                await send({"type": event["type"] + ".complete"})
                if event["type"] == "lifespan.shutdown":
                    return
        if scope["type"] != "http":
            return
        headers = {k: v.decode("latin-1") for k, v in scope["headers"]}
        answer = self._refuse(
            scope["method"],
            scope["path"],
            headers.get(b"authorization"),
            headers.get(b"content-length"),
        )
        if answer is None:
            try:
                body = await self._read_asgi_body(receive)
            except BodyTooLargeError:
                answer = _text(413, "body too large")
            else:
                if body is None:
                    logger.debug("%s callback abandoned by the caller mid-body", self._what)
                    return  # the caller went away: nothing to answer
                answer = await self._deliver(body)
        status, content, extra = answer
        length = (b"content-length", str(len(content)).encode())
        await send({"type": "http.response.start", "status": status, "headers": [length, *extra]})
        await send({"type": "http.response.body", "body": content})

    async def _read_asgi_body(
        self, receive: Callable[[], Awaitable[MutableMapping[str, Any]]]
    ) -> bytes | None:
        """The request body; None when the client disconnected first."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_size:
                raise BodyTooLargeError
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    # --- aiohttp ---------------------------------------------------------------------------

    async def aiohttp_handler(self, request: web.Request) -> web.Response:
        """An aiohttp request handler: ``app.router.add_post("/dr/{secret}", r.aiohttp_handler)``.

        Route every method to it (``add_route("*", ...)``) to have it answer 405 itself.
        """
        from aiohttp import web

        headers = request.headers
        answer = self._refuse(
            request.method,
            request.path,
            headers.get("Authorization"),
            headers.get("Content-Length"),
        )
        if answer is None:
            try:
                body = await self._read_aiohttp_body(request)
            except BodyTooLargeError:
                answer = _text(413, "body too large")
            except ConnectionError:  # the caller went away mid-body: as in ASGI, no traceback
                logger.debug("%s callback abandoned by the caller mid-body", self._what)
                answer = _text(400, "body incomplete")
            else:
                answer = await self._deliver(body)
        status, content, extra = answer
        answer_headers = {name.decode(): value.decode() for name, value in extra}
        return web.Response(status=status, body=content, headers=answer_headers)

    async def _read_aiohttp_body(self, request: web.Request) -> bytes:
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.content.iter_chunked(64 * 1024):
            size += len(chunk)
            if size > self.max_body_size:
                raise BodyTooLargeError
            chunks.append(chunk)
        return b"".join(chunks)


class DeliveryReportReceiver(_CallbackReceiver[DeliveryReport]):
    """The endpoint behind ``callback_url``: an ASGI app and an aiohttp handler.

    ``handler`` is awaited once for each new report, in the order of the body. ``secret`` (at
    least 16 URL-safe characters, e.g. ``secrets.token_urlsafe()``) must come either as the last
    segment of the path (``callback_url="https://you.example/dr/<secret>"``) or as the password
    of HTTP Basic auth (``https://hyber:<secret>@you.example/dr``, the user name is ignored); it
    is compared in constant time and never logged nor shown in ``repr``.

    Answers:

    - 200 ``{"reports": n, "new": m, "invalid": k}`` once every new valid report was handled.
      An item that is not a valid report (``InvalidItem``: its index, raw JSON and reason) is
      logged and awaited with ``on_invalid`` (if given), and does not hold up the others: a
      resend could not make it valid, and a non-2xx answer would have the valid ones resent;
    - 400 when the body is not JSON, nothing handled;
    - 401 without the secret: the reports are dropped unread;
    - 405 for any method but POST; 413 above ``max_body_size`` bytes;
    - 500 when ``handler`` (or ``on_invalid``) raised: the reports handled before it stay
      handled, the failed one and those after it are not marked as seen, so Hyber's retry of
      the same callback (if it retries) hands exactly those to the handler again. The error is
      logged.

    De-duplication: a report is handled once per (``message_id``, ``hyber_status``) among the
    last ``dedup_size`` keys seen (least recently seen forgotten first; each key is kept as a
    16-byte digest, about 170 bytes of memory whatever the size of the ids), in this process.
    A copy arriving while the same key is being handled waits for that handler: it is skipped
    if the handler succeeded, handled again if it failed, so no copy is acknowledged before a
    handler has finished with its report. Reports without a ``message_id`` are always handled.
    For exactly-once across restarts or several processes, make the handler idempotent on the
    same key.

    The answer waits for the handler: keep it quick (e.g. put the report on a queue).
    """

    _what = "delivery report"
    _plural = "reports"
    _basic_auth = True

    def _read(self, body: bytes) -> tuple[list[DeliveryReport], list[InvalidItem]]:
        return _read_items(body, _parse_report, self._what)

    def _key(self, item: DeliveryReport) -> bytes | None:
        if item.message_id is None:
            return None
        return _digest(f"{item.message_id}\0{item.hyber_status}".encode("utf-8", "surrogatepass"))


class UserReplyReceiver(_CallbackReceiver[UserReply]):
    """The endpoint behind your reply URL (2-way): an ASGI app and an aiohttp handler.

    Hyber posts replies without authentication, so ``secret`` (at least 16 URL-safe characters)
    must be the last segment of the path: give Hyber ``https://you.example/replies/<secret>``.
    ``handler`` is awaited once for each new ``UserReply``, in the order of the body; everything
    else behaves as ``DeliveryReportReceiver``: the answers (200 ``{"replies": n, "new": m,
    "invalid": k}``, 400, 401, 405, 413, 500), ``on_invalid``, the body limit, and the
    de-duplication, here on the whole reply (two identical replies are handled once).
    """

    _what = "user reply"
    _plural = "replies"
    _basic_auth = False

    def _read(self, body: bytes) -> tuple[list[UserReply], list[InvalidItem]]:
        return _read_items(body, _parse_reply, self._what)

    def _key(self, item: UserReply) -> bytes | None:
        return _digest(orjson.dumps(attrs.astuple(item)))
