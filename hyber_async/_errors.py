"""The exception tree, and the one place that maps transport failures to "sent or not".

::

    HyberError
    ├── ValidationError (also ValueError)  bad input, raised before anything is sent
    ├── NotSentError                       provably never reached the server (pool, connect)
    ├── OutcomeUnknownError                may have been accepted (timeout or reset after
    │   │                                  writing, deadline during the request, 5xx)
    │   ├── ServerError (also APIError)    5xx
    │   └── UnexpectedResponseError        a success answer whose body cannot be read
    │                                      (wrong types, unattributable, too long)
    ├── APIError                           the server answered with an error
    │   ├── BadRequestError                400, 422, or an error body on 200
    │   ├── AuthenticationError            401
    │   ├── PermissionDeniedError          403
    │   ├── NotFoundError                  404 (a wrong base_url, an unknown job id)
    │   ├── PayloadTooLargeError           413
    │   ├── RateLimitError                 429 (``retry_after``)
    │   ├── ServerError                    5xx (``retry_after``)
    │   └── UnexpectedResponseError (also OutcomeUnknownError)
    ├── ReportParseError (also ValueError) a malformed delivery report
    ├── JournalError (in journal)
    │   ├── JournalMismatchError (also ValueError)  the journal refuses the run: nothing sent
    │   │   ├── JournalLockedError         another run holds the journal
    │   │   └── JournalNotFoundError       ``create=False`` and nothing to resume
    │   └── JournalWriteError              the journal cannot be written: the send stopped
    └── PollDeadlineError (also TimeoutError, in _poller) jobs still pending at the deadline

The API has no idempotency key, so the distinction between ``NotSentError`` and
``OutcomeUnknownError`` is what keeps a retry from sending a paid message twice: only the former,
and refusals (429, 503 with ``Retry-After``), are ever resent.

Credentials never reach an exception: ``APIError.request`` is a copy of the request with the
``Authorization`` header redacted and without its body.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Final

import attrs
import httpx
import orjson

__all__ = [
    "APIError",
    "AuthenticationError",
    "BadRequestError",
    "HyberError",
    "NotFoundError",
    "NotSentError",
    "OutcomeUnknownError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "Problem",
    "RateLimitError",
    "ReportParseError",
    "ServerError",
    "UnexpectedResponseError",
    "ValidationError",
]

REDACTED = "[redacted]"
_LISTED_PROBLEMS = 20


class HyberError(Exception):
    """Root of every error this library raises."""


@attrs.frozen
class Problem:
    """One reason why an input is invalid: which item (if any), which field, and why."""

    field: str
    """Path of the field on the wire, e.g. ``recipients[3].phone_number``."""
    message: str
    index: int | None = None
    """Position of the item in the caller's input (``None`` for the campaign envelope)."""
    extra_id: str | None = None

    def __str__(self) -> str:
        if self.index is None:
            return f"{self.field}: {self.message}"
        ident = "" if self.extra_id is None else f" (extra_id {self.extra_id!r})"
        return f"item {self.index}{ident}: {self.field}: {self.message}"


class ValidationError(HyberError, ValueError):
    """The input breaks a documented limit. Raised before any byte is sent.

    ``problems`` lists every problem found, each naming the item index, its ``extra_id`` and
    the field path.
    """

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        lines = [str(p) for p in self.problems[:_LISTED_PROBLEMS]]
        more = len(self.problems) - len(lines)
        if more > 0:
            lines.append(f"... and {more} more")
        count = len(self.problems)
        noun = "problem" if count == 1 else "problems"
        super().__init__(f"{count} {noun} in the input:\n  - " + "\n  - ".join(lines))


class NotSentError(HyberError):
    """The request provably never reached the server (no connection, pool exhausted).

    Safe to resend; the client already did so as often as its ``RetryPolicy`` allows.
    """


class OutcomeUnknownError(HyberError):
    """The request may have been accepted: do not resend it blindly.

    ``extra_ids`` are the ``extra_id`` values of the items in the request, for reconciliation.
    """

    extra_ids: Sequence[str] = ()


def redacted_request(request: httpx.Request) -> httpx.Request:
    """A body-less copy of ``request`` whose ``Authorization`` header is redacted."""
    headers = httpx.Headers(request.headers)
    if "authorization" in headers:
        headers["authorization"] = REDACTED
    return httpx.Request(request.method, request.url, headers=headers)


class APIError(HyberError):
    """The server answered with an error status or an ``{error_code, error_text}`` body."""

    def __init__(
        self,
        response: httpx.Response,
        *,
        retry_after: float | None = None,
        detail: str | None = None,
    ) -> None:
        """The error ``response`` stands for; ``detail`` says what is wrong with it, when its
        status and body do not."""
        self.request: httpx.Request = redacted_request(response.request)
        self.response: httpx.Response = httpx.Response(
            response.status_code,
            headers=response.headers,
            content=response.content,
            request=self.request,
        )
        self.status_code: int = response.status_code
        self.retry_after: float | None = retry_after
        self.error_code: int | None
        self.error_text: str | None
        self.error_code, self.error_text = error_body(response.content)
        detail = detail or self.error_text or response.reason_phrase or "error"
        code = "" if self.error_code is None else f" [error_code {self.error_code}]"
        super().__init__(
            f"{self.request.method} {self.request.url.path} -> HTTP {self.status_code}{code}: "
            f"{detail}"
        )


class BadRequestError(APIError):
    """400 or 422: the server refused the request as invalid (or sent an error body on 200)."""


class AuthenticationError(APIError):
    """401: wrong client id, login or password."""


class PermissionDeniedError(APIError):
    """403: the account may not do this."""


class NotFoundError(APIError):
    """404: no such resource: an unknown job id, or a ``base_url`` that is not the API's."""


class PayloadTooLargeError(APIError):
    """413: more than 50,000 items, or a body the server will not take."""


class RateLimitError(APIError):
    """429: throttled. ``retry_after`` holds the server's ``Retry-After`` in seconds, if any."""


class ServerError(APIError, OutcomeUnknownError):
    """5xx: the server failed; a POST may or may not have been processed."""


class UnexpectedResponseError(APIError, OutcomeUnknownError):
    """A success status whose body is not the documented answer (a value of the wrong type, a
    sync answer that does not name each item once, a body longer than ``AnswerLimits``): the
    request may have been processed, but what it produced (a job id, message ids) cannot be
    read."""


class ReportParseError(HyberError, ValueError):
    """A delivery-report body that is not a report object or a JSON array of them."""


def error_body(content: bytes) -> tuple[int | None, str | None]:
    """``(error_code, error_text)`` when ``content`` is the API's error object, else ``None``s."""
    if not content or content[:1] != b"{" or b"error_code" not in content:
        return None, None
    try:
        data = orjson.loads(content)
    except orjson.JSONDecodeError:
        return None, None
    if not isinstance(data, dict):
        return None, None
    code = data.get("error_code")
    text = data.get("error_text")
    if not isinstance(code, int) or isinstance(code, bool):
        return None, None
    return code, text if isinstance(text, str) else None


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds form only), else ``None``."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return max(seconds, 0.0) if math.isfinite(seconds) else None


_STATUS_ERRORS: dict[int, type[APIError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    413: PayloadTooLargeError,
    422: BadRequestError,
    429: RateLimitError,
}


ERROR_BODY_MAX: Final = 64 * 1024
"""The longest success body still looked at for the API's error object."""


def raise_for_answer(response: httpx.Response) -> None:
    """Raise the ``APIError`` that ``response`` stands for; return when it is a success.

    The error body is recognised on any status, 200 included; on a success, only in a body of
    at most ``ERROR_BODY_MAX`` bytes (the error object is a code and a sentence), so that a
    13 MB status answer is not parsed a second time for it.
    """
    status = response.status_code
    if 200 <= status < 300:
        content = response.content
        if len(content) > ERROR_BODY_MAX or error_body(content)[0] is None:
            return
        raise BadRequestError(response)
    retry_after = parse_retry_after(response.headers.get("retry-after"))
    if status >= 500:
        raise ServerError(response, retry_after=retry_after)
    raise _STATUS_ERRORS.get(status, BadRequestError)(response, retry_after=retry_after)


_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)


def translate_transport_error(exc: httpx.RequestError) -> NotSentError | OutcomeUnknownError:
    """Map an httpx request failure to ours: the one place that decides "sent or not".

    Connect and pool failures happen before a byte of the request is written: ``NotSentError``.
    Everything later (write or read failure, timeout, reset, protocol error, an answer body
    that cannot be decoded) may come after the server read the whole request:
    ``OutcomeUnknownError``.
    """
    kind = type(exc).__name__
    if isinstance(exc, _NOT_SENT):
        error: NotSentError | OutcomeUnknownError = NotSentError(
            f"request not sent ({kind}): {exc}"
        )
    else:
        error = OutcomeUnknownError(f"request may have been processed ({kind}): {exc}")
    return error
