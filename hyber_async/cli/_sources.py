"""Recipients and messages read from CSV or JSON Lines files, and campaigns from TOML or JSON.

A file is read as a stream, one row at a time, into plain wire-form ``dict``s (what the mass
sender takes at no per-row object cost); nothing holds the whole file. Rows are checked with the
project's one rule set (``check_items`` with the campaign's ``ItemRules``), a block at a time.

- CSV: a header line names the columns. ``phone_number`` is required, ``extra_id`` is optional
  (an empty cell means none); a batch needs ``text`` and takes no other column; in a broadcast
  every other column is a ``%variable%`` of the recipient (its cells are strings). The
  delimiter (comma, semicolon, tab or bar) is found from the header unless given. Encoding
  UTF-8, with or without a byte-order mark, unless given; quoted cells may span lines.
- JSON Lines: one JSON object per line, with the wire keys (blank lines are skipped).
- The path ``-`` reads standard input (its format must be given).
- A phone number given as a string of digits (a leading ``+`` and surrounding spaces allowed)
  becomes an integer; any other string is an error; ``phone_parser`` reads them as people
  write them instead (opt-in).

Problems are ``SourceError``s naming the file, the line (1-based; for a multi-line CSV record,
its first line) and the field. File-level ones (unreadable file, bad header, undecodable text)
are raised; row-level ones are yielded in the row's place, so a caller decides whether to stop
(``send``), skip (``send --skip-invalid``) or count them (``send --dry-run``).
"""

from __future__ import annotations

import bisect
import codecs
import csv
import importlib
import io
import itertools
import os
import re
import stat
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, Final

import attrs
import orjson

from .._codec import Wire, converter, unknown_campaign_key
from .._errors import HyberError, InvalidValueError, Problem, SourceError
from .._models import Campaign, Kind, Message
from .._validation import ItemRules, check_envelope, check_items, placeholders_in

__all__ = [
    "FORMATS",
    "CAMPAIGN_FORMATS",
    "ItemStream",
    "RecordReader",
    "Row",
    "SourceError",
    "check_columns",
    "checked_rows",
    "detect_format",
    "load_campaign",
    "phone_parser",
]

FORMATS: Final = ("csv", "jsonl")
"""Formats of recipient files."""
CAMPAIGN_FORMATS: Final = ("toml", "json")
"""Formats of campaign files."""
_EXTENSIONS: Final = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
_BATCH_KEYS: Final = frozenset(attrs.fields_dict(Message))
"""The keys of a batch message: those of the ``Message`` model."""
_CHECK_BLOCK: Final = 1024
"""Rows checked together by ``check_items`` (its fast path works on whole blocks)."""


Row = tuple[int, "Wire | SourceError"]
"""A row of a file: its line number and its item, or what is wrong with it."""


def detect_format(path: str, given: str | None = None) -> str:
    """The format of a recipient file: ``given``, or the one its extension names."""
    if os.path.isdir(path):
        raise SourceError(path, "is a directory: give the path of a CSV or JSON Lines file")
    if given is not None:
        return given
    found = _EXTENSIONS.get(Path(path).suffix.lower())
    if found is None:
        known = ", ".join(_EXTENSIONS)
        raise SourceError(path, f"unknown file extension (known: {known}); pass --format")
    return found


def _phone(value: object) -> object:
    """A digit string as an integer; other strings are errors; anything else is left to the
    rule set to judge."""
    if not isinstance(value, str):
        return value
    digits = value.strip().removeprefix("+")
    if not digits:
        raise InvalidValueError("is empty")
    if not (digits.isascii() and digits.isdigit()):
        raise InvalidValueError(f"must be a phone number in digits, got {value!r}")
    return int(digits)


_PHONE_PARSE_ERRORS: Final = {
    0: "has no country code: write it as +380... or pass --phone-region",
    1: "is not a phone number",
    2: "is too short",
    3: "is too short",
    4: "is too long",
}


def phone_parser(region: str | None) -> Callable[[object], object]:
    """A reader of phone numbers as people write them (``+380 (96) 111-11-11``,
    ``380-96-111-11-14``; with ``region``, e.g. ``"UA"``, national ones like ``096 111 11 11``
    too), by Google's libphonenumber (the ``phonenumbers`` package of the ``cli`` extra): a
    string becomes the integer of its E.164 form; a string that is not a valid number for its
    country raises ``ValueError`` saying why; anything else is left to the rule set to judge.
    """
    try:
        import phonenumbers
    except ImportError:
        raise HyberError(
            "reading phone numbers as written needs the phonenumbers package: "
            "pip install 'hyber-async[cli]'"
        ) from None
    if region is not None and region.upper() not in phonenumbers.SUPPORTED_REGIONS:
        raise HyberError(f"--phone-region: unknown region {region!r} (e.g. UA, DE, GB)")
    default = None if region is None else region.upper()

    def parse(value: object) -> object:
        if not isinstance(value, str):
            return value
        text = value.strip()
        if not text:
            raise InvalidValueError("is empty")
        try:
            try:
                number = phonenumbers.parse(text, default)
            except phonenumbers.NumberParseException as exc:
                if default is not None or text.startswith("+") or exc.error_type != 0:
                    raise
                number = phonenumbers.parse("+" + text)  # an international number without +
        except phonenumbers.NumberParseException as exc:
            reason = _PHONE_PARSE_ERRORS.get(exc.error_type, "is not a phone number")
            raise InvalidValueError(f"{reason}, got {value!r}") from None
        if not phonenumbers.is_valid_number(number):
            code = number.country_code
            raise InvalidValueError(f"is not a valid number of country code +{code}, got {value!r}")
        return int(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)[1:])

    return parse


class RecordReader:
    """One open recipient file, read row by row; a context manager that closes it.

    Opening reads the CSV header, so that a file that cannot be read or lacks a column fails
    before anything is sent. ``rows()`` yields each row once.
    """

    def __init__(
        self,
        path: str,
        kind: Kind,
        fmt: str | None = None,
        *,
        delimiter: str | None = None,
        encoding: str | None = None,
        phone: Callable[[object], object] | None = None,
    ) -> None:
        """Open ``path`` holding ``kind`` items in ``fmt`` (default: by its extension).

        A CSV's ``delimiter`` is found from its header (comma, semicolon, tab or bar) unless
        given; ``encoding`` is UTF-8 unless given (any Python codec name, e.g. ``cp1251``);
        ``phone`` reads each phone number (default: digits, a leading ``+`` allowed; see
        ``phone_parser``)."""
        self.path = path
        self.kind = kind
        self.format = detect_format(path, fmt)
        self.delimiter = delimiter
        try:
            self.encoding = codecs.lookup(encoding or "utf-8").name
        except LookupError:
            raise HyberError(f"--encoding: unknown encoding {encoding!r}") from None
        self._phone = phone or _phone
        try:
            if path == "-":  # standard input: a duplicate, so that close() leaves fd 0 open
                raw: io.FileIO = os.fdopen(os.dup(sys.stdin.fileno()), "rb", buffering=0)
            else:
                raw = open(path, "rb", buffering=0)  # noqa: SIM115 (closed by close())
            status = os.fstat(raw.fileno())
        except OSError as exc:
            raise SourceError(path, f"cannot read the file: {exc.strerror or exc}") from None
        self.size = status.st_size
        self.is_pipe = not stat.S_ISREG(status.st_mode)
        """True when the input is not a regular file (a pipe, a terminal): it reads only once."""
        # A pipe is read unbuffered (the text layer and ``_lines`` buffer it): a buffered
        # reader's lock would make close() wait for a read blocked in another thread.
        self._binary: BinaryIO = raw if self.is_pipe else io.BufferedReader(raw)
        self.columns: list[str] = []
        """The CSV header's column names."""
        self._csv: Any = None
        self._text: io.TextIOWrapper | None = None
        try:
            if self.format == "csv":
                self._open_csv()
        except BaseException:
            self.close()
            raise

    @property
    def position(self) -> int:
        """Bytes of the file read so far (ahead of the rows yielded by a buffer's worth; 0 for
        a pipe)."""
        return 0 if self._binary.closed or self.is_pipe else self._binary.tell()

    def close(self) -> None:
        """Close the file."""
        (self._text or self._binary).close()

    def __enter__(self) -> RecordReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _fail(self, message: str, line: int | None = None, field: str | None = None) -> SourceError:
        return SourceError(self.path, message, line=line, field=field)

    def _open_csv(self) -> None:
        encoding = "utf-8-sig" if self.encoding == "utf-8" else self.encoding
        self._text = text = io.TextIOWrapper(self._binary, encoding=encoding, newline="")
        first = self._read(text.readline, 1)
        delimiter = self.delimiter or _sniff_delimiter(first)
        self._csv = csv.reader(itertools.chain([first], text), delimiter=delimiter)
        header = self._next_record(1)
        if header is None:
            raise self._fail("the file is empty: expected a header line", line=1)
        columns = [name.strip() for name in header]
        required = ["phone_number"] + (["text"] if self.kind is Kind.BATCH else [])
        for name in required:
            if name not in columns:
                listed = ", ".join(repr(c) for c in columns)
                hint = "" if self.delimiter else "; pass --delimiter if it is not , ; tab or |"
                raise self._fail(f"missing column in the header (found {listed}{hint})", 1, name)
        for position, name in enumerate(columns, start=1):
            if not name:
                raise self._fail(f"column {position} of the header has no name", 1)
            if columns.count(name) > 1:
                raise self._fail("column listed twice in the header", 1, name)
            if self.kind is Kind.BATCH and name not in _BATCH_KEYS:
                allowed = ", ".join(sorted(_BATCH_KEYS))
                raise self._fail(f"not a column of a batch (allowed: {allowed})", 1, name)
        self.columns = columns

    def _read(self, read: Callable[[], str], line: int) -> str:
        """``read()``, its decoding failures named by line."""
        try:
            return read()
        except UnicodeDecodeError:
            raise self._undecodable(line) from None

    def _undecodable(self, near: int) -> SourceError:
        """The error for bytes that are not text in the encoding, on the line that holds them
        (found by reading the file again; ``near`` for a pipe)."""
        line = near
        if not self.is_pipe:
            with open(self.path, "rb") as again:
                for number, raw in enumerate(again, start=1):
                    try:
                        raw.decode(self.encoding)
                    except UnicodeDecodeError:
                        line = number
                        break
        hint = "" if self.encoding != "utf-8" else ": pass --encoding (e.g. cp1251 or latin-1)"
        return self._fail(f"is not valid {self.encoding} text{hint}", line)

    def _next_record(self, line: int) -> list[str] | None:
        """The next CSV record, starting on ``line``; file-level failures raise."""
        try:
            record: list[str] | None = next(self._csv, None)
        except UnicodeDecodeError:
            raise self._undecodable(line) from None
        except csv.Error as exc:
            if "field larger than field limit" in str(exc):
                limit = csv.field_size_limit()
                message = f"a field is longer than {limit:,} characters (an unclosed quote?)"
                raise self._fail(message, line) from None
            raise self._fail(f"is not valid CSV: {exc}", line) from None
        except OSError as exc:
            raise self._fail(f"cannot read the file: {exc.strerror or exc}") from None
        return record

    def rows(self) -> Iterator[Row]:
        """Each row: its line number and its wire-form item, or its ``SourceError``."""
        if self.format == "csv":
            return self._csv_rows()
        return self._jsonl_rows()

    def _csv_rows(self) -> Iterator[Row]:
        columns = self.columns
        width = len(columns)
        while True:
            line = self._csv.line_num + 1
            record = self._next_record(line)
            if record is None:
                return
            if not record:
                continue
            if len(record) != width:
                yield line, self._fail(f"has {len(record)} cells, the header has {width}", line)
                continue
            item: Wire = {}
            try:
                for name, value in zip(columns, record, strict=True):
                    if name == "phone_number":
                        item[name] = self._phone(value)
                    elif name != "extra_id" or value:
                        item[name] = value
            except ValueError as exc:
                raw = dict(zip(columns, record, strict=True))
                yield (
                    line,
                    SourceError(self.path, str(exc), line=line, field="phone_number", item=raw),
                )
                continue
            yield line, item

    def _lines(self) -> Iterator[bytes]:
        """The lines of the file as bytes, read 64 KiB at a time."""
        rest = b""
        while True:
            try:
                data = self._binary.read(1 << 16)
            except OSError as exc:
                raise self._fail(f"cannot read the file: {exc.strerror or exc}") from None
            if not data:
                break
            lines = (rest + data).split(b"\n")
            rest = lines.pop()
            yield from lines
        if rest:
            yield rest

    def _jsonl_rows(self) -> Iterator[Row]:
        batch = self.kind is Kind.BATCH
        line = 0
        for raw in self._lines():
            line += 1
            if not raw.strip():
                continue
            try:
                item = orjson.loads(raw if self.encoding == "utf-8" else raw.decode(self.encoding))
            except UnicodeDecodeError:
                yield line, self._fail(f"is not valid {self.encoding} text", line)
                continue
            except orjson.JSONDecodeError as exc:
                yield line, self._fail(f"is not valid JSON: {exc.msg}", line)
                continue
            if type(item) is not dict:
                got = type(item).__name__
                yield line, self._fail(f"must be a JSON object, got {got}", line)
                continue
            if batch:
                unknown = sorted(item.keys() - _BATCH_KEYS)
                if unknown:
                    allowed = ", ".join(sorted(_BATCH_KEYS))
                    message = f"not a key of a batch (allowed: {allowed})"
                    yield (
                        line,
                        SourceError(self.path, message, line=line, field=unknown[0], item=item),
                    )
                    continue
            if "phone_number" in item:
                try:
                    item["phone_number"] = self._phone(item["phone_number"])
                except ValueError as exc:
                    yield (
                        line,
                        SourceError(
                            self.path, str(exc), line=line, field="phone_number", item=item
                        ),
                    )
                    continue
            yield line, item


def _sniff_delimiter(header: str) -> str:
    """The delimiter of a CSV header line: comma, semicolon, tab or bar (comma when it cannot
    tell, e.g. for a single column)."""
    try:
        return csv.Sniffer().sniff(header, delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


def check_columns(reader: RecordReader, wire: Mapping[str, Any]) -> None:
    """Raise a ``SourceError`` when a ``%variable%`` of the campaign ``wire`` has no column in
    a broadcast CSV (it would fail on every row)."""
    if reader.format != "csv" or reader.kind is not Kind.BROADCAST:
        return
    for channel, options in (wire.get("channel_options") or {}).items():
        for key, value in options.items():
            if not isinstance(value, str):
                continue
            for name in sorted(placeholders_in(value) - set(reader.columns)):
                raise SourceError(
                    reader.path,
                    f"the file has no column {name!r}, used as %{name}% in "
                    f"channel_options.{channel}.{key}",
                    line=1,
                )


def _problem_error(path: str, line: int, item: Wire, problems: list[Problem]) -> SourceError:
    """One row's rule-set problems as one ``SourceError`` (the first named, the others
    counted)."""
    first = problems[0]
    field = first.field.rpartition("].")[2] or first.field
    count = len(problems) - 1
    more = f" (and {count} more problem{'s' if count > 1 else ''})" if count else ""
    return SourceError(path, first.message + more, line=line, field=field, item=item)


def checked_rows(
    reader: RecordReader, rules: ItemRules, *, block_size: int = _CHECK_BLOCK
) -> Iterator[Row]:
    """``reader.rows()`` with every item also checked by the rule set: an item that breaks a
    rule is replaced by a ``SourceError`` naming its line and field.

    Rows are checked ``block_size`` at a time (at most ``_CHECK_BLOCK``), so a block is held
    in memory, never more, and a row is yielded once its block is read.
    """
    block_size = min(block_size, _CHECK_BLOCK)
    block: list[Row] = []
    for row in reader.rows():
        block.append(row)
        if len(block) == block_size:
            yield from _check_block(reader.path, block, rules)
            block = []
    if block:
        yield from _check_block(reader.path, block, rules)


def _check_block(path: str, block: list[Row], rules: ItemRules) -> list[Row]:
    positions: list[int] = []
    items: list[Wire] = []
    for position, (_, item) in enumerate(block):
        if not isinstance(item, SourceError):
            positions.append(position)
            items.append(item)
    problems = check_items(items, rules)
    if not problems:
        return block
    by_item: dict[int, list[Problem]] = {}
    for problem in problems:
        assert problem.index is not None
        by_item.setdefault(problem.index, []).append(problem)
    checked = block.copy()
    for index, found in by_item.items():
        position = positions[index]
        line = block[position][0]
        checked[position] = (line, _problem_error(path, line, items[index], found))
    return checked


class ItemStream:
    """The valid items of a file, in order, as the mass sender reads them.

    Iterating yields wire-form ``dict``s, in blocks of ``whole`` (the last one shorter at the
    end of the file). At the first bad row it stops and keeps the error in ``error``, unless
    ``on_skipped`` is given: then a bad row is handed to it and skipped (counted in
    ``skipped``). File-level errors stop it too (``error``). At a stop, the valid rows of the
    unfinished block are held back (never yielded; the first one's line is ``held_line``): with
    ``whole`` equal to the chunk size, a stop never cuts a chunk, so the chunks sent before it
    are the same ones a rerun of the fixed file sends, and a journal resumes them.
    ``line_of(index)`` maps an item's position in what was yielded back to its line in the
    file.
    """

    def __init__(
        self,
        reader: RecordReader,
        rules: ItemRules,
        *,
        on_skipped: Callable[[SourceError], None] | None = None,
        whole: int = 1,
    ) -> None:
        """Stream the items of ``reader`` checked against ``rules``, ``whole`` at a time."""
        self.reader = reader
        self.rules = rules
        self.on_skipped = on_skipped
        self.whole = whole
        self.error: SourceError | None = None
        self.held_line: int | None = None
        """The first line of the block held back at a stop, if any (it was never yielded)."""
        self.skipped = 0
        self.yielded = 0
        self._starts: list[int] = []
        """Positions where the offset between line and position changes..."""
        self._offsets: list[int] = []
        """... and the offset from there on: a few entries for a well-formed file."""

    def __iter__(self) -> Iterator[Wire]:
        block: list[tuple[int, Wire]] = []
        for row in self._valid_rows():
            block.append(row)
            if len(block) == self.whole:
                yield from self._yield(block)
                block = []
        if self.error is None:
            yield from self._yield(block)
        elif block:
            self.held_line = block[0][0]

    def _valid_rows(self) -> Iterator[tuple[int, Wire]]:
        try:
            # Blocks no larger than a chunk: a chunk leaves once its rows are read (a pipe).
            for line, item in checked_rows(self.reader, self.rules, block_size=self.whole):
                if isinstance(item, SourceError):
                    if self.on_skipped is None:
                        self.error = item
                        return
                    self.skipped += 1
                    self.on_skipped(item)
                    continue
                yield line, item
        except SourceError as exc:
            self.error = exc

    def _yield(self, block: list[tuple[int, Wire]]) -> Iterator[Wire]:
        for line, item in block:
            index = self.yielded
            if not self._offsets or self._offsets[-1] != line - index:
                self._starts.append(index)
                self._offsets.append(line - index)
            self.yielded += 1
            yield item

    def line_of(self, index: int) -> int | None:
        """The line of the item yielded at position ``index``."""
        if not 0 <= index < self.yielded:
            return None
        return index + self._offsets[bisect.bisect_right(self._starts, index) - 1]


# --- campaign files ---------------------------------------------------------------------


def _toml_loads(path: str, text: str) -> Any:
    """Parse TOML with ``tomllib`` (Python 3.11+) or ``tomli`` (the ``cli`` extra on 3.10)."""
    for name in ("tomllib", "tomli"):
        try:
            module: Any = importlib.import_module(name)
        except ModuleNotFoundError:
            continue
        try:
            return module.loads(text)
        except module.TOMLDecodeError as exc:
            message = str(exc)
            found = re.search(r"\(at line (\d+), column \d+\)", message)
            line = int(found.group(1)) if found else None
            raise SourceError(path, f"is not valid TOML: {message}", line=line) from None
    raise SourceError(
        path,
        "TOML needs Python 3.11+ or the tomli package (pip install 'hyber-async[cli]'); "
        "or write the campaign as JSON",
    )


def _read_campaign_file(path: str) -> dict[str, Any]:
    suffix = Path(path).suffix.lower()
    if suffix not in (".toml", ".json"):
        raise SourceError(path, "a campaign file must end in .toml or .json")
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise SourceError(path, f"cannot read the file: {exc.strerror or exc}") from None
    if suffix == ".json":
        try:
            wire = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise SourceError(path, f"is not valid JSON: {exc.msg}", line=exc.lineno) from None
    else:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise SourceError(path, "is not valid UTF-8 text") from None
        wire = _toml_loads(path, text)
    if not isinstance(wire, dict):
        raise SourceError(path, "must hold an object of campaign settings")
    return wire


def _merge(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in overrides.items():
        current = merged.get(key)
        if isinstance(value, Mapping) and isinstance(current, Mapping):
            merged[key] = _merge(current, value)
        else:
            merged[key] = value
    return merged


def load_campaign(
    path: str | None,
    kind: Kind,
    overrides: Mapping[str, Any] | None = None,
    *,
    hint: Callable[[str], str | None] | None = None,
) -> Campaign:
    """The campaign of a TOML or JSON file (the wire keys of the envelope, as in the API),
    with ``overrides`` (same shape) merged over it, checked for ``kind`` by the rule set.

    Options of channels that are not listed are dropped. Any problem raises a ``SourceError``
    naming the file (``"options"`` without one) and the field; ``hint(field)`` may add how to
    set that field (e.g. the command-line flag).
    """
    origin = path if path is not None else "options"
    wire = _merge(_read_campaign_file(path) if path is not None else {}, overrides or {})
    problem = unknown_campaign_key(wire)
    # Options missing for a listed channel: name each option it needs, not the missing table.
    options = wire.setdefault("channel_options", {})
    channels = wire.get("channels")
    if problem is None and isinstance(options, dict) and isinstance(channels, list):
        for name in channels:
            if isinstance(name, str) and name not in options:
                options[name] = {}
    problems = [problem] if problem else check_envelope(wire, kind)
    if problems:

        def described(found: Problem) -> str:
            extra = hint(found.field) if hint else None
            return found.message + (f" ({extra})" if extra else "")

        if len(problems) == 1:
            raise SourceError(origin, described(problems[0]), field=problems[0].field)
        every = "; ".join(f"{found.field}: {described(found)}" for found in problems)
        raise SourceError(origin, f"{len(problems)} problems: {every}")
    listed = set(wire["channels"])
    wire["channel_options"] = {k: v for k, v in wire["channel_options"].items() if k in listed}
    try:
        campaign: Campaign = converter.structure(wire, Campaign)
    except Exception as exc:  # cattrs raises several types; any means "not a campaign"
        raise SourceError(origin, f"cannot be read as a campaign: {exc}") from None
    return campaign
