"""The emulator's account quota: GCRA over messages and requests, 429 with Retry-After, a
request larger than the bucket admitted once the debt is paid, changes at run time."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator

import httpx
import pytest
from _support import batch_campaign

import hyber_async as hy
from hyber_async.emulator import DEMO_ACCOUNT, Emulator, EmulatorConfig, create_app
from hyber_async.emulator._quota import Quota, QuotaSettings

AUTH = httpx.BasicAuth(DEMO_ACCOUNT.login, DEMO_ACCOUNT.password)
CAMPAIGN = hy.converter.unstructure(batch_campaign())


class FakeClock:
    """Monotonic seconds that move only when told."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def batch(n: int, start: int = 0) -> dict[str, object]:
    messages = [
        {"phone_number": 380_500_000_000 + i, "text": "Hi", "extra_id": f"q-{i}"}
        for i in range(start, start + n)
    ]
    return {"messages": messages, **CAMPAIGN}


def test_gcra_admits_the_rate_and_the_burst_then_refuses_with_the_wait() -> None:
    clock = FakeClock()
    quota = Quota(QuotaSettings(rate_limit=100, burst=1.0), clock)
    # 200 messages at once: 100 of debt beyond the burst of 1 s (100 messages) is allowed ...
    assert [quota.admit("c", 10) for _ in range(11)] == [None] * 11
    # ... the meter is now 1.1 s ahead: 0.1 s beyond the burst
    assert quota.admit("c", 10) == pytest.approx(0.1)
    clock.now += 0.1
    assert quota.admit("c", 10) is None
    assert quota.as_dict()["refused"] == 1
    assert quota.as_dict()["admitted_messages"] == 120
    # another account has its own meters
    assert quota.admit("other", 10) is None


def test_a_request_larger_than_the_bucket_is_admitted_and_its_cost_is_waited_after() -> None:
    clock = FakeClock()
    quota = Quota(QuotaSettings(rate_limit=1000, burst=1.0), clock)
    assert quota.admit("c", 50_000) is None  # 50 s worth, never "too large for ever"
    assert quota.admit("c", 1) == pytest.approx(49.0)
    clock.now += 49.0
    assert quota.admit("c", 50_000) is None


def test_the_request_limit_counts_requests_whatever_their_size() -> None:
    clock = FakeClock()
    quota = Quota(QuotaSettings(request_rate_limit=2, burst=0.0), clock)
    assert quota.admit("c", 1) is None
    assert quota.admit("c", 1) == pytest.approx(0.5)
    clock.now += 0.5
    assert quota.admit("c", 50_000) is None


def test_a_bad_setting_changes_nothing() -> None:
    quota = Quota(QuotaSettings(rate_limit=10))
    for bad in ({"rate_limit": 0}, {"rate_limit": "x"}, {"burst": -1}, {"limit": 1}):
        with pytest.raises(ValueError, match=r"rate_limit|burst|limit"):
            quota.update(bad)
    assert quota.settings.rate_limit == 10
    with pytest.raises(ValueError, match="rate_limit"):
        EmulatorConfig(rate_limit=-5)


@pytest.fixture
async def http() -> AsyncIterator[tuple[httpx.AsyncClient, Emulator]]:
    emulator = create_app(EmulatorConfig(time_scale=0, rate_limit=10, quota_burst=1.0))
    transport = httpx.ASGITransport(app=emulator)
    async with httpx.AsyncClient(transport=transport, base_url="http://emulator") as client:
        yield client, emulator


@pytest.mark.anyio
async def test_a_refused_send_is_429_with_retry_after_and_nothing_recorded(
    http: tuple[httpx.AsyncClient, Emulator],
) -> None:
    client, emulator = http
    path = f"/{DEMO_ACCOUNT.client_id}/batch"
    first = await client.post(path, json=batch(20), auth=AUTH)
    assert first.status_code == 200
    refused = await client.post(path, json=batch(5, 20), auth=AUTH)
    assert refused.status_code == 429
    assert float(refused.headers["retry-after"]) > 0
    assert refused.json()["error_code"] == 42901
    assert emulator.ledger.count("q-20") == 0
    assert emulator.ledger.accepted == 20
    # status requests are not metered
    status = f"/{DEMO_ACCOUNT.client_id}/status/{first.json()['job_id']}"
    assert (await client.get(status, auth=AUTH)).status_code == 200
    figures = (await client.get("/_emulator/quota")).json()
    assert figures["rate_limit"] == 10
    assert (figures["refused"], figures["refused_messages"]) == (1, 5)


@pytest.mark.anyio
async def test_the_quota_changes_at_run_time_through_the_admin_route(
    http: tuple[httpx.AsyncClient, Emulator],
) -> None:
    client, emulator = http
    path = f"/{DEMO_ACCOUNT.client_id}/batch"
    answer = await client.post("/_emulator/quota", json={"rate_limit": None})
    assert answer.json()["rate_limit"] is None
    for start in range(0, 100, 20):
        assert (await client.post(path, json=batch(20, start), auth=AUTH)).status_code == 200
    bad = await client.post("/_emulator/quota", json={"rate_limit": -1})
    assert bad.status_code == 400
    assert "rate_limit" in bad.json()["error_text"]
    assert emulator.quota.settings.rate_limit is None


def test_the_command_line_takes_the_quota() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "hyber_async.emulator", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "--rate-limit" in out
    assert "--request-rate-limit" in out
    bad = subprocess.run(
        [sys.executable, "-m", "hyber_async.emulator", "--rate-limit", "0"],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2
    assert "--rate-limit" in bad.stderr
