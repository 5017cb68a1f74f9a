"""The ledger: what the emulator accepted, the proof of "nothing lost, nothing sent twice"."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

from ._state import StringColumn

__all__ = ["Ledger"]


class Ledger:
    """Counts of everything the emulator received and accepted.

    - ``requests``: API requests received (every answer, faults and errors included);
    - ``accepted_requests``: requests that created messages;
    - ``accepted``: messages accepted (async and sync endpoints);
    - ``rejected``: items a sync endpoint answered ``accepted: false``;
    - ``count(extra_id)``, ``counts()``, ``duplicates()``: accepted messages per ``extra_id``
      (messages without one are in ``accepted`` only).

    The per-``extra_id`` index is built on the first query and then kept up to date, so
    accepting messages costs no per-message memory until someone asks.
    """

    def __init__(self) -> None:
        """An empty ledger."""
        self._lock = threading.Lock()
        self.requests = 0
        self.accepted_requests = 0
        self.accepted = 0
        self.rejected = 0
        self._columns: list[StringColumn] = []
        self._indexed = 0
        self._counts: Counter[str] = Counter()

    def __repr__(self) -> str:
        return (
            f"Ledger(requests={self.requests}, accepted_requests={self.accepted_requests}, "
            f"accepted={self.accepted}, rejected={self.rejected})"
        )

    def record_request(self) -> None:
        """Count one API request."""
        with self._lock:
            self.requests += 1

    def record(self, extra_ids: StringColumn, rejected: int = 0) -> None:
        """Record the messages of one accepted request (``""`` standing for no ``extra_id``)."""
        with self._lock:
            self.accepted_requests += 1
            self.accepted += len(extra_ids)
            self.rejected += rejected
            self._columns.append(extra_ids)

    def record_rejected(self, rejected: int) -> None:
        """Record a sync request whose every item was rejected."""
        with self._lock:
            self.rejected += rejected

    def _index(self) -> Counter[str]:
        with self._lock:
            while self._indexed < len(self._columns):
                self._counts.update(self._columns[self._indexed].values())
                self._indexed += 1
            self._counts.pop("", None)
            return self._counts

    def count(self, extra_id: str) -> int:
        """How many accepted messages carried ``extra_id``."""
        return self._index().get(extra_id, 0)

    def counts(self) -> dict[str, int]:
        """Accepted messages per ``extra_id``."""
        return dict(self._index())

    def duplicates(self) -> dict[str, int]:
        """The ``extra_id`` values accepted more than once, with their counts."""
        return {e: n for e, n in self._index().items() if n > 1}

    def snapshot(self, *, counts: bool = False) -> dict[str, Any]:
        """The ledger as JSON-ready values (``counts`` adds the per-``extra_id`` counts)."""
        report: dict[str, Any] = {
            "requests": self.requests,
            "accepted_requests": self.accepted_requests,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "duplicates": self.duplicates(),
        }
        if counts:
            report["counts"] = self.counts()
        return report
