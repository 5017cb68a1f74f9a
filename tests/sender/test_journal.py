"""Resumable campaigns: the same call with the same journal and input resumes safely."""

from __future__ import annotations

import os
import socket
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _support import SMS_BROADCAST as CAMPAIGN

import hyber_async as hy
from hyber_async.journal import (
    JournalLockedError,
    JournalMismatchError,
    JournalNotFoundError,
    JournalOpenError,
    JournalWriteError,
    SqliteJournal,
)
from hyber_async.testing import EmulatedClient

pytestmark = pytest.mark.anyio


def rows(n: int, name: str = "Ann") -> Iterator[dict[str, Any]]:
    """``n`` broadcast rows; half of them without an extra_id (generated from the run id)."""
    for i in range(n):
        row: dict[str, Any] = {"phone_number": 380500000000 + i, "name": name}
        if i % 2:
            row["extra_id"] = f"r-{i}"
        yield row


async def test_a_finished_campaign_is_not_sent_again(
    emulated: EmulatedClient, tmp_path: Path
) -> None:
    """Re-running a completed journaled send sends nothing and reports the same jobs."""
    with SqliteJournal(tmp_path / "j.sqlite") as journal:
        first = await emulated.client.stream_broadcast(
            CAMPAIGN, rows(50), chunk_size=10, journal=journal
        )
    with SqliteJournal(tmp_path / "j.sqlite") as journal:
        again = await emulated.client.stream_broadcast(
            CAMPAIGN, rows(50), chunk_size=10, journal=journal
        )
    assert first.accepted == again.accepted == 50
    assert again.job_ids == first.job_ids
    assert again.run_id == first.run_id
    assert emulated.emulator.ledger.requests == 5
    assert emulated.emulator.ledger.accepted == 50
    assert emulated.emulator.ledger.duplicates() == {}


async def test_chunks_never_sent_are_sent_on_resume(
    emulated: EmulatedClient, tmp_path: Path
) -> None:
    """A chunk refused on every attempt (NOT_SENT) is sent by the next run; the rest are not."""
    path = tmp_path / "j.sqlite"
    emulated.emulator.faults.update({"rate_limit": 5, "retry_after": 0})
    with SqliteJournal(path) as journal:
        first = await emulated.client.stream_broadcast(
            CAMPAIGN, rows(30), chunk_size=10, concurrency=1, journal=journal
        )
    assert first.not_sent == 10
    assert emulated.emulator.ledger.accepted == 20
    with SqliteJournal(path) as journal:
        resumed = await emulated.client.stream_broadcast(
            CAMPAIGN, rows(30), chunk_size=10, concurrency=1, journal=journal
        )
    assert resumed.accepted == 30
    assert resumed.complete
    assert emulated.emulator.ledger.accepted == 30
    assert emulated.emulator.ledger.duplicates() == {}


async def test_unknown_chunks_are_reported_not_resent(
    emulated: EmulatedClient, tmp_path: Path
) -> None:
    """A chunk whose outcome is unknown stays UNKNOWN on resume and is not sent again."""
    path = tmp_path / "j.sqlite"
    emulated.emulator.faults.update({"errors": 1, "error_after_accept": True})
    with SqliteJournal(path) as journal:
        first = await emulated.client.stream_broadcast(
            CAMPAIGN, rows(30), chunk_size=10, concurrency=1, journal=journal
        )
    assert first.unknown == 10
    requests = emulated.emulator.ledger.requests
    with SqliteJournal(path) as journal:
        resumed = await emulated.client.stream_broadcast(
            CAMPAIGN, rows(30), chunk_size=10, concurrency=1, journal=journal
        )
    assert resumed.unknown == 10
    assert resumed.accepted == 20
    assert [f.index for f in resumed.failures()] == list(range(10))
    assert emulated.emulator.ledger.requests == requests
    assert emulated.emulator.ledger.duplicates() == {}


async def test_a_chunk_in_flight_at_a_crash_is_unknown_on_resume(
    emulated: EmulatedClient, tmp_path: Path
) -> None:
    """A journal left with a chunk IN_FLIGHT (the process died) resumes it as UNKNOWN."""
    path = tmp_path / "j.sqlite"
    with SqliteJournal(path) as journal:
        await emulated.client.stream_broadcast(CAMPAIGN, rows(20), chunk_size=10, journal=journal)
        record = journal.entries()[1]
        record.state = hy.ChunkState.IN_FLIGHT
        journal.save(record)
    with SqliteJournal(path) as journal:
        resumed = await emulated.client.stream_broadcast(
            CAMPAIGN, rows(20), chunk_size=10, journal=journal
        )
        assert journal.entries()[1].state is hy.ChunkState.UNKNOWN
    assert resumed.accepted == 10
    assert resumed.unknown == 10
    assert "previous run stopped" in next(resumed.failures()).reason
    assert emulated.emulator.ledger.requests == 2


async def test_a_changed_input_is_refused_before_sending(
    emulated: EmulatedClient, tmp_path: Path
) -> None:
    """Different recipients under the same journal raise JournalMismatchError; none is sent."""
    path = tmp_path / "j.sqlite"
    with SqliteJournal(path) as journal:
        await emulated.client.stream_broadcast(CAMPAIGN, rows(20), chunk_size=10, journal=journal)
    requests = emulated.emulator.ledger.requests
    with SqliteJournal(path) as journal, pytest.raises(JournalMismatchError, match="chunk 0"):
        await emulated.client.stream_broadcast(
            CAMPAIGN, rows(20, name="Bob"), chunk_size=10, journal=journal
        )
    assert emulated.emulator.ledger.requests == requests


@pytest.mark.parametrize("change", ["campaign", "chunk_size"])
async def test_a_changed_campaign_is_refused(
    emulated: EmulatedClient, tmp_path: Path, change: str
) -> None:
    """Another campaign or chunking under the same journal is refused before anything is read."""
    path = tmp_path / "j.sqlite"
    other = hy.Campaign(
        channels=(hy.Channel.SMS,),
        channel_options=hy.ChannelOptions(
            sms=hy.SmsOptions(alpha_name="OTHER", ttl=300, text="Hi %name%")
        ),
    )
    with SqliteJournal(path) as journal:
        await emulated.client.stream_broadcast(CAMPAIGN, rows(20), chunk_size=10, journal=journal)
    campaign, size = (other, 10) if change == "campaign" else (CAMPAIGN, 5)
    with SqliteJournal(path) as journal, pytest.raises(JournalMismatchError):
        await emulated.client.stream_broadcast(campaign, rows(20), chunk_size=size, journal=journal)
    assert emulated.emulator.ledger.requests == 2


async def test_an_explicit_other_run_id_is_refused(
    emulated: EmulatedClient, tmp_path: Path
) -> None:
    """A run_id that differs from the journal's is refused (generated extra_ids would differ)."""
    with SqliteJournal(tmp_path / "j.sqlite") as journal:
        await emulated.client.stream_broadcast(CAMPAIGN, rows(4), run_id="one", journal=journal)
        with pytest.raises(JournalMismatchError, match="'one'"):
            await emulated.client.stream_broadcast(CAMPAIGN, rows(4), run_id="two", journal=journal)


def test_a_second_opener_of_a_held_journal_fails_at_once_naming_the_holder(
    tmp_path: Path,
) -> None:
    """One run per journal: while it is open, opening it again (here, in the same process)
    raises JournalLockedError with the path and the holder; after close() it opens."""
    path = tmp_path / "j.sqlite"
    with SqliteJournal(path):
        with pytest.raises(JournalLockedError) as caught:
            SqliteJournal(path)
        assert caught.value.path == str(path)
        assert caught.value.holder == f"pid {os.getpid()} on {socket.gethostname()}"
        assert str(path) in str(caught.value)
        assert f"pid {os.getpid()}" in str(caught.value)
        assert isinstance(caught.value, JournalMismatchError)  # one handler for every refusal
    with SqliteJournal(path) as journal:
        assert journal.entries() == {}


@pytest.mark.parametrize("state", ["missing", "zero bytes", "no run", "not sqlite"])
def test_resume_only_refuses_a_journal_with_nothing_to_resume(tmp_path: Path, state: str) -> None:
    """create=False refuses a journal that would silently start the campaign again; it
    creates no file."""
    path = tmp_path / "j.sqlite"
    if state == "zero bytes":
        path.touch()
    elif state == "no run":
        SqliteJournal(path).close()
    elif state == "not sqlite":
        path.write_text("phone_number\n380500000000\n", encoding="utf-8")
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(JournalNotFoundError, match=rf"{path}: .*nothing to resume") as caught:
        SqliteJournal(path, create=False)
    assert isinstance(caught.value, JournalMismatchError)  # one handler for every refusal
    assert sorted(p.name for p in tmp_path.iterdir()) == before


async def test_resume_only_opens_a_journal_that_recorded_a_run(
    emulated: EmulatedClient, tmp_path: Path
) -> None:
    """create=False resumes a journal with a run: nothing is sent again."""
    path = tmp_path / "j.sqlite"
    with SqliteJournal(path) as journal:
        await emulated.client.stream_broadcast(CAMPAIGN, rows(20), chunk_size=10, journal=journal)
    with SqliteJournal(path, create=False) as journal:
        again = await emulated.client.stream_broadcast(
            CAMPAIGN, rows(20), chunk_size=10, journal=journal
        )
    assert again.accepted == 20
    assert emulated.emulator.ledger.requests == 2


class FullDisk(SqliteJournal):
    """A journal whose writes fail from the first write of chunk 2 in ``state`` on, as on a
    full disk."""

    def __init__(self, path: Path, state: hy.ChunkState) -> None:
        super().__init__(path)
        self.fail_on = state
        self.full = False

    def save(self, record: hy.ChunkRecord) -> None:
        self.full = self.full or (record.number == 2 and record.state is self.fail_on)
        if self.full:
            raise sqlite3.OperationalError("disk I/O error")
        super().save(record)


def assert_settled(report: hy.SendReport) -> None:
    """Every chunk final, every recipient read counted once, failures() lists the rest."""
    assert all(chunk.outcome is not None for chunk in report.chunks)
    assert sum(report.counts.values()) == report.read
    assert len(list(report.failures())) == report.read - report.accepted


@pytest.mark.parametrize("state", [hy.ChunkState.IN_FLIGHT, hy.ChunkState.ACCEPTED])
async def test_a_journal_that_cannot_be_written_stops_the_send_with_a_settled_report(
    emulated: EmulatedClient, tmp_path: Path, state: hy.ChunkState
) -> None:
    """Disk full while journaling: one JournalWriteError naming the journal, the report settled
    in memory; no chunk leaves unrecorded, and a resume + reconcile sends everyone once."""
    path = tmp_path / "j.sqlite"
    report = hy.SendReport()
    emulated.emulator.faults.update({"latency": 0.01})
    with FullDisk(path, state) as journal, pytest.raises(JournalWriteError) as caught:
        await emulated.client.stream_broadcast(
            CAMPAIGN, rows(80), chunk_size=10, concurrency=2, journal=journal, report=report
        )
    error = caught.value
    assert error.report is report
    assert error.journal == repr(journal)
    assert str(path) in str(error)
    assert f"could not record chunk 2 as {state.value}: disk I/O error" in str(error)
    assert repr(report) in str(error)
    assert isinstance(error.__cause__, sqlite3.OperationalError)
    assert_settled(report)
    assert not report.complete
    assert report.aborted is not None
    assert report.read < 80
    assert report.unknown == 0
    assert emulated.emulator.ledger.accepted == report.accepted
    if state is hy.ChunkState.IN_FLIGHT:
        assert report.chunks[2].state is hy.ChunkState.NOT_SENT
    else:
        assert report.chunks[2].state is hy.ChunkState.ACCEPTED

    emulated.emulator.faults.clear()
    with SqliteJournal(path) as journal:
        resumed = await emulated.client.stream_broadcast(
            CAMPAIGN, rows(80), chunk_size=10, journal=journal
        )
        await emulated.client.reconcile(resumed, resend=True, journal=journal)
    assert resumed.accepted == 80
    assert emulated.emulator.ledger.accepted == 80
    assert emulated.emulator.ledger.duplicates() == {}


async def test_sqlite_disk_full_raises_journal_write_error(
    emulated: EmulatedClient, tmp_path: Path
) -> None:
    """SQLite's own "database or disk is full" (its page limit reached): the same one error,
    the report settled."""
    path = tmp_path / "j.sqlite"
    with SqliteJournal(path) as journal:
        # The connection may not grow the file past its size now: the chunk table's first
        # page fills after a few dozen chunks. (A full tmpfs would need root to mount.)
        db = journal._db
        db.execute(f"PRAGMA max_page_count = {db.execute('PRAGMA page_count').fetchone()[0]}")
        with pytest.raises(JournalWriteError) as caught:
            await emulated.client.stream_broadcast(
                CAMPAIGN, rows(500), chunk_size=1, journal=journal
            )
    assert "database or disk is full" in str(caught.value)
    assert_settled(caught.value.report)
    assert 0 < caught.value.report.accepted < 500


@pytest.mark.parametrize("where", ["missing-directory", "a-directory"])
def test_a_journal_that_cannot_be_created_names_its_file(tmp_path: Path, where: str) -> None:
    """SQLite's "unable to open database file" names no file: the error does, and says that
    nothing was sent; SQLite's own error is its cause."""
    path = tmp_path / "nowhere" / "j.sqlite" if where == "missing-directory" else tmp_path
    with pytest.raises(
        JournalOpenError, match=rf"{path}: cannot be opened .*nothing was sent"
    ) as caught:
        SqliteJournal(path)
    assert isinstance(caught.value.__cause__, (sqlite3.Error, OSError))


async def test_a_run_that_cannot_be_recorded_sends_nothing(
    emulated: EmulatedClient, tmp_path: Path
) -> None:
    """The journal refusing the write that records the run (here made read-only after it was
    opened): ``JournalOpenError`` naming the file, before any request."""
    with SqliteJournal(tmp_path / "j.sqlite") as journal:
        journal._db.execute("PRAGMA query_only = ON")
        with pytest.raises(JournalOpenError, match=r"j\.sqlite: .*readonly"):
            await emulated.client.stream_broadcast(CAMPAIGN, rows(10), journal=journal)
    assert emulated.emulator.ledger.requests == 0
