"""Delivery-report callbacks of the emulator, received by a small server the tests start."""

from __future__ import annotations

import threading
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import httpx
import orjson
import pytest
from _support import read_body
from conftest import FIXTURES

import hyber_async as hy
from hyber_async.emulator import ChannelOutcomes, EmulatorConfig, create_app, running_server
from hyber_async.testing import EmulatedClient, emulated_client

pytestmark = [pytest.mark.anyio, pytest.mark.slow]  # callbacks posted to receivers

SINGLE, BATCHED = (orjson.loads(next(FIXTURES.glob(f"{n}-*.json")).read_bytes()) for n in (19, 20))
DELIVER = ChannelOutcomes(deliver=1.0, fail=0.0)
SMS = hy.Campaign(
    channels=(hy.Channel.SMS,),
    channel_options=hy.ChannelOptions(sms=hy.SmsOptions(alpha_name="GMSU", ttl=300)),
)


class Receiver:
    """An ASGI app keeping every body POSTed to ``/dr/{token}/{failures}``: the first
    ``failures`` POSTs of a token are answered 500, the others 200."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.bodies: dict[str, list[bytes]] = defaultdict(list)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = await read_body(receive)
        _, token, failures = scope["path"].strip("/").split("/")
        with self.lock:
            self.bodies[token].append(body)
            status = 500 if len(self.bodies[token]) <= int(failures) else 200
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    def received(self, token: str) -> list[bytes]:
        """The bodies POSTed for ``token`` so far."""
        with self.lock:
            return list(self.bodies[token])


@pytest.fixture(scope="module")
def receiver() -> Iterator[tuple[Receiver, str]]:
    """The receiver, served on 127.0.0.1 for the module, and its base URL."""
    app = Receiver()
    with running_server(app) as url:
        yield app, url


def config(**changes: Any) -> EmulatorConfig:
    """A frozen-clock emulator delivering every SMS, posting reports without delay."""
    settings: dict[str, Any] = {
        "time_scale": 0,
        "outcomes": {"sms": DELIVER},
        "callback_period": 0.01,
        "callback_backoff": 0.0,
    }
    settings.update(changes)
    return EmulatorConfig(**settings)


async def wait_for(condition: Callable[[], bool]) -> None:
    """Wait until ``condition()`` holds (failing after a generous 10 s)."""
    with anyio.fail_after(10):
        while not condition():  # noqa: ASYNC110 - set from the server's thread, no event to await
            await anyio.sleep(0.01)


async def send_and_finish(
    emulated: EmulatedClient, url: str, count: int, campaign: hy.Campaign = SMS
) -> str:
    """Send ``count`` messages with ``url`` as callback, then let the clock finish them."""
    messages = [hy.Message(380_500_000_000 + i, "Hi", f"dr-{i}") for i in range(count)]
    job = await emulated.client.send_batch(
        hy.Campaign(
            channels=campaign.channels,
            channel_options=campaign.channel_options,
            callback_url=url,
        ),
        messages,
    )
    emulated.emulator.clock.advance(10**6)
    return job.job_id


def reports(bodies: list[bytes]) -> list[dict[str, Any]]:
    """Every report in ``bodies`` (arrays flattened)."""
    found: list[dict[str, Any]] = []
    for body in bodies:
        data = orjson.loads(body)
        found.extend(data if isinstance(data, list) else [data])
    return found


def token_url(base: str, failures: int = 0) -> tuple[str, str]:
    """A fresh receiver token and its callback URL."""
    token = uuid.uuid4().hex
    return token, f"{base}/dr/{token}/{failures}"


async def test_final_reports_arrive_batched_as_json_arrays(receiver: tuple[Receiver, str]) -> None:
    """Every message's final report arrives once, in arrays shaped like example 20."""
    app, base = receiver
    token, url = token_url(base)
    async with emulated_client(config()) as emulated:
        job_id = await send_and_finish(emulated, url, 5)
        await wait_for(lambda: len(reports(app.received(token))) == 5)
        expected = {
            m["message_id"]: m["hyber_status"] for m in emulated.emulator.status(job_id) or []
        }
    got = reports(app.received(token))
    assert all(isinstance(orjson.loads(b), list) for b in app.received(token))
    assert {r["message_id"]: r["hyber_status"] for r in got} == expected
    sms_keys = {**BATCHED[0], "total_sms_parts": 1, "delivered_sms_parts": 1}
    assert all(r.keys() == sms_keys.keys() and isinstance(r["number"], str) for r in got)


async def test_reports_parse_as_delivery_reports(receiver: tuple[Receiver, str]) -> None:
    """The reports read back into the library's DeliveryReport model as delivered."""
    app, base = receiver
    token, url = token_url(base)
    async with emulated_client(config()) as emulated:
        await send_and_finish(emulated, url, 3)
        await wait_for(lambda: len(reports(app.received(token))) == 3)
    parsed = [hy.converter.loads(b, list[hy.DeliveryReport]) for b in app.received(token)]
    assert sorted(r.phone_number for batch in parsed for r in batch) == [
        380_500_000_000,
        380_500_000_001,
        380_500_000_002,
    ]
    assert all(r.delivered and r.sent_via == "sms" for batch in parsed for r in batch)


async def test_batch_size_one_posts_single_objects(receiver: tuple[Receiver, str]) -> None:
    """With callback_batch_size 1 each POST is one object shaped like example 19."""
    app, base = receiver
    token, url = token_url(base)
    async with emulated_client(config(callback_batch_size=1)) as emulated:
        await send_and_finish(emulated, url, 3)
        await wait_for(lambda: len(app.received(token)) == 3)
    bodies = [orjson.loads(b) for b in app.received(token)]
    assert all(b.keys() == SINGLE.keys() and isinstance(b["number"], int) for b in bodies)


async def test_batches_never_exceed_the_batch_size(receiver: tuple[Receiver, str]) -> None:
    """With callback_batch_size 2, five reports come in POSTs of at most two."""
    app, base = receiver
    token, url = token_url(base)
    async with emulated_client(config(callback_batch_size=2)) as emulated:
        await send_and_finish(emulated, url, 5)
        await wait_for(lambda: len(reports(app.received(token))) == 5)
    assert max(len(orjson.loads(b)) for b in app.received(token)) == 2


async def test_a_refused_post_is_retried_until_accepted(receiver: tuple[Receiver, str]) -> None:
    """The receiver answers 500 twice: the same body is posted a third time, then delivered."""
    app, base = receiver
    token, url = token_url(base, failures=2)
    async with emulated_client(config()) as emulated:
        await send_and_finish(emulated, url, 2)
        stats = emulated.emulator.callbacks.stats
        await wait_for(lambda: stats.delivered == 2)
    bodies = app.received(token)
    assert len(bodies) == 3
    assert bodies[0] == bodies[1] == bodies[2]
    assert (stats.retries, stats.dropped) == (2, 0)


async def test_reports_are_dropped_after_the_last_attempt(receiver: tuple[Receiver, str]) -> None:
    """A receiver that always fails gets callback_max_attempts POSTs, then the reports drop."""
    app, base = receiver
    token, url = token_url(base, failures=1000)
    async with emulated_client(config(callback_max_attempts=3)) as emulated:
        await send_and_finish(emulated, url, 2)
        stats = emulated.emulator.callbacks.stats
        await wait_for(lambda: stats.dropped == 2)
    assert (len(app.received(token)), stats.delivered) == (3, 0)


async def test_reports_wait_for_their_messages_to_become_final(
    receiver: tuple[Receiver, str],
) -> None:
    """No report is due while the clock has not reached the messages' final time."""
    app, base = receiver
    token, url = token_url(base)
    async with emulated_client(config()) as emulated:
        job = await emulated.client.send_batch(
            hy.Campaign(
                channels=SMS.channels, channel_options=SMS.channel_options, callback_url=url
            ),
            [hy.Message(380961111111, "Hi")],
        )
        await anyio.sleep(0.05)
        assert emulated.emulator.callbacks.stats.pending == 0
        emulated.emulator.clock.advance(10**6)
        await wait_for(lambda: len(app.received(token)) == 1)
    assert reports(app.received(token))[0]["message_id"].startswith(job.job_id[:24])


async def test_a_socket_emulator_sends_reports_from_its_own_thread(
    receiver: tuple[Receiver, str],
) -> None:
    """Served on a socket, the emulator runs its callbacks through the ASGI lifespan."""
    app, base = receiver
    token, url = token_url(base)
    async with emulated_client(config(), socket=True) as emulated:
        await send_and_finish(emulated, url, 2)
        await wait_for(lambda: len(reports(app.received(token))) == 2)


async def test_reports_can_go_to_an_in_process_receiver() -> None:
    """callback_transport delivers the reports to an ASGI app without any socket."""
    app = Receiver()
    token = uuid.uuid4().hex
    emulator = create_app(config(), callback_transport=httpx.ASGITransport(app=app))
    async with emulated_client(emulator=emulator) as emulated:
        await send_and_finish(emulated, f"http://receiver/dr/{token}/0", 2)
        await wait_for(lambda: len(reports(app.received(token))) == 2)
