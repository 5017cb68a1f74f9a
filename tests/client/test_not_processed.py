"""The one "provably not processed" rule, and both of its callers: the retry policy and the
send report.

The table pins every kind of error a request can end in: whether it proves the request was not
processed, whether a GET and a POST are retried after it, and the outcome of the recipients of a
chunk that ended in it.
"""

from __future__ import annotations

import httpx
import pytest

import hyber_async as hy
from hyber_async._config import not_processed
from hyber_async._errors import raise_for_answer, translate_transport_error
from hyber_async._send_report import outcome_of_error

REQUEST = httpx.Request("POST", "https://hyber.test/client/broadcast")


def transport(kind: type[httpx.RequestError]) -> hy.HyberError:
    """The error a request ends in when httpx raises ``kind``."""
    return translate_transport_error(kind("simulated", request=REQUEST))


def answer(status: int, retry_after: str | None = None, body: bytes = b"") -> hy.HyberError:
    """The error a request ends in when the server answers ``status``."""
    headers = {} if retry_after is None else {"Retry-After": retry_after}
    try:
        raise_for_answer(httpx.Response(status, headers=headers, content=body, request=REQUEST))
    except hy.HyberError as error:
        return error
    raise AssertionError(f"HTTP {status} is not an error")


def too_long() -> hy.HyberError:
    """A success answer longer than ``AnswerLimits`` allow."""
    return hy.UnexpectedResponseError(httpx.Response(200, request=REQUEST), detail="too long")


NOT_SENT, UNKNOWN, REJECTED = hy.Outcome.NOT_SENT, hy.Outcome.UNKNOWN, hy.Outcome.REJECTED

# error -> (provably not processed, GET retried, POST retried, outcome of the chunk)
TABLE = {
    "connect error": (transport(httpx.ConnectError), True, True, True, NOT_SENT),
    "connect timeout": (transport(httpx.ConnectTimeout), True, True, True, NOT_SENT),
    "pool timeout": (transport(httpx.PoolTimeout), True, True, True, NOT_SENT),
    "unsupported protocol": (transport(httpx.UnsupportedProtocol), True, True, True, NOT_SENT),
    "write error": (transport(httpx.WriteError), False, True, False, UNKNOWN),
    "write timeout": (transport(httpx.WriteTimeout), False, True, False, UNKNOWN),
    "read error": (transport(httpx.ReadError), False, True, False, UNKNOWN),
    "read timeout": (transport(httpx.ReadTimeout), False, True, False, UNKNOWN),
    "remote protocol error": (transport(httpx.RemoteProtocolError), False, True, False, UNKNOWN),
    "decoding error": (transport(httpx.DecodingError), False, True, False, UNKNOWN),
    "429": (answer(429), True, True, True, NOT_SENT),
    "429 with Retry-After": (answer(429, "1"), True, True, True, NOT_SENT),
    "503 with Retry-After": (answer(503, "1"), True, True, True, NOT_SENT),
    "503": (answer(503), False, True, False, UNKNOWN),
    "500": (answer(500), False, True, False, UNKNOWN),
    "500 with Retry-After": (answer(500, "1"), False, True, False, UNKNOWN),
    "502": (answer(502), False, True, False, UNKNOWN),
    "504": (answer(504), False, True, False, UNKNOWN),
    "400": (answer(400), False, False, False, REJECTED),
    "200 with an error body": (
        answer(200, body=b'{"error_code": 1, "error_text": "no"}'),
        False,
        False,
        False,
        REJECTED,
    ),
    "401": (answer(401), False, False, False, REJECTED),
    "403": (answer(403), False, False, False, REJECTED),
    "404": (answer(404), False, False, False, REJECTED),
    "413": (answer(413), False, False, False, REJECTED),
    "422": (answer(422), False, False, False, REJECTED),
    "success answer too long": (too_long(), False, True, False, UNKNOWN),
    "a bare HyberError": (hy.HyberError("other"), False, False, False, UNKNOWN),
}


@pytest.mark.parametrize(
    ("error", "unprocessed", "get", "post", "outcome"), TABLE.values(), ids=list(TABLE)
)
def test_the_rule_and_its_callers(
    error: hy.HyberError, unprocessed: bool, get: bool, post: bool, outcome: hy.Outcome
) -> None:
    """Each error kind: processed or not, retried per method, and the chunk's outcome."""
    policy = hy.RetryPolicy()
    assert not_processed(error) is unprocessed
    assert policy.retries("GET", error) is get
    assert policy.retries("POST", error) is post
    assert outcome_of_error(error) is outcome


@pytest.mark.parametrize("error", [row[0] for row in TABLE.values()], ids=list(TABLE))
def test_both_callers_follow_the_one_rule(error: hy.HyberError) -> None:
    """A POST is resent exactly when its items would count as NOT_SENT: when not processed."""
    unprocessed = not_processed(error)
    assert hy.RetryPolicy().retries("POST", error) is unprocessed
    assert (outcome_of_error(error) is NOT_SENT) is unprocessed
