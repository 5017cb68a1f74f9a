"""Polling jobs to the end against the in-process emulator, under its emulated time scale."""

from __future__ import annotations

from typing import Any

import pytest

import hyber_async as hy
from hyber_async.emulator import ChannelOutcomes, EmulatorConfig
from hyber_async.testing import TEST_TIME_SCALE, EmulatedClient, emulated_client

pytestmark = pytest.mark.anyio

SENT = 300
CHUNK = 100
FAST = {"interval": 0.01, "max_interval": 0.05, "deadline": 60.0}
"""Polling settings for an emulator running ``TEST_TIME_SCALE`` times faster than real time
(the deadline is a bound that a working poller never reaches)."""
NEVER = ChannelOutcomes(deliver=0.0, fail=0.0)
"""Every message expires on this channel."""
ALWAYS = ChannelOutcomes(deliver=1.0, fail=0.0)
"""Every message is delivered on this channel."""


def campaign(*channels: hy.Channel) -> hy.Campaign:
    """A broadcast over ``channels`` (in cascade order) with the shortest ttls allowed."""
    options = hy.ChannelOptions(
        viber=hy.ViberOptions(ttl=60, text="Hi") if hy.Channel.VIBER in channels else None,
        sms=hy.SmsOptions(alpha_name="GMSU", ttl=300, text="Hi")
        if hy.Channel.SMS in channels
        else None,
    )
    return hy.Campaign(channels=channels, channel_options=options)


def recipients(count: int = SENT) -> list[dict[str, Any]]:
    """``count`` distinct recipients as plain rows."""
    return [{"phone_number": 380500000000 + i} for i in range(count)]


async def test_wait_for_jobs_accounts_for_every_message(emulated: EmulatedClient) -> None:
    """Every message sent ends delivered, expired or failed; none pending, every job final."""
    client = emulated.client
    cascade = campaign(hy.Channel.VIBER, hy.Channel.SMS)
    report = await client.stream_broadcast(cascade, recipients(), chunk_size=CHUNK)
    summary = await client.wait_for_jobs(report.job_ids, **FAST)
    items = [m for job_id in report.job_ids for m in emulated.emulator.status(job_id) or ()]
    counts = summary.counts
    assert (summary.jobs, summary.pending_jobs, summary.complete) == (SENT // CHUNK, (), True)
    assert (counts.pending, counts.delivered + counts.expired + counts.failed) == (0, SENT)
    assert counts.delivered == sum(m.get("status") == hy.Status.DELIVERED for m in items)
    assert sum(summary.by_channel.values(), hy.Counts()) == counts


@pytest.mark.parametrize(
    ("channels", "outcomes", "expected"),
    [
        ((hy.Channel.VIBER, hy.Channel.SMS), {"viber": ALWAYS}, {"viber": hy.Counts(SENT)}),
        (
            (hy.Channel.VIBER, hy.Channel.SMS),
            {"viber": NEVER, "sms": ALWAYS},
            {"sms": hy.Counts(delivered=SENT)},
        ),
        ((hy.Channel.SMS,), {"sms": NEVER}, {"sms": hy.Counts(expired=SENT)}),
    ],
    ids=["viber-delivers", "sms-delivers-after-viber-expires", "sms-expires"],
)
async def test_summary_by_channel_follows_the_cascade(
    channels: tuple[hy.Channel, ...],
    outcomes: dict[str, ChannelOutcomes],
    expected: dict[str, hy.Counts],
) -> None:
    """With fixed outcomes, the per-channel counts are exactly where the cascade ends."""
    config = EmulatorConfig(time_scale=TEST_TIME_SCALE, outcomes=outcomes)
    async with emulated_client(config) as emulated:
        client = emulated.client
        report = await client.stream_broadcast(campaign(*channels), recipients(), chunk_size=CHUNK)
        summary = await client.wait_for_jobs(report.job_ids, **FAST)
    assert summary.by_channel == expected
    assert summary.counts == sum(expected.values(), hy.Counts())


async def test_poll_jobs_ends_with_a_final_update_per_job(emulated: EmulatedClient) -> None:
    """``poll_jobs`` stops by itself, after one final update for each job."""
    client = emulated.client
    report = await client.stream_broadcast(campaign(hy.Channel.SMS), recipients(), chunk_size=CHUNK)
    updates = [u async for u in client.poll_jobs(report.job_ids, **FAST)]
    finals = [u.job_id for u in updates if u.final]
    assert sorted(finals) == sorted(report.job_ids)
    assert all(u.error is None for u in updates)


@pytest.mark.slow
async def test_deadline_shorter_than_the_cascade_names_pending_jobs() -> None:
    """In real time a 60 s ttl cannot pass within the deadline: every job is named pending."""
    async with emulated_client(EmulatorConfig(time_scale=1)) as emulated:
        client = emulated.client
        cascade = campaign(hy.Channel.VIBER, hy.Channel.SMS)
        report = await client.stream_broadcast(cascade, recipients(), chunk_size=CHUNK)
        with pytest.raises(hy.PollDeadlineError) as caught:
            await client.wait_for_jobs(report.job_ids, interval=0.05, deadline=0.5)
    error = caught.value
    assert isinstance(error, TimeoutError)
    assert sorted(error.pending) == sorted(report.job_ids)
    assert sorted(error.summary.pending_jobs) == sorted(report.job_ids)
    assert sum(c.pending for c in error.pending.values()) == SENT
    assert f"{len(report.job_ids)} job(s) not final" in str(error)
