"""The exception tree, and the one place that maps transport failures to "sent or not".

::

    HyberError
    ├── ValidationError (also ValueError)  bad input, raised before anything is sent
    ├── InvalidValueError (also ValueError) an argument or setting out of its range
    ├── InvalidCallError (also TypeError)  arguments that do not fit the call
    ├── WireTypeError (also TypeError)     a JSON value of a type its model does not take
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
    ├── ReportParseError (also ValueError) a malformed delivery report or user reply
    ├── BodyTooLargeError                  a callback body over ``max_body_size`` (answered
    │                                      413 by the receivers, never raised to the caller)
    ├── JournalError                       (exported by ``hyber_async.journal`` too)
    │   ├── JournalMismatchError (also ValueError)  the journal refuses the run: nothing sent
    │   │   ├── JournalLockedError         another run holds the journal
    │   │   └── JournalNotFoundError       ``create=False`` and nothing to resume
    │   ├── JournalOpenError               the journal cannot be opened or created: nothing sent
    │   └── JournalWriteError              the journal cannot be written: the send stopped
    ├── PollDeadlineError (also TimeoutError) jobs still pending at the deadline
    ├── SourceError                        a problem in an input file (the command line's)
    └── UsageError                         a command-line setting that cannot work

Every exception class of the package is defined here (``tests/client/test_error_tree.py``
checks it), and no code raises a bare ``ValueError`` or ``TypeError``: the subclasses above keep an
existing ``except ValueError`` / ``except TypeError`` working.

The API has no idempotency key, so the distinction between ``NotSentError`` and
``OutcomeUnknownError`` is what keeps a retry from sending a paid message twice: only the former,
and refusals (429, 503 with ``Retry-After``), are ever resent.

Credentials never reach an exception: ``APIError.request`` is a copy of the request with the
``Authorization`` header redacted and without its body.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

import attrs
import httpx
import orjson

__all__ = [
    "APIError",
    "AuthenticationError",
    "BadRequestError",
    "BodyTooLargeError",
    "HyberError",
    "InvalidCallError",
    "InvalidValueError",
    "JournalError",
    "JournalLockedError",
    "JournalMismatchError",
    "JournalNotFoundError",
    "JournalWriteError",
    "NotFoundError",
    "NotSentError",
    "OutcomeUnknownError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "PollDeadlineError",
    "Problem",
    "RateLimitError",
    "ReportParseError",
    "ServerError",
    "SourceError",
    "UnexpectedResponseError",
    "UsageError",
    "ValidationError",
    "WireTypeError",
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


class InvalidValueError(HyberError, ValueError):
    """An argument or setting out of its range (a chunk size of 0, a naive ``start_time``, a
    negative clock step), or a field of a file that cannot be read. Raised before anything is
    sent."""


class InvalidCallError(HyberError, TypeError):
    """The arguments do not fit the call: both or neither of two alternatives, a missing one,
    or a value of the wrong type."""


class WireTypeError(HyberError, TypeError):
    """A JSON value of a type its model does not take (``null`` for a job id, ``"2"`` where an
    object is due). The client reports it as ``UnexpectedResponseError``, the receivers as an
    invalid item."""


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


class BodyTooLargeError(HyberError):
    """A callback body passed the receiver's ``max_body_size``: the receiver answers 413; it
    never reaches the caller."""


class JournalError(HyberError):
    """Root of the errors of a journal (``hyber_async.journal``)."""


class JournalMismatchError(JournalError, ValueError):
    """The journal belongs to another campaign or another input: nothing was sent.

    Also the base of the journal's other refusals of a run (``JournalLockedError``,
    ``JournalNotFoundError``), so that one handler covers every "nothing was sent" case."""


class JournalLockedError(JournalMismatchError):
    """Another run holds the journal (``holder`` says which, when it could be read): nothing
    was sent. Two runs on one journal would both send the campaign."""

    def __init__(self, path: str, holder: str | None) -> None:
        self.path = path
        self.holder = holder
        by = f" by {holder}" if holder else ""
        super().__init__(
            f"the journal {path} is in use{by}: one run at a time per journal; wait for that "
            "run to end (the lock ends with its process)"
        )


class JournalNotFoundError(JournalMismatchError):
    """``create=False`` and there is no campaign to resume: the journal file does not exist,
    is empty, or records no run. Nothing was sent."""


class JournalOpenError(JournalError):
    """The journal file cannot be opened, created or started on (a missing directory, a path
    that is a directory, no space left, no permission): nothing was sent. The message names
    the file; the error's ``__cause__`` is the file system's or SQLite's own error."""


class JournalWriteError(JournalError):
    """The journal could not record a chunk's state (disk full, I/O error), so the send
    stopped: no chunk leaves unless the journal recorded it in flight first.

    ``report`` is the send's ``SendReport``, settled in memory: every recipient read has one
    outcome. The error's ``__cause__`` is the journal's own error. On a resume, the chunks whose
    end the journal missed read as ``UNKNOWN``: reconcile them.
    """

    # ``report`` is typed Any: naming SendReport here would make this module and
    # _send_report import each other.
    def __init__(self, message: str, *, journal: str, report: Any) -> None:
        self.journal = journal
        self.report = report
        super().__init__(message)


class PollDeadlineError(HyberError, TimeoutError):
    """The deadline passed before every job was final.

    ``pending`` maps each unfinished job id to its last known ``Counts``; ``summary`` is the
    ``CampaignSummary`` at that moment (jobs never read count as one job with no messages).
    """

    # Counts and CampaignSummary are typed Any: naming them here would make this module and
    # _poller import each other.
    def __init__(self, deadline: float, pending: Mapping[str, Any], summary: Any) -> None:
        self.pending = pending
        self.summary = summary
        messages = sum(c.pending for c in pending.values())
        super().__init__(
            f"polling deadline of {deadline:g}s passed: {len(pending)} job(s) not final, "
            f"{messages} message(s) known to be pending"
        )


class SourceError(HyberError):
    """A problem in an input file: ``path``, ``line`` (1-based, or ``None`` when the problem is
    not on one line), ``field`` (a column, a JSON key or a campaign field path, or ``None``)
    and a one-line ``message``. ``str()`` reads ``path:line: field: message``."""

    def __init__(
        self,
        path: str,
        message: str,
        *,
        line: int | None = None,
        field: str | None = None,
        item: dict[str, Any] | None = None,
    ) -> None:
        self.path = path
        self.line = line
        self.field = field
        self.message = message
        self.item = item
        """The row as read, when it could be read (to name its recipient in a result file)."""
        where = path if line is None else f"{path}:{line}"
        super().__init__(f"{where}: {message}" if field is None else f"{where}: {field}: {message}")

    def as_dict(self) -> dict[str, Any]:
        """The error as JSON-ready values."""
        return {"path": self.path, "line": self.line, "field": self.field, "message": self.message}


class UsageError(HyberError):
    """A command-line setting that cannot work; reported on one line with exit code 2."""


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
