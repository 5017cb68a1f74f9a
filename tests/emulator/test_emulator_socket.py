"""The emulator on a real loopback socket, driven by plain httpx: every spec example, the
documented answer shapes, validation and auth errors, the reset fault."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from conftest import FIXTURES

import hyber_async as hy
from hyber_async.emulator import DEMO_ACCOUNT, Emulator, EmulatorConfig, ErrorCodes, create_app
from hyber_async.testing import emulated_client, serving_emulator

pytestmark = pytest.mark.slow  # real sockets

REQUESTS = sorted(p for p in FIXTURES.glob("*.json") if int(p.name[:2]) <= 15)
ASYNC_ANSWER, SYNC_ANSWER, STATUS_ANSWER = (
    orjson.loads(next(FIXTURES.glob(f"{n}-*.json")).read_bytes()) for n in (16, 17, 18)
)
AUTH = httpx.BasicAuth(DEMO_ACCOUNT.login, DEMO_ACCOUNT.password)
JSON = {"content-type": "application/json"}
PREFIX = f"/{DEMO_ACCOUNT.client_id}"


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[Emulator, httpx.Client]]:
    """One frozen-clock emulator on 127.0.0.1 for the module, and a plain httpx client of it."""
    emulator = create_app(EmulatorConfig(time_scale=0))
    with serving_emulator(emulator) as url, httpx.Client(base_url=url) as http:
        yield emulator, http


@pytest.fixture(autouse=True)
def no_faults(server: tuple[Emulator, httpx.Client]) -> Iterator[None]:
    """Every test starts and ends without faults."""
    server[0].faults.clear()
    yield
    server[0].faults.clear()


def endpoint(path: Path) -> str:
    """The endpoint an example request is for: batch or broadcast."""
    return "batch" if "-batch-" in path.name else "broadcast"


def shape(item: dict[str, Any]) -> dict[str, str]:
    """Each key of a JSON object with the type name of its value."""
    return {key: type(value).__name__ for key, value in item.items()}


def unique(body: dict[str, Any]) -> dict[str, Any]:
    """``body`` with fresh extra_ids, so that module-wide ledger counts stay per test."""
    key = "messages" if "messages" in body else "recipients"
    token = uuid.uuid4().hex[:8]
    for item in body[key]:
        item["extra_id"] = f"{item['extra_id']}-{token}"
    return body


@pytest.mark.parametrize("path", REQUESTS, ids=lambda p: p.name[:2])
def test_every_spec_request_is_accepted_with_a_job_id(
    server: tuple[Emulator, httpx.Client], path: Path
) -> None:
    """Each request example 01-15, posted raw, gets an answer shaped like example 16."""
    _, http = server
    answer = http.post(
        f"{PREFIX}/{endpoint(path)}", content=path.read_bytes(), headers=JSON, auth=AUTH
    )
    assert answer.status_code == 200
    assert shape(answer.json()) == shape(ASYNC_ANSWER)
    uuid.UUID(answer.json()["job_id"])


@pytest.mark.parametrize("path", REQUESTS, ids=lambda p: p.name[:2])
def test_every_spec_request_is_answered_per_message_on_sync(
    server: tuple[Emulator, httpx.Client], path: Path
) -> None:
    """On /sync each example gets one item per message, shaped like example 17's items."""
    _, http = server
    url = f"{PREFIX}/{endpoint(path)}/sync"
    answer = http.post(url, content=path.read_bytes(), headers=JSON, auth=AUTH)
    items = answer.json()["messages"]
    assert [shape(i) for i in items] == [shape(i) for i in SYNC_ANSWER["messages"]]
    assert [i["phone_number"] for i in items] == ["380961111111", "380962222222"]


@pytest.mark.parametrize("path", REQUESTS, ids=lambda p: p.name[:2])
def test_every_spec_request_gets_a_status_report_shaped_like_example_18(
    server: tuple[Emulator, httpx.Client], path: Path
) -> None:
    """Final items are shaped like example 18's (delivered, or expired/failed) items."""
    emulator, http = server
    job = http.post(
        f"{PREFIX}/{endpoint(path)}", content=path.read_bytes(), headers=JSON, auth=AUTH
    )
    emulator.clock.advance(10**6)
    answer = http.get(f"{PREFIX}/status/{job.json()['job_id']}", auth=AUTH)
    # the requests have ctr off, so their reports carry no clicks
    expired, delivered = ({**shape(i), "clicks": None} for i in STATUS_ANSWER["messages"])
    for item in answer.json()["messages"]:
        expected = delivered if "status" in item else expired
        assert {**shape(item), "clicks": None} == expected
    assert hy.converter.loads(answer.content, hy.JobStatus).is_final


@pytest.mark.parametrize(
    ("change", "status", "code", "names"),
    [
        ({"channels": []}, 400, ErrorCodes.INVALID_REQUEST, "channels"),
        ({"channel_options": {"sms": {"alpha_name": "GMSU", "ttl": 10}}}, 400, 40002, "sms.ttl"),
        ({"start_time": "tomorrow"}, 400, ErrorCodes.INVALID_REQUEST, "start_time"),
        ({"messages": [{"phone_number": 380961111111}]}, 400, 40002, "messages[0].text"),
        ({"messages": [{"phone_number": 12, "text": "x"}]}, 400, 36024, "phone_number"),
        ({"messages": []}, 400, ErrorCodes.INVALID_REQUEST, "messages"),
        (
            {"messages": [{"phone_number": 380961111111, "text": "x"}] * 50_001},
            413,
            ErrorCodes.TOO_MANY_ITEMS,
            "at most 50000",
        ),
    ],
    ids=["no-channels", "sms-ttl", "start-time", "no-text", "bad-phone", "empty", "50001"],
)
def test_invalid_requests_are_refused_naming_the_field(
    server: tuple[Emulator, httpx.Client],
    change: dict[str, Any],
    status: int,
    code: int,
    names: str,
) -> None:
    """An invalid body gets the documented error shape, its code, and names the field."""
    emulator, http = server
    body = {**orjson.loads((FIXTURES / REQUESTS[4].name).read_bytes()), **change}
    accepted = emulator.ledger.accepted
    answer = http.post(f"{PREFIX}/batch", content=orjson.dumps(body), headers=JSON, auth=AUTH)
    error = answer.json()
    assert (answer.status_code, error["error_code"]) == (status, code)
    assert names in error["error_text"]
    assert emulator.ledger.accepted == accepted


@pytest.mark.parametrize(
    ("request_args", "status", "code"),
    [
        ({"content": b"{", "headers": JSON, "auth": AUTH}, 400, ErrorCodes.MALFORMED_JSON),
        ({"content": b"[1]", "headers": JSON, "auth": AUTH}, 400, ErrorCodes.MALFORMED_JSON),
        ({"content": b"{}", "auth": AUTH}, 415, ErrorCodes.UNSUPPORTED_MEDIA_TYPE),
        ({"content": b"{}", "headers": JSON}, 401, ErrorCodes.UNAUTHORIZED),
        (
            {"content": b"{}", "headers": JSON, "auth": httpx.BasicAuth("user", "wrong")},
            401,
            ErrorCodes.UNAUTHORIZED,
        ),
        (
            {"content": b"{}", "headers": {**JSON, "authorization": "Basic !!"}},
            401,
            ErrorCodes.UNAUTHORIZED,
        ),
    ],
    ids=["truncated", "not-an-object", "no-content-type", "no-auth", "wrong-password", "garbage"],
)
def test_malformed_and_unauthenticated_requests_are_refused(
    server: tuple[Emulator, httpx.Client], request_args: dict[str, Any], status: int, code: int
) -> None:
    """Broken JSON, a missing Content-Type or bad credentials get their status and code."""
    _, http = server
    answer = http.post(f"{PREFIX}/batch", **request_args)
    assert (answer.status_code, answer.json()["error_code"]) == (status, code)


def test_another_clients_path_is_forbidden(server: tuple[Emulator, httpx.Client]) -> None:
    """Valid credentials on another client id's path get 403."""
    _, http = server
    answer = http.post("/9999/batch", content=REQUESTS[4].read_bytes(), headers=JSON, auth=AUTH)
    assert (answer.status_code, answer.json()["error_code"]) == (403, ErrorCodes.FORBIDDEN)


def test_unknown_paths_and_methods_are_refused(server: tuple[Emulator, httpx.Client]) -> None:
    """An unknown endpoint is 404; GET on a send endpoint is 405 with Allow."""
    _, http = server
    missing = http.post(f"{PREFIX}/nothing", content=b"{}", headers=JSON, auth=AUTH)
    wrong = http.get(f"{PREFIX}/batch", auth=AUTH)
    assert (missing.status_code, wrong.status_code, wrong.headers["allow"]) == (404, 405, "POST")


def test_posting_the_same_request_twice_shows_in_the_ledger(
    server: tuple[Emulator, httpx.Client],
) -> None:
    """The ledger counts each extra_id of a request posted twice as a duplicate."""
    emulator, http = server
    body = unique(orjson.loads(REQUESTS[0].read_bytes()))
    for _ in range(2):
        http.post(f"{PREFIX}/batch", content=orjson.dumps(body), headers=JSON, auth=AUTH)
    extra_ids = [m["extra_id"] for m in body["messages"]]
    assert {e: emulator.ledger.duplicates()[e] for e in extra_ids} == dict.fromkeys(extra_ids, 2)
    route = http.get("/_emulator/ledger", params={"extra_id": extra_ids[0]}).json()
    assert route["count"] == 2


def test_a_reset_after_accepting_breaks_the_connection(
    server: tuple[Emulator, httpx.Client],
) -> None:
    """reset=1: the messages are recorded, and the client gets a transport error, no answer."""
    emulator, http = server
    emulator.faults.reset = 1
    body = unique(orjson.loads(REQUESTS[0].read_bytes()))
    with pytest.raises(httpx.TransportError):
        http.post(f"{PREFIX}/batch", content=orjson.dumps(body), headers=JSON, auth=AUTH)
    assert emulator.ledger.count(body["messages"][0]["extra_id"]) == 1
    after = http.post(f"{PREFIX}/batch", content=orjson.dumps(body), headers=JSON, auth=AUTH)
    assert after.status_code == 200


def test_429_over_the_socket_carries_retry_after(server: tuple[Emulator, httpx.Client]) -> None:
    """rate_limit set through the admin route is answered 429 with Retry-After."""
    _, http = server
    http.post("/_emulator/faults", json={"rate_limit": 1, "retry_after": 2.5})
    answer = http.post(f"{PREFIX}/batch", content=REQUESTS[4].read_bytes(), headers=JSON, auth=AUTH)
    assert (answer.status_code, answer.headers["retry-after"]) == (429, "2.5")


@pytest.mark.anyio
async def test_the_client_reports_a_reset_as_outcome_unknown_with_its_extra_ids() -> None:
    """HyberClient on a socket: a reset after acceptance is OutcomeUnknownError, not resent."""
    async with emulated_client(EmulatorConfig(time_scale=0), socket=True) as emulated:
        emulated.emulator.faults.reset = 1
        campaign = hy.Campaign(
            channels=(hy.Channel.SMS,),
            channel_options=hy.ChannelOptions(sms=hy.SmsOptions(alpha_name="GMSU", ttl=300)),
        )
        with pytest.raises(hy.OutcomeUnknownError) as caught:
            await emulated.client.send_batch(campaign, [hy.Message(380961111111, "Hi", "x-1")])
        assert (emulated.emulator.ledger.accepted, emulated.emulator.ledger.requests) == (1, 1)
    assert tuple(caught.value.extra_ids) == ("x-1",)
