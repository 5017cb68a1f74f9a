"""Bad inputs are refused before anything is sent, naming the item and the field of each problem."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any

import attrs
import pytest
import respx
from _support import ENDPOINT, JOB, MESSAGES, RECIPIENTS, batch_campaign, make_client

import hyber_async as hy
from hyber_async._models import Kind
from hyber_async._validation import check_envelope, check_request

pytestmark = pytest.mark.anyio

VIBER = hy.ViberOptions(ttl=60, text="Dear %name%!")
SMS = hy.SmsOptions(alpha_name="GMSU", ttl=300)
WHATSAPP = hy.WhatsAppOptions(ttl=604800, text="Hello")


def viber(**kwargs: Any) -> hy.Campaign:
    """A Viber-only campaign whose Viber options are changed by ``kwargs``."""
    options = hy.ChannelOptions(viber=attrs.evolve(VIBER, **kwargs))
    return hy.Campaign(channels=(hy.Channel.VIBER,), channel_options=options)


def sms(**kwargs: Any) -> hy.Campaign:
    """An SMS-only campaign whose SMS options are changed by ``kwargs``."""
    options = hy.ChannelOptions(sms=attrs.evolve(SMS, **kwargs))
    return hy.Campaign(channels=(hy.Channel.SMS,), channel_options=options)


def whatsapp(**kwargs: Any) -> hy.Campaign:
    """A WhatsApp-only campaign whose WhatsApp options are changed by ``kwargs``."""
    options = hy.ChannelOptions(whatsapp=attrs.evolve(WHATSAPP, **kwargs))
    return hy.Campaign(channels=(hy.Channel.WHATSAPP,), channel_options=options)


def with_message(index: int, message: Any, base: Sequence[Any] = MESSAGES) -> list[Any]:
    """The standard messages with ``message`` placed at ``index``."""
    items = list(base)
    items.insert(index, message)
    return items


@attrs.frozen
class Case:
    """One bad input: which method gets which campaign and items, and what the error names."""

    id: str
    method: str
    campaign: Callable[[], hy.Campaign]
    items: Callable[[], Sequence[Any]]
    field: str
    """The field path the message must name."""
    item: str | None = None
    """How the message must name the item (``item N (extra_id '...')``), if it is one."""


LONG_ID = "x" * 65

CASES = [
    # --- the campaign envelope ---
    Case("sms-alpha-name-missing", "send_batch", lambda: sms(alpha_name=None), lambda: MESSAGES,
         "channel_options.sms.alpha_name: is required"),
    Case("sms-alpha-name-empty", "send_batch", lambda: sms(alpha_name=""), lambda: MESSAGES,
         "channel_options.sms.alpha_name: must not be empty"),
    Case("sms-alpha-name-not-gsm7", "send_batch", lambda: sms(alpha_name="ГМС"),
         lambda: MESSAGES, "channel_options.sms.alpha_name: must use only the GSM-7"),
    Case("sms-alpha-name-extension-char", "send_batch", lambda: sms(alpha_name="GMS€"),
         lambda: MESSAGES, "channel_options.sms.alpha_name: must use only the GSM-7"),
    Case("sms-alpha-name-too-long", "send_batch", lambda: sms(alpha_name="ABCDEFGHIJKL"),
         lambda: MESSAGES, "channel_options.sms.alpha_name: must be at most 11"),
    Case("viber-ttl-39", "send_broadcast", lambda: viber(ttl=39), lambda: RECIPIENTS,
         "channel_options.viber.ttl: must be between 40 and 86400, got 39"),
    Case("viber-ttl-86401", "send_broadcast", lambda: viber(ttl=86401), lambda: RECIPIENTS,
         "channel_options.viber.ttl: must be between 40 and 86400, got 86401"),
    Case("sms-ttl-299", "send_batch", lambda: sms(ttl=299), lambda: MESSAGES,
         "channel_options.sms.ttl: must be between 300 and 259200"),
    Case("sms-ttl-259201", "send_batch", lambda: sms(ttl=259201), lambda: MESSAGES,
         "channel_options.sms.ttl: must be between 300 and 259200"),
    Case("whatsapp-ttl-0", "send_batch", lambda: whatsapp(ttl=0), lambda: MESSAGES,
         "channel_options.whatsapp.ttl: must be between"),
    Case("duplicate-channel", "send_batch",
         lambda: attrs.evolve(batch_campaign(), channels=("viber", "sms", "viber")),
         lambda: MESSAGES, "channels[2]: channel 'viber' is listed twice"),
    Case("channel-without-options", "send_batch",
         lambda: batch_campaign(channel_options=hy.ChannelOptions(viber=VIBER)),
         lambda: MESSAGES, "channel_options.sms: is required"),
    Case("viber-bad-device", "send_broadcast", lambda: viber(device="tablet"),
         lambda: RECIPIENTS, "channel_options.viber.device: must be one of all, phone"),
    Case("viber-caption-31", "send_broadcast", lambda: viber(caption="c" * 31),
         lambda: RECIPIENTS, "channel_options.viber.caption: must be at most 30"),
    Case("viber-action-scheme", "send_broadcast", lambda: viber(action="ftp://example.com"),
         lambda: RECIPIENTS, "channel_options.viber.action: must start with one of"),
    Case("viber-img-scheme", "send_broadcast", lambda: viber(img="file:///etc/img.png"),
         lambda: RECIPIENTS, "channel_options.viber.img: must start with one of"),
    Case("viber-file-extension", "send_broadcast", lambda: viber(file_name="report.exe"),
         lambda: RECIPIENTS, "channel_options.viber.file_name: must end in a supported"),
    Case("viber-file-name-26", "send_broadcast", lambda: viber(file_name="f" * 22 + ".pdf"),
         lambda: RECIPIENTS, "channel_options.viber.file_name: must be at most 25"),
    Case("viber-broadcast-without-content", "send_broadcast", lambda: viber(text=None),
         lambda: [hy.Recipient(380961111111)], "channel_options.viber.text: a broadcast Viber"),
    Case("whatsapp-latitude-91", "send_batch", lambda: whatsapp(latitude="91"),
         lambda: MESSAGES, "channel_options.whatsapp.latitude: must be between -90 and 90"),
    Case("whatsapp-longitude-text", "send_batch", lambda: whatsapp(longitude="east"),
         lambda: MESSAGES, "channel_options.whatsapp.longitude: must be a decimal number"),
    Case("callback-url-257", "send_batch",
         lambda: batch_campaign(callback_url="https://example.com/" + "a" * 237),
         lambda: MESSAGES, "callback_url: must be at most 256 characters, got 257"),
    Case("callback-url-scheme", "send_batch",
         lambda: batch_campaign(callback_url="example.com/dr"),
         lambda: MESSAGES, "callback_url: must start with one of"),
    Case("tag-65", "send_batch", lambda: batch_campaign(tag="t" * 65), lambda: MESSAGES,
         "tag: must be at most 64 characters, got 65"),
    Case("division-code-101", "send_batch", lambda: batch_campaign(division_code="d" * 101),
         lambda: MESSAGES, "division_code: must be at most 100 characters, got 101"),
    Case("start-time-naive", "send_batch",
         lambda: batch_campaign(start_time=datetime(2030, 1, 1, 10, 0)),
         lambda: MESSAGES, "start_time: a naive datetime"),
    Case("start-time-iso-t", "send_batch",
         lambda: batch_campaign(start_time="2030-01-01T10:00:00+02:00"),
         lambda: MESSAGES, "start_time: '2030-01-01T10:00:00+02:00' is not of the form"),
    Case("start-time-month-13", "send_batch",
         lambda: batch_campaign(start_time="2030-13-01 10:00:00+02:00"),
         lambda: MESSAGES, "start_time: '2030-13-01 10:00:00+02:00' is not a valid date"),
    # --- the items ---
    Case("phone-5-digits", "send_batch", batch_campaign,
         lambda: with_message(1, hy.Message(12345, "Hi", "M-5")),
         "messages[1].phone_number: must have 7 to 15 digits", "item 1 (extra_id 'M-5')"),
    Case("phone-16-digits", "send_broadcast", viber,
         lambda: with_message(0, hy.Recipient(10**15, "R-16", {"name": "A"}), RECIPIENTS),
         "recipients[0].phone_number: must have 7 to 15 digits", "item 0 (extra_id 'R-16')"),
    Case("phone-non-digit-string", "send_batch", batch_campaign,
         lambda: with_message(2, {"phone_number": "abc", "text": "Hi", "extra_id": "M-abc"}),
         "messages[2].phone_number: must be a number", "item 2 (extra_id 'M-abc')"),
    Case("phone-missing", "send_batch", batch_campaign,
         lambda: with_message(1, {"text": "Hi"}), "messages[1].phone_number: is required",
         "item 1"),
    Case("extra-id-65", "send_batch", batch_campaign,
         lambda: with_message(1, hy.Message(380961111111, "Hi", LONG_ID)),
         "messages[1].extra_id: must have 1 to 64 characters, got 65",
         f"item 1 (extra_id '{LONG_ID}')"),
    Case("empty-text", "send_batch", batch_campaign,
         lambda: with_message(0, hy.Message(380961111111, "", "M-empty")),
         "messages[0].text: must not be empty", "item 0 (extra_id 'M-empty')"),
    Case("text-missing", "send_batch", batch_campaign,
         lambda: with_message(1, {"phone_number": 380961111111, "extra_id": "M-none"}),
         "messages[1].text: is required", "item 1 (extra_id 'M-none')"),
    Case("gsm7-text-766", "send_batch", batch_campaign,
         lambda: with_message(1, hy.Message(380961111111, "a" * 766, "M-766")),
         "messages[1].text: must be at most 765 characters", "item 1 (extra_id 'M-766')"),
    Case("gsm7-text-extension-chars", "send_batch", batch_campaign,
         lambda: with_message(1, hy.Message(380961111111, "a" * 760 + "{" * 5, "M-ext")),
         "messages[1].text: a GSM-7 SMS text may have at most 765", "item 1 (extra_id 'M-ext')"),
    Case("cyrillic-text-336", "send_batch", batch_campaign,
         lambda: with_message(1, hy.Message(380961111111, "ж" * 336, "M-cyr")),
         "messages[1].text: an SMS text outside GSM-7 may have at most 335",
         "item 1 (extra_id 'M-cyr')"),
    Case("viber-text-1001", "send_batch", viber,
         lambda: with_message(1, hy.Message(380961111111, "a" * 1001, "M-1001")),
         "messages[1].text: must be at most 1000 characters", "item 1 (extra_id 'M-1001')"),
    Case("placeholder-missing", "send_broadcast", viber,
         lambda: with_message(2, hy.Recipient(380963333333, "R-3"), RECIPIENTS),
         "recipients[2].name: missing value for %name% used in channel_options",
         "item 2 (extra_id 'R-3')"),
    Case("placeholder-in-file-name-missing", "send_broadcast",
         lambda: viber(file_name="%doc%", text=None),
         lambda: [hy.Recipient(380961111111, "R-1", {"name": "Ann"})],
         "recipients[0].doc: missing value for %doc%", "item 0 (extra_id 'R-1')"),
    Case("item-not-an-object", "send_batch", batch_campaign,
         lambda: with_message(1, "380961111111"), "messages[1]: must be an object", "item 1"),
    Case("50001-items", "send_batch", batch_campaign,
         lambda: [MESSAGES[0]] * 50_001, "messages: must hold 1 to 50000 items, got 50001"),
    Case("0-items", "send_broadcast", viber, list,
         "recipients: must hold 1 to 50000 items, got 0"),
]  # fmt: skip


@pytest.fixture
def api() -> Iterator[respx.MockRouter]:
    """Every endpoint mocked, so that a request that slipped through would be recorded."""
    with respx.mock(base_url=ENDPOINT, assert_all_called=False) as router:
        for path in ("/batch", "/batch/sync", "/broadcast", "/broadcast/sync"):
            router.post(path).respond(200, json=JOB)
        yield router


async def refused(
    api: respx.MockRouter, method: str, campaign: Any, items: Any
) -> hy.ValidationError:
    """Call ``method`` and return its ValidationError, after checking nothing was sent."""
    async with make_client() as client:
        with pytest.raises(hy.ValidationError) as caught:
            await getattr(client, method)(campaign, items)
    assert not api.calls
    return caught.value


def test_there_are_at_least_20_cases() -> None:
    """The table holds at least 20 distinct bad inputs."""
    assert len({case.id for case in CASES}) == len(CASES) >= 20


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
async def test_bad_input_is_refused_before_sending(api: respx.MockRouter, case: Case) -> None:
    """The error names the item (index, extra_id) and the field, and no request was made."""
    error = await refused(api, case.method, case.campaign(), case.items())
    message = str(error)
    assert case.field in message
    if case.item is not None:
        assert f"{case.item}: {case.field}" in message
    else:
        assert "item " not in message
    assert isinstance(error, ValueError)


@pytest.mark.parametrize("method", ["send_batch_sync", "send_broadcast_sync"])
async def test_sync_endpoints_validate_too(api: respx.MockRouter, method: str) -> None:
    """The sync endpoints refuse bad items before sending, like the async ones."""
    if method == "send_batch_sync":
        campaign, items = batch_campaign(), [hy.Message(12345, "Hi")]
    else:
        campaign, items = viber(), [hy.Recipient(12345, variables={"name": "A"})]
    error = await refused(api, method, campaign, items)
    assert "item 0: " in str(error)
    assert "phone_number" in str(error)


async def test_problems_name_index_and_extra_id(api: respx.MockRouter) -> None:
    """Each Problem carries the item index, its extra_id and the field path."""
    items = with_message(1, hy.Message(12345, "Hi", "M-5"))
    error = await refused(api, "send_batch", batch_campaign(), items)
    assert error.problems == (
        hy.Problem("messages[1].phone_number", "must have 7 to 15 digits, got 12345", 1, "M-5"),
    )


async def test_every_problem_is_listed(api: respx.MockRouter) -> None:
    """Several bad items, one with two problems, are all reported in one error."""
    items = [
        hy.Message(380961111111, "fine", "ok"),
        hy.Message(123, "", "two-problems"),
        {"phone_number": "abc", "text": "Hi"},
        hy.Message(380961111111, "Hi", LONG_ID),
    ]
    error = await refused(api, "send_batch", batch_campaign(), items)
    assert [(p.index, p.field) for p in error.problems] == [
        (1, "messages[1].phone_number"),
        (1, "messages[1].text"),
        (2, "messages[2].phone_number"),
        (3, "messages[3].extra_id"),
    ]
    assert str(error).startswith("4 problems in the input:")
    for problem in error.problems:
        assert str(problem) in str(error)


async def test_every_envelope_problem_is_listed(api: respx.MockRouter) -> None:
    """Several problems of the campaign envelope are all reported in one error."""
    campaign = attrs.evolve(sms(ttl=1, alpha_name="ГМС"), tag="t" * 65, callback_url="ftp://x")
    error = await refused(api, "send_batch", campaign, MESSAGES)
    assert {p.field for p in error.problems} == {
        "channel_options.sms.ttl",
        "channel_options.sms.alpha_name",
        "callback_url",
        "tag",
    }


async def test_long_problem_lists_are_summarised(api: respx.MockRouter) -> None:
    """The message lists the first 20 problems and counts the rest; .problems has them all."""
    items = [hy.Message(i, "Hi", f"M-{i}") for i in range(25)]
    error = await refused(api, "send_batch", batch_campaign(), items)
    assert len(error.problems) == 25
    assert "item 19 (extra_id 'M-19')" in str(error)
    assert "item 20 " not in str(error)
    assert str(error).endswith("... and 5 more")


async def test_valid_limits_are_accepted(api: respx.MockRouter) -> None:
    """Inputs exactly at the documented limits are sent."""
    campaign = batch_campaign(
        channel_options=hy.ChannelOptions(
            viber=hy.ViberOptions(ttl=86400, caption="c" * 30, file_name="f" * 20 + ".xlsx"),
            sms=hy.SmsOptions(alpha_name="ABCDEFGHIJK", ttl=259200),
        ),
        callback_url="https://example.com/" + "a" * 236,
        tag="t" * 64,
        division_code="d" * 100,
        start_time="2030-01-01 10:00:00",
    )
    items = [
        hy.Message(1234567, "a" * 765, "x" * 64),
        hy.Message(999999999999999, "ж" * 335),
        hy.Message(380961111111, "a" * 755 + "{" * 5),
    ]
    async with make_client() as client:
        await client.send_batch(campaign, items)
    assert api.calls.call_count == 1


def test_unknown_channel_in_a_raw_request() -> None:
    """An unknown channel in a raw wire dict is named by its position in channels."""
    wire = {
        "messages": [{"phone_number": 380961111111, "text": "Hi"}],
        "channels": ["viber", "telegram"],
        "channel_options": {"viber": {"ttl": 60}, "telegram": {}},
    }
    problems = check_request(wire, Kind.BATCH)
    assert [str(p) for p in problems] == [
        "channels[1]: unknown channel 'telegram' (known: viber, sms, whatsapp, push)"
    ]


def test_unknown_channel_in_a_campaign() -> None:
    """A Campaign cannot be built with an unknown channel."""
    with pytest.raises(ValueError, match="telegram"):
        hy.Campaign(channels=("telegram",), channel_options=hy.ChannelOptions())


def test_raw_request_counts_its_items() -> None:
    """check_request refuses an empty item list and more than 50,000 items."""
    wire: dict[str, Any] = {"channels": ["viber"], "channel_options": {"viber": {"ttl": 60}}}
    empty = check_request({**wire, "messages": []}, Kind.BATCH)
    too_many = check_request({**wire, "messages": [{}] * 50_001}, Kind.BATCH)
    assert [p.field for p in empty] == ["messages"]
    assert [p.field for p in too_many] == ["messages"]
    assert "50001" in str(too_many[0])


def test_a_too_long_sms_text_is_one_problem() -> None:
    """A broadcast SMS text over 765 characters is reported once, not by two rules."""
    wire = {
        "channels": ["sms"],
        "channel_options": {"sms": {"alpha_name": "GMSU", "ttl": 300, "text": "x" * 800}},
    }
    problems = check_envelope(wire, Kind.BROADCAST)
    assert [p.field for p in problems] == ["channel_options.sms.text"]
