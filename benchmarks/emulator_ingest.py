"""How fast the emulator ingests 1,000,000 recipients (20 requests of 50,000), and how compact.

Run: ``python benchmarks/emulator_ingest.py [--requests 20] [--size 50000] [--socket]``

Request bodies are encoded before timing. Rows:
- ``app``: the ASGI app called directly (the emulator's own cost);
- ``asgi-transport``: through ``httpx.AsyncClient(transport=httpx.ASGITransport(app))``;
- ``socket`` (with ``--socket``): a loopback uvicorn server, 4 requests in flight;
- ``memory``: tracemalloc growth of the emulator's state after ingest, per accepted message;
- ``status 50k``: one status report of a 50,000-message job (build + JSON encode);
- ``ledger``: building the per-extra_id index over every message (first ``duplicates()``).
"""

from __future__ import annotations

import argparse
import gc
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import anyio
import httpx
import orjson

from hyber_async.emulator import DEMO_ACCOUNT, Emulator, EmulatorConfig, create_app, running_server

AUTH = httpx.BasicAuth(DEMO_ACCOUNT.login, DEMO_ACCOUNT.password)
HEADERS = [
    (b"authorization", AUTH._auth_header.encode()),
    (b"content-type", b"application/json"),
]
ENVELOPE = {
    "callback_url": "https://example.com/dr",
    "tag": "benchmark",
    "channels": ["viber", "sms"],
    "channel_options": {
        "viber": {"text": "Dear %name%! Here is a Viber message for you", "ttl": 60},
        "sms": {"text": "Dear %name%! Here is an SMS", "alpha_name": "GMSU", "ttl": 300},
    },
}


def bodies(requests: int, size: int) -> list[bytes]:
    """``requests`` broadcast bodies of ``size`` recipients each, all distinct."""
    result = []
    for r in range(requests):
        base = r * size
        recipients = [
            {"phone_number": 380_500_000_000 + base + i, "extra_id": f"b-{base + i}", "name": "Ann"}
            for i in range(size)
        ]
        result.append(orjson.dumps({"recipients": recipients, **ENVELOPE}))
    return result


async def call_app(app: Emulator, method: str, path: str, body: bytes = b"") -> bytes:
    """One request straight into the ASGI app; returns the answer body."""
    scope = {"type": "http", "method": method, "path": path, "headers": HEADERS}
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    if sent[0]["status"] != 200:
        raise RuntimeError(sent[1]["body"][:300])
    return bytes(sent[1]["body"])


async def ingest_app(app: Emulator, payloads: list[bytes]) -> list[str]:
    path = f"/{DEMO_ACCOUNT.client_id}/broadcast"
    return [orjson.loads(await call_app(app, "POST", path, b))["job_id"] for b in payloads]


async def ingest_http(http: httpx.AsyncClient, base: str, payloads: list[bytes]) -> None:
    url = f"{base}/{DEMO_ACCOUNT.client_id}/broadcast"
    limit = anyio.Semaphore(4)

    async def post(body: bytes) -> None:
        async with limit:
            response = await http.post(
                url, content=body, auth=AUTH, headers={"content-type": "application/json"}
            )
            response.raise_for_status()

    async with anyio.create_task_group() as tasks:
        for body in payloads:
            tasks.start_soon(post, body)


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--size", type=int, default=50_000)
    parser.add_argument("--socket", action="store_true", help="also time a loopback uvicorn")
    args = parser.parse_args()
    total = args.requests * args.size
    payloads = bodies(args.requests, args.size)
    mb = sum(map(len, payloads)) / 1e6
    rows: list[tuple[str, str, str]] = []

    def rate(seconds: float) -> str:
        return f"{total / seconds / 1e6:.2f} M msg/s"

    app = create_app(EmulatorConfig())
    seconds, job_ids = timed(lambda: anyio.run(ingest_app, app, payloads))
    rows.append(("app", f"{seconds:.2f} s", rate(seconds)))
    assert app.ledger.accepted == total

    async def through_transport() -> None:
        transport = httpx.ASGITransport(app=create_app())
        async with httpx.AsyncClient(transport=transport, timeout=None) as http:
            await ingest_http(http, "http://emulator", payloads)

    seconds, _ = timed(lambda: anyio.run(through_transport))
    rows.append(("asgi-transport", f"{seconds:.2f} s", rate(seconds)))

    if args.socket:
        with running_server(create_app()) as url:

            async def through_socket() -> None:
                async with httpx.AsyncClient(timeout=None) as http:
                    await ingest_http(http, url, payloads)

            seconds, _ = timed(lambda: anyio.run(through_socket))
        rows.append(("socket", f"{seconds:.2f} s", rate(seconds)))

    status_path = f"/{DEMO_ACCOUNT.client_id}/status/{job_ids[0]}"
    seconds, answer = timed(lambda: anyio.run(call_app, app, "GET", status_path))
    rows.append(
        (f"status {args.size // 1000}k", f"{seconds * 1000:.0f} ms", f"{len(answer) / 1e6:.1f} MB")
    )
    seconds, duplicates = timed(app.ledger.duplicates)
    assert duplicates == {}
    rows.append(("ledger index", f"{seconds * 1000:.0f} ms", f"{len(app.ledger.counts())} ids"))
    del app, job_ids, answer
    gc.collect()

    tracemalloc.start()
    baseline = tracemalloc.get_traced_memory()[0]
    app = create_app(EmulatorConfig())
    anyio.run(ingest_app, app, payloads)
    gc.collect()
    grown = tracemalloc.get_traced_memory()[0] - baseline
    tracemalloc.stop()
    rows.append(("memory", f"{grown / 1e6:.1f} MB", f"{grown / total:.0f} B/msg"))

    print(f"{total:,} recipients in {args.requests} requests, {mb:.0f} MB of JSON")
    print(f"{'what':<16}{'took':>10}  {'rate / size':>14}")
    for what, took, detail in rows:
        print(f"{what:<16}{took:>10}  {detail:>14}")


if __name__ == "__main__":
    main()
