"""The models and the one converter: every spec example round-trips, the wire policies hold."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest
from conftest import FIXTURES

import hyber_async as hy
from hyber_async import converter

EXAMPLES = sorted(FIXTURES.glob("*.json"))


def model_of(path: Path) -> Any:
    """The type that the example ``path`` is a body of (by its number in the spec)."""
    number = int(path.name[:2])
    if number <= 15:
        return hy.BatchRequest if "-batch-" in path.name else hy.BroadcastRequest
    return {
        16: hy.JobAccepted,
        17: hy.SyncResult,
        18: hy.JobStatus,
        19: hy.DeliveryReport,
        20: list[hy.DeliveryReport],
        21: hy.DeliveryReport,
    }[number]


def campaign(**kwargs: Any) -> hy.Campaign:
    """A minimal valid Viber campaign with ``kwargs`` set on the envelope."""
    options = hy.ChannelOptions(viber=hy.ViberOptions(ttl=60, text="Hi"))
    return hy.Campaign(channels=(hy.Channel.VIBER,), channel_options=options, **kwargs)


def test_there_are_21_examples() -> None:
    """All 21 JSON blocks of the specification are present as fixtures."""
    assert len(EXAMPLES) == 21


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name[:2])
def test_example_round_trips(path: Path) -> None:
    """Reading an example into its model and writing it back gives equal JSON."""
    data = path.read_bytes()
    obj = converter.loads(data, model_of(path))
    assert orjson.loads(converter.dumps(obj)) == orjson.loads(data)


def test_requests_are_typed_models() -> None:
    """A request example is read into typed models, not left as dicts."""
    request = converter.loads(
        (FIXTURES / "01-send-batch-viber-sms-messages-request.json").read_bytes(), hy.BatchRequest
    )
    assert request.campaign.channels == (hy.Channel.VIBER, hy.Channel.SMS)
    assert request.campaign.channel_options.sms == hy.SmsOptions(
        alpha_name="GMSU", ttl=300, ctr=False
    )
    assert request.messages[0] == hy.Message(
        380961111111, "Text for all channels, recipient #380961111111", "AD-6640-7006"
    )


def test_broadcast_variables_are_recipient_keys() -> None:
    """Keys of a broadcast recipient beyond phone_number and extra_id are its variables."""
    path = (
        FIXTURES
        / "15-send-broadcast-whatsapp-messages-request--non-template-session-message-request.json"
    )
    request = converter.loads(path.read_bytes(), hy.BroadcastRequest)
    assert request.recipients[0].variables == {"name": "Michael", "greeting": "Mr. "}


def test_recipient_variables_are_written_flat() -> None:
    """A recipient's variables go onto the wire as its own keys."""
    recipient = hy.Recipient(380961111111, "id-1", variables={"name": "Ann"})
    assert orjson.loads(converter.dumps(recipient)) == {
        "phone_number": 380961111111,
        "extra_id": "id-1",
        "name": "Ann",
    }


@pytest.mark.parametrize(
    ("data", "model", "unknown"),
    [
        (b'{"job_id": "j-1", "queued": 5}', hy.JobAccepted, b"queued"),
        (b'{"messages": [{"phone_number": "1", "cost": 1.5}], "page": 1}', hy.SyncResult, b"cost"),
        (b'{"messages": [{"status": 2, "new_field": {"a": 1}}]}', hy.JobStatus, b"new_field"),
        (b'{"number": 380961111111, "operator": "Kyivstar"}', hy.DeliveryReport, b"operator"),
    ],
    ids=["job", "sync", "status", "report"],
)
def test_unknown_fields_from_the_server_are_ignored(
    data: bytes, model: Any, unknown: bytes
) -> None:
    """A response with keys the models do not know is read without error, and they are dropped."""
    obj = converter.loads(data, model)
    assert isinstance(obj, model)
    assert unknown not in converter.dumps(obj)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"is_promotional": False}, "is_promotional"),
        ({"channel_options": {"viber": {"ttl": 60, "thumbnale": "x"}}}, "viber.thumbnale"),
        ({"channel_options": {"viber": {"ttl": 60, "ios_expirity_text": "x"}}}, "ios_expirity"),
    ],
    ids=["top-level", "misspelt-option", "legacy-option"],
)
def test_request_read_from_a_mapping_refuses_an_unknown_key(data: dict, field: str) -> None:
    """A campaign read from a mapping never drops a key silently: a key no model field takes
    (a misspelt option, a legacy field of third-party clients) is an error naming it."""
    wire = {
        "messages": [{"phone_number": 380961111111, "text": "Hi"}],
        "channels": ["viber"],
        "channel_options": {"viber": {"ttl": 60}},
        **data,
    }
    with pytest.raises(hy.ValidationError, match=field):
        converter.loads(orjson.dumps(wire), hy.BatchRequest)


def test_options_structured_directly_refuse_an_unknown_key() -> None:
    """Structuring a channel's options on their own refuses an unknown key too."""
    with pytest.raises(Exception, match="thumbnale"):
        converter.structure({"ttl": 60, "thumbnale": "x"}, hy.ViberOptions)


@pytest.mark.parametrize("phone", [b"380961111111", b'"380961111111"'], ids=["number", "string"])
def test_message_phone_number_read_from_number_or_string(phone: bytes) -> None:
    """A Message's phone_number is read from a JSON number or a string, as an int."""
    message = converter.loads(b'{"phone_number": ' + phone + b', "text": "Hi"}', hy.Message)
    assert message.phone_number == 380961111111


@pytest.mark.parametrize("phone", [b"380961111111", b'"380961111111"'], ids=["number", "string"])
def test_recipient_phone_number_read_from_number_or_string(phone: bytes) -> None:
    """A Recipient's phone_number is read from a JSON number or a string, as an int."""
    recipient = converter.loads(b'{"phone_number": ' + phone + b"}", hy.Recipient)
    assert recipient.phone_number == 380961111111
    assert recipient.variables == {}


def test_phone_number_is_written_as_a_number() -> None:
    """phone_number goes onto the wire as a JSON number."""
    assert (
        converter.dumps(hy.Message(380961111111, "Hi"))
        == b'{"phone_number":380961111111,"text":"Hi"}'
    )


@pytest.mark.parametrize("number", [b"380961111111", b'"380961111111"'], ids=["number", "string"])
def test_delivery_report_number_read_from_number_or_string(number: bytes) -> None:
    """A report's number is accepted as a number or a string; phone_number is the int."""
    report = converter.loads(b'{"number": ' + number + b"}", hy.DeliveryReport)
    assert report.phone_number == 380961111111


def test_result_phone_number_read_from_a_number() -> None:
    """A sync result echoing phone_number as a number is read as the string."""
    result = converter.loads(b'{"phone_number": 380961111111}', hy.MessageResult)
    assert result.phone_number == "380961111111"


def test_absent_optional_fields_are_omitted() -> None:
    """Optional fields left at None do not appear on the wire at all."""
    request = hy.BatchRequest(campaign(), [hy.Message(380961111111, "Hi")])
    assert orjson.loads(converter.dumps(request)) == {
        "messages": [{"phone_number": 380961111111, "text": "Hi"}],
        "channels": ["viber"],
        "channel_options": {"viber": {"ttl": 60, "text": "Hi"}},
    }


def test_false_is_not_omitted() -> None:
    """An explicit ctr=False is written (only None counts as absent)."""
    options = hy.ViberOptions(ttl=60, ctr=False)
    assert orjson.loads(converter.dumps(options)) == {"ttl": 60, "ctr": False}


def test_channels_keep_the_cascade_order() -> None:
    """channels are written as strings in the order given."""
    options = hy.ChannelOptions(
        viber=hy.ViberOptions(ttl=60), sms=hy.SmsOptions(alpha_name="GMSU", ttl=300)
    )
    wire = converter.unstructure(
        hy.Campaign(channels=("sms", hy.Channel.VIBER), channel_options=options)
    )
    assert wire["channels"] == ["sms", "viber"]


def test_start_time_from_an_aware_datetime() -> None:
    """An aware datetime is written in the documented form, to the second."""
    moment = datetime(2020, 12, 12, 10, 10, 10, 500, tzinfo=timezone(timedelta(hours=3)))
    wire = converter.unstructure(campaign(start_time=moment))
    assert wire["start_time"] == "2020-12-12 10:10:10+03:00"


def test_start_time_from_a_utc_datetime() -> None:
    """A UTC datetime is written with a +00:00 offset."""
    moment = datetime(2020, 12, 12, 7, 10, 10, tzinfo=timezone.utc)
    assert converter.unstructure(campaign(start_time=moment))["start_time"] == (
        "2020-12-12 07:10:10+00:00"
    )


def test_start_time_from_the_documented_string() -> None:
    """The documented string form is written as given."""
    wire = converter.unstructure(campaign(start_time="2020-12-12 10:10:10+03:00"))
    assert wire["start_time"] == "2020-12-12 10:10:10+03:00"


def test_start_time_read_back_as_an_aware_datetime() -> None:
    """A start_time with an offset is read as the aware datetime it stands for."""
    wire = converter.unstructure(campaign(start_time="2020-12-12 10:10:10+03:00"))
    read = converter.structure(wire, hy.Campaign)
    assert read.start_time == datetime(2020, 12, 12, 7, 10, 10, tzinfo=timezone.utc)


def test_start_time_without_offset_is_kept_as_a_string() -> None:
    """A start_time without an offset (Kyiv time) is kept as the string, not reinterpreted."""
    wire = converter.unstructure(campaign(start_time="2020-12-12 10:10:10"))
    assert converter.structure(wire, hy.Campaign).start_time == "2020-12-12 10:10:10"


@pytest.mark.parametrize(
    ("fields", "final"),
    [
        ({"status": 2}, True),
        ({"status": 3}, True),
        ({"status": -1}, False),
        ({"status": 1}, False),
        ({}, False),
        ({"error_code": 35015}, True),
        ({"status": -1, "error_code": 36024}, True),
        ({"status": -1, "processed": False}, False),
        ({"status": 2, "processed": True}, True),
    ],
    ids=[
        "delivered",
        "undelivered",
        "not-final",
        "unknown",
        "empty",
        "error",
        "error-wins",
        "processed-false",
        "processed-true",
    ],
)
def test_message_status_is_final(fields: dict[str, Any], final: bool) -> None:
    """A message is final with status 2 or 3 or an error_code; processed does not matter."""
    assert hy.MessageStatus(**fields).is_final is final


def test_job_status_is_final_when_every_message_is() -> None:
    """A job is final only when all its messages are."""
    done = hy.MessageStatus(status=2)
    pending = hy.MessageStatus(status=-1)
    assert hy.JobStatus((done, done)).is_final
    assert not hy.JobStatus((done, pending)).is_final


def test_example_18_finality() -> None:
    """In the status example, both messages (one expired with an error_code) are final."""
    path = FIXTURES / "18-get-campaign-status-report--campaign-status.json"
    status = converter.loads(path.read_bytes(), hy.JobStatus)
    assert [m.is_final for m in status.messages] == [True, True]
    assert status.messages[0].error_code == hy.ErrorCode.SMS_EXPIRED


def test_unknown_status_codes_pass_through() -> None:
    """Status codes are open integers: unknown values are read and written unchanged."""
    report = converter.loads(
        b'{"number": 1, "status": 7, "hyber_status": 99999}', hy.DeliveryReport
    )
    assert (report.status, report.hyber_status) == (7, 99999)
    assert not report.delivered


def test_models_are_frozen() -> None:
    """Models are immutable."""
    message = hy.Message(380961111111, "Hi")
    with pytest.raises(AttributeError):
        message.text = "changed"  # type: ignore[misc]


def test_an_unknown_channel_is_a_validation_error_naming_its_position() -> None:
    """Campaign(channels=...) refuses an unknown channel with a ValidationError naming it."""
    with pytest.raises(hy.ValidationError, match=r"channels\[1\]: unknown channel 'telegram'"):
        hy.Campaign(channels=("sms", "telegram"), channel_options=hy.ChannelOptions())


def test_a_request_with_an_unknown_channel_does_not_decode() -> None:
    """Reading a request whose channels hold an unknown name fails with the channel named."""
    body = orjson.loads((FIXTURES / "05-send-batch-sms-messages-request.json").read_bytes())
    body["channels"] = ["sms", "vk"]
    with pytest.raises(hy.ValidationError, match=r"channels\[1\]: unknown channel 'vk'"):
        converter.loads(orjson.dumps(body), hy.BatchRequest)


@pytest.mark.parametrize("key", ["phone_number", "extra_id"])
def test_a_variable_may_not_shadow_a_recipient_field(key: str) -> None:
    """A variable named like a recipient field would overwrite it on the wire: refused."""
    with pytest.raises(hy.ValidationError, match=rf"variables\.{key}"):
        hy.Recipient(380961111111, variables={key: "x"})


def test_a_status_report_with_numbers_as_strings_decodes_without_loss() -> None:
    """A status report sending integers as digit strings and the phone as a number still reads."""
    body = {
        "messages": [
            {"time": "1477417294667", "phone_number": 380961111111, "status": "2", "clicks": "0"}
        ]
    }
    (message,) = converter.loads(orjson.dumps(body), hy.JobStatus).messages
    assert (message.time, message.phone_number, message.status) == (
        1477417294667,
        "380961111111",
        2,
    )
    assert message.is_final
