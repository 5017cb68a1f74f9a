"""``hyber-async demo``: the whole job on one machine, over real sockets.

It starts the emulator in a child process on a free loopback port (so it has a core of its own)
and a delivery-report receiver in this process, streams N synthetic recipients as one broadcast
campaign, follows the jobs to the end while the reports arrive, and prints where every recipient
ended up.
"""

from __future__ import annotations

import argparse
import collections
import secrets
import time
from collections.abc import Iterator
from typing import Any

import anyio

from .._client import HyberClient
from .._models import (
    Campaign,
    Channel,
    ChannelOptions,
    DeliveryReport,
    PushOptions,
    SmsOptions,
    ViberOptions,
    WhatsAppOptions,
)
from .._poller import CampaignSummary
from .._reports import DeliveryReportReceiver
from .._send_report import Progress, SendReport
from ..emulator import DEMO_ACCOUNT, running_server, serving_process_async
from ._console import Console

__all__ = ["add"]


def add(commands: Any) -> None:
    """Declare ``hyber-async demo``."""
    parser = commands.add_parser(
        "demo",
        help="run a whole campaign against a local emulator",
        description=(
            "Start the emulator and a delivery-report receiver on loopback, stream N synthetic "
            "recipients as a broadcast, follow the jobs to the end and print the summary."
        ),
    )
    parser.add_argument("--recipients", type=int, default=1_000_000, help="how many to send")
    parser.add_argument(
        "--channels",
        default="viber,sms",
        help="cascade order, comma-separated among viber, sms, whatsapp, push",
    )
    parser.add_argument("--concurrency", type=int, default=4, help="requests in flight")
    parser.add_argument(
        "--time-scale",
        type=float,
        default=200.0,
        help="emulated seconds per real second (200: a 60 s ttl passes in 0.3 s)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the emulated outcomes")
    parser.add_argument("--deadline", type=float, default=300.0, help="seconds to wait for jobs")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.set_defaults(run=_run)


def _campaign(channels: list[Channel], callback_url: str) -> Campaign:
    text = "Dear %name%, your order %order% has shipped"
    return Campaign(
        channels=tuple(channels),
        channel_options=ChannelOptions(
            viber=ViberOptions(ttl=60, text=text) if Channel.VIBER in channels else None,
            sms=SmsOptions(alpha_name="DEMO", ttl=300, text=text)
            if Channel.SMS in channels
            else None,
            whatsapp=WhatsAppOptions(ttl=3600, text=text) if Channel.WHATSAPP in channels else None,
            push=PushOptions(ttl=60, title="Your order", text=text)
            if Channel.PUSH in channels
            else None,
        ),
        callback_url=callback_url,
        tag="hyber-async demo",
    )


def _recipients(count: int) -> Iterator[dict[str, Any]]:
    """Synthetic rows as a database cursor would yield them (no extra_id: one is generated)."""
    for i in range(count):
        yield {"phone_number": 380500000000 + i, "name": f"Customer {i}", "order": f"#{i:07d}"}


class _ReportTally:
    """What the delivery-report receiver was handed, by channel and status."""

    def __init__(self) -> None:
        self.received = 0
        self.by_channel: collections.Counter[str] = collections.Counter()
        self.by_status: collections.Counter[int | None] = collections.Counter()

    async def __call__(self, report: DeliveryReport) -> None:
        self.received += 1
        self.by_channel[report.sent_via or "unknown"] += 1
        self.by_status[report.status] += 1


def _run(args: argparse.Namespace) -> int:
    channels = [Channel(name.strip()) for name in args.channels.split(",") if name.strip()]
    result: int = anyio.run(_demo, args, channels)
    return result


async def _demo(args: argparse.Namespace, channels: list[Channel]) -> int:
    console = Console(json_output=args.json)
    tally = _ReportTally()
    secret = secrets.token_urlsafe(24)
    receiver = DeliveryReportReceiver(tally, secret=secret)
    started = time.perf_counter()
    with running_server(receiver) as receiver_url:
        emulator = serving_process_async(
            *("--time-scale", str(args.time_scale), "--seed", str(args.seed)),
            *("--callback-batch-size", "1000", "--callback-period", "0.2"),
        )
        async with emulator as emulator_url:
            console.note(f"emulator on {emulator_url}, delivery reports to {receiver_url}/dr/…")
            campaign = _campaign(channels, f"{receiver_url}/dr/{secret}")
            async with HyberClient(
                DEMO_ACCOUNT.client_id,
                DEMO_ACCOUNT.login,
                DEMO_ACCOUNT.password,
                base_url=emulator_url,
            ) as client:
                with console.progress("sending", args.recipients) as bar:

                    def sent(progress: Progress) -> None:
                        bar.update(
                            progress.done,
                            f"accepted {progress.accepted:,}, {progress.rate:,.0f}/s",
                        )

                    send_started = time.perf_counter()
                    report = await client.stream_broadcast(
                        campaign,
                        _recipients(args.recipients),
                        concurrency=args.concurrency,
                        on_progress=sent,
                    )
                    send_seconds = time.perf_counter() - send_started
                summary = await _follow(client, report, console, args.deadline)
            await _await_reports(tally, summary.counts.total - summary.counts.pending, console)
    elapsed = time.perf_counter() - started
    console.summary(_summary_rows(args, report, summary, tally, send_seconds, elapsed))
    accounted = report.accepted + report.rejected + report.not_sent + report.unknown
    return 0 if accounted == args.recipients and report.complete else 1


async def _follow(
    client: HyberClient, report: SendReport, console: Console, deadline: float
) -> CampaignSummary:
    """Poll every job to the end, showing how many messages are final."""
    poller = client.poll_jobs(report.job_ids, interval=0.5, max_interval=2.0, deadline=deadline)
    poller.keep_answers = False  # counts are all it shows: free each answer once counted
    with console.progress("delivering", report.accepted) as bar:
        async for _ in poller:
            counts = poller.summary.counts
            bar.update(counts.total - counts.pending, f"delivered {counts.delivered:,}")
    return poller.summary


async def _await_reports(tally: _ReportTally, expected: int, console: Console) -> None:
    """Give the emulator's last callback batches time to arrive (they are flushed every 0.2 s)."""
    with console.progress("reports", expected) as bar, anyio.move_on_after(30):
        while tally.received < expected:
            bar.update(tally.received, f"received {tally.received:,}")
            await anyio.sleep(0.1)
        bar.update(tally.received, f"received {tally.received:,}")


def _summary_rows(
    args: argparse.Namespace,
    report: SendReport,
    summary: CampaignSummary,
    tally: _ReportTally,
    send_seconds: float,
    elapsed: float,
) -> list[tuple[str, int | float | str]]:
    counts = summary.counts
    rows: list[tuple[str, int | float | str]] = [
        ("recipients", args.recipients),
        ("accepted", report.accepted),
        ("rejected", report.rejected),
        ("not sent", report.not_sent),
        ("unknown", report.unknown),
        ("accounted for", report.accepted + report.rejected + report.not_sent + report.unknown),
        ("jobs", len(report.job_ids)),
    ]
    for channel, channel_counts in sorted(summary.by_channel.items()):
        if channel_counts.delivered:
            rows.append((f"delivered via {channel}", channel_counts.delivered))
    rows += [
        ("delivered", counts.delivered),
        ("expired", counts.expired),
        ("failed", counts.failed),
        ("pending", counts.pending),
        ("delivery reports received", tally.received),
        ("send time (s)", round(send_seconds, 2)),
        ("send throughput (recipients/s)", round(report.read / send_seconds)),
        ("elapsed (s)", round(elapsed, 2)),
    ]
    return rows
