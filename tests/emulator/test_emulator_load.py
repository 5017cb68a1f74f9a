"""The emulator's load-test features: latency distributions, capacity, stall, answer stats."""

from __future__ import annotations

import random
import socket
import statistics

import anyio
import httpx
import pytest

import hyber_async as hy
from hyber_async.emulator import EmulatorConfig, Latency, parse_latency
from hyber_async.emulator._server import listening_socket
from hyber_async.testing import emulated_client

CAMPAIGN = hy.Campaign(
    channels=(hy.Channel.SMS,),
    channel_options=hy.ChannelOptions(sms=hy.SmsOptions(alpha_name="GMSU", ttl=300, text="Hi")),
)
RECIPIENTS = [hy.Recipient(380961111111)]


def test_parse_latency_forms() -> None:
    """fixed, uniform and lognormal parse with ms, s, us and bare milliseconds."""
    assert parse_latency("fixed:50ms") == Latency("fixed", 0.05, 0.05)
    assert parse_latency("uniform:10:0.2s") == Latency("uniform", 0.01, 0.2)
    assert parse_latency("lognormal:500us:20ms") == Latency("lognormal", 0.0005, 0.02)


@pytest.mark.parametrize("text", ["fixed", "fixed:1:2", "uniform:5ms", "gauss:1:2", "fixed:x"])
def test_parse_latency_refuses(text: str) -> None:
    """A malformed latency is refused with the accepted forms named."""
    with pytest.raises(ValueError, match=r"latency|duration"):
        parse_latency(text)


def test_lognormal_latency_has_the_configured_median_and_p99() -> None:
    """lognormal:a:b draws with median a and 99th percentile b."""
    latency = Latency("lognormal", 0.02, 0.2)
    rng = random.Random(1)
    draws = sorted(latency.draw(rng) for _ in range(20_000))
    assert statistics.median(draws) == pytest.approx(0.02, rel=0.05)
    assert draws[int(0.99 * len(draws))] == pytest.approx(0.2, rel=0.1)


@pytest.mark.slow
def test_listening_socket_disables_nagle() -> None:
    """Accepted connections have TCP_NODELAY (else each kept-alive answer waits ~40 ms)."""
    with listening_socket("127.0.0.1", 0) as server:
        client = socket.create_connection(server.getsockname())
        accepted, _ = server.accept()
        with client, accepted:
            assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


@pytest.mark.slow
@pytest.mark.anyio
async def test_capacity_sheds_with_503_and_retry_after() -> None:
    """Requests in flight beyond the capacity are answered 503 with Retry-After, counted."""
    config = EmulatorConfig(
        capacity=1, latency=Latency("fixed", 0.3), capacity_retry_after=2, time_scale=1000
    )
    errors: list[hy.HyberError] = []
    # no rate control: its slow start would hold the second request until the first answers
    async with emulated_client(
        config, retry=hy.RetryPolicy(max_attempts=1), rate_control=False
    ) as emulated:

        async def send() -> None:
            try:
                await emulated.client.send_broadcast(CAMPAIGN, RECIPIENTS)
            except hy.HyberError as exc:
                errors.append(exc)

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(send)
            await anyio.sleep(0.05)
            tasks.start_soon(send)
        stats = emulated.emulator.stats.as_dict()
    assert len(errors) == 1
    assert isinstance(errors[0], hy.ServerError)
    assert errors[0].status_code == 503
    assert errors[0].retry_after == 2
    assert stats["answers"] == {"200": 1, "503": 1}
    assert stats["shed"] == 1
    assert stats["max_in_flight"] == 1


@pytest.mark.slow
@pytest.mark.anyio
async def test_stall_holds_answers_until_it_ends() -> None:
    """An answer due during a stall comes no earlier than the stall's end."""
    async with emulated_client(EmulatorConfig(time_scale=1000)) as emulated:
        started = anyio.current_time()
        emulated.emulator.stall(0.4)
        await emulated.client.send_broadcast(CAMPAIGN, RECIPIENTS)
        assert anyio.current_time() - started >= 0.4


@pytest.mark.anyio
async def test_admin_stats_and_stall_routes() -> None:
    """GET /_emulator/stats counts API answers by status; POST stall validates its seconds."""
    async with emulated_client(EmulatorConfig(time_scale=1000)) as emulated:
        await emulated.client.send_broadcast(CAMPAIGN, RECIPIENTS)
        transport = httpx.ASGITransport(app=emulated.emulator)
        async with httpx.AsyncClient(transport=transport, base_url="http://e") as admin:
            stats = (await admin.get("/_emulator/stats")).json()
            bad = await admin.post("/_emulator/stall", json={"seconds": -1})
            good = await admin.post("/_emulator/stall", json={"seconds": 0})
    assert stats["answers"] == {"200": 1}
    assert stats["requests"] == 1
    assert bad.status_code == 400
    assert "seconds" in bad.json()["error_text"]
    assert good.status_code == 200


def test_config_refuses_bad_capacity_and_latency() -> None:
    """A capacity below 1 or a uniform latency with min > max is refused."""
    with pytest.raises(ValueError, match="capacity"):
        EmulatorConfig(capacity=0)
    with pytest.raises(ValueError, match="a <= b"):
        Latency("uniform", 0.2, 0.1)
