"""Throughput and memory of the mass sender against its floor and a naive hand-written loop.

Every contender runs in a fresh process, warms up with a small untimed send, sends the same
generated plain-dict recipients to the same minimal sink (``_sink.py``, its own process) over a
loopback socket, and reports its wall time and peak RSS. The table gives recipients per second
and the ratio to the floor: of the medians, and the median of each round's ratio (a round runs
every contender once, one after the other, so a slow spell of a shared machine weighs on the
floor and the contender of the same round alike).

- floor: chunk, ``orjson.dumps``, POST with one ``httpx.AsyncClient`` at the same concurrency;
  no validation, no accounting;
- naive: what a user writes by hand: materialise the list, stdlib ``json``, one request after
  another;
- hyber_async: ``stream_broadcast`` and ``stream_batch``.

Run: ``python benchmarks/send_throughput.py [--recipients 1000000] [--repeat 3]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
CONCURRENCY = 4
WARM_UP = 1_000
"""Recipients each contender sends once, untimed, before its timed run (first-use costs such as
imports and generated code are the same for a service's every campaign after its first)."""
CHUNK = 50_000
ENVELOPE: dict[str, Any] = {
    "channels": ["viber", "sms"],
    "channel_options": {
        "viber": {"ttl": 60, "text": "Dear %name%! Here is a Viber message for you"},
        "sms": {"alpha_name": "GMSU", "ttl": 300, "text": "Dear %name%! Here is an SMS"},
    },
    "tag": "benchmark",
}
BATCH_ENVELOPE: dict[str, Any] = {
    "channels": ["viber", "sms"],
    "channel_options": {"viber": {"ttl": 60}, "sms": {"alpha_name": "GMSU", "ttl": 300}},
    "tag": "benchmark",
}


def recipients(n: int) -> Iterator[dict[str, Any]]:
    """The input of every broadcast contender: plain dicts as a database cursor yields them."""
    for i in range(n):
        yield {"phone_number": 380500000000 + i, "extra_id": f"r-{i}", "name": "Ann"}


def messages(n: int) -> Iterator[dict[str, Any]]:
    """The input of every batch contender."""
    for i in range(n):
        yield {"phone_number": 380500000000 + i, "extra_id": f"m-{i}", "text": "Your code is 1234"}


async def floor(url: str, n: int) -> None:
    import anyio
    import httpx
    import orjson

    limits = httpx.Limits(max_connections=CONCURRENCY)
    async with httpx.AsyncClient(limits=limits, timeout=60) as http:
        source = recipients(n)
        send, receive = anyio.create_memory_object_stream[bytes](0)

        async def worker(bodies: anyio.abc.ObjectReceiveStream[bytes]) -> None:
            async with bodies:
                async for body in bodies:
                    answer = await http.post(
                        url + "/broadcast",
                        content=body,
                        headers={"Content-Type": "application/json"},
                    )
                    answer.raise_for_status()

        async with anyio.create_task_group() as tg:
            for _ in range(CONCURRENCY):
                tg.start_soon(worker, receive.clone())
            receive.close()
            async with send:
                while chunk := list(islice(source, CHUNK)):
                    await send.send(orjson.dumps({"recipients": chunk, **ENVELOPE}))


async def naive(url: str, n: int) -> None:
    import httpx

    everyone = list(recipients(n))
    async with httpx.AsyncClient(timeout=60) as http:
        for start in range(0, len(everyone), CHUNK):
            body = json.dumps({"recipients": everyone[start : start + CHUNK], **ENVELOPE})
            answer = await http.post(
                url + "/broadcast",
                content=body.encode(),
                headers={"Content-Type": "application/json"},
            )
            answer.raise_for_status()


def _client(url: str) -> Any:
    import hyber_async as hy

    return hy.HyberClient("1", "bench", "bench", base_url=url.rsplit("/", 1)[0])


async def stream_broadcast(url: str, n: int) -> None:
    import hyber_async as hy

    campaign = hy.converter.structure(ENVELOPE, hy.Campaign)
    async with _client(url) as client:
        report = await client.stream_broadcast(campaign, recipients(n), concurrency=CONCURRENCY)
    assert report.accepted == n, report
    assert report.complete, report


async def stream_batch(url: str, n: int) -> None:
    import hyber_async as hy

    campaign = hy.converter.structure(BATCH_ENVELOPE, hy.Campaign)
    async with _client(url) as client:
        report = await client.stream_batch(campaign, messages(n), concurrency=CONCURRENCY)
    assert report.accepted == n, report
    assert report.complete, report


CONTENDERS = {
    "floor": floor,
    "naive": naive,
    "hyber_async stream_broadcast": stream_broadcast,
    "hyber_async stream_batch": stream_batch,
}


def run_one(name: str, url: str, n: int) -> None:
    """Child process: run one contender, print its time and peak RSS as JSON."""
    import anyio
    import httpx  # noqa: F401  (imports are not part of any contender's time)
    import orjson  # noqa: F401

    import hyber_async  # noqa: F401

    anyio.run(CONTENDERS[name], url, WARM_UP)
    started, cpu = time.perf_counter(), time.process_time()
    anyio.run(CONTENDERS[name], url, n)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"seconds": seconds, "cpu": cpu, "peak_mb": peak_kib / 1024}))


def measure(name: str, url: str, n: int, path: str | None = None) -> dict[str, float]:
    """Time and peak RSS of contender ``name`` in a fresh process (importing the library from
    ``path`` when given)."""
    child = [sys.executable, __file__, "--child", name, "--url", url, "--recipients", str(n)]
    env = dict(os.environ, PYTHONPATH=path) if path else None
    out = subprocess.run(child, check=True, capture_output=True, text=True, env=env).stdout
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return result


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipients", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--memory", default="500000,5000000", help="sizes for the RSS check")
    parser.add_argument("--before", help="PYTHONPATH of the library to compare against")
    parser.add_argument("--child")
    parser.add_argument("--url")
    args = parser.parse_args()
    if args.child:
        run_one(args.child, args.url, args.recipients)
        return

    port = free_port()
    sink = subprocess.Popen(
        [sys.executable, str(HERE / "_sink.py"), str(port)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert sink.stdout is not None
        assert sink.stdout.readline().strip() == "ready"
        url = f"http://127.0.0.1:{port}/1"
        n = args.recipients
        print(
            f"# {n:,} recipients, chunks of {CHUNK:,}, concurrency {CONCURRENCY}, median of "
            f"{args.repeat} (contenders interleaved); {platform.python_version()}, "
            f"{os.cpu_count()} cores\n"
        )
        contenders: list[tuple[str, str | None]] = [(name, None) for name in CONTENDERS]
        if args.before:
            contenders += [(name, args.before) for name in CONTENDERS if "hyber" in name]
        times: dict[tuple[str, str | None], list[float]] = {}
        cpus: dict[tuple[str, str | None], list[float]] = {}
        for _ in range(args.repeat):
            for name, path in contenders:
                figures = measure(name, url, n, path)
                times.setdefault((name, path), []).append(figures["seconds"])
                cpus.setdefault((name, path), []).append(figures["cpu"])
        median = {key: statistics.median(values) for key, values in times.items()}
        cpu = {key: statistics.median(values) for key, values in cpus.items()}
        floor_seconds, floor_cpu = median["floor", None], cpu["floor", None]
        floor_times = times["floor", None]
        print(
            "| contender | seconds (median) | range | recipients/s | ratio to floor "
            "| ratio, median of rounds | CPU s (median) | CPU ratio to floor |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for (name, path), seconds in median.items():
            label = f"{name} (before: {path})" if path else name
            spread = f"{min(times[name, path]):.2f}-{max(times[name, path]):.2f}"
            used = cpu[name, path]
            rounds = statistics.median(
                f / t for f, t in zip(floor_times, times[name, path], strict=True)
            )
            print(
                f"| {label} | {seconds:.2f} | {spread} | {n / seconds:,.0f} "
                f"| {floor_seconds / seconds:.2f}x | {rounds:.2f}x | {used:.2f} "
                f"| {floor_cpu / used:.2f}x |"
            )
        sizes = [int(s) for s in args.memory.split(",") if s]
        if sizes:
            print("\n| stream_broadcast from a generator | peak RSS (MB) |")
            print("|---|---:|")
            for size in sizes:
                peak = measure("hyber_async stream_broadcast", url, size)["peak_mb"]
                print(f"| {size:,} recipients | {peak:.0f} |")
    finally:
        sink.kill()


if __name__ == "__main__":
    main()
