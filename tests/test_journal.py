"""Resumable campaigns: the same call with the same journal and input resumes safely."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import hyber_async as hy
from hyber_async.journal import JournalMismatchError, SqliteJournal
from hyber_async.testing import emulated_client

pytestmark = pytest.mark.anyio

CAMPAIGN = hy.Campaign(
    channels=(hy.Channel.SMS,),
    channel_options=hy.ChannelOptions(
        sms=hy.SmsOptions(alpha_name="GMSU", ttl=300, text="Hi %name%")
    ),
)


def rows(n: int, name: str = "Ann") -> Iterator[dict[str, Any]]:
    """``n`` broadcast rows; half of them without an extra_id (generated from the run id)."""
    for i in range(n):
        row: dict[str, Any] = {"phone_number": 380500000000 + i, "name": name}
        if i % 2:
            row["extra_id"] = f"r-{i}"
        yield row


async def test_a_finished_campaign_is_not_sent_again(tmp_path: Path) -> None:
    """Re-running a completed journaled send sends nothing and reports the same jobs."""
    async with emulated_client() as env:
        with SqliteJournal(tmp_path / "j.sqlite") as journal:
            first = await env.client.stream_broadcast(
                CAMPAIGN, rows(50), chunk_size=10, journal=journal
            )
        with SqliteJournal(tmp_path / "j.sqlite") as journal:
            again = await env.client.stream_broadcast(
                CAMPAIGN, rows(50), chunk_size=10, journal=journal
            )
    assert first.accepted == again.accepted == 50
    assert again.job_ids == first.job_ids
    assert again.run_id == first.run_id
    assert env.emulator.ledger.requests == 5
    assert env.emulator.ledger.accepted == 50
    assert env.emulator.ledger.duplicates() == {}


async def test_chunks_never_sent_are_sent_on_resume(tmp_path: Path) -> None:
    """A chunk refused on every attempt (NOT_SENT) is sent by the next run; the rest are not."""
    path = tmp_path / "j.sqlite"
    async with emulated_client() as env:
        env.emulator.faults.update({"rate_limit": 5, "retry_after": 0})
        with SqliteJournal(path) as journal:
            first = await env.client.stream_broadcast(
                CAMPAIGN, rows(30), chunk_size=10, concurrency=1, journal=journal
            )
        assert first.not_sent == 10
        assert env.emulator.ledger.accepted == 20
        with SqliteJournal(path) as journal:
            resumed = await env.client.stream_broadcast(
                CAMPAIGN, rows(30), chunk_size=10, concurrency=1, journal=journal
            )
    assert resumed.accepted == 30
    assert resumed.complete
    assert env.emulator.ledger.accepted == 30
    assert env.emulator.ledger.duplicates() == {}


async def test_unknown_chunks_are_reported_not_resent(tmp_path: Path) -> None:
    """A chunk whose outcome is unknown stays UNKNOWN on resume and is not sent again."""
    path = tmp_path / "j.sqlite"
    async with emulated_client() as env:
        env.emulator.faults.update({"errors": 1, "error_after_accept": True})
        with SqliteJournal(path) as journal:
            first = await env.client.stream_broadcast(
                CAMPAIGN, rows(30), chunk_size=10, concurrency=1, journal=journal
            )
        assert first.unknown == 10
        requests = env.emulator.ledger.requests
        with SqliteJournal(path) as journal:
            resumed = await env.client.stream_broadcast(
                CAMPAIGN, rows(30), chunk_size=10, concurrency=1, journal=journal
            )
    assert resumed.unknown == 10
    assert resumed.accepted == 20
    assert [f.index for f in resumed.failures()] == list(range(10))
    assert env.emulator.ledger.requests == requests
    assert env.emulator.ledger.duplicates() == {}


async def test_a_chunk_in_flight_at_a_crash_is_unknown_on_resume(tmp_path: Path) -> None:
    """A journal left with a chunk IN_FLIGHT (the process died) resumes it as UNKNOWN."""
    path = tmp_path / "j.sqlite"
    async with emulated_client() as env:
        with SqliteJournal(path) as journal:
            await env.client.stream_broadcast(CAMPAIGN, rows(20), chunk_size=10, journal=journal)
            record = journal.entries()[1]
            record.state = hy.ChunkState.IN_FLIGHT
            journal.save(record)
        with SqliteJournal(path) as journal:
            resumed = await env.client.stream_broadcast(
                CAMPAIGN, rows(20), chunk_size=10, journal=journal
            )
            assert journal.entries()[1].state is hy.ChunkState.UNKNOWN
    assert resumed.accepted == 10
    assert resumed.unknown == 10
    assert "previous run stopped" in next(resumed.failures()).reason
    assert env.emulator.ledger.requests == 2


async def test_a_changed_input_is_refused_before_sending(tmp_path: Path) -> None:
    """Different recipients under the same journal raise JournalMismatchError; none is sent."""
    path = tmp_path / "j.sqlite"
    async with emulated_client() as env:
        with SqliteJournal(path) as journal:
            await env.client.stream_broadcast(CAMPAIGN, rows(20), chunk_size=10, journal=journal)
        requests = env.emulator.ledger.requests
        with SqliteJournal(path) as journal, pytest.raises(JournalMismatchError, match="chunk 0"):
            await env.client.stream_broadcast(
                CAMPAIGN, rows(20, name="Bob"), chunk_size=10, journal=journal
            )
    assert env.emulator.ledger.requests == requests


@pytest.mark.parametrize("change", ["campaign", "chunk_size"])
async def test_a_changed_campaign_is_refused(tmp_path: Path, change: str) -> None:
    """Another campaign or chunking under the same journal is refused before anything is read."""
    path = tmp_path / "j.sqlite"
    other = hy.Campaign(
        channels=(hy.Channel.SMS,),
        channel_options=hy.ChannelOptions(
            sms=hy.SmsOptions(alpha_name="OTHER", ttl=300, text="Hi %name%")
        ),
    )
    async with emulated_client() as env:
        with SqliteJournal(path) as journal:
            await env.client.stream_broadcast(CAMPAIGN, rows(20), chunk_size=10, journal=journal)
        campaign, size = (other, 10) if change == "campaign" else (CAMPAIGN, 5)
        with SqliteJournal(path) as journal, pytest.raises(JournalMismatchError):
            await env.client.stream_broadcast(campaign, rows(20), chunk_size=size, journal=journal)
    assert env.emulator.ledger.requests == 2


async def test_an_explicit_other_run_id_is_refused(tmp_path: Path) -> None:
    """A run_id that differs from the journal's is refused (generated extra_ids would differ)."""
    async with emulated_client() as env:
        with SqliteJournal(tmp_path / "j.sqlite") as journal:
            await env.client.stream_broadcast(CAMPAIGN, rows(4), run_id="one", journal=journal)
            with pytest.raises(JournalMismatchError, match="'one'"):
                await env.client.stream_broadcast(CAMPAIGN, rows(4), run_id="two", journal=journal)


@pytest.mark.parametrize("content", [None, b""])
def test_resume_only_refuses_a_missing_or_empty_journal(
    tmp_path: Path, content: bytes | None
) -> None:
    """``create=False`` opens only a journal that holds something: a missing or zero-byte file
    is refused by name (it would otherwise start the campaign again)."""
    path = tmp_path / "j.sqlite"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(JournalMismatchError, match=r"j\.sqlite.*nothing to resume"):
        SqliteJournal(path, create=False)
    assert path.exists() == (content is not None)
