"""Viber video options, the placeholder grammar, filled values checked per recipient, and
recipient values that JSON cannot carry (issue 10 items 3-5, issue 11 item 3)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import attrs
import orjson
import pytest

import hyber_async as hy
from hyber_async import _sender
from hyber_async._codec import converter
from hyber_async._validation import (
    Kind,
    _all_valid,
    check_envelope,
    check_items,
    check_request,
    item_rules,
    placeholders_in,
    render,
)
from hyber_async.cli._sources import SourceError, load_campaign
from hyber_async.testing import EmulatedClient

# --- Viber video (chapter 3) ------------------------------------------------------------------

VIDEO = {
    "ttl": 60,
    "device": "phone",
    "thumbnail": "https://example.com/image.png",
    "action": "https://example.com/file_example_MP4_640_3MG.mp4",
    "file_size": 3,
    "duration": 60,
    "ctr": False,
}
"""The Viber options of "Video only" (gms-docs/chapter3.rst line 594, broadcast)."""
RECIPIENTS = [
    {"phone_number": 380961111111, "extra_id": "AD-6640-7006", "name": "Michael"},
    {"phone_number": 380962222222, "extra_id": "AD-6640-7007", "name": "Zoya"},
]
ENVELOPE = {
    "callback_url": "https://send-dr-here.com",
    "start_time": "2020-12-12 10:10:10+03:00",
    "tag": "Campaign name",
    "division_code": "Division code",
    "channels": ["viber"],
}
VIDEO_EXAMPLES = {
    "broadcast video only (chapter3.rst:568)": {"recipients": RECIPIENTS, "viber": VIDEO},
    "broadcast video & text (chapter3.rst:606)": {
        "recipients": RECIPIENTS,
        "viber": {**VIDEO, "text": "Text for Viber"},
    },
    "broadcast video, text & button (chapter3.rst:645)": {
        "recipients": RECIPIENTS,
        "viber": {**VIDEO, "caption": "Click the button", "text": "Text for Viber"},
    },
    "batch video & text (chapter3.rst:192)": {
        "messages": [{"phone_number": 380961111111, "text": "Text for all channels"}],
        "viber": VIDEO,
    },
}


def _request(example: dict[str, Any]) -> dict[str, Any]:
    items = {k: v for k, v in example.items() if k != "viber"}
    return {**items, **ENVELOPE, "channel_options": {"viber": example["viber"]}}


@pytest.mark.parametrize("example", VIDEO_EXAMPLES.values(), ids=VIDEO_EXAMPLES.keys())
def test_documented_video_examples_pass_and_round_trip(example: dict[str, Any]) -> None:
    """The documented video requests pass the rule set and keep thumbnail, file_size and
    duration through the models (they were dropped, and "Video only" was refused)."""
    wire = _request(example)
    kind = Kind.BROADCAST if "recipients" in wire else Kind.BATCH
    model = hy.BroadcastRequest if kind is Kind.BROADCAST else hy.BatchRequest
    assert check_request(wire, kind) == []
    request = converter.loads(orjson.dumps(wire), model)
    assert orjson.loads(converter.dumps(request)) == wire


@pytest.mark.anyio
async def test_video_only_broadcast_is_accepted_by_the_emulator(emulated: EmulatedClient) -> None:
    """The client sends the documented "Video only" broadcast and the emulator accepts it."""
    campaign = converter.structure(_request({"viber": VIDEO}), hy.Campaign)
    answer = await emulated.client.send_broadcast_sync(campaign, RECIPIENTS)
    content = emulated.emulator.message(answer.messages[0].message_id or "")
    assert [m.accepted for m in answer.messages] == [True, True]
    assert content is not None
    assert content["content"]["viber"]["thumbnail"] == VIDEO["thumbnail"]


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"file_size": 0}, "file_size", "between 1 and 200"),
        ({"file_size": 201}, "file_size", "between 1 and 200"),
        ({"file_size": "3"}, "file_size", "must be an integer"),
        ({"duration": 601}, "duration", "between 1 and 600"),
        ({"thumbnail": "ftp://example.com/a.png"}, "thumbnail", "must start with"),
        ({"thumbnail": "https://x/" + "a" * 250}, "thumbnail", "at most 256"),
        ({"action": None}, "action", "is required for a video"),
        ({"duration": None}, "duration", "is required for a video"),
    ],
)
def test_video_option_rules(change: dict[str, Any], field: str, message: str) -> None:
    """Each video option has its rule, and a video gives all four of its keys."""
    viber = {k: v for k, v in {**VIDEO, **change}.items() if v is not None}
    wire = {"channels": ["viber"], "channel_options": {"viber": viber}}
    problems = check_envelope(wire, Kind.BROADCAST)
    assert [p.field for p in problems] == [f"channel_options.viber.{field}"]
    assert message in problems[0].message


def test_campaign_file_with_an_unknown_option_names_it(tmp_path: Path) -> None:
    """A campaign file's misspelt option is an error naming it, never dropped silently."""
    path = tmp_path / "campaign.json"
    options = {**VIDEO, "thumbnial": "https://example.com/image.png"}
    path.write_bytes(orjson.dumps({"channels": ["viber"], "channel_options": {"viber": options}}))
    with pytest.raises(SourceError, match=r"channel_options\.viber\.thumbnial"):
        load_campaign(str(path), Kind.BROADCAST)


def test_campaign_file_keeps_the_video_options(tmp_path: Path) -> None:
    """A campaign file's video options reach the model."""
    path = tmp_path / "campaign.json"
    path.write_bytes(orjson.dumps({"channels": ["viber"], "channel_options": {"viber": VIDEO}}))
    viber = load_campaign(str(path), Kind.BROADCAST).channel_options.viber
    assert viber is not None
    assert (viber.thumbnail, viber.file_size, viber.duration) == (
        "https://example.com/image.png",
        3,
        60,
    )


# --- the placeholder grammar ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "names"),
    [
        ("Dear %greeting% %name%!", {"greeting", "name"}),
        ("%greeting%%name%", {"greeting", "name"}),
        ("%first_name% %ім'я% %імя%", {"first_name", "імя"}),
        ("%url%", {"url"}),
        ("https://example.com/My%20File%20v2.pdf", set()),
        ("https://example.com/%D0%9F%D1%80%D0%B8%D0%B2%D0%B5%D1%82", set()),
        ("https://example.com/caf%C3%A9t%C3%A9?q=%E2%80%99", set()),
        ("https://example.com/a%2Fabc%3Fq", set()),
        ("%ab% and %9lives% and 100% sure, 50%", set()),
        ("https://example.com/%name%/My%20File.pdf", {"name"}),
    ],
)
def test_placeholder_grammar(value: str, names: set[str]) -> None:
    """A placeholder is %name% (letters, digits, _; not starting with a digit); a
    percent-encoded byte is never one."""
    assert placeholders_in(value) == names


def test_percent_encoded_action_url_leaves_every_recipient_valid() -> None:
    """An action URL with %20 no longer makes every recipient invalid."""
    wire = {
        "channels": ["viber"],
        "channel_options": {
            "viber": {"ttl": 60, "text": "Hi %name%", "caption": "Open", "action": _URL_20}
        },
        "recipients": RECIPIENTS,
    }
    assert check_request(wire, Kind.BROADCAST) == []


_URL_20 = "https://example.com/My%20File%20v2.pdf"


@pytest.mark.anyio
async def test_literal_percent_word_is_sent_as_a_value(emulated: EmulatedClient) -> None:
    """The documented way to send a literal %word%: put it in a variable's value (values
    are never read for placeholders); the emulator renders it as given."""
    campaign = hy.Campaign(
        channels=(hy.Channel.VIBER,),
        channel_options=hy.ChannelOptions(viber=hy.ViberOptions(ttl=60, text="Use %code% now")),
    )
    recipient = hy.Recipient(380961111111, variables={"code": "%word%"})
    assert render("Use %code% now", {"code": "%word%"}) == "Use %word% now"
    answer = await emulated.client.send_broadcast_sync(campaign, [recipient])
    content = emulated.emulator.message(answer.messages[0].message_id or "")
    assert content is not None
    assert content["content"]["viber"]["text"] == "Use %word% now"


# --- filled values are checked per recipient --------------------------------------------------


def _broadcast(**options: Any) -> dict[str, Any]:
    channels = list(options)
    return {"channels": channels, "channel_options": options}


SMS = {"alpha_name": "GMSU", "ttl": 300}
LONG_SMS = _broadcast(sms={**SMS, "text": "Hi %name%"})
LONG_CAPTION = _broadcast(
    viber={"ttl": 60, "text": "Hi", "caption": "For %name%", "action": "https://e.com"}
)
IMG = _broadcast(viber={"ttl": 60, "img": "%url%"})
FILE = _broadcast(viber={"ttl": 60, "file_name": "%name%", "action": "%url%"})


@pytest.mark.parametrize(
    ("wire", "bad", "field", "message"),
    [
        (LONG_SMS, {"name": "a" * 5000}, "name", "sms.text filled for this recipient must be"),
        (LONG_SMS, {"name": "ж" * 400}, "name", "outside GSM-7 may have at most 335"),
        (LONG_SMS, {"name": "{" * 500}, "name", "GSM-7 SMS text may have at most 765"),
        (LONG_CAPTION, {"name": "b" * 103}, "name", "viber.caption filled for this recipient"),
        (IMG, {"url": "ftp://example.com/a.png"}, "url", "must start with one of"),
        (FILE, {"name": "a.exe", "url": "https://e.com"}, "name", "supported extension"),
        (_broadcast(sms={**SMS, "text": "%name%"}), {"name": ""}, "name", "must not be empty"),
    ],
    ids=["sms-5000", "sms-unicode", "sms-extension", "caption-107", "img-ftp", "file", "empty"],
)
def test_filled_value_is_checked_per_recipient(
    wire: dict[str, Any], bad: dict[str, Any], field: str, message: str
) -> None:
    """A recipient whose values make an option invalid is named, and only that one."""
    good = {"name": "Ann.pdf", "url": "https://example.com/a.pdf"}
    items = [{"phone_number": 380500000000 + i, **(bad if i == 2 else good)} for i in range(5)]
    assert check_envelope(wire, Kind.BROADCAST) == []
    problems = check_items(items, item_rules(wire, Kind.BROADCAST))
    assert [(p.index, p.field) for p in problems] == [(2, f"recipients[2].{field}")]
    assert message in problems[0].message


@pytest.mark.parametrize(
    ("viber", "message"),
    [
        ({"img": "ftp://%name%"}, "must start with one of"),
        ({"text": "hi", "caption": "%name%" + "x" * 31}, "at most 30 characters"),
    ],
    ids=["img-ftp", "caption-literal-too-long"],
)
def test_template_no_recipient_can_fix_is_refused_up_front(
    viber: dict[str, Any], message: str
) -> None:
    """A string that no recipient's values can make valid is an envelope error."""
    problems = check_envelope(_broadcast(viber={"ttl": 60, **viber}), Kind.BROADCAST)
    assert len(problems) == 1
    assert message in problems[0].message


@pytest.mark.parametrize(
    "wire",
    [LONG_SMS, LONG_CAPTION, IMG, FILE, _broadcast(viber={"ttl": 60, "text": "Hi %name%"})],
    ids=["sms", "caption", "img", "file", "viber-text"],
)
def test_valid_chunk_stays_on_the_c_level_path(wire: dict[str, Any]) -> None:
    """A chunk of valid recipients is cleared by the whole-chunk passes, not item by item."""
    items = [
        {"phone_number": 380500000000 + i, "name": f"n{i}.pdf", "url": f"https://e.com/{i}"}
        for i in range(1000)
    ]
    assert _all_valid(items, item_rules(wire, Kind.BROADCAST))


@pytest.mark.anyio
async def test_one_bad_recipient_is_not_sent_and_its_chunk_goes(emulated: EmulatedClient) -> None:
    """A 5,000-character SMS for one recipient: that one NOT_SENT with a reason, the rest of
    its chunk accepted."""
    campaign = converter.structure(LONG_SMS, hy.Campaign)
    items = [{"phone_number": 380500000000 + i, "name": "Ann"} for i in range(10)]
    items[3]["name"] = "a" * 5000
    report = await emulated.client.stream_broadcast(campaign, items, chunk_size=5)
    assert report.accepted == 9
    [failure] = report.failures()
    assert (failure.index, failure.outcome) == (3, hy.Outcome.NOT_SENT)
    assert "recipients[3].name" in (failure.reason or "")
    assert emulated.emulator.ledger.accepted == 9


# --- values JSON cannot carry (issue 11.3) ----------------------------------------------------

UNSENDABLE = {
    "2**70": ({"name": 2**70}, "name", "beyond 64 bits"),
    "set": ({"name": {"a"}}, "name", "got set"),
    "bytes": ({"name": b"x"}, "name", "got bytes"),
    "none": ({"name": None}, "name", "got null"),
    "non-string key": ({1: "x"}, "1", "a key must be a string"),
    "nan": ({"name": math.nan}, "name", "finite number"),
    "inf": ({"name": -math.inf}, "name", "finite number"),
}


@pytest.mark.parametrize(("extra", "field", "message"), UNSENDABLE.values(), ids=UNSENDABLE.keys())
@pytest.mark.anyio
async def test_unsendable_value_is_not_sent_and_named(
    emulated: EmulatedClient, extra: dict[Any, Any], field: str, message: str
) -> None:
    """A value JSON cannot carry (or would carry as null) is NOT_SENT naming the item and
    field; the other chunks are sent and every recipient has one outcome."""
    campaign = converter.structure(_broadcast(viber={"ttl": 60, "text": "Hi %name%"}), hy.Campaign)
    items: list[dict[Any, Any]] = [
        {"phone_number": 380500000000 + i, "name": "Ann"} for i in range(9)
    ]
    items[7] = {"phone_number": 380500000007, "name": "Ann", **extra}
    report = await emulated.client.stream_broadcast(campaign, items, chunk_size=3)
    assert report.accepted == 8
    [failure] = report.failures()
    assert (failure.index, failure.outcome) == (7, hy.Outcome.NOT_SENT)
    assert f"recipients[7].{field}" in (failure.reason or "")
    assert message in (failure.reason or "")
    assert sum(report.counts.values()) == 9
    assert emulated.emulator.ledger.accepted == 8


@pytest.mark.parametrize("bad", [math.nan, 2**70], ids=["nan", "2**70"])
@pytest.mark.anyio
async def test_unsendable_value_aborts_with_on_invalid_abort(
    emulated: EmulatedClient, bad: Any
) -> None:
    """With on_invalid="abort" the send stops at the item, nothing of its chunk sent."""
    campaign = converter.structure(_broadcast(viber={"ttl": 60, "text": "Hi %name%"}), hy.Campaign)
    items = [{"phone_number": 380500000000 + i, "name": "Ann"} for i in range(6)]
    items[4]["amount"] = bad
    report = await emulated.client.stream_broadcast(
        campaign, items, chunk_size=3, on_invalid="abort"
    )
    assert report.aborted is not None
    assert "recipients[4].amount" in report.aborted
    assert report.accepted == 3
    assert sum(report.counts.values()) == 6


def test_batch_item_with_an_unsendable_extra_key_is_named() -> None:
    """A batch item's extra key is checked as a JSON scalar too."""
    wire = {"channels": ["sms"], "channel_options": {"sms": SMS}}
    items = [{"phone_number": 380500000000, "text": "Hi", "note": {1, 2}}]
    [problem] = check_items(items, item_rules(wire, Kind.BATCH))
    assert problem.field == "messages[0].note"


@pytest.mark.anyio
async def test_chunk_that_fails_to_encode_is_settled_not_sent(
    emulated: EmulatedClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Should encoding fail anyway (the rule set bypassed here), the chunk is NOT_SENT (it
    never left), never left PENDING, and the other chunks go."""
    monkeypatch.setattr(_sender, "check_items", lambda *args, **kwargs: [])
    campaign = converter.structure(_broadcast(viber={"ttl": 60, "text": "Hi %name%"}), hy.Campaign)
    items: list[dict[str, Any]] = [
        {"phone_number": 380500000000 + i, "name": "Ann"} for i in range(9)
    ]
    items[4]["name"] = {"a"}
    report = await emulated.client.stream_broadcast(campaign, items, chunk_size=3)
    assert report.accepted == 6
    assert report.counts[hy.Outcome.NOT_SENT] == 3
    assert {c.state for c in report.chunks} == {
        hy.ChunkState.ACCEPTED,
        hy.ChunkState.NOT_SENT,
    }
    assert "cannot be encoded as JSON" in (report.chunks[1].reason or "")
    assert [f.index for f in report.failures()] == [3, 4, 5]


@pytest.mark.anyio
async def test_single_request_with_a_nan_value_raises_naming_it(emulated: EmulatedClient) -> None:
    """send_broadcast refuses a NaN value before sending (it was sent as null)."""
    campaign = converter.structure(_broadcast(viber={"ttl": 60, "text": "Hi %name%"}), hy.Campaign)
    recipient = hy.Recipient(380961111111, variables={"name": "Ann", "score": math.nan})
    with pytest.raises(hy.ValidationError, match=r"recipients\[0\]\.score: must be a finite"):
        await emulated.client.send_broadcast(campaign, [recipient])
    assert emulated.emulator.ledger.accepted == 0


DOCUMENTED_OPTIONS = {
    # gms-docs/chapter8.rst "Viber channel parameters" (lines 60-101), "Main" ctr (line 40), and
    # the video keys of chapter3.rst ("Video Only", line 568)
    hy.ViberOptions: {
        "text", "ttl", "device", "alpha_name", "img", "caption", "action", "file_name", "ctr",
        "thumbnail", "file_size", "duration",
    },
    # chapter8.rst "SMS channel parameters" (lines 103-114)
    hy.SmsOptions: {"text", "ttl", "alpha_name", "ctr"},
    # chapter8.rst "WhatsApp channel parameters" (lines 116-152)
    hy.WhatsAppOptions: {
        "text", "ttl", "img", "img_name", "doc", "doc_name", "audio", "video", "video_name",
        "latitude", "longitude", "ctr",
    },
}  # fmt: skip


@pytest.mark.parametrize("model", DOCUMENTED_OPTIONS, ids=lambda m: m.__name__)
def test_every_documented_option_is_a_model_field(model: type) -> None:
    """Each option parameter the documentation lists for a channel is a field of its model."""
    assert set(attrs.fields_dict(model)) == DOCUMENTED_OPTIONS[model]


# --- the whole-chunk passes let no bad string column through ----------------------------------

COLUMN_FAULTS = {
    "empty extra_id": (Kind.BROADCAST, {"extra_id": ""}, "recipients[7].extra_id"),
    "65-char extra_id": (Kind.BROADCAST, {"extra_id": "x" * 65}, "recipients[7].extra_id"),
    "int extra_id": (Kind.BROADCAST, {"extra_id": 5}, "recipients[7].extra_id"),
    "empty text": (Kind.BATCH, {"text": ""}, "messages[7].text"),
    "long text": (Kind.BATCH, {"text": "x" * 766}, "messages[7].text"),
    "bytes text": (Kind.BATCH, {"text": b"x"}, "messages[7].text"),
    "long name": (Kind.BROADCAST, {"name": "x" * 5000}, "recipients[7].name"),
}


@pytest.mark.parametrize(("kind", "fault", "field"), COLUMN_FAULTS.values(), ids=COLUMN_FAULTS)
def test_one_bad_string_in_a_chunk_is_named(kind: Kind, fault: dict[str, Any], field: str) -> None:
    """A chunk of valid items with one bad extra_id, text or ``%key%`` value: the passes over
    each string column (its lengths as one set) send the chunk to the item-by-item check,
    which names that one item, whether the sender read the extra_ids already or not."""
    if kind is Kind.BATCH:
        wire: dict[str, Any] = {"channels": ["sms"], "channel_options": {"sms": SMS}}
        items = [
            {"phone_number": 380500000000 + i, "extra_id": f"m{i}", "text": "Hi"} for i in range(20)
        ]
    else:
        wire = LONG_SMS
        items = [
            {"phone_number": 380500000000 + i, "extra_id": f"r{i}", "name": "Ann"}
            for i in range(20)
        ]
    items[7] = {**items[7], **fault}
    rules = item_rules(wire, kind)
    for extra_ids in (None, [item["extra_id"] for item in items]):
        problems = check_items(items, rules, extra_ids=extra_ids)
        assert [(p.field, p.index) for p in problems] == [(field, 7)]
