"""``hyber-async send batch|broadcast FILE``: send a campaign to the recipients of a file.

The file is streamed through ``stream_batch`` / ``stream_broadcast``, never whole in memory.
JSON Lines: one object per line with the wire keys. The campaign comes from ``--campaign FILE``
(TOML or JSON: the envelope's wire keys) and the flags, which override it.

Never twice: the whole file is checked before the first request is sent (a bad row stops
the send before anything is sent; ``--no-check-first`` starts at once, and a pipe (``-`` for
standard input) is read only once, so it is checked as it is sent). A send keeps a journal next
to its result file (``FILE.result.journal``): running the same command again resumes it,
skipping what was accepted and never resending what may have been. A stop while sending (a bad
row of a pipe, Ctrl-C) says how to send the rest: fix the row, run the same command again. To
send a file again on purpose (a new campaign to the same people), give a new result file:
``--result NEW.jsonl`` (its journal is new too). ``--resume`` only resumes: it refuses to
start when there is no journal to resume. With ``--skip-invalid`` bad rows are skipped and
listed in the result file instead. ``--dry-run`` reads and checks the whole file, sends
nothing.

The result file (JSON Lines, default ``FILE.result.jsonl``) accounts for every row of the file
across every run: a resume rewrites it whole, the journaled chunks of earlier runs included. It
holds one object per line, each with a ``record`` key:

- ``invalid``: a row skipped by ``--skip-invalid`` (``line``, ``field``, ``reason``, and the
  row's ``phone_number`` and ``extra_id`` when it could be read);
- ``job``: an accepted job, its input range (``first_index``, ``size``, ``accepted``) and the
  lines it holds (``first_line``, ``last_line``);
- ``recipient``: every recipient that was not accepted (``index`` in the sent stream, ``line``,
  ``phone_number``, ``extra_id``, ``outcome``, ``reason``, ``error_code``);
- ``summary``: the last line, the counts, the settings and the exit code (what ``--json``
  prints).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import queue
import sys
import threading
from collections.abc import AsyncIterator, Iterable
from typing import IO, Any, Final

import anyio
import attrs
import orjson

from .._client import HyberClient
from .._codec import Envelope, Wire
from .._errors import HyberError
from .._models import Kind
from .._send_report import Outcome, Progress, SendReport
from .._sender import DEFAULT_CONCURRENCY, paced_chunk_size
from .._validation import MAX_ITEMS, ItemRules
from ..journal import JournalMismatchError, SqliteJournal
from ._common import (
    EXIT_BAD_INPUT,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_PARTIAL,
    EXIT_SERVER,
    HelpFormatter,
    UsageError,
    add_connection_arguments,
    error,
    exit_codes,
    make_client,
)
from ._console import Bar, Console
from ._sources import (
    FORMATS,
    ItemStream,
    RecordReader,
    SourceError,
    check_columns,
    checked_rows,
    load_campaign,
    phone_parser,
)

__all__ = ["add"]

_CHANNELS: Final = ("viber", "sms", "whatsapp", "push")
_OPTION_FLAGS: Final = (
    ("viber", "ttl", int, "seconds a Viber message may wait (40-86400)"),
    ("viber", "text", str, "Viber text"),
    ("viber", "alpha_name", str, "Viber sender name"),
    ("sms", "ttl", int, "seconds an SMS may wait (300-259200)"),
    ("sms", "alpha_name", str, "SMS sender name (up to 11 GSM-7 characters)"),
    ("sms", "text", str, "SMS text"),
    ("whatsapp", "ttl", int, "seconds a WhatsApp message may wait (1-604800)"),
    ("whatsapp", "text", str, "WhatsApp text"),
    ("push", "ttl", int, "seconds a push message may wait (30-86400)"),
    ("push", "title", str, "push title (up to 20 characters)"),
    ("push", "text", str, "push text"),
)
"""``--{channel}-{option}`` flags: they set ``channel_options.{channel}.{option}``."""
_TOP_FLAGS: Final = (
    ("callback_url", "URL that receives the delivery reports"),
    ("tag", "campaign name shown in reports"),
    ("start_time", "when to start: 'YYYY-MM-DD hh:mm:ss+hh:mm'"),
)
_SHOWN_PROBLEMS: Final = 10
_FILES: Final = {
    Kind.BATCH: """\
Send one message per row: each with its own text (POST /batch).
CSV columns: phone_number (digits, a leading + allowed), text, extra_id (optional); no other
column.""",
    Kind.BROADCAST: """\
Send one campaign text to every row (POST /broadcast): the channel texts (--text,
--CHANNEL-text or the campaign file) may use %variables%, filled from each row.
CSV columns: phone_number (digits, a leading + allowed), extra_id (optional); every other
column is a %variable% of its row.""",
}
_TEXT_HELP: Final = {
    Kind.BATCH: " of the envelope (each message's own text comes from the file)",
    Kind.BROADCAST: " (may use %%variables%%)",
}


def add(commands: Any) -> None:
    """Declare ``hyber-async send batch`` and ``hyber-async send broadcast``."""
    send = commands.add_parser(
        "send",
        help="send a campaign to the recipients of a CSV or JSONL file",
        description=(__doc__ or "").replace("``", ""),
        epilog="see hyber-async send batch --help and hyber-async send broadcast --help",
        formatter_class=HelpFormatter,
    )
    kinds = send.add_subparsers(dest="kind", metavar="kind", required=True)
    for kind in Kind:
        parser = kinds.add_parser(
            kind.value,
            help=_FILES[kind].splitlines()[0],
            description=_FILES[kind]
            + "\n\n"
            + (__doc__ or "").split("\n\n", 2)[2].replace("``", ""),
            epilog=exit_codes(EXIT_OK, EXIT_PARTIAL, EXIT_BAD_INPUT, EXIT_SERVER, EXIT_INTERRUPTED),
            formatter_class=HelpFormatter,
        )
        _add_arguments(parser, kind)
        parser.set_defaults(run=_run)


def _add_arguments(parser: argparse.ArgumentParser, kind: Kind) -> None:
    parser.add_argument("file", help="CSV or JSON Lines file ('-': standard input)")
    parser.add_argument("--format", choices=FORMATS, help="file format (default: by its extension)")
    reading = parser.add_argument_group("reading the file")
    reading.add_argument(
        "--delimiter",
        type=_delimiter,
        metavar="C",
        help="CSV delimiter: one character, or 'tab' (default: found from the header among "
        ", ; tab |)",
    )
    reading.add_argument(
        "--encoding",
        metavar="NAME",
        help="text encoding, e.g. cp1251 or latin-1 (default: UTF-8, with or without a BOM)",
    )
    reading.add_argument(
        "--normalize-phones",
        action="store_true",
        help="read phone numbers as people write them (+380 (96) 111-11-11, 380-96-111-11-14) "
        "with libphonenumber; a number that is not valid for its country is a bad row",
    )
    reading.add_argument(
        "--phone-region",
        metavar="CC",
        help="the country of numbers written without a country code, e.g. UA (implies "
        "--normalize-phones; default: none, every number needs one)",
    )

    campaign = parser.add_argument_group("campaign", "flags override the campaign file")
    campaign.add_argument("--campaign", metavar="FILE", help="campaign settings (TOML or JSON)")
    campaign.add_argument(
        "--channels",
        metavar="LIST",
        help="comma-separated channels in cascade order, e.g. viber,sms",
    )
    if kind is Kind.BROADCAST:
        campaign.add_argument(
            "--text", help="the text of every channel without its own --CHANNEL-text"
        )
    for channel, option, flag_type, help_text in _OPTION_FLAGS:
        flag = f"--{channel}-{option.replace('_', '-')}"
        metavar = "N" if flag_type is int else option.upper()
        if option == "text":
            help_text += _TEXT_HELP[kind]
        campaign.add_argument(
            flag, dest=f"{channel}_{option}", type=flag_type, metavar=metavar, help=help_text
        )
    for key, help_text in _TOP_FLAGS:
        flag = f"--{key.replace('_', '-')}"
        campaign.add_argument(flag, dest=key, metavar=key.upper(), help=help_text)

    sending = parser.add_argument_group("sending")
    sending.add_argument(
        "--dry-run", action="store_true", help="read and check the whole file, send nothing"
    )
    sending.add_argument(
        "--skip-invalid",
        action="store_true",
        help="skip bad rows (listed in the result file) instead of stopping at the first",
    )
    sending.add_argument(
        "--no-check-first",
        action="store_true",
        help="start sending before the whole file is checked (a bad row then stops the send at "
        "its chunk; a pipe is always checked as it is sent)",
    )
    sending.add_argument(
        "--result", metavar="FILE", help="result file (default: FILE.result.jsonl)"
    )
    sending.add_argument(
        "--journal",
        metavar="PATH",
        help="the journal of every chunk (default: next to the result file, FILE.result.journal)"
        "; running the same command again resumes: accepted chunks are skipped, unknown ones "
        "reported, never resent",
    )
    sending.add_argument(
        "--no-journal",
        action="store_true",
        help="keep no journal (then a rerun cannot resume, and the result file must not exist)",
    )
    sending.add_argument(
        "--resume",
        action="store_true",
        help="only resume: refuse to start when the journal does not exist or is empty",
    )
    sending.add_argument("--json", action="store_true", help="print a JSON summary")
    sending.add_argument(
        "--chunk-size",
        type=int,
        default=MAX_ITEMS,
        metavar="N",
        help="items per request (at most 50000; --max-rate may lower it)",
    )
    sending.add_argument(
        "--concurrency",
        type=int,
        default=DEFAULT_CONCURRENCY,
        metavar="N",
        help="requests in flight",
    )
    sending.add_argument(
        "--max-rate",
        type=float,
        metavar="R",
        help="at most this many recipients per second (chunks shrink to R/10)",
    )
    sending.add_argument(
        "--sync", action="store_true", help="use the /sync endpoints (an answer per message)"
    )
    add_connection_arguments(parser)


def _delimiter(text: str) -> str:
    """A CSV delimiter, for argparse."""
    value = "\t" if text in ("tab", "\\t") else text
    if len(value) != 1:
        raise argparse.ArgumentTypeError(f"must be one character or 'tab', got {text!r}")
    return value


# --- the campaign ---------------------------------------------------------------------------


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The campaign settings given by flags, in the wire shape of the campaign file."""
    wire: dict[str, Any] = {}
    if args.channels is not None:
        wire["channels"] = [c.strip() for c in args.channels.split(",") if c.strip()]
    options: dict[str, dict[str, Any]] = {}
    if getattr(args, "text", None) is not None:
        for channel in _CHANNELS:
            options.setdefault(channel, {})["text"] = args.text
    for channel, option, _, _ in _OPTION_FLAGS:
        value = getattr(args, f"{channel}_{option}")
        if value is not None:
            options.setdefault(channel, {})[option] = value
    if options:
        wire["channel_options"] = options
    for key, _ in _TOP_FLAGS:
        value = getattr(args, key)
        if value is not None:
            wire[key] = value
    return wire


def _flag_hint(field: str) -> str | None:
    """How to set a campaign field from the command line."""
    flag = _field_flag(field.partition("[")[0])
    if not flag.startswith("--"):
        return None
    return f"see {flag}" if flag == "--channels" else f"set it in the campaign file or with {flag}"


def _field_flag(field: str) -> str:
    """The flag that sets a campaign field (or where else it is set)."""
    parts = field.split(".")
    if field == "channels":
        return "--channels"
    if len(parts) == 3 and (parts[1], parts[2]) in {(c, o) for c, o, _, _ in _OPTION_FLAGS}:
        return f"--{parts[1]}-{parts[2].replace('_', '-')}"
    if field in {key for key, _ in _TOP_FLAGS}:
        return f"--{field.replace('_', '-')}"
    return f"{field} in the campaign file"


# --- output ---------------------------------------------------------------------------------


def _dumps(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


class _ResultFile:
    """The result file, written as the send goes (skipped rows) and at its end."""

    def __init__(self, handle: IO[str], path: str) -> None:
        self.handle = handle
        self.path = path

    def write(self, record: str, **fields: Any) -> None:
        self.handle.write(_dumps({"record": record, **fields}) + "\n")

    def skipped(self, problem: SourceError) -> None:
        item = problem.item or {}
        self.write(
            "invalid",
            line=problem.line,
            field=problem.field,
            phone_number=item.get("phone_number"),
            extra_id=item.get("extra_id"),
            outcome=Outcome.NOT_SENT.value,
            reason=problem.message,
        )

    def finish(self, report: SendReport, stream: ItemStream, summary: dict[str, Any]) -> None:
        for job in report.jobs:
            self.write(
                "job",
                job_id=job.job_id,
                first_index=job.first_index,
                size=job.size,
                accepted=job.accepted,
                first_line=stream.line_of(job.first_index),
                last_line=stream.line_of(job.first_index + job.size - 1),
            )
        for failure in report.failures():
            self.write(
                "recipient",
                index=failure.index,
                line=stream.line_of(failure.index),
                phone_number=failure.phone_number,
                extra_id=failure.extra_id,
                outcome=failure.outcome.value,
                reason=failure.reason,
                error_code=failure.error_code,
            )
        self.write("summary", **summary)


def _print_human(console: Console, summary: dict[str, Any]) -> None:
    rows: list[tuple[str, int | str]] = [
        ("rows read", summary["rows"]),
        ("accepted", summary["accepted"]),
        ("jobs", len(summary["jobs"])),
        ("rejected", summary["rejected"]),
        ("not sent", summary["not_sent"]),
        ("  of which invalid rows", summary["invalid"]),
        ("unknown (reconcile)", summary["unknown"]),
        ("chunk size", _chunk_size_text(summary["settings"])),
    ]
    if summary["throttled"]:
        waited = f"{summary['throttled']:,} refusals, {summary['waited_seconds']:,.1f} s waited"
        rows.append(("throttled (quota)", waited))
    console.summary(rows, title=f"send {summary['kind']} {summary['file']}")
    for line in _next_steps(summary):
        console.note(line)
    console.note(f"result file: {summary['result_file']}")


def _chunk_size_text(settings: dict[str, Any]) -> str:
    """The chunk size used, and why when ``--max-rate`` changed it."""
    used = settings["chunk_size"]
    if used == settings["requested_chunk_size"]:
        return f"{used:,}"
    return f"{used:,} (--max-rate {settings['max_rate']:g}/s caps it at a tenth of the rate)"


def _next_steps(summary: dict[str, Any]) -> list[str]:
    """What happened to the rows not sent, and how to send them."""
    journal = summary["journal"]
    if _nothing_out(summary):
        again = "run the same command again: nothing was accepted, so it starts over"
    elif journal:
        again = (
            f"run the same command again: its journal {journal} skips the "
            f"{summary['accepted']:,} rows already accepted and sends the rest"
        )
    else:
        again = (
            "no journal was kept: running the command again would send every row again; "
            f"send only the rows from line {summary['unsent_from_line']} on"
        )
    stopped = summary["stopped"]
    if stopped is not None:
        where = f"line {stopped['line']}" if stopped["line"] is not None else "a file error"
        sent = summary["sent_rows"]
        return [
            f"stopped at {where}: nothing from line {summary['unsent_from_line']} on was sent"
            + (f" ({sent:,} rows before it were)" if sent else " (no row was)"),
            f"to send the rest, fix {where} and {again}",
        ]
    if summary["interrupted"]:
        return [f"interrupted: nothing more was read or sent; to send the rest, {again}"]
    if _nothing_out(summary) and summary["rows"]:
        return [f"nothing was accepted, and nothing may have been: fix the cause and {again}"]
    unsent = summary["not_sent"] - summary["invalid"]
    if unsent and journal:
        return [f"{unsent:,} rows were not sent (see the result file): to send them, {again}"]
    return []


# --- running --------------------------------------------------------------------------------


def _run(args: argparse.Namespace) -> int:  # noqa: C901, PLR0912 -- checks every flag, reports all
    kind = Kind(args.kind)
    problems: list[str] = []
    if not 1 <= args.chunk_size <= MAX_ITEMS:
        problems.append(f"--chunk-size must be between 1 and {MAX_ITEMS}")
    if args.concurrency < 1:
        problems.append("--concurrency must be at least 1")
    if args.max_rate is not None and args.max_rate <= 0:
        problems.append("--max-rate must be positive")
    if args.no_journal and (args.journal or args.resume):
        problems.append("--no-journal cannot go with --journal or --resume")
    envelope: Envelope | None = None
    client: HyberClient | None = None
    reader: RecordReader | None = None
    try:
        campaign = load_campaign(args.campaign, kind, _overrides(args), hint=_flag_hint)
        envelope = Envelope(campaign, kind)
    except (UsageError, HyberError) as exc:
        problems.append(str(exc))
    if not args.dry_run:
        try:
            client = make_client(args)
        except UsageError as exc:
            problems.append(str(exc))
    try:
        reader = _reader(args, kind)
        if envelope is not None:
            check_columns(reader, envelope.wire)
    except HyberError as exc:
        problems.append(str(exc))
    if problems or envelope is None or reader is None:
        for problem in problems:
            error("send", problem)
        if reader is not None:
            reader.close()
        return EXIT_BAD_INPUT
    with reader:
        if client is None:
            return _dry_run(args, reader, envelope.rules)
        return _send(args, kind, envelope, reader, client)


def _reader(args: argparse.Namespace, kind: Kind) -> RecordReader:
    """The file of ``args``, opened as its reading flags say."""
    phone = None
    if args.normalize_phones or args.phone_region:
        phone = phone_parser(args.phone_region)
    return RecordReader(
        args.file,
        kind,
        args.format,
        delimiter=args.delimiter,
        encoding=args.encoding,
        phone=phone,
    )


@attrs.define
class _Check:
    """What reading and checking a whole file found."""

    valid: int = 0
    invalid: int = 0
    problems: list[SourceError] = attrs.field(factory=list)
    """The first ``_SHOWN_PROBLEMS`` bad rows."""
    fatal: SourceError | None = None
    """A problem that stopped the reading (not a row's)."""

    def show(self, out: IO[str]) -> None:
        """List the problems, each once."""
        for problem in self.problems:
            print(f"  {problem}", file=out)
        if self.invalid > len(self.problems):
            print(f"  ... and {self.invalid - len(self.problems)} more", file=out)
        if self.fatal is not None:
            print(f"  {self.fatal}", file=out)


def _check(reader: RecordReader, rules: ItemRules) -> _Check:
    found = _Check()
    try:
        for _, item in checked_rows(reader, rules):
            if isinstance(item, SourceError):
                found.invalid += 1
                if len(found.problems) < _SHOWN_PROBLEMS:
                    found.problems.append(item)
            else:
                found.valid += 1
    except SourceError as exc:
        found.fatal = exc
    return found


def _dry_run(args: argparse.Namespace, reader: RecordReader, rules: ItemRules) -> int:
    found = _check(reader, rules)
    code = EXIT_OK if found.valid and not found.invalid and found.fatal is None else EXIT_BAD_INPUT
    if args.json:
        summary = {
            "command": "send",
            "dry_run": True,
            "kind": args.kind,
            "file": args.file,
            "valid": found.valid,
            "invalid": found.invalid,
            "problems": [p.as_dict() for p in found.problems],
            "error": None if found.fatal is None else found.fatal.as_dict(),
            "exit_code": code,
        }
        print(_dumps(summary))
    else:
        print(
            f"dry run of {args.file}: {found.valid} valid rows, {found.invalid} invalid rows, "
            "nothing sent"
        )
        found.show(sys.stdout)
    if found.valid == 0 and found.invalid == 0 and found.fatal is None:
        error("send", f"{args.file}: {_no_rows(found)}: there is nothing to send")
    elif code != EXIT_OK:
        error("send", f"{args.file}: {_problem_count(found)} (listed above); nothing was sent")
    return code


def _no_rows(found: _Check) -> str:
    """Why a file without a valid row has nothing to send."""
    if found.invalid:
        return f"none of its {found.invalid} rows is valid (listed above)"
    return "the file has no rows, only a header"


def _problem_count(found: _Check) -> str:
    parts = []
    if found.invalid:
        parts.append(f"{found.invalid} invalid row{'s' if found.invalid > 1 else ''}")
    if found.fatal is not None:
        parts.append(f"a file error at line {found.fatal.line}")
    return " and ".join(parts)


def _check_first(args: argparse.Namespace, kind: Kind, rules: ItemRules) -> _Check:
    """Read and check the whole file before anything is sent."""
    with _reader(args, kind) as reader:
        return _check(reader, rules)


def _refuse_checked(args: argparse.Namespace, found: _Check) -> None:
    """Say why a file checked before sending is not sent, each problem once."""
    if args.json:
        problems = [p.as_dict() for p in found.problems]
        if found.fatal is not None:
            problems.append(found.fatal.as_dict())
        print(_dumps({"command": "send", "sent": False, "problems": problems}))
    else:
        found.show(sys.stderr)
    rest = "" if found.fatal is not None else " (or pass --skip-invalid to send the valid rows)"
    error(
        "send",
        f"{args.file}: {_problem_count(found)}; nothing was sent: fix the file and run the "
        f"same command again{rest}",
    )


def _default_journal(result_path: str) -> str:
    """The journal next to a result file: ``X.result.jsonl`` -> ``X.result.journal``."""
    return result_path.removesuffix(".jsonl") + ".journal"


def _rerun_problem(
    result_path: str, journal: str | None, previous: dict[str, Any] | None
) -> str | None:
    """Why this run must not start: it could send the same rows again (an earlier run's
    summary ``previous`` may say that nothing of it can have reached anyone)."""
    sent_again = "to send the file again on purpose, pass a new --result FILE"
    if previous is not None and _nothing_out(previous):
        return None
    if journal is None:
        if os.path.exists(result_path):
            return f"{result_path}: the result file exists (it may have been sent): {sent_again}"
        return None
    if os.path.exists(result_path) and not _has_content(journal):
        return (
            f"{result_path}: the result file exists but not its journal {journal}: the file "
            f"may have been sent; {sent_again}"
        )
    return None


def _has_content(path: str | None) -> bool:
    """True when ``path`` is a file with something in it."""
    return path is not None and os.path.isfile(path) and os.path.getsize(path) > 0


def _settings(args: argparse.Namespace, envelope: Envelope) -> dict[str, Any]:
    """What a journal fingerprints, as the summary records it (to name what changed)."""
    return {
        "kind": args.kind,
        "sync": args.sync,
        "chunk_size": paced_chunk_size(args.chunk_size, args.max_rate),
        "requested_chunk_size": args.chunk_size,
        "max_rate": args.max_rate,
        "campaign": envelope.wire,
    }


def _previous_summary(result_path: str) -> dict[str, Any] | None:
    """The summary of an earlier run's result file, if it can be read."""
    try:
        with open(result_path, "rb") as handle:
            last = b""
            for line in handle:
                last = line
        summary = orjson.loads(last)
    except (OSError, orjson.JSONDecodeError):
        return None
    return summary if isinstance(summary, dict) and summary.get("record") == "summary" else None


def _nothing_out(summary: dict[str, Any]) -> bool:
    """True when a run's summary says no recipient was accepted and none may have been: the
    server refused or never got every request, so sending the file again is safe."""
    return summary.get("accepted") == 0 and summary.get("unknown") == 0


def _remove_journal(path: str) -> bool:
    """Remove a journal that records nothing sent, and SQLite's side files (not its lock
    file, which stays by design); False where an open file cannot be removed (Windows)."""
    try:
        for name in (path, f"{path}-wal", f"{path}-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name)
    except OSError:
        return False
    return True


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(value, dict):
        return {prefix: value}
    flat: dict[str, Any] = {}
    for key, inner in value.items():
        flat.update(_flatten(inner, f"{prefix}.{key}" if prefix else key))
    return flat


def _differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Each setting that differs between the journaled run and this one: the flag, both values."""

    def shown(value: Any) -> str:
        return "not set" if value is None else _dumps(value)

    found = []
    if old.get("kind") != new["kind"]:
        found.append(f"the request type (journal: {old.get('kind')}, now: {new['kind']})")
    if old.get("sync") != new["sync"]:
        found.append(f"--sync (journal: {shown(old.get('sync'))}, now: {shown(new['sync'])})")
    if old.get("chunk_size") != new["chunk_size"]:
        found.append(
            f"the chunk size, from --chunk-size and --max-rate (journal: "
            f"{_chunk_size_text(old) if 'requested_chunk_size' in old else old.get('chunk_size')}"
            f", now: {_chunk_size_text(new)})"
        )
    before, after = _flatten(old.get("campaign") or {}), _flatten(new["campaign"])
    for field in sorted(before.keys() | after.keys()):
        if before.get(field) != after.get(field):
            found.append(
                f"{_field_flag(field)} (journal: {shown(before.get(field))}, "
                f"now: {shown(after.get(field))})"
            )
    return found


def _refusal(
    journal: str | None,
    refusal: HyberError,
    old: dict[str, Any] | None,
    new: dict[str, Any],
) -> str:
    """The journal's refusal, naming each setting that differs when the summary of the run
    that wrote the journal (``old``) tells them."""
    differences: list[str] = []
    if isinstance(refusal, JournalMismatchError) and old is not None and _has_content(journal):
        differences = _differences(old, new)
    if not differences:
        said = str(refusal)
        return said if journal and said.startswith(journal) else f"{journal}: {said}"
    return (
        f"{journal} records a send with other settings: {'; '.join(differences)}. "
        "Run with the journal's settings to resume it, or pass a new --result FILE for a new send"
    )


def _send(  # noqa: C901, PLR0912 -- the send and each way it can end, in the order they happen
    args: argparse.Namespace,
    kind: Kind,
    envelope: Envelope,
    reader: RecordReader,
    client: HyberClient,
) -> int:
    if args.result is None and reader.is_pipe:
        error(
            "send", f"{args.file}: reading a pipe: pass --result FILE (its journal goes next to it)"
        )
        return EXIT_BAD_INPUT
    result_path = args.result or f"{args.file}.result.jsonl"
    journal_path = None if args.no_journal else (args.journal or _default_journal(result_path))
    previous = _previous_summary(result_path)
    problem = _rerun_problem(result_path, journal_path, previous)
    if problem is not None:
        error("send", problem)
        return EXIT_BAD_INPUT
    total: int | None = None
    if not (reader.is_pipe or args.no_check_first):
        found = _check_first(args, kind, envelope.rules)
        if found.fatal is not None or (found.invalid and not args.skip_invalid):
            _refuse_checked(args, found)
            return EXIT_BAD_INPUT
        if found.valid == 0:
            found.show(sys.stderr)
            error("send", f"{args.file}: {_no_rows(found)}: nothing was sent")
            return EXIT_BAD_INPUT
        total = found.valid
    settings = _settings(args, envelope)
    # Written aside and moved over the result file at the end: an earlier run's result stays
    # until this run's, which accounts for every row (the journal's chunks included), is whole.
    partial = f"{result_path}.part"
    try:
        handle = open(partial, "w", encoding="utf-8")  # noqa: SIM115 (closed below)
    except OSError as exc:
        error("send", f"{result_path}: cannot write the result file: {exc.strerror or exc}")
        return EXIT_BAD_INPUT
    with handle:
        result = _ResultFile(handle, result_path)
        stream = ItemStream(
            reader,
            envelope.rules,
            on_skipped=result.skipped if args.skip_invalid else None,
            whole=settings["chunk_size"],
        )
        report = SendReport()
        interrupted = False
        console = Console(json_output=args.json)
        send = client.stream_batch if kind is Kind.BATCH else client.stream_broadcast

        async def run(bar: Bar) -> None:
            def show(progress: Progress) -> None:
                text = f"{progress.accepted:,} accepted, {progress.rate:,.0f}/s"
                throttling = progress.throttling
                if throttling.throttled:
                    limit = throttling.rate_limit
                    text += f", throttled {throttling.throttled:,}x"
                    text += f" (limit {limit:,.0f}/s)" if limit is not None else ""
                bar.update(progress.read, text)

            with contextlib.ExitStack() as stack:
                journal = (
                    stack.enter_context(SqliteJournal(journal_path, create=not args.resume))
                    if journal_path
                    else None
                )
                async with client:
                    await send(
                        envelope.campaign,
                        _in_thread(stream, stream.whole) if reader.is_pipe else stream,
                        chunk_size=args.chunk_size,
                        concurrency=args.concurrency,
                        max_rate=args.max_rate,
                        sync=args.sync,
                        on_invalid="abort",
                        on_progress=show,
                        report=report,
                        journal=journal,
                    )
                counts = report.counts
                if journal_path and counts[Outcome.ACCEPTED] == counts[Outcome.UNKNOWN] == 0:
                    # Nothing can have reached anyone: a journal of refused chunks would only
                    # stop the same command, run again once the cause is fixed, from sending
                    # them. Removed while still locked, so no other run can be using it.
                    removed.append(_remove_journal(journal_path))

        removed: list[bool] = []
        try:
            with console.progress("sending", total) as bar:
                anyio.run(run, bar)
        except KeyboardInterrupt:
            interrupted = True
        except HyberError as refusal:  # the journal's: another send, another input, in use
            if report.read == 0:  # refused before anything was read: the earlier result stays
                handle.close()
                os.unlink(partial)
                old = previous.get("settings") if previous is not None else None
                error("send", _refusal(journal_path, refusal, old, settings))
                return EXIT_BAD_INPUT
            stream.error = SourceError(journal_path or "", str(refusal))
        summary = _summary(args, report, stream, result_path, journal_path, interrupted)
        summary["settings"] = settings
        if any(removed):
            summary["journal"] = None
        result.finish(report, stream, summary)
    os.replace(partial, result_path)
    if args.json:
        print(_dumps(summary))
    else:
        _print_human(console, summary)
    if stream.error is not None:
        error("send", stream.error)
    elif interrupted:
        error("send", "interrupted")
    elif summary["rows"] == 0:
        error("send", f"{args.file}: the input has no rows: nothing was sent")
    elif summary["exit_code"] == EXIT_SERVER:
        error("send", f"nothing was accepted: {_first_reason(report)}")
    return int(summary["exit_code"])


_PIPE_POLL: Final = 0.01
"""Seconds between looks for the next block of a pipe's rows while none is ready."""


async def _in_thread(items: Iterable[Wire], block: int) -> AsyncIterator[Wire]:
    """``items`` read ``block`` at a time in a daemon thread: waiting on a pipe for its next
    rows never holds up the requests in flight, and Ctrl-C never waits for the pipe."""
    blocks: queue.Queue[list[Wire] | BaseException] = queue.Queue(maxsize=2)

    def read() -> None:
        iterator = iter(items)
        try:
            while rows := list(itertools.islice(iterator, block)):
                blocks.put(rows)
            blocks.put([])
        except BaseException as exc:  # handed to the reading side, which raises it
            blocks.put(exc)

    threading.Thread(target=read, name="hyber-async pipe reader", daemon=True).start()
    while True:
        try:
            rows = blocks.get_nowait()
        except queue.Empty:
            await anyio.sleep(_PIPE_POLL)
            continue
        if isinstance(rows, BaseException):
            raise rows
        if not rows:
            return
        for row in rows:
            yield row


def _first_reason(report: SendReport) -> str:
    for failure in report.failures():
        return failure.reason
    return "no reason given"


def _summary(
    args: argparse.Namespace,
    report: SendReport,
    stream: ItemStream,
    result_path: str,
    journal_path: str | None,
    interrupted: bool,
) -> dict[str, Any]:
    counts = report.counts
    accepted = counts[Outcome.ACCEPTED]
    rows = report.read + stream.skipped
    if stream.error is not None:
        code = EXIT_BAD_INPUT
    elif interrupted:
        code = EXIT_INTERRUPTED
    elif rows == 0:
        code = EXIT_BAD_INPUT
    elif accepted == rows:
        code = EXIT_OK
    elif accepted == 0 and report.read > 0:
        code = EXIT_SERVER
    else:
        code = EXIT_PARTIAL
    unsent_from = stream.held_line
    if unsent_from is None and stream.error is not None:
        unsent_from = stream.error.line
    if unsent_from is None and report.read:
        last = stream.line_of(report.read - 1)
        unsent_from = None if last is None else last + 1
    return {
        "command": "send",
        "dry_run": False,
        "kind": args.kind,
        "file": args.file,
        "run_id": report.run_id,
        "rows": rows,
        "sent_rows": report.read,
        "accepted": accepted,
        "rejected": counts[Outcome.REJECTED],
        "not_sent": counts[Outcome.NOT_SENT] + stream.skipped,
        "invalid": stream.skipped,
        "unknown": counts[Outcome.UNKNOWN],
        "jobs": report.job_ids,
        "throttled": report.throttling.throttled,
        "waited_seconds": round(report.throttling.waited, 3),
        "complete": report.complete and stream.error is None,
        "stopped": None if stream.error is None else stream.error.as_dict(),
        "interrupted": interrupted,
        "unsent_from_line": unsent_from if (stream.error or interrupted) else None,
        "result_file": result_path,
        "journal": journal_path,
        "exit_code": code,
    }
