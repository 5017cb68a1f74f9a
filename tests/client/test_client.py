"""HyberClient against a mocked transport (respx): endpoints, settings, answers and errors."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
import respx
from _support import (
    BASE_URL,
    BASIC,
    CLIENT_ID,
    ENDPOINT,
    JOB,
    MESSAGES,
    RECIPIENTS,
    SYNC,
    batch_campaign,
    broadcast_campaign,
    make_client,
)

import hyber_async as hy
from hyber_async import converter

pytestmark = pytest.mark.anyio

BATCH_WIRE = {
    "messages": [
        {"phone_number": 380961111111, "text": "Hello one", "extra_id": "AD-1"},
        {"phone_number": 380962222222, "text": "Hello two", "extra_id": "AD-2"},
    ],
    "channels": ["viber", "sms"],
    "channel_options": {"viber": {"ttl": 60}, "sms": {"alpha_name": "GMSU", "ttl": 300}},
}
BROADCAST_WIRE = {
    "recipients": [
        {"phone_number": 380961111111, "extra_id": "AD-1", "name": "Ann"},
        {"phone_number": 380962222222, "extra_id": "AD-2", "name": "Bob"},
    ],
    "channels": ["viber"],
    "channel_options": {"viber": {"ttl": 60, "text": "Dear %name%!"}},
}
ERROR = {"error_code": 36024, "error_text": "Phone number incorrect"}


@pytest.fixture
def api() -> Iterator[respx.MockRouter]:
    """The mocked API of the test client: every request must match a route."""
    with respx.mock(base_url=ENDPOINT, assert_all_called=False) as router:
        yield router


async def send(client: hy.HyberClient, endpoint: str) -> Any:
    """Call ``endpoint`` of ``client`` with the standard test inputs."""
    if endpoint == "batch":
        return await client.send_batch(batch_campaign(), MESSAGES)
    if endpoint == "batch/sync":
        return await client.send_batch_sync(batch_campaign(), MESSAGES)
    if endpoint == "broadcast":
        return await client.send_broadcast(broadcast_campaign(), RECIPIENTS)
    if endpoint == "broadcast/sync":
        return await client.send_broadcast_sync(broadcast_campaign(), RECIPIENTS)
    return await client.get_status("job-1")


POSTS = [
    ("batch", JOB, hy.JobAccepted, BATCH_WIRE),
    ("batch/sync", SYNC, hy.SyncResult, BATCH_WIRE),
    ("broadcast", JOB, hy.JobAccepted, BROADCAST_WIRE),
    ("broadcast/sync", SYNC, hy.SyncResult, BROADCAST_WIRE),
]
POST_IDS = [p[0] for p in POSTS]


# --- the five endpoints --------------------------------------------------------------------


@pytest.mark.parametrize(("endpoint", "answer", "model", "wire"), POSTS, ids=POST_IDS)
async def test_post_endpoint_request(
    api: respx.MockRouter, endpoint: str, answer: Any, model: type, wire: Any
) -> None:
    """Each send method POSTs to /{client_id}/<endpoint> with auth, JSON type and the body."""
    route = api.post(f"/{endpoint}").respond(200, json=answer)
    async with make_client() as client:
        result = await send(client, endpoint)
    assert route.call_count == 1
    request = route.calls.last.request
    assert request.method == "POST"
    assert request.url == f"{ENDPOINT}/{endpoint}"
    assert request.headers["authorization"] == BASIC
    assert request.headers["content-type"] == "application/json"
    assert orjson.loads(request.content) == wire
    assert result == converter.structure(answer, model)


@pytest.mark.parametrize(("endpoint", "answer", "model", "wire"), POSTS, ids=POST_IDS)
async def test_post_body_is_the_exact_encoding(
    api: respx.MockRouter, endpoint: str, answer: Any, model: type, wire: Any
) -> None:
    """The body bytes are exactly the compact encoding of the request model."""
    route = api.post(f"/{endpoint}").respond(200, json=answer)
    async with make_client() as client:
        await send(client, endpoint)
    if endpoint.startswith("batch"):
        request: Any = hy.BatchRequest(batch_campaign(), MESSAGES)
    else:
        request = hy.BroadcastRequest(broadcast_campaign(), RECIPIENTS)
    assert route.calls.last.request.content == converter.dumps(request)
    assert route.calls.last.request.content == orjson.dumps(converter.unstructure(request))


async def test_get_status_request(api: respx.MockRouter) -> None:
    """get_status GETs /{client_id}/status/{job_id} with auth and no body."""
    answer = {"messages": [{"phone_number": "380961111111", "status": 2, "hyber_status": 23011}]}
    route = api.get("/status/job-1").respond(200, json=answer)
    async with make_client() as client:
        status = await client.get_status("job-1")
    request = route.calls.last.request
    assert request.method == "GET"
    assert request.url == f"{ENDPOINT}/status/job-1"
    assert request.headers["authorization"] == BASIC
    assert "content-type" not in request.headers
    assert request.content == b""
    assert status == hy.JobStatus(
        (hy.MessageStatus(phone_number="380961111111", status=2, hyber_status=23011),)
    )


@pytest.mark.parametrize("job_id", ["", "a/b", "a?b", "a#b", "..", ".", "a b"])
async def test_get_status_rejects_a_bad_job_id(api: respx.MockRouter, job_id: str) -> None:
    """A job id that is empty or holds a slash is refused before sending."""
    async with make_client() as client:
        with pytest.raises(hy.ValidationError, match="job_id"):
            await client.get_status(job_id)
    assert not api.calls


async def test_get_status_takes_a_uuid(api: respx.MockRouter) -> None:
    """A job id as the API issues it (a UUID) is put in the path unchanged."""
    route = api.get(f"/status/{JOB['job_id']}").respond(200, json={"messages": []})
    async with make_client() as client:
        assert await client.get_status(JOB["job_id"]) == hy.JobStatus(())
    assert route.called


async def test_mappings_send_the_same_body_as_models(api: respx.MockRouter) -> None:
    """Plain mappings as batch items give the same body as Message models."""
    route = api.post("/batch").respond(200, json=JOB)
    rows = [converter.unstructure(m) for m in MESSAGES]
    async with make_client() as client:
        await client.send_batch(batch_campaign(), rows)
        await client.send_batch(batch_campaign(), MESSAGES)
    first, second = (call.request.content for call in route.calls)
    assert first == second


# --- the request-model forms -----------------------------------------------------------------


async def test_batch_request_form(api: respx.MockRouter) -> None:
    """send_batch takes one BatchRequest and sends the same body as (campaign, messages)."""
    route = api.post("/batch").respond(200, json=JOB)
    async with make_client() as client:
        job = await client.send_batch(hy.BatchRequest(batch_campaign(), MESSAGES))
    assert job == hy.JobAccepted(JOB["job_id"])
    assert orjson.loads(route.calls.last.request.content) == BATCH_WIRE


async def test_broadcast_request_form(api: respx.MockRouter) -> None:
    """send_broadcast_sync takes one BroadcastRequest."""
    route = api.post("/broadcast/sync").respond(200, json=SYNC)
    async with make_client() as client:
        await client.send_broadcast_sync(hy.BroadcastRequest(broadcast_campaign(), RECIPIENTS))
    assert orjson.loads(route.calls.last.request.content) == BROADCAST_WIRE


async def test_request_form_of_the_wrong_kind_is_refused(api: respx.MockRouter) -> None:
    """A BatchRequest passed to send_broadcast is a TypeError, and nothing is sent."""
    async with make_client() as client:
        with pytest.raises(TypeError, match="BroadcastRequest"):
            await client.send_broadcast(hy.BatchRequest(batch_campaign(), MESSAGES))  # type: ignore[arg-type]
    assert not api.calls


async def test_request_form_with_items_is_refused(api: respx.MockRouter) -> None:
    """A BatchRequest plus a separate item list is ambiguous: TypeError, nothing sent."""
    async with make_client() as client:
        with pytest.raises(TypeError):
            await client.send_batch(hy.BatchRequest(batch_campaign(), MESSAGES), MESSAGES)
    assert not api.calls


async def test_campaign_without_items_is_refused(api: respx.MockRouter) -> None:
    """A Campaign without items is a TypeError, and nothing is sent."""
    async with make_client() as client:
        with pytest.raises(TypeError, match="messages"):
            await client.send_batch(batch_campaign())
    assert not api.calls


# --- settings ----------------------------------------------------------------------------


ENV = {
    "HYBER_CLIENT_ID": "777",
    "HYBER_LOGIN": "env-user",
    "HYBER_PASSWORD": "env-Pa55",
    "HYBER_BASE_URL": "http://127.0.0.1:8099",
}


async def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without arguments, client id, login, password and base URL come from $HYBER_*."""
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    with respx.mock(base_url="http://127.0.0.1:8099/777") as router:
        route = router.post("/batch").respond(200, json=JOB)
        async with hy.HyberClient(retry=hy.RetryPolicy(wait=False)) as client:
            await client.send_batch(batch_campaign(), MESSAGES)
    token = base64.b64encode(b"env-user:env-Pa55").decode()
    assert route.calls.last.request.headers["authorization"] == f"Basic {token}"


async def test_arguments_win_over_the_environment(
    api: respx.MockRouter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Explicit arguments are used even when $HYBER_* are set."""
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    route = api.post("/batch").respond(200, json=JOB)
    async with make_client() as client:
        await client.send_batch(batch_campaign(), MESSAGES)
    assert route.calls.last.request.headers["authorization"] == BASIC


@pytest.mark.parametrize(
    ("missing", "argument"),
    [
        ("HYBER_CLIENT_ID", "client_id"),
        ("HYBER_LOGIN", "login"),
        ("HYBER_PASSWORD", "password"),
        ("HYBER_BASE_URL", "base_url"),
    ],
)
def test_missing_setting_is_named(
    monkeypatch: pytest.MonkeyPatch, missing: str, argument: str
) -> None:
    """A setting given neither as an argument nor in the environment is a ValidationError."""
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv(missing)
    with pytest.raises(hy.ValidationError, match=argument):
        hy.HyberClient()


async def test_site_selects_the_hyber_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """site="eu" sends to https://proxy-eu.hyber.im/{client_id}/..."""
    monkeypatch.setenv("HYBER_BASE_URL", "http://127.0.0.1:8099")
    with respx.mock(base_url=f"https://proxy-eu.hyber.im/{CLIENT_ID}") as router:
        route = router.post("/broadcast").respond(200, json=JOB)
        async with make_client(base_url=None, site="eu") as client:
            await client.send_broadcast(broadcast_campaign(), RECIPIENTS)
    assert route.calls.last.request.url == f"https://proxy-eu.hyber.im/{CLIENT_ID}/broadcast"


async def test_base_url_path_is_kept() -> None:
    """A base URL with a path prefix keeps it in front of /{client_id}/..."""
    with respx.mock(base_url=f"{BASE_URL}/gw/v2/{CLIENT_ID}") as router:
        route = router.post("/batch").respond(200, json=JOB)
        async with make_client(base_url=f"{BASE_URL}/gw/v2/") as client:
            await client.send_batch(batch_campaign(), MESSAGES)
    assert route.called


@pytest.mark.parametrize("url", ["https://user:pw@hyber.test", "ftp://hyber.test"])
def test_bad_base_url_is_refused(url: str) -> None:
    """A base URL carrying credentials or of another scheme is a ValidationError."""
    with pytest.raises(hy.ValidationError, match="base_url"):
        make_client(base_url=url)


async def test_caller_http_client_is_used_and_left_open() -> None:
    """A caller-supplied httpx.AsyncClient carries the requests and stays open afterwards."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=JOB)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        async with make_client(http_client=http) as client:
            await client.send_batch(batch_campaign(), MESSAGES)
        assert not http.is_closed
        response = await http.get(f"{ENDPOINT}/status/x")
    assert [r.url.path for r in seen] == [f"/{CLIENT_ID}/batch", f"/{CLIENT_ID}/status/x"]
    assert response.status_code == 200


async def test_owned_http_client_is_closed_on_exit() -> None:
    """The client closes the connection pool it created when its context ends."""
    async with make_client() as client:
        pass
    assert client._http.is_closed


# --- answers and errors ------------------------------------------------------------------


@pytest.mark.parametrize("status", [200, 400])
async def test_error_body_is_recognised(api: respx.MockRouter, status: int) -> None:
    """{error_code, error_text} is a BadRequestError on 200 as on 400, with its fields."""
    api.post("/batch").respond(status, json=ERROR)
    async with make_client() as client:
        with pytest.raises(hy.BadRequestError) as caught:
            await client.send_batch(batch_campaign(), MESSAGES)
    error = caught.value
    assert (error.status_code, error.error_code, error.error_text) == (
        status,
        36024,
        "Phone number incorrect",
    )
    assert "36024" in str(error)
    assert "Phone number incorrect" in str(error)


async def test_error_body_on_403_keeps_its_class(api: respx.MockRouter) -> None:
    """An error body on another status is read into the error of that status."""
    api.post("/batch").respond(403, json=ERROR)
    async with make_client() as client:
        with pytest.raises(hy.PermissionDeniedError) as caught:
            await client.send_batch(batch_campaign(), MESSAGES)
    assert caught.value.error_code == 36024


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, hy.BadRequestError),
        (422, hy.BadRequestError),
        (401, hy.AuthenticationError),
        (403, hy.PermissionDeniedError),
        (404, hy.NotFoundError),
        (413, hy.PayloadTooLargeError),
        (429, hy.RateLimitError),
        (500, hy.ServerError),
        (502, hy.ServerError),
        (503, hy.ServerError),
        (504, hy.ServerError),
    ],
)
async def test_status_maps_to_its_error(
    api: respx.MockRouter, status: int, error: type[hy.APIError]
) -> None:
    """Each status family raises its APIError subclass, carrying the status and the response."""
    api.get("/status/job-1").respond(status, text="nope")
    async with make_client(retry=hy.RetryPolicy(wait=False, max_attempts=1)) as client:
        with pytest.raises(error) as caught:
            await client.get_status("job-1")
    assert type(caught.value) is error
    assert caught.value.status_code == status
    assert caught.value.response.status_code == status
    assert caught.value.response.content == b"nope"
    assert caught.value.error_code is None


async def test_rate_limit_carries_retry_after(api: respx.MockRouter) -> None:
    """A 429 with Retry-After raises RateLimitError whose retry_after is that many seconds."""
    api.post("/batch").respond(429, headers={"Retry-After": "7"})
    async with make_client(retry=hy.RetryPolicy(wait=False, max_attempts=1)) as client:
        with pytest.raises(hy.RateLimitError) as caught:
            await client.send_batch(batch_campaign(), MESSAGES)
    assert caught.value.retry_after == 7.0


async def test_server_error_is_outcome_unknown_with_extra_ids(api: respx.MockRouter) -> None:
    """A 5xx on a POST is a ServerError that is also an OutcomeUnknownError with the extra_ids."""
    api.post("/batch").respond(500)
    async with make_client() as client:
        with pytest.raises(hy.ServerError) as caught:
            await client.send_batch(batch_campaign(), MESSAGES)
    assert isinstance(caught.value, hy.OutcomeUnknownError)
    assert tuple(caught.value.extra_ids) == ("AD-1", "AD-2")


@pytest.mark.parametrize(
    "body",
    [b"not json", b"<html>502</html>", b"[]", b"{}", b'{"job": 1}', b""],
    ids=["text", "html", "list", "empty-object", "wrong-keys", "empty"],
)
async def test_unreadable_success_body(api: respx.MockRouter, body: bytes) -> None:
    """A 200 whose body is not the documented answer raises UnexpectedResponseError."""
    api.post("/batch").respond(200, content=body)
    async with make_client() as client:
        with pytest.raises(hy.UnexpectedResponseError) as caught:
            await client.send_batch(batch_campaign(), MESSAGES)
    assert caught.value.status_code == 200
    assert isinstance(caught.value, hy.OutcomeUnknownError)


async def test_unreadable_success_body_carries_extra_ids(api: respx.MockRouter) -> None:
    """The request may have been processed: UnexpectedResponseError carries its extra_ids."""
    api.post("/batch/sync").respond(200, content=b"garbage")
    async with make_client() as client:
        with pytest.raises(hy.UnexpectedResponseError) as caught:
            await client.send_batch_sync(batch_campaign(), MESSAGES)
    assert tuple(caught.value.extra_ids) == ("AD-1", "AD-2")


async def test_unreadable_status_body(api: respx.MockRouter) -> None:
    """A status answer that is not a report raises UnexpectedResponseError."""
    api.get("/status/job-1").respond(200, json={"messages": "none"})
    async with make_client() as client:
        with pytest.raises(hy.UnexpectedResponseError):
            await client.get_status("job-1")


def test_repr_names_the_client_not_the_password() -> None:
    """repr(client) shows client id, login and base URL."""
    client = make_client()
    assert repr(client) == (
        f"HyberClient(client_id='{CLIENT_ID}', login='user', base_url='{BASE_URL}')"
    )


def test_site_and_base_url_together_are_refused() -> None:
    """Giving both site= and base_url= is ambiguous: a ValidationError names base_url."""
    with pytest.raises(hy.ValidationError, match="not both"):
        hy.HyberClient("1", "u", "p", site="eu", base_url="http://127.0.0.1:8080")
