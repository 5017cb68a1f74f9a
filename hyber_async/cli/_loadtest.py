"""``hyber-async loadtest``: load-test a Hyber server, or the built-in emulator by default.

Needs the ``loadtest`` extra. ``hyber-async loadtest compare A.json B.json`` compares two
results. Exit codes: 0 done (every threshold met), 1 a threshold missed (each named on a
line), 2 usage error, 3 the target could not be reached, 130 interrupted.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any, Final

import attrs
import orjson

from .._arguments import positive_number
from .._codec import Envelope
from .._config import SITE_URL
from .._errors import InvalidValueError, SourceError
from .._models import Kind
from ..emulator import DEMO_ACCOUNT, parse_latency
from ._common import (
    EXIT_BAD_INPUT,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_PARTIAL,
    EXIT_SERVER,
    HelpFormatter,
    error,
)
from ._sources import ItemStream, RecordReader

__all__ = ["add"]

_number = positive_number()

EPILOG: Final = """\
examples:
  hyber-async loadtest --rate 5000 --duration 10 --report run.html --json run.json
  hyber-async loadtest --ramp 1000:20000 --duration 30 --emulator-latency lognormal:5ms:80ms
  hyber-async loadtest --max 16 --sync --chunk-size 1000 --threshold "p99<500ms"
  hyber-async loadtest compare before.json after.json

exit codes:
  0    done, every threshold met
  1    a threshold was missed (each named on a line)
  2    usage error
  3    the target could not be reached
  130  interrupted"""


def add(commands: Any) -> None:
    """Declare ``hyber-async loadtest`` (and ``loadtest compare``)."""
    parser = commands.add_parser(
        "loadtest",
        help="load-test a server (the built-in emulator by default)",
        description="Send synthetic recipients at a rate (open loop) or as fast as answered\n"
        "(closed loop) and report latency (corrected for coordinated omission), outcomes\n"
        "and rates. Without --base-url the built-in emulator is started in its own process.",
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    load = parser.add_argument_group("workload")
    shape = load.add_mutually_exclusive_group()
    shape.add_argument(
        "--rate", type=_number, metavar="R", help="recipients per second (default 1000)"
    )
    shape.add_argument(
        "--ramp", type=_ramp, metavar="FROM:TO", help="rate rising from FROM to TO recipients/s"
    )
    shape.add_argument(
        "--max", type=int, metavar="N", help="closed loop: N requests in flight, no pacing"
    )
    load.add_argument("--duration", type=_number, default=10.0, metavar="S", help="seconds")
    load.add_argument("--chunk-size", type=int, default=100, metavar="N", help="per request")
    load.add_argument(
        "--endpoint",
        choices=("broadcast", "batch"),
        default="broadcast",
        help="broadcast: one text for all; batch: a text per message",
    )
    load.add_argument("--sync", action="store_true", help="use the /sync endpoints")
    load.add_argument(
        "--connections",
        type=int,
        default=64,
        metavar="N",
        help="open loop: requests in flight at most (default 64)",
    )
    load.add_argument("--workers", type=int, default=1, metavar="N", help="processes")
    load.add_argument(
        "--numbers", type=_numbers, default=None, metavar="FROM:TO", help="phone number range"
    )
    load.add_argument(
        "--follow",
        type=_number,
        metavar="S",
        help="after the run, poll the accepted jobs for up to S seconds: time to final status, "
        "delivered / expired / failed (async endpoints)",
    )
    load.add_argument(
        "--poll-interval", type=_number, default=1.0, metavar="S", help="for --follow"
    )
    load.add_argument(
        "--recipients",
        metavar="FILE",
        help="cycle through the recipients of a CSV or JSON Lines file (as `send` reads them) "
        "instead of synthetic numbers",
    )
    out = parser.add_argument_group("output")
    out.add_argument("--json", type=Path, metavar="PATH", help="write the result as JSON")
    out.add_argument("--report", type=Path, metavar="PATH", help="write the HTML report")
    out.add_argument(
        "--threshold",
        action="append",
        metavar="EXPR",
        help='fail (exit 1) unless met, e.g. "p99<500ms", "rejected<0.1%%", "rate>=98%%"',
    )
    out.add_argument("--quiet", action="store_true", help="no live view")
    target = parser.add_argument_group("target")
    target.add_argument("--base-url", metavar="URL", help="the server (default: an emulator)")
    target.add_argument("--site", help="API site, e.g. eu (real messages)")
    target.add_argument("--client-id", metavar="ID", help="account id ($HYBER_CLIENT_ID)")
    target.add_argument("--login", metavar="LOGIN", help="login ($HYBER_LOGIN)")
    target.add_argument("--password", metavar="PASSWORD", help="password ($HYBER_PASSWORD)")
    target.add_argument(
        "--real-messages",
        action="store_true",
        help="acknowledge that against a server that is not an emulator every recipient is a "
        "real, paid message",
    )
    emulator = parser.add_argument_group("built-in emulator")
    emulator.add_argument(
        "--emulator-latency",
        type=_latency,
        metavar="DIST",
        help="fixed:MS, uniform:MIN:MAX or lognormal:MEDIAN:P99",
    )
    emulator.add_argument(
        "--emulator-capacity",
        type=_at_least_one,
        metavar="N",
        help="requests in flight beyond N are answered 503 with Retry-After",
    )
    emulator.add_argument(
        "--emulator-time-scale",
        type=_number,
        metavar="X",
        help="emulated seconds per real second (e.g. 100: a 300 s ttl passes in 3 s)",
    )
    emulator.add_argument(
        "--stall",
        type=_stall,
        metavar="AT:S",
        help="make an emulator target stall for S seconds, AT seconds into the run",
    )
    parser.set_defaults(run=_run_loadtest)
    sub = parser.add_subparsers(dest="loadtest_command", metavar="compare")
    compare = sub.add_parser("compare", help="compare two --json results")
    compare.add_argument("results", nargs=2, type=Path, metavar="RESULT.json")
    compare.set_defaults(run=_run_compare)


def _at_least_one(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}")
    return value


def _pair(text: str, what: str) -> tuple[float, float]:
    low, sep, high = text.partition(":")
    try:
        pair = float(low), float(high)
    except ValueError:
        pair = (math.nan, math.nan)
    if not sep or not all(v >= 0 and math.isfinite(v) for v in pair):
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
    return pair


def _ramp(text: str) -> tuple[float, float]:
    return _pair(text, "FROM:TO recipients per second")


def _stall(text: str) -> tuple[float, float]:
    return _pair(text, "AT:SECONDS")


def _numbers(text: str) -> tuple[int, int]:
    low, high = _pair(text, "FROM:TO phone numbers")
    return int(low), int(high)


def _latency(text: str) -> str:
    try:
        parse_latency(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _load(path: Path) -> dict[str, Any]:
    data = orjson.loads(path.read_bytes())
    if not isinstance(data, dict) or "latency_ms" not in data:
        raise InvalidValueError(f"{path}: not a loadtest result")
    return data


def _run_compare(args: argparse.Namespace) -> int:
    from ..loadtest import compare

    try:
        a, b = (_load(path) for path in args.results)
    except (OSError, ValueError) as exc:
        error("loadtest compare", exc)
        return EXIT_BAD_INPUT
    print(compare(a, b, (args.results[0].name, args.results[1].name)))
    return EXIT_OK


class _Live:
    """The live terminal view (rich): elapsed, rate, in flight, latency, errors."""

    def __init__(self, duration: float) -> None:
        from rich.live import Live

        self.duration = duration
        self.live = Live(auto_refresh=False, transient=True)
        self.shown = -1.0

    def __call__(self, elapsed: float, recorder: Any) -> None:
        if elapsed - self.shown < 0.5:
            return
        self.shown = elapsed
        from rich.table import Table

        last = recorder.seconds.get(int(elapsed) - 1)
        table = Table(title=f"hyber-async loadtest  {elapsed:5.1f} / {self.duration:g} s")
        for column in ("recipients/s", "in flight", "p50 ms", "p99 ms", "failed"):
            table.add_column(column, justify="right")
        p50 = recorder.corrected.get_value_at_percentile(50) / 1000
        p99 = recorder.corrected.get_value_at_percentile(99) / 1000
        rate = last.recipients if last is not None else 0
        failed = sum(recorder.errors.values())
        table.add_row(f"{rate:,}", str(recorder.in_flight), f"{p50:.1f}", f"{p99:.1f}", str(failed))
        self.live.update(table, refresh=True)


def _run_loadtest(args: argparse.Namespace) -> int:  # noqa: C901 -- checks every flag, then picks the target
    try:
        from .. import loadtest as lt
    except ImportError as exc:
        error("loadtest", f"needs the loadtest extra (pip install 'hyber-async[loadtest]'): {exc}")
        return EXIT_BAD_INPUT
    try:
        thresholds = [lt.parse_threshold(text) for text in args.threshold or ()]
        rate = args.rate if args.rate or args.ramp or args.max else 1000.0
        options: dict[str, Any] = {}
        if args.numbers is not None:
            options["numbers"] = args.numbers
        workload = lt.Workload(
            duration=args.duration,
            rate=rate,
            ramp=args.ramp,
            max_in_flight=args.max,
            connections=args.connections,
            chunk_size=args.chunk_size,
            kind=args.endpoint,
            sync=args.sync,
            **options,
        )
        if args.recipients is not None:
            workload = attrs.evolve(
                workload, recipients=_load_recipients(args.recipients, workload)
            )
        if args.workers < 1:
            raise InvalidValueError(f"--workers must be >= 1, got {args.workers}")
        if args.follow and args.sync:
            raise InvalidValueError(
                "--follow follows jobs: use it with the async endpoints, not --sync"
            )
    except ValueError as exc:
        error("loadtest", exc)
        return EXIT_BAD_INPUT
    base_url = args.base_url or (SITE_URL.format(site=args.site) if args.site else None)
    built_in = (args.emulator_latency, args.emulator_capacity, args.emulator_time_scale)
    if base_url is not None and any(v is not None for v in built_in):
        error("loadtest", "--emulator-* settings are for the built-in emulator (no --base-url)")
        return EXIT_BAD_INPUT
    if base_url is None:
        from ..loadtest import emulator_process

        account = DEMO_ACCOUNT
        try:
            with emulator_process(
                latency=args.emulator_latency,
                capacity=args.emulator_capacity,
                time_scale=args.emulator_time_scale,
            ) as url:
                target = lt.Target(url, account.client_id, account.login, account.password)
                return _measure(args, lt, workload, target, thresholds)
        except RuntimeError as exc:
            error("loadtest", exc)
            return EXIT_SERVER
    if lt.emulator_stats(base_url) is None:
        if not args.real_messages:
            error(
                "loadtest",
                f"{base_url} is not an emulator: every recipient would be a real, paid "
                "message. Pass --real-messages to acknowledge that, or leave out --base-url "
                "to test against the built-in emulator.",
            )
            return EXIT_BAD_INPUT
        if args.stall:
            error("loadtest", "--stall needs an emulator target")
            return EXIT_BAD_INPUT
    target = lt.Target(base_url, args.client_id, args.login, args.password)
    return _measure(args, lt, workload, target, thresholds)


def _measure(
    args: argparse.Namespace, lt: Any, workload: Any, target: Any, thresholds: list[Any]
) -> int:
    options: dict[str, Any] = {"workers": args.workers, "stall": args.stall}
    if args.follow:
        options["follow"] = lt.Follow(args.follow, args.poll_interval)
    live = None
    if not args.quiet and args.workers == 1 and sys.stdout.isatty():
        live = _Live(workload.duration)
    try:
        if live is not None:
            with live.live:
                result = lt.run(workload, target, at=live, **options)
        else:
            result = lt.run(workload, target, **options)
    except KeyboardInterrupt:
        error("loadtest", "interrupted: no result")
        return EXIT_INTERRUPTED
    except Exception as exc:
        error("loadtest", exc)
        return EXIT_SERVER
    if args.json is not None:
        args.json.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    if args.report is not None:
        args.report.write_text(lt.render_html(result), encoding="utf-8")
    print(lt.summary(result), flush=True)
    missed = lt.check_thresholds(thresholds, result)
    for line in missed:
        print(line, flush=True)
    if result["request_count"] and result["outcomes"]["not_sent"] == result["recipients"]:
        error("loadtest", "no request reached the target")
        return EXIT_SERVER
    return EXIT_PARTIAL if missed else EXIT_OK


def _load_recipients(path: str, workload: Any) -> tuple[dict[str, Any], ...]:
    """Every recipient (or batch message) of a CSV or JSON Lines file, as ``hyber-async send``
    reads it, checked against ``workload``'s campaign; ``ValueError`` naming the file, line and
    field of the first bad row. A load test cycles through them, so they are held in memory."""
    kind = Kind.BROADCAST if workload.kind == "broadcast" else Kind.BATCH
    rules = Envelope(workload.campaign(), kind).rules
    try:
        with RecordReader(path, kind) as reader:
            stream = ItemStream(reader, rules)
            items = tuple(stream)
    except SourceError as exc:
        raise InvalidValueError(str(exc)) from None
    if stream.error is not None:
        raise InvalidValueError(str(stream.error))
    if not items:
        raise InvalidValueError(f"{path}: no recipients")
    return items
