"""Resumable campaigns: a durable journal of every chunk's state.

Pass a journal to ``stream_batch`` / ``stream_broadcast``; run the same call again with the
same journal and the same input after a crash, and it

- skips the chunks already accepted (or rejected),
- sends the chunks never sent (and those provably not sent: connection refused, throttled),
- reports the chunks that were in flight, or ended ``UNKNOWN``, as ``UNKNOWN`` without resending
  them: reconcile them with ``HyberClient.reconcile``.

A chunk is written as ``IN_FLIGHT`` before its request leaves and again when it ends, each time
in its own durable transaction, so a crash at any instant leaves the journal on the safe side.
A different campaign, chunk size or input is refused with ``JournalMismatchError``: the journal
keeps the campaign's fingerprint and a digest of every chunk's request body.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Mapping
from typing import Protocol

import orjson

from ._errors import HyberError
from ._send_report import ChunkRecord, ChunkState, Outcome, RecipientOutcome

__all__ = ["Journal", "JournalMismatchError", "SqliteJournal"]


class JournalMismatchError(HyberError, ValueError):
    """The journal belongs to another campaign or another input: nothing was sent."""


class Journal(Protocol):
    """What the mass sender needs of a journal (``SqliteJournal`` is the one provided)."""

    def open_run(self, fingerprint: str, run_id: str) -> str:
        """Start run ``run_id`` of campaign ``fingerprint``, or resume the recorded run of the
        same campaign; return the run id to use.

        Raise ``JournalMismatchError`` when the journal holds another campaign.
        """

    def entries(self) -> Mapping[int, ChunkRecord]:
        """Every chunk recorded so far, by chunk number."""

    def save(self, record: ChunkRecord) -> None:
        """Record ``record``'s current state (and its ``digest``) durably before returning."""


_SCHEMA = """
CREATE TABLE IF NOT EXISTS run (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    fingerprint TEXT NOT NULL,
    run_id TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS chunk (
    number INTEGER PRIMARY KEY,
    first_index INTEGER NOT NULL,
    size INTEGER NOT NULL,
    sent INTEGER NOT NULL,
    state TEXT NOT NULL,
    job_id TEXT,
    reason TEXT,
    error_code INTEGER,
    digest BLOB NOT NULL,
    own_outcomes BLOB NOT NULL
);
"""


class SqliteJournal:
    """A journal in an SQLite file (stdlib ``sqlite3``, WAL, ``synchronous=FULL``).

    One file holds one campaign. Use it as a context manager or call ``close()``.
    """

    def __init__(self, path: str | os.PathLike[str], *, create: bool = True) -> None:
        """Open (or create) the journal at ``path``; with ``create=False`` only resume: a
        journal that does not exist or is empty raises ``JournalMismatchError``."""
        self.path = os.fspath(path)
        if not create:
            try:
                size = os.stat(self.path).st_size
            except FileNotFoundError:
                raise JournalMismatchError(
                    f"{self.path}: no such journal: nothing to resume"
                ) from None
            if size == 0:
                raise JournalMismatchError(f"{self.path}: the journal is empty: nothing to resume")
        self._db = sqlite3.connect(self.path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def __repr__(self) -> str:
        return f"SqliteJournal({self.path!r})"

    def __enter__(self) -> SqliteJournal:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the database file."""
        self._db.close()

    def open_run(self, fingerprint: str, run_id: str) -> str:
        """Start the run ``run_id`` of campaign ``fingerprint``, or resume the recorded run of
        the same campaign; return the run id to use."""
        row = self._db.execute("SELECT fingerprint, run_id FROM run WHERE id = 1").fetchone()
        if row is None:
            self._db.execute(
                "INSERT INTO run (id, fingerprint, run_id) VALUES (1, ?, ?)", (fingerprint, run_id)
            )
            return run_id
        recorded_fingerprint, recorded_run_id = row
        if recorded_fingerprint != fingerprint:
            raise JournalMismatchError(
                f"{self.path} records another campaign (its channels, options, chunk size or "
                "endpoint differ): use a new journal for a new campaign"
            )
        return str(recorded_run_id)

    def entries(self) -> dict[int, ChunkRecord]:
        """Every chunk recorded so far, by chunk number."""
        rows = self._db.execute(
            "SELECT number, first_index, size, sent, state, job_id, reason, error_code, digest, "
            "own_outcomes FROM chunk ORDER BY number"
        )
        entries: dict[int, ChunkRecord] = {}
        for number, first, size, sent, state, job_id, reason, code, digest, own in rows:
            record = ChunkRecord(
                number=number,
                first_index=first,
                size=size,
                state=ChunkState(state),
                job_id=job_id,
                reason=reason,
                error_code=code,
                sent=sent,
                excluded=[_outcome_from_row(row) for row in orjson.loads(own)],
                digest=bytes(digest),
            )
            entries[number] = record
        return entries

    def save(self, record: ChunkRecord) -> None:
        """Record ``record``'s current state in one durable transaction."""
        own_outcomes = orjson.dumps([_outcome_to_row(item) for item in record.excluded])
        self._db.execute(
            "INSERT INTO chunk (number, first_index, size, sent, state, job_id, reason, "
            "error_code, digest, own_outcomes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (number) DO UPDATE SET sent = excluded.sent, state = excluded.state, "
            "job_id = excluded.job_id, reason = excluded.reason, "
            "error_code = excluded.error_code, digest = excluded.digest, "
            "own_outcomes = excluded.own_outcomes",
            (
                record.number,
                record.first_index,
                record.size,
                record.sent,
                record.state.value,
                record.job_id,
                record.reason,
                record.error_code,
                record.digest,
                own_outcomes,
            ),
        )


def _outcome_to_row(item: RecipientOutcome) -> list[object]:
    return [
        item.index,
        item.phone_number,
        item.extra_id,
        item.outcome.value,
        item.reason,
        item.error_code,
        item.sent,
    ]


def _outcome_from_row(row: list[object]) -> RecipientOutcome:
    index, phone, extra_id, outcome, reason, error_code, sent = row
    assert isinstance(index, int)
    assert extra_id is None or isinstance(extra_id, str)
    assert isinstance(outcome, str)
    assert isinstance(reason, str)
    assert error_code is None or isinstance(error_code, int)
    return RecipientOutcome(
        index, phone, extra_id, Outcome(outcome), reason, error_code, bool(sent)
    )
