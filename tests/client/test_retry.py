"""The retry rules: what is resent for POST and GET, how often, how long to wait, the deadline."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import anyio
import attrs
import httpx
import pytest
import respx
from _support import ENDPOINT, JOB, MESSAGES, batch_campaign, make_client

import hyber_async as hy

pytestmark = pytest.mark.anyio

Failure = Callable[[httpx.Request], httpx.Response]
"""A respx side effect: raises a transport error or returns an error response."""

ATTEMPTS = 3
TABLE_POLICY = hy.RetryPolicy(wait=False, max_attempts=ATTEMPTS)
STATUS_ANSWER = {"messages": [{"phone_number": "380961111111", "status": -1}]}


def raises(kind: type[httpx.RequestError]) -> Failure:
    """A failure raising the httpx request error ``kind`` (transport, or body decoding)."""

    def effect(request: httpx.Request) -> httpx.Response:
        raise kind("simulated", request=request)

    return effect


def answers(status: int, retry_after: str | None = None) -> Failure:
    """A failure answering ``status`` (with a ``Retry-After`` header when given)."""
    headers = {} if retry_after is None else {"Retry-After": retry_after}

    def effect(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, headers=headers)

    return effect


@attrs.frozen
class Rule:
    """One row of the table: a failure, and per method the attempts made and the error."""

    id: str
    failure: Failure
    post: tuple[int, type[hy.HyberError]]
    get: tuple[int, type[hy.HyberError]]


ONCE = 1
ALL = ATTEMPTS
NOT_SENT = hy.NotSentError
UNKNOWN = hy.OutcomeUnknownError

RULES = [
    Rule("ConnectError", raises(httpx.ConnectError), (ALL, NOT_SENT), (ALL, NOT_SENT)),
    Rule("ConnectTimeout", raises(httpx.ConnectTimeout), (ALL, NOT_SENT), (ALL, NOT_SENT)),
    Rule("PoolTimeout", raises(httpx.PoolTimeout), (ALL, NOT_SENT), (ALL, NOT_SENT)),
    Rule("ReadTimeout", raises(httpx.ReadTimeout), (ONCE, UNKNOWN), (ALL, UNKNOWN)),
    Rule("WriteTimeout", raises(httpx.WriteTimeout), (ONCE, UNKNOWN), (ALL, UNKNOWN)),
    Rule("ReadError", raises(httpx.ReadError), (ONCE, UNKNOWN), (ALL, UNKNOWN)),
    Rule("WriteError", raises(httpx.WriteError), (ONCE, UNKNOWN), (ALL, UNKNOWN)),
    Rule("RemoteProtocolError", raises(httpx.RemoteProtocolError), (ONCE, UNKNOWN),
         (ALL, UNKNOWN)),
    Rule("DecodingError", raises(httpx.DecodingError), (ONCE, UNKNOWN), (ALL, UNKNOWN)),
    Rule("429", answers(429), (ALL, hy.RateLimitError), (ALL, hy.RateLimitError)),
    Rule("429-retry-after", answers(429, "2"), (ALL, hy.RateLimitError),
         (ALL, hy.RateLimitError)),
    Rule("500", answers(500), (ONCE, hy.ServerError), (ALL, hy.ServerError)),
    Rule("502", answers(502), (ONCE, hy.ServerError), (ALL, hy.ServerError)),
    Rule("503", answers(503), (ONCE, hy.ServerError), (ALL, hy.ServerError)),
    Rule("503-retry-after", answers(503, "2"), (ALL, hy.ServerError), (ALL, hy.ServerError)),
    Rule("500-retry-after", answers(500, "2"), (ONCE, hy.ServerError), (ALL, hy.ServerError)),
    Rule("400", answers(400), (ONCE, hy.BadRequestError), (ONCE, hy.BadRequestError)),
    Rule("401", answers(401), (ONCE, hy.AuthenticationError), (ONCE, hy.AuthenticationError)),
    Rule("403", answers(403), (ONCE, hy.PermissionDeniedError),
         (ONCE, hy.PermissionDeniedError)),
    Rule("413", answers(413), (ONCE, hy.PayloadTooLargeError),
         (ONCE, hy.PayloadTooLargeError)),
]  # fmt: skip
RULE_IDS = [rule.id for rule in RULES]


@pytest.fixture
def api() -> Iterator[respx.MockRouter]:
    """The mocked API of the test client."""
    with respx.mock(base_url=ENDPOINT, assert_all_called=False) as router:
        yield router


async def call(method: str, client: hy.HyberClient) -> Any:
    """One POST (send_batch) or one GET (get_status)."""
    if method == "POST":
        return await client.send_batch(batch_campaign(), MESSAGES)
    return await client.get_status("job-1")


def route_of(api: respx.MockRouter, method: str) -> respx.Route:
    """The route that ``call(method, ...)`` hits."""
    return api.post("/batch") if method == "POST" else api.get("/status/job-1")


def success(method: str) -> httpx.Response:
    """The documented success answer of ``call(method, ...)``."""
    return httpx.Response(200, json=JOB if method == "POST" else STATUS_ANSWER)


# --- the table -----------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["POST", "GET"])
@pytest.mark.parametrize("rule", RULES, ids=RULE_IDS)
async def test_retry_table_persistent_failure(
    api: respx.MockRouter, rule: Rule, method: str
) -> None:
    """A failure that persists is sent as often as the rules allow, then raises its error."""
    attempts, error = rule.post if method == "POST" else rule.get
    route = route_of(api, method).mock(side_effect=rule.failure)
    async with make_client(retry=TABLE_POLICY) as client:
        with pytest.raises(error) as caught:
            await call(method, client)
    assert route.call_count == attempts
    assert type(caught.value) is error


@pytest.mark.parametrize("method", ["POST", "GET"])
@pytest.mark.parametrize("rule", RULES, ids=RULE_IDS)
async def test_retry_table_failure_then_success(
    api: respx.MockRouter, rule: Rule, method: str
) -> None:
    """A failure followed by a success succeeds on the second request when it is retried."""
    attempts, error = rule.post if method == "POST" else rule.get
    seen: list[httpx.Request] = []

    def effect(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return rule.failure(request) if len(seen) == 1 else success(method)

    route = route_of(api, method).mock(side_effect=effect)
    async with make_client(retry=TABLE_POLICY) as client:
        if attempts > 1:
            await call(method, client)
            assert route.call_count == 2
        else:
            with pytest.raises(error):
                await call(method, client)
            assert route.call_count == 1


async def test_post_read_timeout_is_sent_once_and_outcome_unknown(api: respx.MockRouter) -> None:
    """A POST meeting a read timeout is not resent and names the extra_ids of its items."""
    route = api.post("/batch").mock(side_effect=raises(httpx.ReadTimeout))
    async with make_client() as client:
        with pytest.raises(hy.OutcomeUnknownError) as caught:
            await client.send_batch(batch_campaign(), MESSAGES)
    assert route.call_count == 1
    assert tuple(caught.value.extra_ids) == ("AD-1", "AD-2")
    assert isinstance(caught.value.__cause__, httpx.ReadTimeout)


async def test_post_connect_error_then_success_is_sent_twice(api: respx.MockRouter) -> None:
    """A POST whose first connect fails is resent and succeeds."""
    route = api.post("/batch")
    route.side_effect = [httpx.ConnectError("refused"), httpx.Response(200, json=JOB)]
    async with make_client() as client:
        job = await client.send_batch(batch_campaign(), MESSAGES)
    assert route.call_count == 2
    assert job == hy.JobAccepted(JOB["job_id"])
    assert route.calls[0].request.content == route.calls[1].request.content


async def test_not_sent_error_keeps_its_cause(api: respx.MockRouter) -> None:
    """A NotSentError after the last attempt is chained to the httpx error."""
    api.post("/batch").mock(side_effect=raises(httpx.ConnectError))
    async with make_client() as client:
        with pytest.raises(hy.NotSentError) as caught:
            await client.send_batch(batch_campaign(), MESSAGES)
    assert isinstance(caught.value.__cause__, httpx.ConnectError)


async def test_post_read_timeout_extra_ids_skip_null(api: respx.MockRouter) -> None:
    """Items whose extra_id is null are not named in OutcomeUnknownError.extra_ids."""
    api.post("/batch").mock(side_effect=raises(httpx.ReadTimeout))
    rows = [
        {"phone_number": 380961111111, "text": "Hi", "extra_id": None},
        {"phone_number": 380962222222, "text": "Hi", "extra_id": "AD-2"},
    ]
    async with make_client() as client:
        with pytest.raises(hy.OutcomeUnknownError) as caught:
            await client.send_batch(batch_campaign(), rows)
    assert tuple(caught.value.extra_ids) == ("AD-2",)


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
async def test_non_finite_retry_after_falls_back_to_backoff(
    api: respx.MockRouter, value: str
) -> None:
    """A Retry-After of nan or inf neither crashes the wait nor shows as retry_after."""
    route = api.post("/batch").mock(side_effect=answers(429, value))
    policy = hy.RetryPolicy(max_attempts=2, initial_backoff=0.001)
    async with make_client(retry=policy) as client:
        with pytest.raises(hy.RateLimitError) as caught:
            await client.send_batch(batch_campaign(), MESSAGES)
    assert caught.value.retry_after is None
    assert route.call_count == 2


@pytest.mark.parametrize("max_attempts", [1, 2, 5])
async def test_max_attempts_bounds_the_requests(api: respx.MockRouter, max_attempts: int) -> None:
    """max_attempts counts the first attempt: never more requests than that."""
    route = api.get("/status/job-1").mock(side_effect=raises(httpx.ConnectError))
    policy = hy.RetryPolicy(wait=False, max_attempts=max_attempts)
    async with make_client(retry=policy) as client:
        with pytest.raises(hy.NotSentError):
            await client.get_status("job-1")
    assert route.call_count == max_attempts


# --- the total deadline --------------------------------------------------------------------


class Slow:
    """A server side effect that fails with ``first`` failures, then takes far longer than
    any test deadline. ``calls`` counts the requests it saw (respx records a call only when
    it is answered)."""

    def __init__(self, *first: Failure) -> None:
        self.first = first
        self.calls = 0

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        if self.calls <= len(self.first):
            return self.first[self.calls - 1](request)
        await anyio.sleep(30)
        return httpx.Response(200, json=JOB)


@pytest.mark.slow
async def test_deadline_ends_a_slow_post(api: respx.MockRouter) -> None:
    """A POST whose server is slower than Timeouts.total is OutcomeUnknown, with extra_ids."""
    server = Slow()
    api.post("/batch").mock(side_effect=server)
    async with make_client(timeouts=hy.Timeouts(total=0.2)) as client:
        with pytest.raises(hy.OutcomeUnknownError) as caught:
            await client.send_batch(batch_campaign(), MESSAGES)
    assert type(caught.value) is hy.OutcomeUnknownError
    assert tuple(caught.value.extra_ids) == ("AD-1", "AD-2")
    assert "deadline" in str(caught.value)
    assert server.calls == 1


@pytest.mark.slow
async def test_deadline_ends_a_slow_get(api: respx.MockRouter) -> None:
    """A GET whose server is slower than Timeouts.total is OutcomeUnknown too."""
    api.get("/status/job-1").mock(side_effect=Slow())
    async with make_client(timeouts=hy.Timeouts(total=0.2)) as client:
        with pytest.raises(hy.OutcomeUnknownError, match="deadline"):
            await client.get_status("job-1")


@pytest.mark.slow
async def test_deadline_during_backoff_raises_the_last_error(api: respx.MockRouter) -> None:
    """When the deadline passes while waiting to retry, the last answer's error is raised."""
    route = api.post("/batch").mock(side_effect=answers(429, "30"))
    policy = hy.RetryPolicy(max_attempts=5)
    async with make_client(timeouts=hy.Timeouts(total=0.2), retry=policy) as client:
        with pytest.raises(hy.RateLimitError) as caught:
            await client.send_batch(batch_campaign(), MESSAGES)
    assert caught.value.retry_after == 30.0
    assert route.call_count == 1


@pytest.mark.slow
async def test_deadline_during_backoff_keeps_the_cause(api: respx.MockRouter) -> None:
    """A NotSentError raised at the deadline is still chained to the httpx error."""
    route = api.post("/batch").mock(side_effect=raises(httpx.ConnectError))
    policy = hy.RetryPolicy(initial_backoff=30.0, jitter=0.0)
    async with make_client(timeouts=hy.Timeouts(total=0.2), retry=policy) as client:
        with pytest.raises(hy.NotSentError) as caught:
            await client.send_batch(batch_campaign(), MESSAGES)
    assert isinstance(caught.value.__cause__, httpx.ConnectError)
    assert route.call_count == 1


@pytest.mark.slow
async def test_deadline_after_a_not_sent_attempt_is_outcome_unknown(
    api: respx.MockRouter,
) -> None:
    """A retry in flight at the deadline may have been processed, whatever came before."""
    server = Slow(raises(httpx.ConnectError))
    api.post("/batch").mock(side_effect=server)
    async with make_client(timeouts=hy.Timeouts(total=0.2)) as client:
        with pytest.raises(hy.OutcomeUnknownError, match="attempt 2"):
            await client.send_batch(batch_campaign(), MESSAGES)
    assert server.calls == 2


# --- the delays ----------------------------------------------------------------------------


@attrs.frozen
class RecordingPolicy(hy.RetryPolicy):
    """A RetryPolicy that records what the client asks ``delay`` and never waits."""

    asked: ClassVar[list[tuple[int, float | None]]] = []

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Record the question, answer 0."""
        self.asked.append((attempt, retry_after))
        return 0.0


@pytest.mark.parametrize(
    ("failure", "asked"),
    [
        (answers(429, "7"), [(1, 7.0), (2, 7.0)]),
        (answers(503, "1.5"), [(1, 1.5), (2, 1.5)]),
        (answers(429), [(1, None), (2, None)]),
        (answers(429, "Wed, 21 Oct 2015 07:28:00 GMT"), [(1, None), (2, None)]),
        (answers(429, "nan"), [(1, None), (2, None)]),
        (answers(429, "inf"), [(1, None), (2, None)]),
        (raises(httpx.ConnectError), [(1, None), (2, None)]),
    ],
    ids=[
        "429-retry-after",
        "503-retry-after",
        "429-bare",
        "429-http-date",
        "429-nan",
        "429-inf",
        "connect",
    ],
)
async def test_client_passes_retry_after_to_the_policy(
    api: respx.MockRouter, failure: Failure, asked: list[tuple[int, float | None]]
) -> None:
    """Before each retry the client asks the policy, passing the server's Retry-After."""
    RecordingPolicy.asked.clear()
    api.post("/batch").mock(side_effect=failure)
    async with make_client(retry=RecordingPolicy(max_attempts=3)) as client:
        with pytest.raises(hy.HyberError):
            await client.send_batch(batch_campaign(), MESSAGES)
    assert RecordingPolicy.asked == asked


def test_delay_without_wait_is_zero() -> None:
    """wait=False removes every delay, Retry-After included."""
    policy = hy.RetryPolicy(wait=False)
    assert [policy.delay(n) for n in range(1, 6)] == [0.0] * 5
    assert policy.delay(1, retry_after=60.0) == 0.0


def test_delay_honours_retry_after() -> None:
    """A Retry-After under the cap is waited exactly, without jitter."""
    policy = hy.RetryPolicy()
    assert policy.delay(1, retry_after=7.0) == 7.0
    assert policy.delay(4, retry_after=0.0) == 0.0


def test_delay_caps_retry_after() -> None:
    """A Retry-After above max_retry_after is cut to the cap."""
    assert hy.RetryPolicy(max_retry_after=10.0).delay(1, retry_after=3600.0) == 10.0


def test_delay_backoff_is_exponential_and_capped() -> None:
    """Without jitter the back-off doubles from initial_backoff up to max_backoff."""
    policy = hy.RetryPolicy(initial_backoff=0.5, max_backoff=4.0, jitter=0.0)
    assert [policy.delay(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


@pytest.mark.parametrize("attempt", [1, 3, 10])
def test_delay_jitter_stays_in_bounds(attempt: int) -> None:
    """With jitter j the delay lies in [backoff * (1 - j), backoff]."""
    policy = hy.RetryPolicy(initial_backoff=1.0, max_backoff=8.0, jitter=0.5)
    backoff = min(8.0, 2.0 ** (attempt - 1))
    delays = [policy.delay(attempt) for _ in range(500)]
    assert all(backoff * 0.5 <= d <= backoff for d in delays)
    assert len(set(delays)) > 1


@pytest.mark.parametrize(("draw", "factor"), [(0.0, 1.0), (0.999999, 0.5000005)])
def test_delay_jitter_extremes(monkeypatch: pytest.MonkeyPatch, draw: float, factor: float) -> None:
    """The random draw scales the back-off between 1 and 1 - jitter."""
    monkeypatch.setattr("hyber_async._config.random.random", lambda: draw)
    policy = hy.RetryPolicy(initial_backoff=2.0, jitter=0.5)
    assert policy.delay(1) == pytest.approx(2.0 * factor)


@pytest.mark.parametrize(
    ("error", "post", "get"),
    [
        (hy.NotSentError("x"), True, True),
        (hy.OutcomeUnknownError("x"), False, True),
        (hy.ValidationError([]), False, False),
    ],
    ids=["not-sent", "unknown", "validation"],
)
def test_retries_by_error_kind(error: hy.HyberError, post: bool, get: bool) -> None:
    """retries() answers per method: POSTs only when provably not sent."""
    policy = hy.RetryPolicy()
    assert (policy.retries("POST", error), policy.retries("GET", error)) == (post, get)
