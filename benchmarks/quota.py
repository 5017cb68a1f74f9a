"""Living within the account's quota: the client's rate controller against the emulator's quota.

Run: ``python benchmarks/quota.py [--seconds 20] [--quotas 10000 50000 200000] [--plot PNG]``

The emulator runs in its own process (``python -m hyber_async.emulator --rate-limit Q``), the
client in this one: one ``HyberClient`` (rate control on, unseeded) and 1 or 10 concurrent
``stream_broadcast`` campaigns reading generators until the run's time is up. Every 0.25 s the
emulator's ``/_emulator/quota`` figures are sampled: ``admitted_messages`` gives the accepted
rate, ``admitted_messages + refused_messages`` the offered one. Per scenario:

- ``accepted/quota``: accepted rate after the warm-up (5 s) over the quota (target >= 0.9);
- ``429s``: refused requests over all send requests (target <= 5%);
- ``Jain``: Jain's fairness index of the campaigns' accepted counts after the warm-up
  (target >= 0.9 with 10 campaigns);
- ``ledger``: every recipient each report counts accepted is in the ledger exactly once, and
  every recipient read was accepted (no refusal turned into a loss or a duplicate).

The change scenario runs at Q, halves it to Q/2 after ``--seconds / 2``, then doubles it back
to Q: "back under" is the time until the offered rate (1 s windows) is at most the new quota,
"used" the time until the accepted rate is at least 0.8x the doubled quota.

Chunks are a twentieth of a second's worth of the quota (so ten campaigns each get turns every
second); ``--plot`` writes the rate over time of each scenario against its quota (needs
matplotlib, a benchmark-only requirement).
"""

from __future__ import annotations

import argparse
import bisect
import resource
import time
from collections.abc import Iterator
from typing import Any

import anyio
import attrs
import httpx

import hyber_async as hy
from hyber_async.emulator import DEMO_ACCOUNT, serving_process

WARM_UP = 5.0
SAMPLE = 0.25
SMS = {"text": "Hi", "alpha_name": "GMSU", "ttl": 300}
CAMPAIGN = hy.converter.structure(
    {"channels": ["sms"], "channel_options": {"sms": SMS}}, hy.Campaign
)


def recipients(name: str, deadline: float) -> Iterator[dict[str, Any]]:
    """Recipients of campaign ``name`` until ``deadline`` (monotonic seconds)."""
    i = 0
    while time.monotonic() < deadline:
        yield {"phone_number": 380_500_000_000 + i, "extra_id": f"{name}-{i}"}
        i += 1


@attrs.define
class Run:
    """What one scenario measured."""

    samples: list[tuple[float, int, int, int, int]] = attrs.field(factory=list)
    """(seconds since start, admitted requests, admitted messages, refused requests, refused
    messages) of the emulator."""
    quotas: list[tuple[float, float]] = attrs.field(factory=list)
    """(seconds since start, quota from then on)."""
    progress: dict[str, list[tuple[float, int]]] = attrs.field(factory=dict)
    """Per campaign: (seconds since start, accepted so far)."""
    reports: list[hy.SendReport] = attrs.field(factory=list)
    ledger: dict[str, Any] = attrs.field(factory=dict)
    cpu: tuple[float, float] = (0.0, 0.0)
    """CPU seconds (user + system) of the client's process and of the emulator's."""

    def rate(self, start: float, end: float, offered: bool = False) -> float:
        """Messages per second the emulator accepted (or was offered) between two times."""
        times = [s[0] for s in self.samples]
        a = self.samples[max(0, bisect.bisect_left(times, start) - 1)]
        b = self.samples[min(len(times) - 1, bisect.bisect_left(times, end))]
        count = (b[2] - a[2]) + ((b[4] - a[4]) if offered else 0)
        return count / (b[0] - a[0]) if b[0] > a[0] else 0.0

    def windows(self, offered: bool = False) -> list[tuple[float, float]]:
        """(end time, rate over the 1 s before it) for every sample."""
        return [(s[0], self.rate(s[0] - 1.0, s[0], offered)) for s in self.samples if s[0] >= 1]


async def scenario(
    quota: float, campaigns: int, seconds: float, changes: list[tuple[float, float]]
) -> Run:
    """Send ``campaigns`` campaigns for ``seconds`` under ``quota`` (changed at ``changes``)."""
    run = Run(quotas=[(0.0, quota), *changes])
    chunk = max(50, int(quota / 20))
    mine, children = _cpu(resource.RUSAGE_SELF), _cpu(resource.RUSAGE_CHILDREN)
    with serving_process("--seed", "1", "--rate-limit", f"{quota:g}") as url:
        started = time.monotonic()
        deadline = started + seconds
        async with (
            httpx.AsyncClient(base_url=url, timeout=120) as admin,
            hy.HyberClient(
                DEMO_ACCOUNT.client_id,
                DEMO_ACCOUNT.login,
                DEMO_ACCOUNT.password,
                base_url=url,
                max_connections=max(8, 2 * campaigns),
                retry=hy.RetryPolicy(max_attempts=20),
            ) as client,
        ):

            async def sample() -> None:
                pending = list(changes)
                while True:
                    now = time.monotonic() - started
                    if pending and now >= pending[0][0]:
                        _, new = pending.pop(0)
                        await admin.post("/_emulator/quota", json={"rate_limit": new})
                    q = (await admin.get("/_emulator/quota")).json()
                    run.samples.append(
                        (
                            time.monotonic() - started,
                            q["admitted"],
                            q["admitted_messages"],
                            q["refused"],
                            q["refused_messages"],
                        )
                    )
                    await anyio.sleep(SAMPLE)

            async def campaign(name: str) -> None:
                track = run.progress.setdefault(name, [(0.0, 0)])

                def note(progress: hy.Progress) -> None:
                    track.append((time.monotonic() - started, progress.accepted))

                report = await client.stream_broadcast(
                    CAMPAIGN,
                    recipients(name, deadline),
                    chunk_size=chunk,
                    concurrency=2,
                    on_progress=note,
                )
                run.reports.append(report)

            async with anyio.create_task_group() as sampler:
                sampler.start_soon(sample)
                async with anyio.create_task_group() as senders:
                    for c in range(campaigns):
                        senders.start_soon(campaign, f"c{c}")
                await anyio.sleep(SAMPLE * 2)
                sampler.cancel_scope.cancel()
            run.ledger = (await admin.get("/_emulator/ledger")).json()
    run.cpu = (
        _cpu(resource.RUSAGE_SELF) - mine,
        _cpu(resource.RUSAGE_CHILDREN) - children,
    )
    return run


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def accepted_between(track: list[tuple[float, int]], start: float, end: float) -> int:
    """Recipients a campaign had accepted by ``end`` minus by ``start``."""
    times = [t for t, _ in track]

    def at(moment: float) -> int:
        return track[max(0, bisect.bisect_right(times, moment) - 1)][1]

    return at(end) - at(start)


def jain(values: list[float]) -> float:
    """Jain's fairness index: 1 when all are equal, 1/n when one gets everything."""
    total = sum(values)
    return total * total / (len(values) * sum(v * v for v in values)) if total else 0.0


def ledger_ok(run: Run) -> bool:
    """Every recipient read was accepted, and the ledger holds each accepted one once."""
    accepted = sum(r.accepted for r in run.reports)
    complete = all(r.accepted == r.read for r in run.reports)
    return complete and run.ledger["accepted"] == accepted and not run.ledger["duplicates"]


def steady_row(quota: float, campaigns: int, seconds: float, run: Run) -> str:
    end = run.samples[-1][0]
    rate = run.rate(WARM_UP, min(seconds, end))
    last = run.samples[-1]
    refused_share = last[3] / max(1, last[1] + last[3])
    times = [s[0] for s in run.samples]
    warm = run.samples[bisect.bisect_left(times, WARM_UP)]
    late_refused = last[3] - warm[3]
    late_share = late_refused / max(1, last[1] + last[3] - warm[1] - warm[3])
    fairness = jain([accepted_between(t, WARM_UP, seconds) for t in run.progress.values()])
    return (
        f"| {quota:,.0f} | {campaigns} | {rate:,.0f} | {rate / quota:.2f} | "
        f"{refused_share:.1%} ({last[3]}/{last[1] + last[3]}) | {late_share:.1%} | "
        f"{fairness:.3f} | {'yes' if ledger_ok(run) else 'NO'} | "
        f"{run.cpu[0]:.0f} s / {run.cpu[1]:.0f} s |"
    )


def change_row(quota: float, campaigns: int, run: Run) -> str:
    (_, _), (halved_at, half), (doubled_at, full) = run.quotas
    under = next(
        (t - halved_at for t, r in run.windows(offered=True) if t > halved_at and r <= half),
        None,
    )
    used = next(
        (t - doubled_at for t, r in run.windows() if t > doubled_at and r >= 0.8 * full),
        None,
    )

    def seconds(value: float | None) -> str:
        return "never" if value is None else f"{value:.1f} s"

    last = run.samples[-1]
    refused_share = last[3] / max(1, last[1] + last[3])
    return (
        f"| {quota:,.0f} -> {half:,.0f} -> {full:,.0f} | {campaigns} | {seconds(under)} | "
        f"{seconds(used)} | {refused_share:.1%} | {'yes' if ledger_ok(run) else 'NO'} |"
    )


def plot(runs: list[tuple[str, Run]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(len(runs), 1, figsize=(8, 2.6 * len(runs)), squeeze=False)
    for ax, (title, run) in zip(axes[:, 0], runs, strict=True):
        accepted = run.windows()
        offered = run.windows(offered=True)
        ax.plot([t for t, _ in offered], [r for _, r in offered], label="offered", alpha=0.6)
        ax.plot([t for t, _ in accepted], [r for _, r in accepted], label="accepted")
        end = run.samples[-1][0]
        steps = [*run.quotas, (end, run.quotas[-1][1])]
        ax.step([t for t, _ in steps], [q for _, q in steps], where="post", label="quota", ls="--")
        ax.set_title(title, fontsize=9)
        ax.set_ylabel("messages/s")
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=7, loc="lower right")
    axes[-1, 0].set_xlabel("seconds")
    figure.tight_layout()
    figure.savefig(path, dpi=80)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--quotas", type=float, nargs="+", default=[10_000, 50_000, 200_000])
    parser.add_argument("--campaigns", type=int, nargs="+", default=[1, 10])
    parser.add_argument(
        "--change-quota", type=float, default=20_000, help="0 skips the change scenario"
    )
    parser.add_argument("--plot", default=None, help="write the rate-over-time plot here")
    args = parser.parse_args()
    plotted: list[tuple[str, Run]] = []
    print(
        "| quota msg/s | campaigns | accepted msg/s | accepted/quota | 429s "
        "| 429s after warm-up | Jain | ledger | CPU client / emulator |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---|---:|")
    for quota in args.quotas:
        for campaigns in args.campaigns:
            run = await scenario(quota, campaigns, args.seconds, [])
            print(steady_row(quota, campaigns, args.seconds, run), flush=True)
            if campaigns == max(args.campaigns):
                plotted.append((f"quota {quota:,.0f}/s, {campaigns} campaigns", run))
    print()
    print(
        "| quota msg/s | campaigns | back under after halving | >= 0.8x after doubling "
        "| 429s | ledger |"
    )
    print("|---|---:|---:|---:|---:|---|")
    q = args.change_quota
    third = args.seconds / 2
    for campaigns in args.campaigns if q else []:
        changes = [(third, q / 2), (2 * third, q)]
        run = await scenario(q, campaigns, 2 * third + 15, changes)
        print(change_row(q, campaigns, run), flush=True)
        if campaigns == max(args.campaigns):
            plotted.append((f"quota {q:,.0f} halved then doubled, {campaigns} campaigns", run))
    if args.plot:
        plot(plotted, args.plot)
        print(f"\nplot: {args.plot}")


if __name__ == "__main__":
    anyio.run(main)
