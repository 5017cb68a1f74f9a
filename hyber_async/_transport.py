"""The retrying transport under ``HyberClient``: credentials, hosts, retries and bounded reads.

``Transport`` owns the pooled ``httpx.AsyncClient`` and sends one request with retries;
``HyberClient`` (the facade, ``_client.py``) turns the endpoints into calls of it. The engines
(the mass sender, the poller, reconciliation) depend on small protocols of what they use, never on
the facade, so no module below ``_client.py`` imports it.

One ``Transport`` per client: state shared by every campaign of a client belongs here, such
as its ``RateController`` (``_rate.py``), which every POST waits on before each attempt.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import zlib
from collections.abc import AsyncGenerator, Callable, Generator, Sequence
from typing import Any, Final, Protocol, cast

import anyio
import attrs
import httpx

from ._body import RequestBody
from ._config import SITE_URL, AnswerLimits, RetryPolicy, Timeouts, not_processed
from ._errors import (
    APIError,
    HyberError,
    NotSentError,
    OutcomeUnknownError,
    Problem,
    UnexpectedResponseError,
    ValidationError,
    raise_for_answer,
    translate_transport_error,
)
from ._rate import RateController, Throttling
from ._validation import MAX_ITEMS

__all__ = [
    "Requester",
    "Transport",
    "base_url_of",
    "host_of",
    "setting",
    "with_extra_ids",
]

logger = logging.getLogger("hyber_async")


class Requester(Protocol):
    """What the mass sender needs of a client: its pool size, whether it is closed, requests."""

    @property
    def max_connections(self) -> int:
        """Requests kept in flight at most."""

    @property
    def is_closed(self) -> bool:
        """Whether a request would fail before it leaves."""

    async def request(
        self,
        method: str,
        path: str,
        content: bytes | RequestBody | None = None,
        *,
        items: int = MAX_ITEMS,
        throttling: Throttling | None = None,
    ) -> httpx.Response:
        """Send one request with retries (see ``Transport.request``)."""


class BodySink(Protocol):
    """What takes a success answer's body as it is read, instead of the answer holding it."""

    def start(self) -> None:
        """A body begins (an attempt's): forget anything fed before."""

    def feed(self, data: bytes) -> None:
        """The next bytes of the body, decoded."""


class _Secret:
    """A password held where a traceback's locals, a repr or a str cannot show it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The password itself."""
        return self._value

    def __repr__(self) -> str:
        return "_Secret([redacted])"

    __str__ = __repr__


class _BasicAuth(httpx.Auth):
    """Basic authentication whose header only this object holds, redacted in every repr.

    It adds the header only inside httpx's auth flow, to a request whose headers httpx redacts
    in every repr: no frame of the client holds the password or the token in a local.

    Below httpx, httpcore and h11 hold the header in forms that do not redact (the raw header
    list, h11's request event), but only in the frames that write the request head, and
    httpcore does not raise from there: a write failure surfaces as the read failure after it,
    from frames that hold neither (tests/client/test_traceback_locals.py renders each case).
    """

    __slots__ = ("_header",)

    def __init__(self, login: str, password: _Secret) -> None:
        self._header = _Secret(
            "Basic " + base64.b64encode(f"{login}:{password.reveal()}".encode()).decode("ascii")
        )

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Add the ``Authorization`` header to ``request``."""
        request.headers["Authorization"] = self._header.reveal()
        yield request

    def __repr__(self) -> str:
        return "_BasicAuth([redacted])"

    __str__ = __repr__


def setting(value: str | None, env: str, name: str) -> str:
    """``value``, else ``$env``; a ``ValidationError`` naming ``name`` when neither is set."""
    value = value if value is not None else os.environ.get(env)
    if not value:
        raise ValidationError([Problem(name, f"is required: pass {name}= or set ${env}")])
    return value


def base_url_of(site: str | None, base_url: str | None) -> httpx.URL:
    """The base URL of the mass endpoints: ``base_url``, the ``site``'s, or ``$HYBER_BASE_URL``."""
    if base_url is not None and site is not None:
        raise ValidationError([Problem("base_url", "give site= or base_url=, not both")])
    if base_url is None and site is None:
        base_url = os.environ.get("HYBER_BASE_URL")
    if base_url is None:
        if site is None:
            message = "give site= (e.g. 'eu'), base_url=, or set $HYBER_BASE_URL"
            raise ValidationError([Problem("base_url", message)])
        base_url = SITE_URL.format(site=site)
    url = httpx.URL(base_url)
    if url.userinfo:
        raise ValidationError(
            [Problem("base_url", "must not carry credentials: pass login= and password=")]
        )
    if url.scheme not in ("http", "https"):
        raise ValidationError([Problem("base_url", f"must be an http(s) URL, got {base_url!r}")])
    return url


def host_of(
    name: str, given: str | None, site: str | None, site_url: str, env: str | None
) -> httpx.URL | None:
    """The base URL of another Hyber host (the setting ``name``): ``given``, the site's, ``$env``.

    ``given`` wins, else ``site_url`` for a ``site``, else ``$env``; a bad one is a
    ``ValidationError`` naming ``name``.
    """
    if given is None and site is not None:
        return httpx.URL(site_url.format(site=site))
    if given is None and env is not None:
        given = os.environ.get(env) or None
    if given is None:
        return None
    try:
        return base_url_of(None, given)
    except ValidationError as error:
        problems = [attrs.evolve(p, field=name) for p in error.problems]
        raise ValidationError(problems) from None


@attrs.frozen
class _Failure:
    """A failed attempt: its error, and the wait the server asked for (``Retry-After``)."""

    error: HyberError
    retry_after: float | None = None


class Transport:
    """One pooled ``httpx.AsyncClient``, the credentials, and requests sent with retries.

    ``base_url`` is where paths go unless a request names another ``base``; every request goes
    to ``{base}/{client_id}/{path}`` with Basic authentication.
    """

    def __init__(
        self,
        client_id: str,
        login: str,
        password: _Secret,
        base_url: httpx.URL,
        *,
        timeouts: Timeouts,
        retry: RetryPolicy,
        max_connections: int,
        answer_limits: AnswerLimits,
        http_client: httpx.AsyncClient | None,
        rate: RateController | None = None,
    ) -> None:
        self.client_id = client_id
        self._auth = _BasicAuth(login, password)
        self.base_url = base_url
        self.timeouts = timeouts
        self.retry = retry
        self.answer_limits = answer_limits
        self.max_connections = max_connections
        self.rate = rate
        """The rate controller every POST waits on (``None``: no adaptive rate control)."""
        self._owns_http = http_client is None
        self._http = http_client or httpx.AsyncClient(
            timeout=timeouts.to_httpx(),
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
        )

    def __repr__(self) -> str:
        return f"Transport(client_id={self.client_id!r}, base_url={str(self.base_url)!r})"

    async def aclose(self) -> None:
        """Close the connection pool, unless it was passed in by the caller."""
        if self._owns_http:
            await self._http.aclose()

    @property
    def is_closed(self) -> bool:
        """Whether the connection pool is closed: a request then fails before it leaves."""
        return self._http.is_closed

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
        sink: BodySink | None = None,
    ) -> httpx.Response:
        """Send one request to ``path`` with retries; a success, or the error that ended it.

        ``path`` is relative to ``{base}/{client_id}/``, ``base`` being ``base_url`` by
        default; ``""`` is ``{base}/{client_id}`` itself.

        Raises ``APIError`` for an error answer, ``NotSentError`` when the request never left,
        ``OutcomeUnknownError`` (carrying ``extra_ids``) when it may have been processed. The
        whole call, retries included, ends within ``timeouts.total`` seconds. Of the answer at
        most ``answer_limits.for_items(items)`` bytes are read (``items``: the request's item
        count, or what its answer may list); a longer success answer is an
        ``UnexpectedResponseError``.

        A POST (a send of ``items`` messages) waits its turn at the rate controller before each
        attempt, and a refusal holds the controller's queue instead of a back-off of its own;
        the waits and refusals are added to ``throttling``.

        With a ``sink``, a success answer's body goes to it as it is read (within the same
        limit), and the answer returned has none.
        """
        base = base or self.base_url
        try:
            url = base.copy_with(
                path=f"{base.path.rstrip('/')}/{self.client_id}/{path}".rstrip("/")
            )
        except httpx.InvalidURL as exc:
            raise ValidationError([Problem("path", f"cannot be sent: {exc}")]) from None
        headers = _headers_for(content)
        attempt = 0
        in_flight = False
        last_error: HyberError | None = None
        rate = self.rate if method == "POST" else None
        try:
            with anyio.fail_after(self.timeouts.total):
                while True:
                    attempt += 1
                    if rate is not None:
                        waited = await rate.acquire(items)
                        if throttling is not None:
                            throttling.waited += waited
                    in_flight = True
                    sent_at = anyio.current_time()
                    try:
                        outcome = await self._attempt(method, url, content, headers, items, sink)
                    finally:
                        if rate is not None:
                            rate.done(items)
                    in_flight = False
                    if not isinstance(outcome, _Failure):
                        logger.debug("%s %s -> %s", method, url.path, outcome.status_code)
                        if rate is not None:
                            rate.accepted(items, anyio.current_time(), sent_at)
                            self._note_rate(throttling)
                        return outcome
                    last_error = outcome.error
                    logger.debug("%s %s attempt %d: %s", method, url.path, attempt, last_error)
                    # The retry decision: resend only while attempts remain and the policy
                    # allows this error for this method (a POST only when it provably was not
                    # processed: ``not_processed``); then wait the server's Retry-After, or
                    # back off.
                    refused = isinstance(last_error, APIError) and not_processed(last_error)
                    if refused and throttling is not None:
                        throttling.throttled += 1
                    retried = attempt < self.retry.max_attempts and self.retry.retries(
                        method, last_error
                    )
                    delay = self.retry.delay(attempt, outcome.retry_after) if retried else 0.0
                    if refused and rate is not None:
                        # the wait is the queue's: every request of the client waits it once
                        rate.refused(sent_at, delay, anyio.current_time())
                        self._note_rate(throttling)
                        delay = 0.0
                    if not retried:
                        raise with_extra_ids(last_error, extra_ids)
                    await anyio.sleep(delay)
        except TimeoutError:
            error = self._deadline_error(method, url, attempt, in_flight, last_error, extra_ids)
            raise error from (error.__cause__ if error is last_error else None)

    def _deadline_error(
        self,
        method: str,
        url: httpx.URL,
        attempt: int,
        in_flight: bool,
        last_error: HyberError | None,
        extra_ids: Sequence[str],
    ) -> HyberError:
        """What a request ends with when the deadline passes: the deadline cut an attempt in
        flight (it may have been processed: UNKNOWN), a wait at the rate controller before the
        first attempt (nothing left: NOT_SENT), or a back-off wait (the last error stands)."""
        total = self.timeouts.total
        if in_flight:
            deadline = OutcomeUnknownError(
                f"{method} {url.path}: the deadline of {total:g}s passed "
                f"during attempt {attempt}; the request may have been processed"
            )
            return with_extra_ids(deadline, extra_ids)
        if last_error is None:
            return NotSentError(
                f"{method} {url.path}: the deadline of {total:g}s passed "
                "while waiting for the rate controller; nothing was sent"
            )
        return with_extra_ids(last_error, extra_ids)

    def _note_rate(self, throttling: Throttling | None) -> None:
        """Show the controller's current limit on ``throttling``."""
        if throttling is not None and self.rate is not None:
            throttling.rate_limit = self.rate.limit(anyio.current_time())

    async def _attempt(
        self,
        method: str,
        url: httpx.URL,
        content: bytes | RequestBody | None,
        headers: dict[str, str],
        items: int,
        sink: BodySink | None,
    ) -> httpx.Response | _Failure:
        """Send the request once: the success answer read whole, or why this attempt failed."""
        limit = self.answer_limits.for_items(items)
        try:
            if isinstance(content, RequestBody):  # its own stream, not wrapped by httpx
                request = self._http.build_request(method, url, headers=headers)
                request.stream = content
            else:
                request = self._http.build_request(method, url, content=content, headers=headers)
            response, whole = await self._read(request, limit, sink)
        except httpx.RequestError as exc:
            error: HyberError = translate_transport_error(exc)
            error.__cause__ = exc
            return _Failure(error)
        try:
            raise_for_answer(response)
        except APIError as exc:
            return _Failure(exc, exc.retry_after)
        if whole:
            return response
        detail = (
            f"the answer is longer than the {limit} bytes allowed for {items} items; "
            "the rest was not read"
        )
        return _Failure(UnexpectedResponseError(response, detail=detail))

    async def _read(
        self, request: httpx.Request, limit: int, sink: BodySink | None
    ) -> tuple[httpx.Response, bool]:
        """Send ``request`` and read its answer: the answer, and whether it was read whole.

        Of a success at most ``limit`` bytes are read (none when its ``Content-Length``
        already exceeds it), into ``sink`` when there is one; of an error at most
        ``answer_limits.base_bytes``. Of an answer not read whole, at most its first
        ``base_bytes`` are kept.
        """
        streamed = await self._http.send(request, auth=self._auth, stream=True)
        success = 200 <= streamed.status_code < 300
        if not success:
            limit = self.answer_limits.base_bytes
        chunks: list[bytes] = []
        accept = chunks.append
        if success and sink is not None:
            sink.start()
            accept = sink.feed
        size = limit + 1
        try:
            if streamed.is_stream_consumed:  # its transport read it already (a mock): decoded
                accept(streamed.content)
                size = len(streamed.content)
            elif not success or _declared_length(streamed) <= limit:
                size = await _read_raw(streamed, request, limit, accept)
        finally:
            await streamed.aclose()
            _release_stream(streamed)
        whole = size <= limit
        body = b"".join(chunks)
        if not whole:
            body = body[: self.answer_limits.base_bytes]
        headers = [
            (name, value)
            for name, value in streamed.headers.multi_items()
            if name not in ("content-encoding", "content-length", "transfer-encoding")
        ]
        kept = ("http_version", "reason_phrase")
        response = httpx.Response(
            streamed.status_code,
            headers=headers,
            content=body,
            request=streamed.request,
            extensions={k: v for k, v in streamed.extensions.items() if k in kept},
        )
        return response, whole


async def _read_raw(
    streamed: httpx.Response,
    request: httpx.Request,
    limit: int,
    accept: Callable[[bytes], None],
) -> int:
    """Hand the decoded body of ``streamed`` to ``accept`` as it is read from the socket, until
    its end or until it is over ``limit`` bytes (then the rest is never read); its size."""
    decoder = _Decoder(streamed.headers.get("content-encoding", ""), request)
    size = 0
    # Leaving httpx's chain of async generators before its end makes trio warn
    # (ResourceWarning) that the inner ones were collected unexhausted; it closes
    # them all the same.
    generator = cast(AsyncGenerator[bytes, None], streamed.aiter_raw())
    async with contextlib.aclosing(generator) as parts:
        async for raw in parts:
            chunk = decoder.decode(raw, limit - size + 1)
            accept(chunk)
            size += len(chunk)
            if size > limit:
                break
    return size


def _headers_for(content: bytes | RequestBody | None) -> dict[str, str]:
    """The headers of a request carrying ``content``: the encodings ``_Decoder`` reads; JSON;
    for a ``RequestBody`` (set as the request's stream, whose length httpx does not know) its
    length too, so that it is sent with a ``Content-Length`` rather than chunked."""
    headers = {"Accept-Encoding": _Decoder.ENCODINGS}
    if content is not None:
        headers["Content-Type"] = "application/json"
    if isinstance(content, RequestBody):
        headers["Content-Length"] = str(len(content))
    return headers


class _Decoder:
    """An answer's body decoded as it is read, never more of it at a time than the reader
    still accepts.

    A small compressed body can stand for gigabytes (a "zip bomb"); httpx's own decoders
    inflate each piece read from the socket whole (one piece of 64 KB: up to 64 MB), before
    any limit could be applied. So the client asks for ``ENCODINGS`` only and reads the raw
    body; anything else is a ``DecodingError`` (the answer cannot be read: the request's
    outcome is unknown), as is a body that does not decode.
    """

    ENCODINGS: Final = "gzip, deflate"

    def __init__(self, encoding: str, request: httpx.Request) -> None:
        self._request = request
        self._first = True
        name = encoding.strip().lower()
        self._raw_deflate = name == "deflate"
        """A deflate body may come without its zlib header: tried again as raw deflate."""
        self._inflater: Any = None
        if name in ("gzip", "x-gzip"):
            self._inflater = zlib.decompressobj(zlib.MAX_WBITS | 16)
        elif name == "deflate":
            self._inflater = zlib.decompressobj()
        elif name not in ("", "identity"):
            message = f"an answer in an encoding that was not asked for: {encoding[:40]!r}"
            raise httpx.DecodingError(message, request=request)

    def decode(self, data: bytes, most: int) -> bytes:
        """``data`` decoded: at most ``most`` bytes of it when it is compressed (the reading
        stops once it has more than it accepts, so what is left of ``data`` is never wanted)."""
        first, self._first = self._first, False
        if self._inflater is None:
            return data
        try:
            decoded: bytes = self._inflater.decompress(data, most)
        except zlib.error as exc:
            if first and self._raw_deflate:
                self._inflater = zlib.decompressobj(-zlib.MAX_WBITS)
                return self.decode(data, most)
            raise httpx.DecodingError(str(exc), request=self._request) from exc
        return decoded


def _declared_length(response: httpx.Response) -> int:
    """The body length ``response`` declares before decoding; 0 for none or a compressed one.

    A compressed body's decoded length is unknown.
    """
    declared = response.headers.get("content-length", "")
    if "content-encoding" in response.headers or not declared.isdigit():
        return 0
    return int(declared)


def _release_stream(response: httpx.Response) -> None:
    """Drop the consumed stream of ``response``, so that it and its request are freed at once.

    httpx binds each response's stream back to the response: a reference cycle that holds the
    request, and so its multi-megabyte body, until the cyclic garbage collector runs, which
    it does the more rarely the larger the heap grows. Without this, peak memory grows with
    the number of recipients sent (measured: 91 MB at 500,000, 160 MB at 5,000,000).
    """
    response.stream = httpx.ByteStream(b"")


def with_extra_ids(error: HyberError, extra_ids: Sequence[str]) -> HyberError:
    """``error``, carrying ``extra_ids`` when the request may have been processed."""
    if isinstance(error, OutcomeUnknownError):
        error.extra_ids = extra_ids
    return error
