"""``hyber-async send batch|broadcast FILE``: send a campaign to the recipients of a file.

The file is streamed through ``stream_batch`` / ``stream_broadcast``, never whole in memory.
CSV: a header line names the columns: ``phone_number`` (digits, a leading ``+`` allowed),
``extra_id`` (optional) and, for a batch, ``text``; in a broadcast every other column is a
``%variable%``. JSON Lines: one object per line with the wire keys. The campaign comes from
``--campaign FILE`` (TOML or JSON: the envelope's wire keys) and the flags, which override it.

Bad input: a bad row stops the send at its line. The rows before it were read and sent (the
chunk holding the bad line is cut just before it); nothing from that line on is sent; the
result file says which jobs hold which lines. With ``--skip-invalid`` bad rows are skipped and
listed in the result file instead. ``--dry-run`` reads and checks the whole file, sends nothing.

The result file (JSON Lines, default ``FILE.result.jsonl``, never overwritten) holds one object
per line, each with a ``record`` key:

- ``invalid``: a row skipped by ``--skip-invalid`` (``line``, ``field``, ``reason``, and the
  row's ``phone_number`` and ``extra_id`` when it could be read);
- ``job``: an accepted job, its input range (``first_index``, ``size``, ``accepted``) and the
  lines it holds (``first_line``, ``last_line``);
- ``recipient``: every recipient that was not accepted (``index`` in the sent stream, ``line``,
  ``phone_number``, ``extra_id``, ``outcome``, ``reason``, ``error_code``);
- ``summary``: the last line, the counts and the exit code (what ``--json`` prints).
"""

from __future__ import annotations

import argparse
import contextlib
from typing import IO, Any, Final

import anyio
import orjson

from .._client import HyberClient
from .._codec import Envelope
from .._errors import HyberError
from .._models import Campaign
from .._send_report import Outcome, Progress, SendReport
from .._sender import DEFAULT_CONCURRENCY
from .._sources import (
    FORMATS,
    ItemStream,
    RecordReader,
    SourceError,
    checked_rows,
    load_campaign,
)
from .._validation import MAX_ITEMS, ItemRules, Kind
from ..journal import JournalMismatchError, SqliteJournal
from ._common import (
    EXIT_BAD_INPUT,
    EXIT_CODES,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_PARTIAL,
    EXIT_SERVER,
    UsageError,
    add_connection_arguments,
    error,
    make_client,
)
from ._console import Bar, Console

__all__ = ["add"]

_CHANNELS: Final = ("viber", "sms", "whatsapp", "push")
_OPTION_FLAGS: Final = (
    ("viber", "ttl", int, "seconds a Viber message may wait (40-86400)"),
    ("viber", "text", str, "Viber text (broadcast: may use %%variables%%)"),
    ("viber", "alpha_name", str, "Viber sender name"),
    ("sms", "ttl", int, "seconds an SMS may wait (300-259200)"),
    ("sms", "alpha_name", str, "SMS sender name (up to 11 GSM-7 characters)"),
    ("sms", "text", str, "SMS text (broadcast: may use %%variables%%)"),
    ("whatsapp", "ttl", int, "seconds a WhatsApp message may wait"),
    ("whatsapp", "text", str, "WhatsApp text (broadcast: may use %%variables%%)"),
    ("push", "ttl", int, "seconds a push message may wait (30-86400)"),
    ("push", "title", str, "push title (up to 20 characters)"),
    ("push", "text", str, "push text (broadcast: may use %%variables%%)"),
)
"""``--{channel}-{option}`` flags: they set ``channel_options.{channel}.{option}``."""
_TOP_FLAGS: Final = (
    ("callback_url", "URL that receives the delivery reports"),
    ("tag", "campaign name shown in reports"),
    ("start_time", "when to start: 'YYYY-MM-DD hh:mm:ss+hh:mm'"),
)
_SHOWN_PROBLEMS: Final = 10


def add(commands: Any) -> None:
    """Declare ``hyber-async send``."""
    parser = commands.add_parser(
        "send",
        help="send a campaign to the recipients of a CSV or JSONL file",
        description=(__doc__ or "").replace("``", ""),
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("kind", choices=[k.value for k in Kind], help="request type")
    parser.add_argument("file", help="CSV or JSON Lines file of recipients or messages")
    parser.add_argument("--format", choices=FORMATS, help="file format (default: by extension)")

    campaign = parser.add_argument_group("campaign", "flags override the campaign file")
    campaign.add_argument("--campaign", metavar="FILE", help="campaign settings (TOML or JSON)")
    campaign.add_argument(
        "--channels",
        metavar="LIST",
        help="comma-separated channels in cascade order, e.g. viber,sms",
    )
    campaign.add_argument(
        "--text", help="broadcast: the text of every channel without its own --CHANNEL-text"
    )
    for channel, option, kind, help_text in _OPTION_FLAGS:
        flag = f"--{channel}-{option.replace('_', '-')}"
        metavar = "N" if kind is int else option.upper()
        campaign.add_argument(
            flag, dest=f"{channel}_{option}", type=kind, metavar=metavar, help=help_text
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
        "--result", metavar="FILE", help="result file (default: FILE.result.jsonl)"
    )
    sending.add_argument("--json", action="store_true", help="print a JSON summary")
    sending.add_argument(
        "--journal",
        metavar="PATH",
        help="record every chunk in this SQLite file; running the same command again resumes "
        "(accepted chunks are skipped, unknown ones reported, never resent)",
    )
    sending.add_argument(
        "--chunk-size",
        type=int,
        default=MAX_ITEMS,
        metavar="N",
        help="items per request (max 50000)",
    )
    sending.add_argument(
        "--concurrency",
        type=int,
        default=DEFAULT_CONCURRENCY,
        metavar="N",
        help="requests in flight",
    )
    sending.add_argument(
        "--max-rate", type=float, metavar="R", help="at most this many recipients per second"
    )
    sending.add_argument(
        "--sync", action="store_true", help="use the /sync endpoints (an answer per message)"
    )
    add_connection_arguments(parser)
    parser.set_defaults(run=_run)


# --- the campaign ---------------------------------------------------------------------------


def _overrides(args: argparse.Namespace, kind: Kind) -> dict[str, Any]:
    """The campaign settings given by flags, in the wire shape of the campaign file."""
    wire: dict[str, Any] = {}
    if args.channels is not None:
        wire["channels"] = [c.strip() for c in args.channels.split(",") if c.strip()]
    options: dict[str, dict[str, Any]] = {}
    if args.text is not None:
        if kind is Kind.BATCH:
            raise UsageError("--text is for broadcasts: a batch takes its texts from the file")
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
    parts = field.split(".")
    if len(parts) == 3 and parts[0] == "channel_options":
        flag = f"--{parts[1]}-{parts[2].replace('_', '-')}"
        if any(f"{c}_{o}" == f"{parts[1]}_{parts[2]}" for c, o, _, _ in _OPTION_FLAGS):
            return f"set it in the campaign file or with {flag}"
    if field == "channels" or field.startswith("channels["):
        return "see --channels"
    return None


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
    ]
    console.summary(rows, title=f"send {summary['kind']} {summary['file']}")
    stopped = summary["stopped"]
    if stopped is not None:
        where = f"line {stopped['line']}" if stopped["line"] is not None else "a file error"
        console.note(
            f"stopped at {where}: nothing from there on was sent; the {summary['sent_rows']} "
            "rows sent before it are in the result file"
        )
    if summary["interrupted"]:
        console.note("interrupted: nothing more was read or sent")
    console.note(f"result file: {summary['result_file']}")


# --- running --------------------------------------------------------------------------------


def _run(args: argparse.Namespace) -> int:
    kind = Kind(args.kind)
    try:
        if not 1 <= args.chunk_size <= MAX_ITEMS:
            raise UsageError(f"--chunk-size must be between 1 and {MAX_ITEMS}")
        if args.concurrency < 1:
            raise UsageError("--concurrency must be at least 1")
        if args.max_rate is not None and args.max_rate <= 0:
            raise UsageError("--max-rate must be positive")
        campaign = load_campaign(args.campaign, kind, _overrides(args, kind), hint=_flag_hint)
        rules = Envelope(campaign, kind).rules
        client = None if args.dry_run else make_client(args)
        reader = RecordReader(args.file, kind, args.format)
    except (UsageError, HyberError) as exc:
        error("send", exc)
        return EXIT_BAD_INPUT
    with reader:
        if client is None:
            return _dry_run(args, reader, rules)
        return _send(args, kind, campaign, reader, rules, client)


def _dry_run(args: argparse.Namespace, reader: RecordReader, rules: ItemRules) -> int:
    valid = invalid = 0
    problems: list[SourceError] = []
    fatal: SourceError | None = None
    try:
        for _, item in checked_rows(reader, rules):
            if isinstance(item, SourceError):
                invalid += 1
                if len(problems) < _SHOWN_PROBLEMS:
                    problems.append(item)
            else:
                valid += 1
    except SourceError as exc:
        fatal = exc
    code = EXIT_OK if invalid == 0 and fatal is None else EXIT_BAD_INPUT
    if args.json:
        summary = {
            "command": "send",
            "dry_run": True,
            "kind": args.kind,
            "file": args.file,
            "valid": valid,
            "invalid": invalid,
            "problems": [p.as_dict() for p in problems],
            "error": None if fatal is None else fatal.as_dict(),
            "exit_code": code,
        }
        print(_dumps(summary))
    else:
        print(f"dry run of {args.file}: {valid} valid rows, {invalid} invalid rows, nothing sent")
        for problem in problems:
            print(f"  {problem}")
        if invalid > len(problems):
            print(f"  ... and {invalid - len(problems)} more")
    if fatal is not None:
        error("send", fatal)
    elif problems:
        error("send", problems[0])
    return code


def _send(
    args: argparse.Namespace,
    kind: Kind,
    campaign: Campaign,
    reader: RecordReader,
    rules: ItemRules,
    client: HyberClient,
) -> int:
    result_path = args.result or f"{args.file}.result.jsonl"
    # A resumed send rewrites its result file: the journal holds the whole story.
    mode = "w" if args.journal else "x"
    try:
        handle = open(result_path, mode, encoding="utf-8")  # noqa: SIM115 (closed below)
    except FileExistsError:
        error("send", f"{result_path}: the result file exists: pass --result FILE or remove it")
        return EXIT_BAD_INPUT
    except OSError as exc:
        error("send", f"{result_path}: cannot write the result file: {exc.strerror or exc}")
        return EXIT_BAD_INPUT
    with handle:
        result = _ResultFile(handle, result_path)
        stream = ItemStream(reader, rules, on_skipped=result.skipped if args.skip_invalid else None)
        report = SendReport()
        interrupted = False
        console = Console(json_output=args.json)
        send = client.stream_batch if kind is Kind.BATCH else client.stream_broadcast

        async def run(bar: Bar) -> None:
            def show(progress: Progress) -> None:
                bar.update(
                    reader.position,
                    f"bytes; {progress.accepted:,} accepted of {progress.read:,} read, "
                    f"{progress.rate:,.0f}/s",
                )

            with contextlib.ExitStack() as stack:
                journal = stack.enter_context(SqliteJournal(args.journal)) if args.journal else None
                async with client:
                    await send(
                        campaign,
                        stream,
                        chunk_size=args.chunk_size,
                        concurrency=args.concurrency,
                        max_rate=args.max_rate,
                        sync=args.sync,
                        on_invalid="abort",
                        on_progress=show,
                        report=report,
                        journal=journal,
                    )

        try:
            with console.progress("sending", reader.size) as bar:
                anyio.run(run, bar)
        except KeyboardInterrupt:
            interrupted = True
        except JournalMismatchError as refusal:
            error("send", f"{args.journal}: {refusal}")
            return EXIT_BAD_INPUT
        summary = _summary(args, report, stream, result_path, interrupted)
        result.finish(report, stream, summary)
    if args.json:
        print(_dumps(summary))
    else:
        _print_human(console, summary)
    if stream.error is not None:
        error("send", stream.error)
    elif interrupted:
        error("send", "interrupted")
    elif summary["exit_code"] == EXIT_SERVER:
        error("send", f"nothing was accepted: {_first_reason(report)}")
    return int(summary["exit_code"])


def _first_reason(report: SendReport) -> str:
    for failure in report.failures():
        return failure.reason
    return "no reason given"


def _summary(
    args: argparse.Namespace,
    report: SendReport,
    stream: ItemStream,
    result_path: str,
    interrupted: bool,
) -> dict[str, Any]:
    counts = report.counts
    accepted = counts[Outcome.ACCEPTED]
    rows = report.read + stream.skipped
    if stream.error is not None:
        code = EXIT_BAD_INPUT
    elif interrupted:
        code = EXIT_INTERRUPTED
    elif accepted == rows:
        code = EXIT_OK
    elif accepted == 0 and report.read > 0:
        code = EXIT_SERVER
    else:
        code = EXIT_PARTIAL
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
        "complete": report.complete and stream.error is None,
        "stopped": None if stream.error is None else stream.error.as_dict(),
        "interrupted": interrupted,
        "result_file": result_path,
        "exit_code": code,
    }
