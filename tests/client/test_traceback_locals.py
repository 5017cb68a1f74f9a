"""Tracebacks printed with their locals hold no credential, on every error path.

What a traceback shows with locals is the repr of every local of every frame, ours and
httpx's, of the error and of everything chained to it. Each error path (4xx, 5xx, transport
failures, the deadline, unreadable and oversized answers, bad input, a constructor that fails
after reading the password) is rendered three ways -- ``traceback`` with
``capture_locals=True``, rich's ``show_locals=True``, pytest's ``-l`` -- and searched for the
password, the Basic token and the header.
"""

from __future__ import annotations

import io
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

import httpcore
import httpx
import pytest
from _pytest._code import ExceptionInfo
from _support import BASIC, CLIENT_ID, LOGIN, PASSWORD, broadcast_campaign
from hostile import Answer, hostile_server
from rich.console import Console
from rich.traceback import Traceback

import hyber_async as hy

SECRETS = (PASSWORD, BASIC.split()[1], BASIC)
"""The password, the Basic token that encodes it, and the header."""
ROWS = [{"phone_number": 380_500_000_001, "extra_id": "r-1", "name": "Ann"}]


def renderings(error: BaseException) -> dict[str, str]:
    """``error`` as each tool prints it with the locals of every frame."""
    python = "".join(
        traceback.TracebackException.from_exception(error, capture_locals=True).format()
    )
    console = Console(file=io.StringIO(), width=200, color_system=None)
    console.print(
        Traceback.from_exception(
            type(error),
            error,
            error.__traceback__,
            show_locals=True,
            locals_max_length=10_000,
            locals_max_string=100_000,
            max_frames=0,
        )
    )
    assert isinstance(console.file, io.StringIO)
    pytest_l = str(ExceptionInfo.from_exception(error).getrepr(showlocals=True, chain=True))
    return {"traceback": python, "rich": console.file.getvalue(), "pytest -l": pytest_l}


def assert_no_secret_in_locals(error: BaseException) -> None:
    """No rendering of ``error`` holds the password, the token or the header, and every frame
    of ours shows its locals (so the search was not vacuous)."""
    rendered = renderings(error)
    for tool, text in rendered.items():
        for secret in SECRETS:
            assert secret not in text, f"{tool} shows {secret!r}"
    assert "self = HyberClient(" in rendered["traceback"] or "HyberClient(" in rendered["rich"]


def client_of(url: str, **kwargs: Any) -> hy.HyberClient:
    """A client of ``url`` that tries each request once, within half a second."""
    kwargs.setdefault("retry", hy.RetryPolicy(wait=False, max_attempts=1))
    kwargs.setdefault("timeouts", hy.Timeouts(total=0.5))
    return hy.HyberClient(CLIENT_ID, LOGIN, PASSWORD, base_url=url, **kwargs)


Call = Callable[[hy.HyberClient], Awaitable[Any]]


async def send(client: hy.HyberClient) -> Any:
    """One broadcast."""
    return await client.send_broadcast(broadcast_campaign(), ROWS)


async def send_sync(client: hy.HyberClient) -> Any:
    """One sync broadcast."""
    return await client.send_broadcast_sync(broadcast_campaign(), ROWS)


async def status(client: hy.HyberClient) -> Any:
    """One status request."""
    return await client.get_status("job-1")


ERROR = b'{"error_code": 36024, "error_text": "Phone number incorrect"}'
PATHS: list[tuple[str, Answer, Call, type[hy.HyberError]]] = [
    ("400", Answer(400, ERROR), send, hy.BadRequestError),
    ("401", Answer(401, b"Unauthorized"), send, hy.AuthenticationError),
    ("403", Answer(403), status, hy.PermissionDeniedError),
    ("404", Answer(404), status, hy.NotFoundError),
    ("413", Answer(413), send, hy.PayloadTooLargeError),
    ("429", Answer(429, headers=(("Retry-After", "0"),)), send, hy.RateLimitError),
    ("500", Answer(500), send, hy.ServerError),
    ("503-status", Answer(503), status, hy.ServerError),
    ("200-error-body", Answer(200, ERROR), send, hy.BadRequestError),
    ("job-id-null", Answer(200, b'{"job_id": null}'), send, hy.UnexpectedResponseError),
    ("not-json", Answer(200, b"<html>"), send, hy.UnexpectedResponseError),
    ("sync-fewer", Answer(200, b'{"messages": []}'), send_sync, hy.UnexpectedResponseError),
    ("oversized", Answer(200, b"{}", size=10**6), send, hy.UnexpectedResponseError),
    ("reset-before", Answer(reset="before"), send, hy.OutcomeUnknownError),
    ("reset-mid", Answer(200, b"{}", size=50_000, reset="mid"), send, hy.OutcomeUnknownError),
    ("reset-status", Answer(reset="before"), status, hy.OutcomeUnknownError),
    ("deadline", Answer(delay=5), send, hy.OutcomeUnknownError),
    (
        "trickle",
        Answer(200, b"{}", size=50_000, trickle=0.05, block=100),
        send,
        hy.OutcomeUnknownError,
    ),
]


@pytest.mark.slow
@pytest.mark.anyio
@pytest.mark.filterwarnings(
    "ignore:Async generator .* was garbage collected before it had been exhausted:ResourceWarning"
)
@pytest.mark.parametrize(
    ("answer", "call", "expected"), [p[1:] for p in PATHS], ids=[p[0] for p in PATHS]
)
async def test_an_error_answer_or_transport_failure_shows_no_credential(
    answer: Answer, call: Call, expected: type[hy.HyberError]
) -> None:
    """Each error a request can raise, printed with locals: no password, token or header."""
    async with hostile_server(answer) as server, client_of(server.url) as client:
        with pytest.raises(hy.HyberError) as caught:
            await call(client)
    assert type(caught.value) is expected
    assert_no_secret_in_locals(caught.value)


@pytest.mark.slow
@pytest.mark.anyio
async def test_a_refused_connection_shows_no_credential() -> None:
    """Nothing listens: NotSentError, with httpx's and httpcore's chained errors."""
    async with hostile_server() as server:
        url = server.url
    async with client_of(url) as client:
        with pytest.raises(hy.NotSentError) as caught:
            await send(client)
    assert_no_secret_in_locals(caught.value)


class _UnwritableStream(httpcore.AsyncNetworkStream):
    """A connection that reads but fails every write (the request head among them)."""

    def __init__(self, inner: httpcore.AsyncNetworkStream) -> None:
        self.inner = inner

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self.inner.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        raise httpcore.WriteError("simulated: the head could not be written")

    async def aclose(self) -> None:
        await self.inner.aclose()


class _UnwritableBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend with connections that fail every write."""

    def __init__(self) -> None:
        self.inner = httpcore.AnyIOBackend()

    async def connect_tcp(self, *args: Any, **kwargs: Any) -> httpcore.AsyncNetworkStream:
        return _UnwritableStream(await self.inner.connect_tcp(*args, **kwargs))

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


@pytest.mark.slow
@pytest.mark.anyio
async def test_a_failure_to_write_the_request_head_shows_no_credential() -> None:
    """The frames that write the request head hold the raw header (h11's event, httpcore's
    header list): a write failure there must not print them. httpcore reads the answer after
    a failed write, so the error comes from frames that hold neither."""
    transport = httpx.AsyncHTTPTransport()
    transport._pool = httpcore.AsyncConnectionPool(network_backend=_UnwritableBackend())
    async with (
        hostile_server(Answer(reset="connect")) as server,
        httpx.AsyncClient(transport=transport) as http,
        client_of(server.url, http_client=http) as client,
    ):
        with pytest.raises(hy.OutcomeUnknownError) as caught:
            await send(client)
    assert "simulated" not in str(caught.value)
    assert isinstance(caught.value.__cause__, httpx.TransportError)
    assert_no_secret_in_locals(caught.value)


@pytest.mark.anyio
async def test_bad_input_shows_no_credential() -> None:
    """A ValidationError raised inside a method of a built client."""
    async with client_of("http://127.0.0.1:9") as client:
        with pytest.raises(hy.ValidationError) as caught:
            await client.send_broadcast(broadcast_campaign(), [{"phone_number": "x"}])
    assert_no_secret_in_locals(caught.value)


@pytest.mark.parametrize(
    "settings",
    [
        {"client_id": None},
        {"base_url": "ftp://hyber.test"},
        {"base_url": "https://hyber.test", "site": "eu"},
        {"timeouts": None},
    ],
    ids=["no-client-id", "bad-base-url", "site-and-base-url", "no-timeouts"],
)
@pytest.mark.parametrize("from_env", [False, True], ids=["argument", "environment"])
def test_a_constructor_failing_after_the_password_shows_no_credential(
    settings: dict[str, Any], from_env: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The constructor fails after it read the password (passed, or from $HYBER_PASSWORD):
    its frame shows a redacted holder, and the half-built client has a repr."""
    monkeypatch.delenv("HYBER_CLIENT_ID", raising=False)
    monkeypatch.delenv("HYBER_BASE_URL", raising=False)
    monkeypatch.setenv("HYBER_PASSWORD", PASSWORD)
    kwargs = {"client_id": CLIENT_ID, "base_url": "https://hyber.test", **settings}
    with pytest.raises((hy.ValidationError, AttributeError)) as caught:
        # the password as an expression: this frame, printed too, holds none in a local
        hy.HyberClient(login=LOGIN, password=None if from_env else PASSWORD, **kwargs)
    rendered = renderings(caught.value)
    for tool, text in rendered.items():
        for secret in SECRETS:
            assert secret not in text, f"{tool} shows {secret!r}"
        assert "repr() failed" not in text
    assert "secret = _Secret([redacted])" in rendered["traceback"] or from_env


def test_a_half_built_client_has_a_repr() -> None:
    """repr of a client whose constructor stopped before any attribute was set."""
    client = hy.HyberClient.__new__(hy.HyberClient)
    assert repr(client) == "HyberClient(client_id=None, login=None, base_url=None)"
