"""The push channel end to end: model, rules, emulator cascade, status and delivery reports.

The documented example is ``gms-docs/chapter2.rst`` line 38 ("Send Push+Viber+SMS Message
request"), as ``gms_docs.block`` reads it from ``fixtures/gms-docs/``; the limits are chapter 8's
push parameters 32-37. The mass-messaging chapter shows no push example: the envelope of the
single-message example is sent as a batch and as a broadcast (our reading, stated in the README).
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import orjson
import pytest
from _support import read_body
from gms_docs import block

import hyber_async as hy
from hyber_async._models import Kind
from hyber_async._validation import check_envelope, check_request
from hyber_async.emulator import DEMO_ACCOUNT, ChannelOutcomes, EmulatorConfig, create_app
from hyber_async.testing import EmulatedClient, emulated_client, serving_emulator

EXAMPLE: dict[str, Any] = block("chapter2.rst", 38).json()
"""chapter2.rst line 38: one message to push, then Viber, then SMS."""
ENVELOPE = {k: v for k, v in EXAMPLE.items() if k not in ("phone_number", "extra_id")}
"""The example's campaign envelope (everything but the recipient)."""
ONE_MESSAGE = {"phone_number": EXAMPLE["phone_number"], "extra_id": EXAMPLE["extra_id"]}
AUTH = httpx.BasicAuth(DEMO_ACCOUNT.login, DEMO_ACCOUNT.password)
PREFIX = f"/{DEMO_ACCOUNT.client_id}"

DELIVER = ChannelOutcomes(deliver=1.0, fail=0.0)
FAIL = ChannelOutcomes(deliver=0.0, fail=1.0)
EXPIRE = ChannelOutcomes(deliver=0.0, fail=0.0)


def batch_body() -> dict[str, Any]:
    """The example's envelope as a batch of its one recipient."""
    return {"messages": [{**ONE_MESSAGE, "text": "Text for all channels"}], **ENVELOPE}


def broadcast_body() -> dict[str, Any]:
    """The example's envelope as a broadcast to its one recipient."""
    return {"recipients": [dict(ONE_MESSAGE)], **ENVELOPE}


def push_wire(kind: Kind, **changes: Any) -> dict[str, Any]:
    """A push-only request of ``kind`` whose push options are the example's with ``changes``
    (a value of ``None`` removes the key)."""
    options = {**EXAMPLE["channel_options"]["push"], **changes}
    options = {k: v for k, v in options.items() if v is not None}
    body = batch_body() if kind is Kind.BATCH else broadcast_body()
    body["channels"] = ["push"]
    body["channel_options"] = {"push": options}
    return body


# --- model ----------------------------------------------------------------------------------


def test_the_example_envelope_round_trips_as_a_campaign() -> None:
    """The documented Push+Viber+SMS envelope reads into typed models and writes back equal."""
    campaign = hy.converter.structure(copy.deepcopy(ENVELOPE), hy.Campaign)
    assert campaign.channels == (hy.Channel.PUSH, hy.Channel.VIBER, hy.Channel.SMS)
    assert campaign.channel_options.push == hy.PushOptions(
        ttl=60,
        title="Title for Push",
        text="Text for Push",
        img="https://example.com/image.png",
        caption="Click the button",
        action="https://example.com",
        ctr=False,
    )
    assert hy.converter.unstructure(campaign) == ENVELOPE


@pytest.mark.parametrize(
    ("model", "body"),
    [(hy.BatchRequest, batch_body), (hy.BroadcastRequest, broadcast_body)],
    ids=["batch", "broadcast"],
)
def test_the_example_round_trips_as_a_mass_request(model: type, body: Any) -> None:
    """The envelope with the example's recipient, as a batch and a broadcast, round-trips."""
    wire = body()
    assert orjson.loads(hy.converter.dumps(hy.converter.loads(orjson.dumps(wire), model))) == wire


def test_push_options_leave_absent_fields_out() -> None:
    """Only the fields that are set go onto the wire."""
    options = hy.ChannelOptions(push=hy.PushOptions(ttl=30, title="Hi"))
    assert hy.converter.unstructure(options) == {"push": {"ttl": 30, "title": "Hi"}}


# --- rules ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", [Kind.BATCH, Kind.BROADCAST])
def test_the_example_passes_the_rules(kind: Kind) -> None:
    """The documented example (every push field set) has no problem as a batch or broadcast."""
    body = batch_body() if kind is Kind.BATCH else broadcast_body()
    assert check_request(body, kind) == []


@pytest.mark.parametrize(
    ("changes", "field", "reason"),
    [
        ({"ttl": 29}, "ttl", "between 30 and 86400, got 29"),
        ({"ttl": 86_401}, "ttl", "between 30 and 86400, got 86401"),
        ({"ttl": None}, "ttl", "is required"),
        ({"ttl": "60"}, "ttl", "must be an integer"),
        ({"title": None}, "title", "is required"),
        ({"title": "t" * 21}, "title", "at most 20 characters, got 21"),
        ({"title": ""}, "title", "must not be empty"),
        ({"text": None}, "text", "is required"),
        ({"text": "x" * 1001}, "text", "at most 1000 characters, got 1001"),
        ({"img": "https://e.com/" + "i" * 243}, "img", "at most 256 characters, got 257"),
        ({"img": "ftp://example.com/a.png"}, "img", "must start with one of http://, https://"),
        ({"caption": "c" * 31}, "caption", "at most 30 characters, got 31"),
        ({"action": "https://e.com/" + "a" * 243}, "action", "at most 256 characters, got 257"),
        ({"action": "example.com"}, "action", "must start with one of http://, https://"),
        ({"ctr": "yes"}, "ctr", "must be true or false"),
    ],
    ids=lambda v: str(v)[:30],
)
def test_a_bad_push_value_is_named(changes: dict[str, Any], field: str, reason: str) -> None:
    """Each documented push limit is checked, naming channel_options.push.<field>."""
    problems = check_envelope(push_wire(Kind.BROADCAST, **changes), Kind.BROADCAST)
    assert [p.field for p in problems] == [f"channel_options.push.{field}"]
    assert reason in problems[0].message


@pytest.mark.parametrize("ttl", [30, 86_400])
def test_the_push_ttl_bounds_are_accepted(ttl: int) -> None:
    """30 and 86400 seconds are the documented bounds, both allowed."""
    assert check_envelope(push_wire(Kind.BROADCAST, ttl=ttl), Kind.BROADCAST) == []


def test_a_batch_takes_the_push_text_from_each_message() -> None:
    """In a batch the push options need no text (it comes from the message), in a broadcast
    they do; a batch message text over the push limit of 1000 is named."""
    assert check_envelope(push_wire(Kind.BATCH, text=None), Kind.BATCH) == []
    body = push_wire(Kind.BATCH, text=None)
    body["messages"][0]["text"] = "x" * 1001
    assert [p.field for p in check_request(body, Kind.BATCH)] == ["messages[0].text"]


def test_a_broadcast_push_title_may_use_a_variable() -> None:
    """A %key% in the title is filled per recipient, and the recipient must carry it."""
    body = push_wire(Kind.BROADCAST, title="Hi %name%")
    problems = check_request(body, Kind.BROADCAST)
    assert [p.field for p in problems] == ["recipients[0].name"]
    body["recipients"][0]["name"] = "Ann"
    assert check_request(body, Kind.BROADCAST) == []


# --- emulator -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def http() -> Iterator[tuple[Any, httpx.Client]]:
    """A frozen-clock emulator on 127.0.0.1 where push is always delivered."""
    emulator = create_app(EmulatorConfig(time_scale=0, outcomes={"push": DELIVER}))
    with serving_emulator(emulator) as url, httpx.Client(base_url=url) as client:
        yield emulator, client


@pytest.mark.slow
@pytest.mark.parametrize("endpoint", ["batch", "broadcast", "batch/sync", "broadcast/sync"])
def test_the_emulator_accepts_the_example_over_a_socket(
    http: tuple[Any, httpx.Client], endpoint: str
) -> None:
    """The example's envelope is accepted on every mass endpoint; the emulator keeps the
    cascade order and the push options as sent."""
    emulator, client = http
    body = batch_body() if endpoint.startswith("batch") else broadcast_body()
    answer = client.post(f"{PREFIX}/{endpoint}", json=body, auth=AUTH)
    assert answer.status_code == 200, answer.text
    data = answer.json()
    job_id = data.get("job_id")
    message_id = (
        emulator.status(job_id)[0]["message_id"] if job_id else data["messages"][0]["message_id"]
    )
    message = emulator.message(message_id)
    assert message is not None
    assert message["channels"] == ["push", "viber", "sms"]
    assert message["content"]["push"]["title"] == "Title for Push"


@pytest.mark.slow
def test_the_emulator_refuses_a_bad_push_ttl_naming_it(http: tuple[Any, httpx.Client]) -> None:
    """A raw request with a push ttl of 86401 is answered 400 naming the field."""
    _, client = http
    body = push_wire(Kind.BROADCAST, ttl=86_401)
    answer = client.post(f"{PREFIX}/broadcast", json=body, auth=AUTH)
    assert answer.status_code == 400
    assert "channel_options.push.ttl" in answer.json()["error_text"]


@pytest.mark.slow
def test_a_delivered_push_is_final_in_the_status_report(http: tuple[Any, httpx.Client]) -> None:
    """After the clock passes, the message is delivered via push with the emulator's codes."""
    emulator, client = http
    job_id = client.post(f"{PREFIX}/broadcast", json=broadcast_body(), auth=AUTH).json()["job_id"]
    emulator.clock.advance(10**6)
    answer = client.get(f"{PREFIX}/status/{job_id}", auth=AUTH)
    (item,) = answer.json()["messages"]
    assert (item["status"], item["substatus"], item["hyber_status"]) == (2, 23, 23063)
    assert item["status_text"] == "Push delivered"
    assert item["delivered_sms_parts"] == 0
    assert hy.converter.loads(answer.content, hy.JobStatus).is_final


PUSH_SMS = hy.Campaign(
    channels=(hy.Channel.PUSH, hy.Channel.SMS),
    channel_options=hy.ChannelOptions(
        push=hy.PushOptions(ttl=60, title="Order"),
        sms=hy.SmsOptions(alpha_name="GMSU", ttl=300),
    ),
    callback_url="http://receiver.invalid/dr",
)


class Collector:
    """An ASGI app keeping every body POSTed to it, answering 200."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reports: list[dict[str, Any]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = await read_body(receive)
        with self.lock:
            self.reports.append(orjson.loads(body))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})


@pytest.mark.slow
@pytest.mark.anyio
@pytest.mark.parametrize(
    ("push", "sms", "expected"),
    [
        (DELIVER, FAIL, ("push", 2, 23063, None)),
        (FAIL, DELIVER, ("sms", 2, 23011, None)),
        (EXPIRE, DELIVER, ("sms", 2, 23011, None)),
        (FAIL, FAIL, ("sms", 3, 34011, 34011)),
    ],
    ids=["push-delivers", "push-fails", "push-expires", "all-fail"],
)
async def test_push_cascades_to_the_next_channel(
    push: ChannelOutcomes, sms: ChannelOutcomes, expected: tuple[Any, ...]
) -> None:
    """Push first over a socket: delivered there, or failed/expired on to SMS; the status
    report and the delivery report (example 19's shape) say how it ended."""
    collector = Collector()
    config = EmulatorConfig(
        time_scale=0,
        outcomes={"push": push, "sms": sms},
        callback_batch_size=1,
        callback_period=0.01,
    )
    emulator = create_app(config, callback_transport=httpx.ASGITransport(app=collector))
    async with emulated_client(emulator=emulator, socket=True) as emulated:
        messages = [hy.Message(380961111111, "Your order has shipped", "p-1")]
        job = await emulated.client.send_batch(PUSH_SMS, messages)
        emulated.emulator.clock.advance(10**6)
        (status,) = (await emulated.client.get_status(job.job_id)).messages
        with anyio.fail_after(10):
            while not collector.reports:  # noqa: ASYNC110 - filled from the server's thread
                await anyio.sleep(0.01)
    (body,) = collector.reports
    report = hy.converter.structure(body, hy.DeliveryReport)
    channel, code, hyber_status, error_code = expected
    assert (report.sent_via, report.status, report.hyber_status) == (channel, code, hyber_status)
    assert (status.hyber_status or status.error_code) == hyber_status
    assert status.error_code == error_code
    assert status.is_final
    assert ("total_sms_parts" in body) == (channel == "sms")


@pytest.mark.slow
@pytest.mark.anyio
async def test_a_failed_push_only_message_reports_its_code() -> None:
    """With push the only channel, a failure ends the cascade with the push codes."""
    config = EmulatorConfig(time_scale=0, outcomes={"push": FAIL})
    campaign = hy.Campaign(
        channels=(hy.Channel.PUSH,),
        channel_options=hy.ChannelOptions(push=hy.PushOptions(ttl=30, title="T", text="Hi")),
    )
    async with emulated_client(config, socket=True) as emulated:
        job = await emulated.client.send_broadcast(campaign, [hy.Recipient(380961111111)])
        emulated.emulator.clock.advance(10**6)
        (item,) = (await emulated.client.get_status(job.job_id)).messages
    assert (item.error_code, item.error_text) == (34063, "Push undelivered")


@pytest.mark.anyio
async def test_a_bad_push_campaign_is_refused_before_sending(emulated: EmulatedClient) -> None:
    """A push ttl of 29 raises a ValidationError naming the field; nothing reaches the server."""
    campaign = hy.Campaign(
        channels=(hy.Channel.PUSH,),
        channel_options=hy.ChannelOptions(push=hy.PushOptions(ttl=29, title="T", text="Hi")),
    )
    with pytest.raises(hy.ValidationError, match=r"channel_options\.push\.ttl"):
        await emulated.client.send_broadcast(campaign, [hy.Recipient(380961111111)])
    assert emulated.emulator.ledger.requests == 0
