"""The password never shows: not in reprs, error texts, error requests, logs or tracebacks."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import httpx
import pytest
import respx
from _support import BASIC, ENDPOINT, LOGIN, MESSAGES, PASSWORD, batch_campaign, make_client
from anyio.abc import SocketAttribute, SocketStream

import hyber_async as hy
from hyber_async._errors import REDACTED

pytestmark = pytest.mark.anyio

SECRETS = (PASSWORD, BASIC.split()[1])
"""The password, and the Basic token that encodes it."""
ERROR = {"error_code": 36024, "error_text": "Phone number incorrect"}
LOGGERS = ("hyber_async", "httpx", "httpcore")


def assert_no_secret(text: str) -> None:
    """Neither the password nor the Basic token occurs in ``text``."""
    for secret in SECRETS:
        assert secret not in text


def chain(error: BaseException) -> Iterator[BaseException]:
    """``error`` and every exception chained to it (respx chains its errors in a cycle)."""
    seen: set[int] = set()
    link: BaseException | None = error
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        yield link
        link = link.__cause__ or link.__context__


def exposed(error: BaseException) -> str:
    """Every text a user or a logging tool may print of ``error`` and its chain."""
    parts = ["".join(traceback.format_exception(error))]
    for link in chain(error):
        parts += [str(link), repr(link), repr(getattr(link, "__dict__", {}))]
        request = getattr(link, "_request", None) or getattr(link, "request", None)
        if isinstance(request, httpx.Request):
            parts += [repr(request), repr(request.headers)]
    if isinstance(error, hy.APIError):
        parts += [
            str(dict(error.request.headers)),
            repr(error.response),
            str(dict(error.response.request.headers)),
            error.response.text,
        ]
    return "\n".join(parts)


def raises(kind: type[httpx.TransportError]) -> Callable[[httpx.Request], httpx.Response]:
    """A respx side effect raising ``kind``."""

    def effect(request: httpx.Request) -> httpx.Response:
        raise kind("simulated", request=request)

    return effect


async def too_slow(request: httpx.Request) -> httpx.Response:
    """A server slower than the test deadline."""
    await anyio.sleep(30)
    return httpx.Response(200)


SCENARIOS: list[tuple[str, dict[str, Any], type[hy.HyberError]]] = [
    ("400-body", {"status_code": 400, "json": ERROR}, hy.BadRequestError),
    ("200-body", {"status_code": 200, "json": ERROR}, hy.BadRequestError),
    ("401", {"status_code": 401, "text": "Unauthorized"}, hy.AuthenticationError),
    ("403", {"status_code": 403}, hy.PermissionDeniedError),
    ("413", {"status_code": 413}, hy.PayloadTooLargeError),
    ("429", {"status_code": 429, "headers": {"Retry-After": "1"}}, hy.RateLimitError),
    ("500", {"status_code": 500}, hy.ServerError),
    ("unreadable-200", {"status_code": 200, "text": "oops"}, hy.UnexpectedResponseError),
    ("connect-error", {"side_effect": raises(httpx.ConnectError)}, hy.NotSentError),
    ("pool-timeout", {"side_effect": raises(httpx.PoolTimeout)}, hy.NotSentError),
    ("read-timeout", {"side_effect": raises(httpx.ReadTimeout)}, hy.OutcomeUnknownError),
    ("reset", {"side_effect": raises(httpx.ReadError)}, hy.OutcomeUnknownError),
    ("deadline", {"side_effect": too_slow}, hy.OutcomeUnknownError),
]


@pytest.fixture
def api() -> Iterator[respx.MockRouter]:
    """The mocked API of the test client."""
    with respx.mock(base_url=ENDPOINT, assert_all_called=False) as router:
        yield router


async def failing_call(api: respx.MockRouter, setup: dict[str, Any]) -> hy.HyberError:
    """Send a batch to a route configured by ``setup`` and return the error it raises."""
    route = api.post("/batch")
    if "side_effect" in setup:
        route.mock(side_effect=setup["side_effect"])
    else:
        route.respond(**setup)
    policy = hy.RetryPolicy(wait=False, max_attempts=2)
    client = make_client(retry=policy, timeouts=hy.Timeouts(total=0.2))
    async with client:
        with pytest.raises(hy.HyberError) as caught:
            await client.send_batch(batch_campaign(), MESSAGES)
    return caught.value


def test_client_repr_has_no_password() -> None:
    """repr and str of the client, and of its attributes, hide the password."""
    client = make_client()
    assert_no_secret(repr(client))
    assert_no_secret(str(client))
    assert_no_secret(repr(vars(client)))
    assert LOGIN in repr(client)


def test_credentials_in_a_base_url_are_not_echoed() -> None:
    """A base URL carrying the password is refused without repeating it."""
    with pytest.raises(hy.ValidationError) as caught:
        make_client(base_url=f"https://{LOGIN}:{PASSWORD}@hyber.test")
    assert_no_secret(exposed(caught.value))


@pytest.mark.parametrize(
    ("setup", "error"), [s[1:] for s in SCENARIOS], ids=[s[0] for s in SCENARIOS]
)
async def test_errors_hide_the_password(
    api: respx.MockRouter, setup: dict[str, Any], error: type[hy.HyberError]
) -> None:
    """Text, repr, chained causes and formatted traceback of each error kind hide it."""
    raised = await failing_call(api, setup)
    assert type(raised) is error
    assert_no_secret(exposed(raised))


@pytest.mark.parametrize(
    "setup",
    [s[1] for s in SCENARIOS if issubclass(s[2], hy.APIError)],
    ids=[s[0] for s in SCENARIOS if issubclass(s[2], hy.APIError)],
)
async def test_api_error_request_is_redacted(api: respx.MockRouter, setup: dict[str, Any]) -> None:
    """APIError.request, and the request of its response, carry a redacted Authorization."""
    raised = await failing_call(api, setup)
    assert isinstance(raised, hy.APIError)
    assert raised.request.headers["authorization"] == REDACTED
    assert raised.response.request.headers["authorization"] == REDACTED
    assert raised.request.url == f"{ENDPOINT}/batch"


async def test_debug_logs_hide_the_password(
    api: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    """At DEBUG, the logs of a retried and a failed call hold no credential."""
    for name in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    route = api.post("/batch")
    route.side_effect = [
        httpx.ConnectError("refused"),
        httpx.Response(429),
        httpx.Response(200, json={"job_id": "j"}),
        httpx.Response(401, json=ERROR),
    ]
    async with make_client() as client:
        await client.send_batch(batch_campaign(), MESSAGES)
        with pytest.raises(hy.AuthenticationError):
            await client.send_batch(batch_campaign(), MESSAGES)
    assert caplog.records
    assert {r.name for r in caplog.records} >= {"hyber_async", "httpx"}
    for record in caplog.records:
        assert_no_secret(record.getMessage())
        assert_no_secret(repr(record.args))
    assert_no_secret(caplog.text)


async def answer_once(stream: SocketStream, status: str, body: bytes) -> None:
    """Read one HTTP request from ``stream`` and answer it with ``status`` and ``body``."""
    async with stream:
        data = b""
        while b"\r\n\r\n" not in data:
            data += await stream.receive()
        head, _, rest = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(rest) < length:
            rest += await stream.receive()
        await stream.send(
            f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )


@pytest.mark.slow
async def test_debug_logs_of_a_real_connection_hide_the_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Over a real loopback socket, httpx and httpcore DEBUG logs hold no credential."""
    for name in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    answers = [("200 OK", b'{"job_id": "j"}'), ("401 Unauthorized", b'{"error_code": 1}')]

    async def handle(stream: SocketStream) -> None:
        status, body = answers.pop(0)
        await answer_once(stream, status, body)

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handle)
        async with make_client(base_url=f"http://127.0.0.1:{port}") as client:
            await client.send_batch(batch_campaign(), MESSAGES)
            with pytest.raises(hy.AuthenticationError) as caught:
                await client.send_batch(batch_campaign(), MESSAGES)
        tg.cancel_scope.cancel()
    assert {r.name.split(".")[0] for r in caplog.records} >= set(LOGGERS)
    assert_no_secret(caplog.text)
    for record in caplog.records:
        assert_no_secret(record.getMessage())
    assert_no_secret(exposed(caught.value))
