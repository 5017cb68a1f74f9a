"""Load: fifty concurrent campaigns on one client against the emulator on a loopback socket."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Final

import anyio
import pytest
from _support import CASCADE as CAMPAIGN

import hyber_async as hy
from hyber_async._config import DEFAULT_MAX_CONNECTIONS
from hyber_async.testing import emulated_client

pytestmark = [pytest.mark.anyio, pytest.mark.slow]  # 100,000 recipients over a socket

CAMPAIGNS: Final = 50
RECIPIENTS: Final = 2_000
CHUNK: Final = 500


def rows(campaign: int) -> Iterator[dict[str, Any]]:
    """The recipients of campaign ``campaign``, with extra_ids unique across campaigns."""
    base = 380_500_000_000 + campaign * RECIPIENTS
    for i in range(RECIPIENTS):
        yield {"phone_number": base + i, "extra_id": f"c{campaign}-{i}", "name": "Ann"}


async def test_fifty_concurrent_campaigns_on_one_client_account_for_every_recipient() -> None:
    """50 x 2,000 recipients at once through the default pool of 8 connections: no pool
    timeout, every recipient accepted, the ledger holds 100,000 messages once each."""
    reports: dict[int, hy.SendReport] = {}
    async with emulated_client(socket=True) as env:
        assert env.client.max_connections == DEFAULT_MAX_CONNECTIONS

        async def campaign(number: int) -> None:
            reports[number] = await env.client.stream_broadcast(
                CAMPAIGN, rows(number), chunk_size=CHUNK
            )

        async with anyio.create_task_group() as tasks:
            for number in range(CAMPAIGNS):
                tasks.start_soon(campaign, number)
    assert len(reports) == CAMPAIGNS
    for report in reports.values():
        assert report.complete
        assert report.counts == {
            hy.Outcome.ACCEPTED: RECIPIENTS,
            hy.Outcome.REJECTED: 0,
            hy.Outcome.NOT_SENT: 0,
            hy.Outcome.UNKNOWN: 0,
        }
        assert list(report.failures()) == []
        assert len(report.job_ids) == RECIPIENTS // CHUNK
    ledger = env.emulator.ledger
    assert ledger.accepted == CAMPAIGNS * RECIPIENTS
    assert ledger.requests == CAMPAIGNS * RECIPIENTS // CHUNK
    assert ledger.duplicates() == {}
    assert len(ledger.counts()) == CAMPAIGNS * RECIPIENTS
