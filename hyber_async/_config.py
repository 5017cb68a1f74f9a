"""Timeouts, the retry policy and the defaults, each with its reason."""

from __future__ import annotations

import random
from typing import Final

import attrs
import httpx

from ._errors import (
    HyberError,
    InvalidValueError,
    NotSentError,
    OutcomeUnknownError,
    RateLimitError,
    ServerError,
)

__all__ = [
    "DEFAULT_ANSWER_LIMITS",
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_RETRY",
    "DEFAULT_TIMEOUTS",
    "AnswerLimits",
    "RetryPolicy",
    "Timeouts",
    "not_processed",
]

DEFAULT_MAX_CONNECTIONS: Final = 8
"""Connections in the pool. Two cores saturate at about four 50,000-item requests in flight;
eight leaves room for status polls beside a campaign."""

SITE_URL: Final = "https://proxy-{site}.hyber.im"
"""Base URL of the mass-messaging endpoints for a Hyber ``site`` (e.g. ``"eu"``)."""

DR_SITE_URL: Final = "https://dr-v2-{site}.hyber.im"
"""Base URL of the delivery-report lookups for a Hyber ``site``."""

MESSAGE_SITE_URL: Final = "https://api-v2-{site}.hyber.im"
"""Base URL of the single-message endpoint for a Hyber ``site``."""


@attrs.frozen
class Timeouts:
    """Per-phase timeouts of each HTTP attempt, plus a ``total`` deadline per call.

    ``total`` bounds the whole call, retries and back-off included: a call never takes longer.
    The phases are httpx's: ``connect`` (TCP + TLS), ``write`` (sending the body; 50,000 items
    are a few MB), ``read`` (between bytes of the answer; a sync answer to 50,000 items takes
    the server a while), ``pool`` (waiting for a free connection).
    """

    connect: float = 10.0
    write: float = 60.0
    read: float = 120.0
    pool: float = 60.0
    total: float = 300.0

    def to_httpx(self) -> httpx.Timeout:
        """The per-phase part as an ``httpx.Timeout``."""
        return httpx.Timeout(connect=self.connect, write=self.write, read=self.read, pool=self.pool)


DEFAULT_TIMEOUTS: Final = Timeouts()
"""The timeouts a ``HyberClient`` uses unless given others (``Timeouts``' defaults)."""


def not_processed(error: HyberError) -> bool:
    """Whether a request that ended in ``error`` provably was not processed by the server.

    The one rule against double-sending: the retry policy resends a POST, and a send report
    counts its items ``NOT_SENT``, only when this holds. True for a connection or pool failure
    (``NotSentError``: nothing left) and for a refusal (429, or 503 with ``Retry-After``: the
    server says it did nothing); false for everything else, which either was answered (an error
    answer) or may have been processed (a timeout or reset after writing, another 5xx).
    """
    if isinstance(error, (NotSentError, RateLimitError)):
        return True
    # Retry-After turns a 503 into a refusal ("come back later"); a bare 503 or another 5xx
    # may be a failure after processing (README, Reliability: "429 and 503 ... are refusals")
    return (
        isinstance(error, ServerError)
        and error.status_code == 503
        and error.retry_after is not None
    )


@attrs.frozen
class RetryPolicy:
    """When and how often a request is sent again.

    What is retried (the API has no idempotency key, so a POST is resent only when it provably
    was not processed):

    - GET: ``NotSentError``, ``OutcomeUnknownError`` (transport), 429 and every 5xx;
    - POST: ``NotSentError`` (connect or pool failure), 429, and 503 with ``Retry-After``.

    How long to wait before attempt ``n + 1``: the server's ``Retry-After`` when it sent one,
    capped at ``max_retry_after``; otherwise ``min(max_backoff, initial_backoff * 2 ** (n - 1))``
    scaled by a random factor in ``[1 - jitter, 1]``. ``wait=False`` removes every delay (for
    tests); ``max_attempts`` counts the first attempt.
    """

    max_attempts: int = 5
    initial_backoff: float = 0.5
    max_backoff: float = 30.0
    jitter: float = 0.5
    max_retry_after: float = 120.0
    wait: bool = True

    def retries(self, method: str, error: HyberError) -> bool:
        """Whether ``error`` on a ``method`` request may be retried at all."""
        if method == "GET":  # a GET changes nothing: resend whenever it may succeed
            return isinstance(error, (NotSentError, OutcomeUnknownError, RateLimitError))
        # no idempotency key: a POST that may have been processed is never resent
        return not_processed(error)

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        if not self.wait:
            return 0.0
        if retry_after is not None:
            return min(retry_after, self.max_retry_after)
        backoff = min(self.max_backoff, self.initial_backoff * 2.0 ** (attempt - 1))
        return backoff * (1.0 - self.jitter * random.random())


DEFAULT_RETRY: Final = RetryPolicy()
"""The retry policy a ``HyberClient`` uses unless given another (``RetryPolicy``'s defaults)."""


def _positive(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if type(value) is not int or value < 1:
        raise InvalidValueError(f"{attribute.name} must be a positive integer, got {value!r}")


@attrs.frozen
class AnswerLimits:
    """How much of an answer body the client reads at most; the rest is never read.

    A success answer may hold ``base_bytes`` plus ``bytes_per_item`` for each item of the
    request (a sync answer of 50,000 items takes about 7 MB; a status report, whose item count
    is not known in advance, is allowed the 50,000 items a job holds at most). A longer
    success answer is an ``UnexpectedResponseError``: the request may have been processed, but
    its answer is not the documented one. Of an error answer (and of a success answer too long
    to read) at most ``base_bytes`` are read and kept on the error.
    """

    base_bytes: int = attrs.field(default=64 * 1024, validator=_positive)
    bytes_per_item: int = attrs.field(default=1024, validator=_positive)

    def for_items(self, items: int) -> int:
        """The most bytes read of a success answer to a request of ``items`` items."""
        return self.base_bytes + self.bytes_per_item * items


DEFAULT_ANSWER_LIMITS: Final = AnswerLimits()
"""The answer limits a ``HyberClient`` uses unless given others (``AnswerLimits``' defaults)."""
