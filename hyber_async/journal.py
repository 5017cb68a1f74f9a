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

A journal is held by one run at a time: ``SqliteJournal`` takes an exclusive lock when it opens
and a second opener fails at once with ``JournalLockedError``, so that two runs (an overlapping
cron job, a restarted supervisor) never both send the campaign. When the journal cannot be
written (disk full), the send stops and raises ``JournalWriteError`` with its report settled.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sqlite3
import sys
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, BinaryIO, Protocol

import orjson

from ._errors import (
    JournalError,
    JournalLockedError,
    JournalMismatchError,
    JournalNotFoundError,
    JournalOpenError,
    JournalWriteError,
)
from ._send_report import ChunkRecord, ChunkState, Outcome, RecipientOutcome

if TYPE_CHECKING:
    pass

__all__ = [
    "Journal",
    "JournalError",
    "JournalLockedError",
    "JournalMismatchError",
    "JournalNotFoundError",
    "JournalOpenError",
    "JournalWriteError",
    "SqliteJournal",
]


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
        """Record ``record``'s current state (and its ``digest``) durably before returning;
        raise if it cannot (the send then stops with ``JournalWriteError``)."""


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

    One file holds one campaign, used by one run at a time: opening takes an exclusive lock on
    the sidecar file ``{path}.lock`` (``flock``; ``msvcrt.locking`` on Windows), which holds the
    holder's pid and host and is released by ``close()`` or by the end of the process, however
    it ends. A second opener meanwhile raises ``JournalLockedError``. Use it as a context
    manager or call ``close()``.
    """

    def __init__(self, path: str | os.PathLike[str], *, create: bool = True) -> None:
        """Open the journal at ``path``, creating it unless ``create`` is false.

        ``create=False`` resumes only: a journal that does not exist, is empty or records no
        run raises ``JournalNotFoundError`` (a campaign that would silently start again).
        """
        self.path = os.fspath(path)
        if not create:
            _check_file(self.path)
        with _opening(self.path):
            self._db = sqlite3.connect(self.path, isolation_level=None)
            try:
                if not create:
                    self._check_run()
                self._lock = _lock(self.path)
            except BaseException:
                self._db.close()
                raise
            try:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=FULL")
                self._db.executescript(_SCHEMA)
            except BaseException:
                self.close()
                raise

    def __repr__(self) -> str:
        return f"SqliteJournal({self.path!r})"

    def __enter__(self) -> SqliteJournal:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the database file and release the journal for the next run."""
        self._db.close()
        self._lock.close()

    def _check_run(self) -> None:
        """Raise ``JournalNotFoundError`` unless the file is a journal with a recorded run."""
        try:
            has_run = (
                self._db.execute(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'run'"
                ).fetchone()
                and self._db.execute("SELECT 1 FROM run").fetchone()
            )
        except sqlite3.DatabaseError as error:
            raise JournalNotFoundError(
                f"{self.path}: not a journal ({error}): nothing to resume"
            ) from error
        if not has_run:
            raise JournalNotFoundError(
                f"{self.path}: the journal records no run: nothing to resume"
            )

    def open_run(self, fingerprint: str, run_id: str) -> str:
        """Start the run ``run_id`` of campaign ``fingerprint``, or resume the recorded run of
        the same campaign; return the run id to use."""
        with _opening(self.path):
            row = self._db.execute("SELECT fingerprint, run_id FROM run WHERE id = 1").fetchone()
            if row is None:
                self._db.execute(
                    "INSERT INTO run (id, fingerprint, run_id) VALUES (1, ?, ?)",
                    (fingerprint, run_id),
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


def _check_file(path: str) -> None:
    """Raise ``JournalNotFoundError`` unless ``path`` is a file with something in it."""
    try:
        size = os.path.getsize(path)
    except OSError:
        raise JournalNotFoundError(f"{path}: no such journal: nothing to resume") from None
    if size == 0:
        raise JournalNotFoundError(f"{path}: the journal is empty: nothing to resume")


@contextlib.contextmanager
def _opening(path: str) -> Iterator[None]:
    """Raise what the file system or SQLite refuses while a journal is opened or its run
    started as ``JournalOpenError`` naming ``path`` (SQLite's own message names no file); the
    journal's own refusals (locked, nothing to resume) pass through as they are."""
    try:
        yield
    except (sqlite3.Error, OSError) as error:
        raise JournalOpenError(
            f"{path}: cannot be opened or created as a journal ({error}): nothing was sent"
        ) from error


def _lock(path: str) -> BinaryIO:
    """Take the exclusive lock of the journal at ``path`` and write who holds it; return the
    lock file, whose closing (or the end of the process) releases the lock.

    ``flock`` (one holder per open file, so also within one process), not ``fcntl`` record
    locks, which a process would share with itself. The lock file stays when released:
    removing it would let two openers lock two different files.
    """
    lock_path = path + ".lock"
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_BINARY", 0)
    lock = os.fdopen(os.open(lock_path, flags, 0o644), "r+b", buffering=0)
    try:
        _try_lock(lock.fileno())
    except OSError:
        lock.close()
        raise JournalLockedError(path, _holder(lock_path)) from None
    lock.truncate(0)
    lock.write(orjson.dumps({"pid": os.getpid(), "host": socket.gethostname()}) + b"\n")
    return lock


if sys.platform == "win32":
    import msvcrt

    _WINDOWS_LOCK_OFFSET = 1 << 20
    """Windows locks are mandatory: lock a byte past the holder's line, which stays readable."""

    def _try_lock(fd: int) -> None:
        os.lseek(fd, _WINDOWS_LOCK_OFFSET, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        os.lseek(fd, 0, os.SEEK_SET)

else:
    import fcntl

    def _try_lock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def _holder(lock_path: str) -> str | None:
    """Who holds the lock, as written in the lock file (``None`` when it cannot be read)."""
    try:
        with open(lock_path, "rb") as file:
            holder = orjson.loads(file.read(4096))
        return f"pid {int(holder['pid'])} on {holder['host']!s}"
    except (OSError, ValueError, TypeError, KeyError):
        return None


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
