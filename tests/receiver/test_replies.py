"""User replies (2-way, chapter 6): parsing every documented example, and UserReplyReceiver."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import orjson
import pytest
from _support import aiohttp_serving
from gms_docs import Block, block, of_kind

import hyber_async as hy
from hyber_async import ReportParseError, UserReply, converter, parse_user_replies
from hyber_async.emulator import create_app, running_server
from hyber_async.testing import emulated_client

SECRET = "r3pl13s-0123456789abcdef"

REPLIES = of_kind("user-reply")
"""Every JSON block of chapter6.rst; the 2-way parameters are those of chapter8.rst, "Description
of User reply parameters"."""
DOC_EXAMPLES: list[dict[str, Any]] = [reply.json() for reply in REPLIES]
"""The blocks as JSON, in file and line order."""

MEDIA_COMBINATIONS = [  # chapter6.rst:82-89, "User replies can be in the following combinations"
    {"text_from_subscriber": "hi"},
    {"image_url": "https://example.com/image.png"},
    {"video_url": "https://example.com/video.mp4"},
    {"audio_url": "https://example.com/audio.mp3"},
    {"doc_url": "https://example.com/file.docx", "text_from_subscriber": "see attached"},
    {"location": "50.450248718262,30.523889541626"},
]


@pytest.mark.parametrize("reply_block", [pytest.param(b, id=b.name) for b in REPLIES])
def test_every_documented_example_parses_and_round_trips(reply_block: Block) -> None:
    """Each example of chapter 6 decodes, keeps every field, and re-encodes to equal JSON."""
    example = reply_block.json()
    [reply] = parse_user_replies(orjson.dumps(example))
    assert converter.unstructure(reply) == example
    assert converter.structure(example, UserReply) == reply
    assert reply.phone_number == int(example["phone"].lstrip("+"))


@pytest.mark.parametrize("content", MEDIA_COMBINATIONS)
def test_every_documented_media_combination_parses(content: dict[str, str]) -> None:
    """Text, image, video, audio, document with text, location: each is kept as sent."""
    item = {"phone": "380951234567", "channel": "whatsapp", **content}
    [reply] = parse_user_replies(orjson.dumps(item))
    assert converter.unstructure(reply) == item


def test_phone_with_or_without_plus_or_as_a_number() -> None:
    """``+380…``, ``380…`` and the JSON number 380… all give the same phone_number."""
    body = b'[{"phone": "+380951234567"}, {"phone": "380951234567"}, {"phone": 380951234567}]'
    replies = parse_user_replies(body)
    assert [r.phone for r in replies] == ["+380951234567", "380951234567", "380951234567"]
    assert {r.phone_number for r in replies} == {380951234567}


def test_batch_of_examples_and_unknown_fields() -> None:
    """An array of every example parses in order; unknown fields are ignored."""
    items = [{**example, "novel": {"x": 1}} for example in DOC_EXAMPLES]
    replies = parse_user_replies(orjson.dumps(items))
    assert [r.channel for r in replies] == ["viber", "viber", "viber", "whatsapp"]


@pytest.mark.parametrize(
    ("body", "names"),
    [
        (b"{", "not JSON"),
        (b'{"time": "2016-12-07 20:55:09"}', "phone"),
        (b'{"phone": null}', "phone"),
        (b'{"phone": "++380"}', "phone"),
        (b'{"phone": "38095 1234567"}', "phone"),
        (b'{"phone": "\xd9\xa3\xd9\xa8"}', "phone"),
        (b'{"phone": "380951234567", "text_from_subscriber": 5.5}', "text_from_subscriber"),
        (b'[{"phone": "1"}, 3]', "user reply 1"),
    ],
)
def test_malformed_replies_raise_report_parse_error(body: bytes, names: str) -> None:
    """A malformed reply raises ReportParseError naming the item and the field."""
    with pytest.raises(ReportParseError, match=names):
        parse_user_replies(body)


# --- the receiver -----------------------------------------------------------------------------


class Recorder:
    """A handler recording the replies it gets."""

    def __init__(self) -> None:
        self.replies: list[UserReply] = []

    async def __call__(self, reply: UserReply) -> None:
        self.replies.append(reply)


@pytest.fixture
async def asgi() -> AsyncIterator[tuple[httpx.AsyncClient, Recorder, list[hy.InvalidItem]]]:
    """An httpx client talking to a UserReplyReceiver in process, its handler, its invalids."""
    recorder = Recorder()
    invalid: list[hy.InvalidItem] = []

    async def on_invalid(item: hy.InvalidItem) -> None:
        invalid.append(item)

    receiver = hy.UserReplyReceiver(recorder, secret=SECRET, on_invalid=on_invalid)
    transport = httpx.ASGITransport(app=receiver)
    async with httpx.AsyncClient(transport=transport, base_url="http://receiver") as client:
        yield client, recorder, invalid


@pytest.mark.anyio
async def test_receiver_hands_over_each_reply_once(
    asgi: tuple[httpx.AsyncClient, Recorder, list[hy.InvalidItem]],
) -> None:
    """Every documented example POSTed to /replies/<secret> reaches the handler, once."""
    client, recorder, _ = asgi
    for example in DOC_EXAMPLES:
        response = await client.post(f"/replies/{SECRET}", content=orjson.dumps(example))
        assert response.json() == {"replies": 1, "new": 1, "invalid": 0}
    body = orjson.dumps(DOC_EXAMPLES)
    again = await client.post(f"/replies/{SECRET}", content=body)
    assert again.json() == {"replies": 4, "new": 0, "invalid": 0}
    assert len(recorder.replies) == 4


@pytest.mark.anyio
async def test_receiver_reports_invalid_replies_and_takes_the_others(
    asgi: tuple[httpx.AsyncClient, Recorder, list[hy.InvalidItem]],
) -> None:
    """A reply without a phone goes to on_invalid; the valid one beside it is handled; 200."""
    client, recorder, invalid = asgi
    body = orjson.dumps([{"text_from_subscriber": "no phone"}, {"phone": "+1", "location": "1,2"}])
    response = await client.post(f"/replies/{SECRET}", content=body)
    assert response.json() == {"replies": 2, "new": 1, "invalid": 1}
    assert [r.location for r in recorder.replies] == ["1,2"]
    assert [(i.index, "phone" in i.reason) for i in invalid] == [(0, True)]


@pytest.mark.anyio
async def test_receiver_wants_the_secret_in_the_path(
    asgi: tuple[httpx.AsyncClient, Recorder, list[hy.InvalidItem]],
) -> None:
    """Hyber sends replies without authentication: only the path secret opens the door."""
    client, recorder, _ = asgi
    token = base64.b64encode(f"hyber:{SECRET}".encode()).decode()
    body = orjson.dumps(block("chapter6.rst", 41).json())
    basic = {"Authorization": f"Basic {token}"}
    with_basic = await client.post("/replies", content=body, headers=basic)
    without = await client.post("/replies/nope-0123456789abcdef", content=body)
    assert (with_basic.status_code, without.status_code) == (401, 401)
    assert "www-authenticate" not in without.headers
    assert recorder.replies == []


@pytest.mark.slow
@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_receiver_through_aiohttp() -> None:
    """Through a real aiohttp server on 127.0.0.1: the reply is handed over."""
    recorder = Recorder()
    receiver = hy.UserReplyReceiver(recorder, secret=SECRET)
    async with (
        aiohttp_serving("/replies/{secret}", receiver.aiohttp_handler) as base_url,
        httpx.AsyncClient() as client,
    ):
        url = f"{base_url}/replies/{SECRET}"
        response = await client.post(url, content=orjson.dumps(DOC_EXAMPLES))
    assert response.json() == {"replies": 4, "new": 4, "invalid": 0}
    assert [r.text_from_subscriber for r in recorder.replies][-1] == "Test reply"


# --- the emulator posts replies -----------------------------------------------------------------


def campaign(*channels: hy.Channel) -> hy.Campaign:
    """A batch campaign on ``channels``."""
    on = set(channels)
    options = hy.ChannelOptions(
        viber=hy.ViberOptions(ttl=300) if hy.Channel.VIBER in on else None,
        whatsapp=hy.WhatsAppOptions(ttl=300) if hy.Channel.WHATSAPP in on else None,
        sms=hy.SmsOptions(alpha_name="GMSU", ttl=300) if hy.Channel.SMS in on else None,
    )
    return hy.Campaign(channels=channels, channel_options=options)


def admin_client(emulator: Any) -> httpx.AsyncClient:
    """An httpx client to ``emulator``'s admin routes, in process."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=emulator), base_url="http://e")


async def wait_for_replies(recorder: Recorder, count: int) -> None:
    """Wait until ``recorder`` has ``count`` replies (failing after a generous 10 s)."""
    with anyio.fail_after(10):
        while len(recorder.replies) < count:  # noqa: ASYNC110 - posted by the emulator's task
            await anyio.sleep(0.01)


@pytest.mark.anyio
async def test_emulator_posts_replies_for_accepted_messages() -> None:
    """POST /_emulator/replies makes the emulator post a reply, shaped as the documented
    examples, that a UserReplyReceiver takes: Viber by message_id, WhatsApp by extra_id."""
    recorder = Recorder()
    receiver = hy.UserReplyReceiver(recorder, secret=SECRET)
    emulator = create_app(callback_transport=httpx.ASGITransport(app=receiver))
    url = f"http://receiver/replies/{SECRET}"
    async with (
        emulated_client(emulator=emulator) as emulated,
        admin_client(emulator) as admin,
    ):
        viber = await emulated.client.send_batch_sync(
            campaign(hy.Channel.VIBER, hy.Channel.SMS), [hy.Message(380951234567, "Hi", "v-1")]
        )
        await emulated.client.send_batch(
            campaign(hy.Channel.WHATSAPP), [hy.Message(380110000000, "Hi", "w-1")]
        )
        message_id = viber.messages[0].message_id
        answers = [
            await admin.post("/_emulator/replies", json={"url": url, "message_id": message_id}),
            await admin.post(
                "/_emulator/replies",
                json={"url": url, "extra_id": "w-1", "image_url": "https://example.com/i.png"},
            ),
        ]
        await wait_for_replies(recorder, 2)
        stats = emulator.callbacks.stats
    assert [a.status_code for a in answers] == [202, 202]
    by_channel = {r.channel: r for r in recorder.replies}
    assert by_channel["viber"] == UserReply(
        phone="+380951234567",
        time=by_channel["viber"].time,
        channel="viber",
        message_id=message_id,
        extra_id="v-1",
        text_to_subscriber="Hi",
        text_from_subscriber="Reply from the emulator",
    )
    whatsapp = by_channel["whatsapp"]
    assert (whatsapp.phone, whatsapp.image_url) == ("380110000000", "https://example.com/i.png")
    assert whatsapp.umid is not None
    assert (whatsapp.time or "").endswith("Z")
    assert converter.unstructure(whatsapp).keys() == {
        "channel",
        "phone",
        "time",
        "umid",
        "image_url",
    }
    assert (stats.replies, stats.replies_dropped) == (2, 0)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"url": "http://r/x", "message_id": "unknown"}, 404),
        ({"url": "http://r/x", "extra_id": "s-1"}, 400),  # SMS only: nobody can reply
        ({"url": "http://r/x", "extra_id": "v-1", "novel": "x"}, 400),
        ({"url": "http://r/x", "extra_id": "v-1", "text_from_subscriber": 5}, 400),
        ({"url": "ftp://r/x", "extra_id": "v-1"}, 400),
        ({"url": "http://r/x"}, 400),
    ],
)
async def test_emulator_reply_route_refuses_what_it_cannot_do(
    body: dict[str, Any], status: int
) -> None:
    """Unknown message 404; SMS-only message, unknown content, bad URL, no message 400."""
    emulator = create_app()
    async with (
        emulated_client(emulator=emulator) as emulated,
        admin_client(emulator) as admin,
    ):
        await emulated.client.send_batch(
            campaign(hy.Channel.SMS), [hy.Message(380951111111, "Hi", "s-1")]
        )
        await emulated.client.send_batch(
            campaign(hy.Channel.VIBER), [hy.Message(380952222222, "Hi", "v-1")]
        )
        response = await admin.post("/_emulator/replies", json=body)
    assert response.status_code == status
    assert emulator.callbacks.stats.replies == 0


@pytest.mark.slow
@pytest.mark.anyio
async def test_socket_emulator_posts_a_reply_to_a_socket_receiver() -> None:
    """Over real loopback sockets both ways: the emulator's reply reaches the receiver."""
    recorder = Recorder()
    receiver = hy.UserReplyReceiver(recorder, secret=SECRET)
    with running_server(receiver) as receiver_url:
        async with (
            emulated_client(socket=True) as emulated,
            httpx.AsyncClient(base_url=emulated.base_url) as admin,
        ):
            result = await emulated.client.send_batch_sync(
                campaign(hy.Channel.VIBER), [hy.Message(380951234567, "Hi", "v-1")]
            )
            url = f"{receiver_url}/replies/{SECRET}"
            body = {"url": url, "extra_id": "v-1", "text_from_subscriber": "yes"}
            response = await admin.post("/_emulator/replies", json=body)
            await wait_for_replies(recorder, 1)
    assert response.status_code == 202
    [reply] = recorder.replies
    assert (reply.message_id, reply.text_from_subscriber) == (result.messages[0].message_id, "yes")
