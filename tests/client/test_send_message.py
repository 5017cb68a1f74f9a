"""The single-message endpoint (chapter 2): ``HyberClient.send_message``, its models, and the
emulator's ``POST /{client_id}``."""

from __future__ import annotations

import uuid
from typing import Any

import anyio
import httpx
import orjson
import pytest
import respx
from _support import BASE_URL, CLIENT_ID, make_client
from gms_docs import Block, block, of_kind

import hyber_async as hy
from hyber_async import converter
from hyber_async.emulator import DEMO_ACCOUNT, ChannelOutcomes, Emulator, EmulatorConfig
from hyber_async.testing import emulated_client

pytestmark = pytest.mark.anyio

REQUESTS = of_kind("message-request")
CASES = [pytest.param(request, id=request.name) for request in REQUESTS]
"""Each documented request as a test case named after its file and line."""
API_HOST = f"https://api-v2-eu.hyber.im/{CLIENT_ID}"
ACCEPTED = {"message_id": "9f60ac8f-e721-5027-b838-e6fcb95fcd7a"}
CAMPAIGN = hy.Campaign(
    channels=(hy.Channel.VIBER, hy.Channel.SMS),
    channel_options=hy.ChannelOptions(
        viber=hy.ViberOptions(ttl=60, text="Text for Viber"),
        sms=hy.SmsOptions(alpha_name="GMSU", ttl=300, text="Text for SMS"),
    ),
)


def fresh(request: Block) -> dict[str, Any]:
    """The ``request`` block with a unique extra_id and no callback_url (no network)."""
    body: dict[str, Any] = request.json()
    body["extra_id"] = f"{body['extra_id']}-{uuid.uuid4().hex[:8]}"
    del body["callback_url"]
    return body


# --- the models -----------------------------------------------------------------------------


def test_a_request_reads_into_typed_models() -> None:
    """The Viber+SMS example: a Campaign with typed options, the phone number an int."""
    request = converter.loads(block("chapter2.rst", 83).text, hy.MessageRequest)
    assert (request.phone_number, request.extra_id) == (380961111111, "AD-6640-7006")
    assert request.campaign.channels == (hy.Channel.VIBER, hy.Channel.SMS)
    assert request.campaign.channel_options.sms == hy.SmsOptions(
        alpha_name="GMSU", ttl=300, text="Text for SMS", ctr=False
    )


# --- the client -----------------------------------------------------------------------------


@pytest.fixture
def api() -> Any:
    """The mocked single-message host of site "eu"."""
    with respx.mock(assert_all_called=False) as router:
        yield router


async def test_site_sends_to_the_documented_url_without_a_trailing_slash(api: Any) -> None:
    """POST https://api-v2-{site}.hyber.im/{client_id}, JSON body, the answer's message id."""
    route = api.post(API_HOST).respond(200, json=ACCEPTED)
    async with make_client(base_url=None, site="eu") as client:
        accepted = await client.send_message(CAMPAIGN, 380961111111, extra_id="AD-1")
    assert accepted == hy.MessageAccepted(ACCEPTED["message_id"])
    request = route.calls.last.request
    assert str(request.url) == API_HOST
    assert request.headers["content-type"] == "application/json"
    assert orjson.loads(request.content) == {
        "phone_number": 380961111111,
        "extra_id": "AD-1",
        "channels": ["viber", "sms"],
        "channel_options": {
            "viber": {"ttl": 60, "text": "Text for Viber"},
            "sms": {"alpha_name": "GMSU", "ttl": 300, "text": "Text for SMS"},
        },
    }


async def test_a_message_request_is_sent_as_published(api: Any) -> None:
    """A MessageRequest read from the documentation is posted as the same JSON."""
    published = block("chapter2.rst", 307)
    route = api.post(API_HOST).respond(200, json=ACCEPTED)
    async with make_client(base_url=None, site="eu") as client:
        await client.send_message(converter.loads(published.text, hy.MessageRequest))
    assert orjson.loads(route.calls.last.request.content) == published.json()


async def test_base_url_and_message_base_url_choose_the_host(api: Any) -> None:
    """base_url= alone: {base_url}/{client_id}; message_base_url= wins."""
    plain = api.post(f"{BASE_URL}/{CLIENT_ID}").respond(200, json=ACCEPTED)
    explicit = api.post(f"https://single.test/{CLIENT_ID}").respond(200, json=ACCEPTED)
    async with make_client() as client:
        await client.send_message(CAMPAIGN, 380961111111)
    async with make_client(message_base_url="https://single.test") as client:
        await client.send_message(CAMPAIGN, 380961111111)
    assert (plain.call_count, explicit.call_count) == (1, 1)


BAD = [
    ({"phone_number": 12345}, "phone_number"),
    ({"phone_number": "380961111111"}, "phone_number"),
    ({"extra_id": "x" * 65}, "extra_id"),
    (
        {"campaign": hy.Campaign(channels=(hy.Channel.SMS,), channel_options=hy.ChannelOptions())},
        "channel_options.sms",
    ),
    (
        {
            "campaign": hy.Campaign(
                channels=(hy.Channel.SMS,),
                channel_options=hy.ChannelOptions(sms=hy.SmsOptions(alpha_name="GMSU", ttl=300)),
            )
        },
        "channel_options.sms.text",
    ),
]


@pytest.mark.parametrize(("change", "field"), BAD, ids=[b[1] + str(i) for i, b in enumerate(BAD)])
async def test_bad_input_is_refused_before_sending(
    api: Any, change: dict[str, Any], field: str
) -> None:
    """A bad phone number, extra_id or campaign: ValidationError naming the field, no request."""
    route = api.route().respond(200, json=ACCEPTED)
    arguments: dict[str, Any] = {"campaign": CAMPAIGN, "phone_number": 380961111111}
    arguments.update(change)
    async with make_client() as client:
        with pytest.raises(hy.ValidationError) as caught:
            await client.send_message(**arguments)
    assert caught.value.problems[0].field == field
    assert route.call_count == 0


async def test_a_request_and_a_phone_number_together_are_a_type_error() -> None:
    """Pass a Campaign and phone_number, or one MessageRequest; a Campaign needs a number."""
    request = hy.MessageRequest(CAMPAIGN, 380961111111)
    async with make_client() as client:
        with pytest.raises(TypeError):
            await client.send_message(request, 380961111111)
        with pytest.raises(TypeError):
            await client.send_message(CAMPAIGN)


RETRIES = [
    ([httpx.Response(500, json={"error_code": 50001, "error_text": "x"})], hy.ServerError, 1),
    ([httpx.Response(503, json={"error_code": 50301, "error_text": "x"})], hy.ServerError, 1),
    ([httpx.ReadTimeout("slow")], hy.OutcomeUnknownError, 1),
    ([httpx.Response(200, text="<html>ok</html>")], hy.UnexpectedResponseError, 1),
    (
        [httpx.Response(429, headers={"retry-after": "0"}), httpx.Response(200, json=ACCEPTED)],
        None,
        2,
    ),
    ([httpx.ConnectError("refused"), httpx.Response(200, json=ACCEPTED)], None, 2),
]


@pytest.mark.parametrize(
    ("answers", "error", "calls"),
    RETRIES,
    ids=["500", "503", "read-timeout", "200-not-json", "429-then-ok", "connect-then-ok"],
)
async def test_resent_only_when_provably_not_processed(
    api: Any, answers: list[Any], error: type[Exception] | None, calls: int
) -> None:
    """As every POST: resent after a refusal (429) or a failed connect, never after a 5xx, a
    read timeout or an unreadable answer, which carry the extra_id for reconciliation."""
    route = api.post(f"{BASE_URL}/{CLIENT_ID}").mock(side_effect=answers)
    async with make_client() as client:
        if error is None:
            assert await client.send_message(CAMPAIGN, 380961111111, extra_id="AD-1")
        else:
            with pytest.raises(error) as caught:
                await client.send_message(CAMPAIGN, 380961111111, extra_id="AD-1")
            assert caught.value.extra_ids == ("AD-1",)  # type: ignore[attr-defined]
    assert route.call_count == calls


async def test_the_documented_error_answer_is_a_bad_request(api: Any) -> None:
    """{"error_code":36024,...} with 400: BadRequestError with the code and text, not resent."""
    error = block("chapter2.rst", 398).json()
    route = api.post(f"{BASE_URL}/{CLIENT_ID}").respond(400, json=error)
    async with make_client() as client:
        with pytest.raises(hy.BadRequestError) as caught:
            await client.send_message(CAMPAIGN, 380961111111)
    assert (caught.value.error_code, caught.value.error_text) == (36024, "Phone number incorrect")
    assert route.call_count == 1


# --- the emulator ---------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("request_block", CASES)
async def test_the_emulator_accepts_every_documented_request_over_a_socket(
    request_block: Block,
) -> None:
    """Posted as published over a socket: accepted once, recorded, found by its message_id."""
    body = fresh(request_block)
    async with emulated_client(EmulatorConfig(time_scale=0), socket=True) as env:
        auth = httpx.BasicAuth(DEMO_ACCOUNT.login, DEMO_ACCOUNT.password)
        async with httpx.AsyncClient(base_url=env.base_url, auth=auth) as http:
            answer = await http.post(f"/{DEMO_ACCOUNT.client_id}", json=body)
        assert answer.status_code == 200, answer.text
        accepted = converter.loads(answer.content, hy.MessageAccepted)
        report = await env.client.get_delivery_report(message_id=accepted.message_id)
    assert env.emulator.ledger.count(body["extra_id"]) == 1
    assert (env.emulator.ledger.accepted, env.emulator.ledger.accepted_requests) == (1, 1)
    assert report is not None
    assert (report.extra_id, report.phone_number) == (body["extra_id"], "380961111111")


@pytest.mark.slow
@pytest.mark.parametrize("request_block", CASES)
async def test_send_message_sends_every_documented_request_to_the_emulator(
    request_block: Block,
) -> None:
    """Through the client's models over a socket: the emulator stores the very options
    published (nothing dropped on the way) and answers its message_id."""
    body = fresh(request_block)
    request = converter.loads(orjson.dumps(body), hy.MessageRequest)
    async with emulated_client(EmulatorConfig(time_scale=0), socket=True) as env:
        accepted = await env.client.send_message(request)
    stored = env.emulator.message(accepted.message_id)
    assert stored is not None
    assert stored["content"] == body["channel_options"]
    assert env.emulator.ledger.counts() == {body["extra_id"]: 1}


async def test_a_single_message_cascades_reports_and_calls_back() -> None:
    """Viber expires, SMS delivers: the lookups follow the cascade, and the delivery report
    is posted to the message's callback_url like any other."""
    posted: list[Any] = []
    called_back = anyio.Event()

    def receive(request: httpx.Request) -> httpx.Response:
        posted.append((str(request.url), orjson.loads(request.content)))
        called_back.set()
        return httpx.Response(200)

    config = EmulatorConfig(
        time_scale=0,
        callback_batch_size=1,
        outcomes={
            "viber": ChannelOutcomes(deliver=0.0, fail=0.0),
            "sms": ChannelOutcomes(deliver=1.0, fail=0.0, deliver_after=5.0),
        },
    )
    emulator = Emulator(config, callback_transport=httpx.MockTransport(receive))
    campaign = hy.Campaign(
        channels=CAMPAIGN.channels,
        channel_options=CAMPAIGN.channel_options,
        callback_url="https://receiver.invalid/dr",
    )
    async with emulated_client(emulator=emulator) as env:
        accepted = await env.client.send_message(campaign, 380961111111, extra_id="S-1")
        before = await env.client.get_delivery_report(extra_id="S-1")
        env.emulator.clock.advance(60 + 5)
        after = await env.client.get_delivery_report(extra_id="S-1", detail="advanced")
        with anyio.fail_after(10):
            await called_back.wait()
    assert before is not None
    assert before.status == hy.Status.NOT_FINAL
    assert after is not None
    assert [(r.last_partner, r.status) for r in after.reports] == [("viber", 3), ("sms", 2)]
    assert after.delivered_via == "sms"
    assert posted == [
        (
            "https://receiver.invalid/dr",
            {
                "number": 380961111111,
                "time": after.reports[-1].time,
                "status": 2,
                "substatus": 23,
                "hyber_status": 23011,
                "message_id": accepted.message_id,
                "extra_id": "S-1",
                "sent_via": "sms",
                "total_sms_parts": 1,
                "delivered_sms_parts": 1,
            },
        )
    ]


async def test_the_emulator_answers_a_bad_phone_number_as_documented() -> None:
    """A bad phone number: 400 with error_code 36024 (chapter 2's error answer); nothing kept."""
    body = fresh(block("chapter2.rst", 307))
    body["phone_number"] = 12345
    emulator = Emulator(EmulatorConfig(time_scale=0))
    auth = httpx.BasicAuth(DEMO_ACCOUNT.login, DEMO_ACCOUNT.password)
    transport = httpx.ASGITransport(app=emulator)
    async with httpx.AsyncClient(transport=transport, base_url="http://e", auth=auth) as http:
        answer = await http.post(f"/{DEMO_ACCOUNT.client_id}", json=body)
        bad_channel = await http.post(
            f"/{DEMO_ACCOUNT.client_id}",
            json={**body, "phone_number": 380961111111, "channels": ["fax"]},
        )
        not_json = await http.post(
            f"/{DEMO_ACCOUNT.client_id}",
            content=b"{",
            headers={"content-type": "application/json"},
        )
        get = await http.get(f"/{DEMO_ACCOUNT.client_id}")
    assert answer.status_code == 400
    assert answer.json()["error_code"] == 36024
    assert "phone_number" in answer.json()["error_text"]
    assert (bad_channel.status_code, bad_channel.json()["error_code"]) == (400, 40002)
    assert (not_json.status_code, not_json.json()["error_code"]) == (400, 40001)
    assert (get.status_code, get.headers["allow"]) == (405, "POST")
    assert emulator.ledger.accepted == 0


@pytest.mark.slow
async def test_a_5xx_after_accepting_is_not_resent_and_the_message_is_found() -> None:
    """The emulator accepts, then answers 500: the client raises (OutcomeUnknownError with the
    extra_id), sends nothing again, and the lookup finds the one message."""
    async with emulated_client(socket=True) as env:
        env.emulator.faults.update({"errors": 1, "error_after_accept": True})
        with pytest.raises(hy.OutcomeUnknownError) as caught:
            await env.client.send_message(CAMPAIGN, 380961111111, extra_id="S-9")
        found = await env.client.get_delivery_report(extra_id="S-9")
    assert caught.value.extra_ids == ("S-9",)
    assert found is not None
    assert env.emulator.ledger.counts() == {"S-9": 1}


async def test_a_percent_word_in_a_single_message_is_checked_as_written(api: Any) -> None:
    """No variables fill a single message: a too-long text holding %name% is refused before
    sending (a broadcast would check it per recipient), and a short one is sent as written."""
    route = api.post(f"{BASE_URL}/{CLIENT_ID}").respond(200, json=ACCEPTED)
    long_text = hy.Campaign(
        channels=(hy.Channel.VIBER,),
        channel_options=hy.ChannelOptions(viber=hy.ViberOptions(ttl=60, text="%name% " * 200)),
    )
    short_text = hy.Campaign(
        channels=(hy.Channel.VIBER,),
        channel_options=hy.ChannelOptions(viber=hy.ViberOptions(ttl=60, text="Save 50%today%")),
    )
    async with make_client() as client:
        with pytest.raises(hy.ValidationError) as caught:
            await client.send_message(long_text, 380961111111)
        await client.send_message(short_text, 380961111111)
    assert caught.value.problems[0].field == "channel_options.viber.text"
    assert route.call_count == 1
    sent = orjson.loads(route.calls.last.request.content)
    assert sent["channel_options"]["viber"]["text"] == "Save 50%today%"
