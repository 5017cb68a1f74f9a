"""The example services run as a user runs them: each in a child process on loopback, sending
a campaign to the emulator on a socket and receiving its delivery reports exactly once."""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from _support import read_body

from hyber_async.emulator import DEMO_ACCOUNT, Emulator, EmulatorConfig, create_app, running_server
from hyber_async.testing import serving_emulator

pytestmark = pytest.mark.slow  # the examples' services run as subprocesses

EXAMPLES = Path(__file__).parents[2] / "examples"
SECRET = "examples-test-secret-0123456789"
RECIPIENTS = 500
WAIT = 60.0
"""Seconds a service may take to start, or a campaign's reports to arrive (a bound, not a
measure: both take about a second)."""


def fastapi_command(port: int) -> list[str]:
    """``uvicorn --factory fastapi_service:create_app`` as the example's docstring says."""
    return [
        *(sys.executable, "-m", "uvicorn", "--app-dir", str(EXAMPLES), "--factory"),
        *("fastapi_service:create_app", "--host", "127.0.0.1", "--port", str(port)),
        "--no-access-log",
    ]


def aiohttp_command(port: int) -> list[str]:
    """``python examples/aiohttp_service.py --port N`` as the example's docstring says."""
    return [sys.executable, str(EXAMPLES / "aiohttp_service.py"), "--port", str(port)]


SERVICES = pytest.mark.parametrize("command", [fastapi_command, aiohttp_command])


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def emulator() -> Iterator[tuple[Emulator, str]]:
    """A fast emulator on a loopback socket (batched callbacks, quick retries), and its URL."""
    config = EmulatorConfig(
        time_scale=1000, callback_batch_size=64, callback_period=0.05, callback_backoff=0.01
    )
    app = create_app(config)
    with serving_emulator(app) as url:
        yield app, url


@contextlib.contextmanager
def service(
    command: list[str], url: str, hyber_url: str, public_url: str, log: Path
) -> Iterator[httpx.Client]:
    """Run an example service at ``url`` in a child process; yield a client of it once it
    answers; stop it on exit."""
    env = {
        **os.environ,
        "HYBER_CLIENT_ID": DEMO_ACCOUNT.client_id,
        "HYBER_LOGIN": DEMO_ACCOUNT.login,
        "HYBER_PASSWORD": DEMO_ACCOUNT.password,
        "HYBER_BASE_URL": hyber_url,
        "PUBLIC_URL": public_url,
        "DR_SECRET": SECRET,
    }
    with log.open("wb") as output:
        process = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT)
    try:
        with httpx.Client(base_url=url, timeout=WAIT) as client:
            deadline = time.monotonic() + WAIT
            while True:
                assert process.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "the service did not start\n" + log.read_text()
                with contextlib.suppress(httpx.TransportError):
                    if client.get("/reports").status_code == 200:
                        break
                time.sleep(0.05)
            try:
                yield client
            except BaseException:
                print(log.read_text())  # shown by pytest with the failure
                raise
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover - a stuck child
            process.kill()
            process.wait()


def send_and_collect(client: httpx.Client, emulator: Emulator) -> tuple[dict[str, Any], list[Any]]:
    """Ask the service for a campaign; wait until the emulator has posted every report; return
    the service's answer and the reports its handler was given."""
    answer = client.post("/campaigns", json={"synthetic": RECIPIENTS}).raise_for_status().json()
    stats = emulator.callbacks.stats
    deadline = time.monotonic() + WAIT
    while stats.delivered + stats.dropped < answer["accepted"]:
        assert time.monotonic() < deadline, f"reports still due: {stats}"
        time.sleep(0.05)
    return answer, client.get("/reports").raise_for_status().json()["reports"]


def assert_each_message_reported_once(
    answer: dict[str, Any], reports: list[Any], emulator: Emulator
) -> None:
    """Every accepted message reached the handler exactly once, and was accepted once."""
    assert (answer["accepted"], answer["rejected"], answer["not_sent"], answer["unknown"]) == (
        RECIPIENTS,
        0,
        0,
        0,
    )
    assert emulator.callbacks.stats.dropped == 0
    per_message = Counter(r["message_id"] for r in reports)
    assert set(per_message.values()) == {1}
    sent = {m["message_id"] for job in answer["job_ids"] for m in emulator.status(job) or ()}
    assert set(per_message) == sent
    assert len(sent) == RECIPIENTS
    ledger = emulator.ledger
    assert (ledger.accepted, ledger.duplicates()) == (RECIPIENTS, {})
    assert set(ledger.counts()) == {r["extra_id"] for r in reports}


@SERVICES
def test_every_report_arrives_once(
    command: Any, emulator: tuple[Emulator, str], tmp_path: Path
) -> None:
    """The service sends 500 recipients; each accepted message's report reaches it once."""
    app, hyber_url = emulator
    url = f"http://127.0.0.1:{free_port()}"
    port = int(url.rpartition(":")[2])
    with service(command(port), url, hyber_url, url, tmp_path / "service.log") as client:
        answer, reports = send_and_collect(client, app)
    assert_each_message_reported_once(answer, reports, app)


class RepeatingProxy:
    """A reverse proxy in front of the service: it forwards each callback, then answers 500
    the first time it sees a body, so that the emulator posts every callback twice."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.lock = threading.Lock()
        self.seen: Counter[bytes] = Counter()
        self.repeats_new: list[int] = []
        """The service's ``new`` count for each repeated body."""

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = await read_body(receive)
        async with httpx.AsyncClient() as http:
            forwarded = await http.post(self.target + scope["path"], content=body)
        key = hashlib.sha256(body).digest()
        with self.lock:
            self.seen[key] += 1
            first = self.seen[key] == 1
            if not first:
                self.repeats_new.append(orjson.loads(forwarded.content)["new"])
        status = 500 if first and forwarded.status_code == 200 else forwarded.status_code
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})


@SERVICES
def test_repeated_callbacks_reach_the_handler_once(
    command: Any, emulator: tuple[Emulator, str], tmp_path: Path
) -> None:
    """When every callback is posted twice (answered 500 once), each report is handled once."""
    app, hyber_url = emulator
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proxy = RepeatingProxy(url)
    with (
        running_server(proxy) as proxy_url,
        service(command(port), url, hyber_url, proxy_url, tmp_path / "service.log") as client,
    ):
        answer, reports = send_and_collect(client, app)
    assert_each_message_reported_once(answer, reports, app)
    callbacks = len(proxy.seen)
    assert callbacks > 1
    assert app.callbacks.stats.retries == callbacks
    assert set(proxy.seen.values()) == {2}
    assert proxy.repeats_new == [0] * callbacks
