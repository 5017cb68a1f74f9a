"""Reading recipient files (CSV, JSON Lines) row by row, and campaign files (TOML, JSON)."""

from __future__ import annotations

from pathlib import Path

import pytest

import hyber_async as hy
from hyber_async._codec import Envelope
from hyber_async._models import Kind
from hyber_async.cli._sources import (
    ItemStream,
    RecordReader,
    SourceError,
    checked_rows,
    load_campaign,
)

SMS_BATCH = Envelope(
    hy.Campaign(channels=("sms",), channel_options=hy.ChannelOptions(sms=hy.SmsOptions("G", 300))),
    Kind.BATCH,
).rules
NAMED_BROADCAST = Envelope(
    hy.Campaign(
        channels=("viber",), channel_options=hy.ChannelOptions(viber=hy.ViberOptions(60, "%name%"))
    ),
    Kind.BROADCAST,
).rules


def rows_of(path: Path, kind: Kind = Kind.BATCH) -> list[tuple[int, object]]:
    """Every row of a file as (line, item or error message)."""
    with RecordReader(str(path), kind) as reader:
        return [(line, str(i) if isinstance(i, SourceError) else i) for line, i in reader.rows()]


def test_csv_rows_keep_their_first_line_across_quoted_newlines(tmp_path: Path) -> None:
    """A quoted cell spanning lines, a BOM, blank lines and a '+' phone: lines stay exact."""
    path = tmp_path / "rows.csv"
    text = '\ufeffphone_number,text\n+380961111111,"two\nlines"\n\n380962222222, x\n'
    path.write_text(text, encoding="utf-8")
    assert rows_of(path) == [
        (2, {"phone_number": 380961111111, "text": "two\nlines"}),
        (5, {"phone_number": 380962222222, "text": " x"}),
    ]


def test_broadcast_csv_columns_become_variables_and_empty_extra_id_none(tmp_path: Path) -> None:
    """Other columns are variables (strings); an empty extra_id cell means none."""
    path = tmp_path / "rows.csv"
    path.write_text("extra_id,phone_number,name\n,380961111111,007\n")
    assert rows_of(path, Kind.BROADCAST) == [(2, {"phone_number": 380961111111, "name": "007"})]


def test_a_batch_csv_with_an_unknown_column_is_refused_on_line_1(tmp_path: Path) -> None:
    """A batch column that is not a Message field is an error at the header."""
    path = tmp_path / "rows.csv"
    path.write_text("phone_number,text,txet\n")
    with pytest.raises(SourceError) as raised:
        RecordReader(str(path), Kind.BATCH)
    assert (raised.value.line, raised.value.field) == (1, "txet")


def test_a_csv_row_of_the_wrong_width_is_named(tmp_path: Path) -> None:
    """A row with more cells than the header is an error of its line."""
    path = tmp_path / "rows.csv"
    path.write_text("phone_number,text\n380961111111,a,b\n")
    assert rows_of(path) == [(2, f"{path}:2: has 3 cells, the header has 2")]


def test_jsonl_rows_bad_json_non_objects_and_digit_strings(tmp_path: Path) -> None:
    """Malformed and non-object lines are named; a digit-string phone becomes an int."""
    path = tmp_path / "rows.jsonl"
    path.write_text('{"phone_number": "380961111111", "text": "a"}\n\n{oops\n[1]\n')
    rows = rows_of(path)
    assert rows[0] == (1, {"phone_number": 380961111111, "text": "a"})
    assert rows[1][0] == 3
    assert "is not valid JSON" in str(rows[1][1])
    assert rows[2] == (4, f"{path}:4: must be a JSON object, got list")


def test_rule_problems_are_named_by_line_and_field(tmp_path: Path) -> None:
    """A recipient without the %name% variable is an error naming its line and the field."""
    path = tmp_path / "rows.jsonl"
    path.write_text('{"phone_number": 380961111111, "name": "A"}\n{"phone_number": 380962222222}\n')
    with RecordReader(str(path), Kind.BROADCAST) as reader:
        rows = list(checked_rows(reader, NAMED_BROADCAST))
    error = rows[1][1]
    assert isinstance(error, SourceError)
    assert (error.line, error.field) == (2, "name")


def test_an_item_stream_stops_at_the_first_bad_row(tmp_path: Path) -> None:
    """Without on_skipped, the items before the bad row are yielded and the error kept."""
    path = tmp_path / "rows.csv"
    path.write_text("phone_number,text\n380961111111,a\n12x,b\n380963333333,c\n")
    with RecordReader(str(path), Kind.BATCH) as reader:
        stream = ItemStream(reader, SMS_BATCH)
        items = list(stream)
    assert [i["text"] for i in items] == ["a"]
    assert stream.error is not None
    assert (stream.error.line, stream.error.field) == (3, "phone_number")


def test_an_item_stream_maps_positions_to_lines_past_skipped_rows(tmp_path: Path) -> None:
    """With on_skipped, bad rows are handed over and line_of still finds each item's line."""
    path = tmp_path / "rows.csv"
    path.write_text("phone_number,text\n1x,a\n380962222222,b\n\n2x,c\n380965555555,d\n")
    skipped: list[SourceError] = []
    with RecordReader(str(path), Kind.BATCH) as reader:
        stream = ItemStream(reader, SMS_BATCH, on_skipped=skipped.append)
        items = list(stream)
    assert [i["text"] for i in items] == ["b", "d"]
    assert [stream.line_of(0), stream.line_of(1), stream.line_of(2)] == [3, 6, None]
    assert [e.line for e in skipped] == [2, 5]


def test_a_file_is_read_as_a_stream(tmp_path: Path) -> None:
    """Reading the first row of a multi-megabyte file reads a small part of it."""
    path = tmp_path / "big.csv"
    row = "380961111111,Hello there\n"
    path.write_text("phone_number,text\n" + row * 200_000)
    with RecordReader(str(path), Kind.BATCH) as reader:
        next(reader.rows())
        assert reader.position < reader.size // 50


def test_a_campaign_file_with_an_unknown_option_is_refused(tmp_path: Path) -> None:
    """A misspelt channel option is named with its path, not silently dropped."""
    path = tmp_path / "campaign.json"
    path.write_text('{"channels": ["sms"], "channel_options": {"sms": {"ttl": 300, "alpha": "G"}}}')
    with pytest.raises(SourceError) as raised:
        load_campaign(str(path), Kind.BATCH)
    assert raised.value.field == "channel_options.sms.alpha"


def test_a_toml_syntax_error_names_its_line(tmp_path: Path) -> None:
    """A TOML syntax error gives its line number."""
    path = tmp_path / "campaign.toml"
    path.write_text('channels = ["sms"]\ntag = \n')
    with pytest.raises(SourceError) as raised:
        load_campaign(str(path), Kind.BATCH)
    assert raised.value.line == 2


def test_flags_override_the_campaign_file(tmp_path: Path) -> None:
    """Overrides win over the file; options of channels not listed are dropped."""
    path = tmp_path / "campaign.toml"
    path.write_text(
        'channels = ["viber"]\ntag = "a"\n[channel_options.viber]\nttl = 60\ntext = "x"\n'
    )
    overrides = {
        "channels": ["sms"],
        "tag": "b",
        "channel_options": {"sms": {"alpha_name": "G", "ttl": 300, "text": "y"}},
    }
    campaign = load_campaign(str(path), Kind.BROADCAST, overrides)
    assert campaign == hy.Campaign(
        channels=("sms",),
        channel_options=hy.ChannelOptions(sms=hy.SmsOptions("G", 300, "y")),
        tag="b",
    )
