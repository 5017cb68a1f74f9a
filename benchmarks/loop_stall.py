"""How long the library holds the event loop: a heartbeat task beside the work.

A service that embeds the library serves other requests on the same event loop; every stretch of
library code that runs without yielding is added to their latency. The heartbeat sleeps 1 ms in a
loop and records how much later than asked it woke up; the longest such gap is the longest
stall. Scenarios, each in a fresh child process:

- ``send-list``: ``stream_broadcast`` of 1,000,000 plain-dict recipients from a list, to the
  minimal sink of ``_sink.py`` (its own process) over loopback;
- ``send-generator``: the same from a generator (the generator's own time is the caller's, but it
  is read in the library's loop);
- ``poll``: ``wait_for_jobs`` over 10 jobs of 50,000 messages each, the emulator in its own
  process at ``--time-scale 1000`` (every job final by the time it is polled).

The baseline is a bare ``orjson.loads`` of the largest status answer (50,000 messages), the least
any client must spend in one go to read it; each stall is also printed as a ratio to it. The poll
scenario also gives the client's CPU time per polled message (the emulator runs in its own
process; the HTTP reads included) as a ratio to the bare parse's per message, measured in three
more passes over the same jobs without the heartbeat (whose own wake-ups are not the client's),
the least of them against the least of seven bare parses.

``--repeat N`` runs every scenario N times (interleaved) and prints medians. ``--before PATH``
runs each child also with ``PYTHONPATH=PATH`` (another checkout of the library), alternating
before and after, for an A/B in the same period of a shared machine; the sink and the emulator
are the same for both.

Run: ``python benchmarks/loop_stall.py [--recipients 1000000] [--jobs 10] [--only SCENARIO]
[--repeat N] [--before PATH]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

# the same campaign, recipients, chunking and concurrency as the throughput benchmark
from send_throughput import CHUNK, CONCURRENCY, ENVELOPE, HERE, free_port, recipients


class Heartbeat:
    """Sleeps ``period`` seconds in a loop and records how late each wake-up was."""

    def __init__(self, period: float = 0.001) -> None:
        self.period = period
        self.gaps: list[float] = []

    async def run(self) -> None:
        """Beat until cancelled."""
        import anyio

        clock = time.perf_counter
        while True:
            start = clock()
            await anyio.sleep(self.period)
            self.gaps.append(clock() - start - self.period)

    def figures(self) -> dict[str, float]:
        """The longest gap and the 99th percentile, in milliseconds."""
        gaps = sorted(self.gaps) or [0.0]
        return {
            "max_ms": gaps[-1] * 1e3,
            "p99_ms": gaps[int(0.99 * (len(gaps) - 1))] * 1e3,
            "beats": len(gaps),
        }


async def beside_heartbeat(work: Callable[[], Awaitable[object]]) -> dict[str, float]:
    """Run ``work`` with a heartbeat in the same loop; the heartbeat's figures and the time."""
    import anyio

    heartbeat = Heartbeat()
    async with anyio.create_task_group() as tg:
        tg.start_soon(heartbeat.run)
        await anyio.sleep(0.05)  # the heartbeat is beating before the work starts
        heartbeat.gaps.clear()
        started = time.perf_counter()
        await work()
        seconds = time.perf_counter() - started
        tg.cancel_scope.cancel()
    return {**heartbeat.figures(), "seconds": seconds}


async def send(url: str, n: int, *, from_list: bool) -> dict[str, float]:
    """``stream_broadcast`` of ``n`` recipients to the sink at ``url``, beside a heartbeat."""
    import hyber_async as hy

    campaign = hy.converter.structure(ENVELOPE, hy.Campaign)
    rows: Any = list(recipients(n)) if from_list else recipients(n)
    async with hy.HyberClient("1", "bench", "bench", base_url=url) as client:
        await client.stream_broadcast(campaign, recipients(1_000))  # warm-up, untimed

        async def work() -> None:
            report = await client.stream_broadcast(campaign, rows, concurrency=CONCURRENCY)
            assert report.accepted == n, report

        return await beside_heartbeat(work)


async def poll(url: str, jobs: int) -> dict[str, float]:
    """Send ``jobs`` jobs of 50,000 to the emulator at ``url``, then poll them all to the end
    beside a heartbeat; also time a bare ``orjson.loads`` of one status answer."""
    import anyio
    import orjson

    import hyber_async as hy
    from hyber_async.emulator import DEMO_ACCOUNT

    campaign = hy.converter.structure(ENVELOPE, hy.Campaign)
    account = DEMO_ACCOUNT
    async with hy.HyberClient(
        account.client_id, account.login, account.password, base_url=url
    ) as client:
        report = await client.stream_broadcast(
            campaign, recipients(jobs * CHUNK), chunk_size=CHUNK, concurrency=2
        )
        assert len(report.job_ids) == jobs, report
        await anyio.sleep(1.0)  # every message final at --time-scale 1000
        answer = await client.request("GET", f"status/{report.job_ids[0]}")
        body = answer.content
        bare = min(_timed(lambda: orjson.loads(body)) for _ in range(7))

        async def work() -> None:
            summary = await client.wait_for_jobs(report.job_ids, interval=0.1, deadline=120)
            assert summary.counts.total == jobs * CHUNK, summary.counts

        figures = await beside_heartbeat(work)
        # the CPU in passes over the same (final) jobs without the heartbeat, whose own wake-ups
        # (a thousand a second) are not the client's work; the least of three, as the bare
        # parse is the least of seven
        cpu = min([await _cpu_timed(work) for _ in range(3)])
    per_message = cpu / (jobs * CHUNK)
    return {
        **figures,
        "bare_loads_ms": bare * 1e3,
        "answer_mb": len(body) / 1e6,
        "cpu_ratio": per_message / (bare / CHUNK),
    }


async def _cpu_timed(work: Callable[[], Awaitable[object]]) -> float:
    started = time.process_time()
    await work()
    return time.process_time() - started


def _timed(func: Callable[[], object]) -> float:
    start = time.perf_counter()
    func()
    return time.perf_counter() - start


def child(scenario: str, url: str, n: int, jobs: int) -> None:
    """Run one scenario in this (fresh) process; print its figures as JSON."""
    import anyio

    if scenario == "poll":
        figures = anyio.run(poll, url, jobs)
    else:
        figures = anyio.run(lambda: send(url, n, from_list=scenario == "send-list"))
    print(json.dumps(figures))


def run_child(
    scenario: str, url: str, n: int, jobs: int, path: str | None = None
) -> dict[str, float]:
    """Figures of ``scenario`` measured in a child process (importing the library from
    ``path`` when given)."""
    argv = [sys.executable, __file__, "--child", scenario, "--url", url]
    argv += ["--recipients", str(n), "--jobs", str(jobs)]
    env = dict(os.environ, PYTHONPATH=path) if path else None
    out = subprocess.run(argv, check=True, capture_output=True, text=True, env=env).stdout
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return result


def median_figures(runs: list[dict[str, float]]) -> dict[str, float]:
    """The median of each figure over ``runs``."""
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def main() -> None:
    """Measure each scenario in its own process and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipients", type=int, default=1_000_000)
    parser.add_argument("--jobs", type=int, default=10)
    parser.add_argument("--only", choices=("send-list", "send-generator", "poll"))
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--before", help="PYTHONPATH of the library to compare against")
    parser.add_argument("--child")
    parser.add_argument("--url")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.url, args.recipients, args.jobs)
        return
    scenarios = [args.only] if args.only else ["send-list", "send-generator", "poll"]
    versions: dict[str, str | None] = {"after": None}
    if args.before:
        versions = {"before": args.before, "after": os.getcwd()}
    runs: dict[tuple[str, str], list[dict[str, float]]] = {}
    from hyber_async.emulator import serving_process  # not in the children: --before has none

    sink_port = free_port()
    sink_url = f"http://127.0.0.1:{sink_port}"
    sink = subprocess.Popen(
        [sys.executable, str(HERE / "_sink.py"), str(sink_port)], stdout=subprocess.PIPE
    )
    emulator = serving_process("--time-scale", "1000", "--seed", "1")
    try:
        assert sink.stdout is not None
        sink.stdout.readline()
        with emulator as emulator_url:
            for _ in range(args.repeat):
                for scenario in scenarios:
                    url = emulator_url if scenario == "poll" else sink_url
                    for version, path in versions.items():
                        figures = run_child(scenario, url, args.recipients, args.jobs, path)
                        runs.setdefault((scenario, version), []).append(figures)
    finally:
        sink.kill()
    rows = {key: median_figures(values) for key, values in runs.items()}
    bares = [f["bare_loads_ms"] for (s, _), f in rows.items() if s == "poll"]
    bare = statistics.median(bares) if bares else None
    print(f"# heartbeat 1 ms; {args.recipients:,} recipients; poll: {args.jobs} x 50,000")
    print(f"# medians of {args.repeat} run(s) in fresh processes, versions interleaved")
    if bare:
        print(f"# bare orjson.loads of one 50,000-message status answer: {bare:.1f} ms\n")
    print(
        "| scenario | version | seconds | longest stall (ms) | p99 stall (ms) "
        "| longest / bare loads | client CPU per message / loads |"
    )
    print("|---|---|---:|---:|---:|---:|---:|")
    for (scenario, version), figures in rows.items():
        ratio = f"{figures['max_ms'] / bare:.1f}x" if bare else "-"
        cpu = f"{figures['cpu_ratio']:.2f}x" if "cpu_ratio" in figures else "-"
        print(
            f"| {scenario} | {version} | {figures['seconds']:.2f} | {figures['max_ms']:.1f} "
            f"| {figures['p99_ms']:.2f} | {ratio} | {cpu} |"
        )


if __name__ == "__main__":
    main()
