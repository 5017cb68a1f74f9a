"""parse_delivery_reports: the spec's callback examples, tolerance, and only ReportParseError."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from conftest import FIXTURES
from hypothesis import given, settings
from hypothesis import strategies as st

from hyber_async import DeliveryReport, HyberStatus, ReportParseError, converter
from hyber_async._reports import parse_delivery_reports

SINGLE = (FIXTURES / "19-delivery-report-callback--single.json").read_bytes()
BATCHED = (FIXTURES / "20-delivery-report-callback--batched.json").read_bytes()
TEMPLATE = (FIXTURES / "21-delivery-report-callback--viber-template.json").read_bytes()


def test_single_report_example_19() -> None:
    """One object gives one report with every documented field, number as an int."""
    [report] = parse_delivery_reports(SINGLE)
    assert report == DeliveryReport(
        number=380961111111,
        time=1477417294667,
        status=2,
        substatus=23,
        hyber_status=HyberStatus.SMS_DELIVERED,
        message_id="9f60ac8f-e721-5027-b838-e6fcb95fcd7a",
        extra_id="AD-6640-7006",
        sent_via="sms",
        total_sms_parts=1,
        delivered_sms_parts=1,
    )


def test_batched_reports_example_20() -> None:
    """A JSON array gives the reports in order, number kept as the string it came as."""
    reports = parse_delivery_reports(BATCHED)
    assert [(r.number, r.status, r.hyber_status, r.sent_via) for r in reports] == [
        ("380961111111", 2, 23011, "sms"),
        ("380962222222", 3, 35015, "sms"),
        ("380963333333", 2, 23033, "viber"),
    ]
    assert [r.phone_number for r in reports] == [380961111111, 380962222222, 380963333333]


def test_viber_template_report_example_21() -> None:
    """The Viber template report keeps matching_template_id."""
    [report] = parse_delivery_reports(TEMPLATE)
    assert (report.hyber_status, report.matching_template_id) == (23043, 6349599)


def test_examples_round_trip_through_the_converter() -> None:
    """Parsed reports write back to the very JSON they came from."""
    for body in (SINGLE, BATCHED, TEMPLATE):
        data = orjson.loads(body)
        items = data if isinstance(data, list) else [data]
        assert [converter.unstructure(r) for r in parse_delivery_reports(body)] == items


def test_unknown_codes_kept_and_unknown_fields_ignored() -> None:
    """Unknown status codes pass through; unknown keys are ignored."""
    body = orjson.dumps({"number": "1", "status": 7, "hyber_status": 99999, "novel": {"x": 1}})
    [report] = parse_delivery_reports(body)
    assert (report.status, report.hyber_status) == (7, 99999)


def test_empty_array_is_no_reports() -> None:
    """An empty array is a valid, empty batch."""
    assert parse_delivery_reports(b"[]") == []


def test_null_optional_field_reads_as_absent() -> None:
    """A null optional field is None, like a missing one."""
    [report] = parse_delivery_reports(b'{"number": 1, "status": null}')
    assert report.status is None


@pytest.mark.parametrize(
    ("body", "names"),
    [
        (b"", "not JSON"),
        (b'{"number": 1', "not JSON"),
        (b'{"number": "\xff"}', "not JSON"),
        (b"[" * 5000 + b"]" * 5000, "not JSON"),
        (b'{"time": 1}', "number"),
        (b'{"number": null}', "number"),
        (b'{"number": 1.5}', "number"),
        (b'{"number": true}', "number"),
        (b'{"number": "38096abc"}', "number"),
        (b'{"number": ""}', "number"),
        (b'{"number": -5}', "number"),
        (b'{"number": 1, "status": "two"}', "status"),
        (b'{"number": 1, "status": 2.0}', "status"),
        (b'{"number": 1, "status": true}', "status"),
        (b'{"number": 1, "hyber_status": false}', "hyber_status"),
        (b'{"number": 1, "message_id": 5.5}', "message_id"),
        (b'[{"number": 1}, 3]', "report 1"),
        (b'[{"number": 1}, [{"number": 2}]]', "report 1"),
        (b'"a string"', "report 0"),
        (b"null", "report 0"),
    ],
)
def test_malformed_body_raises_report_parse_error(body: bytes, names: str) -> None:
    """Each kind of malformed body raises ReportParseError naming what is wrong."""
    with pytest.raises(ReportParseError, match=names):
        parse_delivery_reports(body)


def test_report_parse_error_is_a_value_error() -> None:
    """Callers may catch it as ValueError too."""
    with pytest.raises(ValueError, match="not JSON"):
        parse_delivery_reports(b"{")


def test_thousands_of_reports_parse() -> None:
    """A large batched callback parses completely."""
    item = orjson.loads(SINGLE)
    body = orjson.dumps([{**item, "message_id": str(i)} for i in range(5000)])
    reports = parse_delivery_reports(body)
    assert [r.message_id for r in reports] == [str(i) for i in range(5000)]


# --- property: nothing but ReportParseError escapes ---------------------------------------

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
REPORT_FIELDS = [*sorted(orjson.loads(SINGLE)), "matching_template_id", "unknown"]


@st.composite
def mutated_reports(draw: st.DrawFn) -> Any:
    """A spec report with fields deleted, retyped or added; alone or in an array."""
    report = dict(orjson.loads(draw(st.sampled_from([SINGLE, TEMPLATE]))))
    for field in draw(st.lists(st.sampled_from(REPORT_FIELDS), max_size=4)):
        if draw(st.booleans()):
            report.pop(field, None)
        else:
            report[field] = draw(JSON_VALUES)
    if draw(st.booleans()):
        return report
    return draw(st.lists(st.just(report) | JSON_VALUES, min_size=1, max_size=3))


def parses_or_raises_report_parse_error(body: bytes) -> None:
    """The property: a list of DeliveryReport, or ReportParseError, nothing else."""
    try:
        reports = parse_delivery_reports(body)
    except ReportParseError:
        return
    assert all(isinstance(r, DeliveryReport) for r in reports)
    assert all(isinstance(r.phone_number, int) for r in reports)


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_random_bytes_raise_only_report_parse_error(body: bytes) -> None:
    """Random bytes either parse or raise ReportParseError."""
    parses_or_raises_report_parse_error(body)


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(JSON_VALUES)
def test_random_json_raises_only_report_parse_error(value: Any) -> None:
    """Random JSON values either parse or raise ReportParseError."""
    parses_or_raises_report_parse_error(orjson.dumps(value))


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(mutated_reports())
def test_mutated_reports_raise_only_report_parse_error(value: Any) -> None:
    """Spec reports with fields deleted or retyped either parse or raise ReportParseError."""
    parses_or_raises_report_parse_error(orjson.dumps(value))


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(st.sampled_from([SINGLE, BATCHED, TEMPLATE]), st.data())
def test_corrupted_bytes_raise_only_report_parse_error(body: bytes, data: st.DataObject) -> None:
    """A spec body with bytes cut out or overwritten either parses or raises ReportParseError."""
    start = data.draw(st.integers(0, len(body)))
    end = data.draw(st.integers(start, min(len(body), start + 8)))
    patch = data.draw(st.binary(max_size=4))
    parses_or_raises_report_parse_error(body[:start] + patch + body[end:])


def test_numbers_as_digit_strings_and_ids_as_numbers_are_read_without_loss() -> None:
    """A tolerant reader: "2" for an integer field is 2, and 5 for a string field is "5"."""
    (report,) = parse_delivery_reports(
        b'{"number": 380961111111, "status": "2", "hyber_status": "23011", "message_id": 5}'
    )
    assert (report.status, report.hyber_status, report.message_id) == (2, 23011, "5")
