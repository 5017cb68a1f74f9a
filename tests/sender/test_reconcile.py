"""client.reconcile: UNKNOWN recipients resolved by their extra_id, resent only on request."""

from __future__ import annotations

from pathlib import Path

import pytest
from _support import SMS_BROADCAST as CAMPAIGN
from _support import rows

import hyber_async as hy
from hyber_async.journal import SqliteJournal
from hyber_async.testing import EmulatedClient, emulated_client

pytestmark = pytest.mark.anyio


async def test_delivery_report_lookup_by_extra_id_and_message_id(emulated: EmulatedClient) -> None:
    """get_delivery_report finds an accepted message by either id, and None for an unknown one."""
    result = await emulated.client.send_broadcast_sync(CAMPAIGN, list(rows(1)))
    message_id = result.messages[0].message_id
    assert message_id is not None
    by_extra_id = await emulated.client.get_delivery_report(extra_id="r-0")
    by_message_id = await emulated.client.get_delivery_report(message_id=message_id)
    missing = await emulated.client.get_delivery_report(extra_id="never-sent")
    assert by_extra_id is not None
    assert by_message_id is not None
    assert by_extra_id.message_id == by_message_id.message_id == message_id
    assert by_extra_id.phone_number == "380500000000"
    assert missing is None


async def test_unknown_but_accepted_becomes_accepted_without_resending(
    emulated: EmulatedClient,
) -> None:
    """A 500 after the server accepted: reconciliation finds the chunk and sends nothing."""
    emulated.emulator.faults.update({"errors": 1, "error_after_accept": True})
    report = await emulated.client.stream_broadcast(
        CAMPAIGN, rows(30), chunk_size=10, concurrency=1
    )
    assert report.unknown == 10
    await emulated.client.reconcile(report, resend=True)
    assert report.accepted == 30
    assert report.unknown == 0
    assert list(report.failures()) == []
    assert emulated.emulator.ledger.accepted == 30
    assert emulated.emulator.ledger.accepted_requests == 3
    assert emulated.emulator.ledger.duplicates() == {}


async def test_unknown_and_not_accepted_becomes_not_sent_unless_resent() -> None:
    """A 500 before accepting: NOT_SENT after reconciliation; resend=True sends it once."""
    async with emulated_client() as env:
        env.emulator.faults.update({"errors": 1})
        report = await env.client.stream_broadcast(CAMPAIGN, rows(30), chunk_size=10, concurrency=1)
        await env.client.reconcile(report)
        assert report.not_sent == 10
        failures = list(report.failures())
        assert [f.extra_id for f in failures] == [f"r-{i}" for i in range(10)]
        assert all("not found" in f.reason for f in failures)
        assert env.emulator.ledger.accepted == 20

    async with emulated_client() as env:
        env.emulator.faults.update({"errors": 1})
        report = await env.client.stream_broadcast(CAMPAIGN, rows(30), chunk_size=10, concurrency=1)
        await env.client.reconcile(report, resend=True)
    assert report.accepted == 30
    assert len(report.job_ids) == 3
    assert env.emulator.ledger.accepted == 30
    assert env.emulator.ledger.duplicates() == {}


async def test_reconciliation_is_journaled(emulated: EmulatedClient, tmp_path: Path) -> None:
    """After reconcile(journal=...), a resumed run neither reports UNKNOWN nor sends again."""
    path = tmp_path / "j.sqlite"
    emulated.emulator.faults.update({"errors": 1, "error_after_accept": True})
    with SqliteJournal(path) as journal:
        report = await emulated.client.stream_broadcast(
            CAMPAIGN, rows(20), chunk_size=10, concurrency=1, journal=journal
        )
        await emulated.client.reconcile(report, journal=journal)
    requests = emulated.emulator.ledger.requests
    with SqliteJournal(path) as journal:
        resumed = await emulated.client.stream_broadcast(
            CAMPAIGN, rows(20), chunk_size=10, concurrency=1, journal=journal
        )
    assert resumed.accepted == 20
    assert resumed.unknown == 0
    assert emulated.emulator.ledger.requests == requests


async def test_a_chunk_found_in_part_is_looked_up_one_by_one_and_the_rest_resent(
    emulated: EmulatedClient,
) -> None:
    """First and last recipients disagree: each is looked up, only the missing ones resent."""
    emulated.emulator.faults.update({"errors": 1})
    report = await emulated.client.stream_broadcast(CAMPAIGN, rows(10))
    assert report.unknown == 10
    await emulated.client.send_broadcast(CAMPAIGN, list(rows(4)))  # r-0 .. r-3 got through
    await emulated.client.reconcile(report, resend=True)
    assert report.accepted == 10
    assert report.unknown == report.not_sent == 0
    assert emulated.emulator.ledger.counts() == {f"r-{i}": 1 for i in range(10)}
    assert emulated.emulator.ledger.accepted_requests == 2


async def test_a_chunk_found_in_part_is_split_by_outcome_without_resend(
    emulated: EmulatedClient,
) -> None:
    """Without resend, the found part is ACCEPTED and only the rest is listed as NOT_SENT."""
    emulated.emulator.faults.update({"errors": 1})
    report = await emulated.client.stream_broadcast(CAMPAIGN, rows(10))
    await emulated.client.send_broadcast(CAMPAIGN, list(rows(4)))
    await emulated.client.reconcile(report)
    assert (report.accepted, report.not_sent, report.unknown) == (4, 6, 0)
    assert [f.extra_id for f in report.failures()] == [f"r-{i}" for i in range(4, 10)]
    assert emulated.emulator.ledger.accepted == 4


async def test_recipients_left_out_of_a_sync_answer_are_resolved_one_by_one(
    emulated: EmulatedClient,
) -> None:
    """UNKNOWN recipients of an answered sync chunk: found ones ACCEPTED, the rest NOT_SENT."""
    left_out = [
        hy.RecipientOutcome(1, 380500000001, "r-1", hy.Outcome.UNKNOWN, "missing from the answer"),
        hy.RecipientOutcome(3, 380500000003, "r-3", hy.Outcome.UNKNOWN, "missing from the answer"),
    ]
    chunk = hy.ChunkRecord(
        number=0, first_index=0, size=4, state=hy.ChunkState.ACCEPTED, sent=4, excluded=left_out
    )
    report = hy.SendReport(chunks=[chunk], read=4, complete=True)
    assert (report.accepted, report.unknown) == (2, 2)
    await emulated.client.send_broadcast(CAMPAIGN, list(rows(3)))  # r-1 is on the server, r-3 not
    await emulated.client.reconcile(report)
    assert (report.accepted, report.not_sent, report.unknown) == (3, 1, 0)
    assert [(f.extra_id, f.outcome) for f in report.failures()] == [("r-3", hy.Outcome.NOT_SENT)]
