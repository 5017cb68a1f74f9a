"""Delivery reports: parsing the callbacks Hyber posts, and the receiver that takes them.

``parse_delivery_reports(body)`` turns a callback body (one report object or a JSON array of
them) into ``DeliveryReport``s, or raises ``ReportParseError``; nothing else escapes it.

``DeliveryReportReceiver`` is the endpoint behind a campaign's ``callback_url``: a raw ASGI app
(mount it in FastAPI or Starlette, or serve it alone with any ASGI server) and an aiohttp handler
(``receiver.aiohttp_handler``). It authenticates the caller with a shared secret, parses the body,
drops reports it has already handled, and awaits your handler for each new one.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any, Final

import orjson

from ._codec import converter
from ._errors import ReportParseError
from ._models import DeliveryReport

if TYPE_CHECKING:
    from aiohttp import web

__all__ = [
    "DEFAULT_DEDUP_SIZE",
    "DEFAULT_MAX_BODY_SIZE",
    "DeliveryReportReceiver",
    "ReportHandler",
    "parse_delivery_reports",
]

logger = logging.getLogger("hyber_async")

DEFAULT_DEDUP_SIZE: Final = 100_000
"""Report keys remembered for de-duplication: about 25 MB (measured: ~250 bytes per key), the
callbacks of a 100,000-message campaign (a repeated callback comes back soon, if at all)."""

DEFAULT_MAX_BODY_SIZE: Final = 32 * 1024 * 1024
"""Largest callback body accepted (bytes): about 100,000 batched reports."""

ReportHandler = Callable[[DeliveryReport], Awaitable[object]]
"""Your coroutine function, awaited once for each new delivery report."""

_SECRET_FORM: Final = re.compile(r"[A-Za-z0-9._~-]{16,}")
_parse_item = converter.get_structure_hook(DeliveryReport)


def parse_delivery_reports(body: bytes) -> list[DeliveryReport]:
    """The delivery reports of a callback body: one report object or a JSON array of them.

    Unknown fields are ignored and unknown status codes are kept; ``number`` may be a JSON
    number or a string of digits. Anything else (invalid JSON or UTF-8, nesting too deep, an item
    that is not an object, a missing ``number``, a field of the wrong JSON type) raises
    ``ReportParseError``, which names the item and the field; no other exception escapes.
    An empty array gives an empty list.
    """
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ReportParseError(f"delivery report body is not JSON: {exc}") from None
    items = data if type(data) is list else [data]
    reports: list[DeliveryReport] = []
    append = reports.append
    for index, item in enumerate(items):
        try:
            report = _parse_item(item, DeliveryReport)
        except (TypeError, ValueError) as exc:
            raise ReportParseError(f"delivery report {index}: {exc}") from None
        number = report.number
        if not (number > 0 if type(number) is int else number.isascii() and number.isdigit()):
            message = f"delivery report {index}: number must be a phone number, got {number!r}"
            raise ReportParseError(message)
        append(report)
    return reports


class _RecentKeys:
    """The ``size`` most recently claimed keys (least recently used are forgotten first)."""

    __slots__ = ("_keys", "size")

    def __init__(self, size: int) -> None:
        self._keys: OrderedDict[tuple[str, int | None], None] = OrderedDict()
        self.size = size

    def claim(self, key: tuple[str, int | None]) -> bool:
        """Remember ``key``; False when it was already known."""
        keys = self._keys
        if key in keys:
            keys.move_to_end(key)
            return False
        keys[key] = None
        if len(keys) > self.size:
            keys.popitem(last=False)
        return True

    def release(self, key: tuple[str, int | None]) -> None:
        """Forget ``key``, so that it is handled again when it comes back."""
        self._keys.pop(key, None)


_Answer = tuple[int, bytes, list[tuple[bytes, bytes]]]
_TEXT: Final = (b"content-type", b"text/plain; charset=utf-8")
_JSON: Final = (b"content-type", b"application/json")


def _text(status: int, text: str, *headers: tuple[bytes, bytes]) -> _Answer:
    return status, text.encode() + b"\n", [_TEXT, *headers]


class _BodyTooLarge(Exception):
    """The body passed ``max_body_size``."""


class DeliveryReportReceiver:
    """The endpoint behind ``callback_url``: an ASGI app and an aiohttp handler.

    ``handler`` is awaited once for each new report, in the order of the body. ``secret`` (at
    least 16 URL-safe characters, e.g. ``secrets.token_urlsafe()``) must come either as the last
    segment of the path (``callback_url="https://you.example/dr/<secret>"``) or as the password
    of HTTP Basic auth (``https://hyber:<secret>@you.example/dr``, the user name is ignored); it
    is compared in constant time and never logged nor shown in ``repr``.

    Answers:

    - 200 ``{"reports": n, "new": m}`` once every new report was handled;
    - 400 when the body is not a delivery report (``parse_delivery_reports``), nothing handled;
    - 401 without the secret: the reports are dropped unread;
    - 405 for any method but POST; 413 above ``max_body_size`` bytes;
    - 500 when ``handler`` raised: the reports handled before it stay handled, the failed one
      and those after it are not marked as seen, so Hyber's retry of the same callback (if it
      retries) hands exactly those to the handler again. The error is logged.

    De-duplication: a report is handled once per (``message_id``, ``hyber_status``) among the
    last ``dedup_size`` keys seen (least recently seen forgotten first; about 250 bytes each),
    in this process. A report is claimed before its handler runs, so a copy arriving
    concurrently is skipped rather than handled twice; if the handler fails, the claim is
    released. Reports without a ``message_id`` are always handled. For exactly-once across
    restarts or several processes, make the handler idempotent on the same key.

    The answer waits for the handler: keep it quick (e.g. put the report on a queue).
    """

    def __init__(
        self,
        handler: ReportHandler,
        *,
        secret: str,
        dedup_size: int = DEFAULT_DEDUP_SIZE,
        max_body_size: int = DEFAULT_MAX_BODY_SIZE,
    ) -> None:
        if not _SECRET_FORM.fullmatch(secret):
            raise ValueError("secret must be at least 16 URL-safe characters [A-Za-z0-9._~-]")
        if dedup_size < 0 or max_body_size < 1:
            raise ValueError("dedup_size must be >= 0 and max_body_size >= 1")
        self.handler = handler
        self._secret = secret.encode("ascii")
        self._recent = _RecentKeys(dedup_size)
        self.max_body_size = max_body_size

    def __repr__(self) -> str:
        return (
            f"DeliveryReportReceiver(handler={self.handler!r}, secret=[redacted], "
            f"dedup_size={self._recent.size}, max_body_size={self.max_body_size})"
        )

    # --- the decisions, shared by both integrations ----------------------------------------

    def _authorized(self, path: str, authorization: str | None) -> bool:
        segment = path.rstrip("/").rpartition("/")[2]
        in_path = hmac.compare_digest(segment.encode("utf-8", "replace"), self._secret)
        return in_path or self._basic_password_matches(authorization)

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
            logger.warning("delivery reports dropped: caller without the receiver's secret")
            return _text(401, "unauthorized", (b"www-authenticate", b'Basic realm="reports"'))
        if content_length and content_length.isdigit() and int(content_length) > self.max_body_size:
            return _text(413, "body too large")
        return None

    async def _deliver(self, body: bytes) -> _Answer:
        try:
            reports = parse_delivery_reports(body)
        except ReportParseError as exc:
            logger.warning("malformed delivery-report callback: %s", exc)
            return _text(400, str(exc))
        recent = self._recent
        new = 0
        for report in reports:
            key = None if report.message_id is None else (report.message_id, report.hyber_status)
            if key is not None and not recent.claim(key):
                logger.debug("duplicate delivery report %s skipped", key)
                continue
            try:
                await self.handler(report)
            except BaseException as exc:
                if key is not None:
                    recent.release(key)
                if not isinstance(exc, Exception):
                    raise
                logger.exception("delivery-report handler failed on %s", report.message_id)
                return _text(500, "handler failed")
            new += 1
        answer = orjson.dumps({"reports": len(reports), "new": new})
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
            except _BodyTooLarge:
                answer = _text(413, "body too large")
            else:
                if body is None:
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
                raise _BodyTooLarge
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
            except _BodyTooLarge:
                answer = _text(413, "body too large")
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
                raise _BodyTooLarge
            chunks.append(chunk)
        return b"".join(chunks)
