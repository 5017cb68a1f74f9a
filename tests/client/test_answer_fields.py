"""Every documented answer field is kept by the models (chapter 8's parameter tables), and a
field the documentation does not list never breaks decoding."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

import hyber_async as hy
from hyber_async import converter

STATUS_ITEM = {
    "time": 1477417294667,
    "phone_number": "380961111111",
    "message_id": "9f60ac8f-e721-5027-b838-e6fcb95fcd7a",
    "extra_id": "AD-6640-7006",
    "processed": False,
    "accepted": True,
    "total_sms_parts": 1,
    "delivered_sms_parts": 1,
    "status_text": "Viber delivered",
    "status": 2,
    "substatus": 23,
    "hyber_status": 23043,
    "matching_template_id": 6349599,
    "last_partner": "viber",
    "clicks": 2,
}
CALLBACK = {
    "number": 380961111111,
    "time": 1477417294667,
    "status": 2,
    "substatus": 23,
    "hyber_status": 23011,
    "message_id": "9f60ac8f-e721-5027-b838-e6fcb95fcd7a",
    "extra_id": "AD-6640-7006",
    "sent_via": "sms",
    "total_sms_parts": 1,
    "delivered_sms_parts": 1,
    "matching_template_id": 0,
    "status_text": "SMS delivered",
    "clicks": 2,
}
FAILED_CALLBACK = {
    "number": "380961111111",
    "message_id": "9f60ac8f-e721-5027-b838-e6fcb95fcd7a",
    "status": 3,
    "error_code": 35015,
    "error_text": "SMS expired",
}
SYNC_ITEM = {
    "processed": True,
    "phone_number": "380961111111",
    "message_id": "9f60ac8f-e721-5027-b838-e6fcb95fcd7a",
    "extra_id": "AD-6640-7006",
    "accepted": True,
    "job_id": "66591729-cb47-5ef9-964b-949dc6aff84f",
}
CASES: list[tuple[str, Any, type]] = [
    ("status", {"messages": [STATUS_ITEM]}, hy.JobStatus),
    ("callback", CALLBACK, hy.DeliveryReport),
    ("failed-callback", FAILED_CALLBACK, hy.DeliveryReport),
    ("sync", {"messages": [SYNC_ITEM]}, hy.SyncResult),
    ("single", {"message_id": "9f60ac8f-e721-5027-b838-e6fcb95fcd7a"}, hy.MessageAccepted),
]


@pytest.mark.parametrize(("data", "model"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_documented_answer_fields_survive_a_round_trip(data: Any, model: type) -> None:
    """matching_template_id and last_partner of a status, clicks, status_text and the error
    fields of a callback, job_id of a sync item: decoded, and written back unchanged."""
    decoded = converter.loads(orjson.dumps(data), model)
    assert orjson.loads(converter.dumps(decoded)) == data


def test_the_new_fields_are_typed_attributes() -> None:
    """The fields are read into the models' own attributes."""
    (status,) = converter.loads(orjson.dumps({"messages": [STATUS_ITEM]}), hy.JobStatus).messages
    assert (status.matching_template_id, status.last_partner) == (6349599, "viber")
    report = converter.loads(orjson.dumps(CALLBACK), hy.DeliveryReport)
    assert (report.clicks, report.status_text, report.matching_template_id) == (
        2,
        "SMS delivered",
        0,
    )
    failed = converter.loads(orjson.dumps(FAILED_CALLBACK), hy.DeliveryReport)
    assert (failed.error_code, failed.error_text) == (35015, "SMS expired")


@pytest.mark.parametrize(("data", "model"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_an_undocumented_field_never_breaks_decoding(data: Any, model: type) -> None:
    """A key the documentation does not list is ignored, at the top and in list items."""
    extended = orjson.loads(orjson.dumps(data))
    extended["brand_new"] = {"nested": [1, 2]}
    for item in extended.get("messages", []):
        item["brand_new"] = "x"
    assert converter.loads(orjson.dumps(extended), model) == converter.loads(
        orjson.dumps(data), model
    )
