"""The emulator's account quota: messages per second and requests per second, as GCRA.

Each account (``client_id``) has two GCRA meters (the generic cell rate algorithm, a token
bucket kept as one "theoretical arrival time"): one over messages at ``rate_limit`` per second,
one over send requests at ``request_rate_limit`` per second. Both tolerate a burst of
``burst`` seconds' worth. A send request of ``n`` messages arriving at ``now``:

- is admitted when neither meter is more than ``burst`` seconds in debt
  (``max(tat, now) - now <= burst``); then each meter's ``tat`` moves to
  ``max(tat, now) + cost / limit`` (``cost``: ``n`` messages, or 1 request);
- otherwise is refused, with nothing processed and nothing charged, by a 429 whose
  ``Retry-After`` is the time until both meters are back within ``burst`` (rounded up to the
  millisecond).

The cost is charged in full on admission, so the long-run rate never exceeds the limit, and a
request is admitted whatever its size once the debt of earlier ones is paid down: a
50,000-message request under a quota of 1,000 messages/s is admitted (when the meter is within
its burst) and the following ones wait 50 s, instead of being refused for ever because it
never fits in the bucket.

Only the sending endpoints (``batch``, ``broadcast``, their ``sync`` forms, and the single
message) are metered; status requests and delivery-report lookups are not. A limit of ``None``
is no limit. The clock is real time (``time.monotonic``), not the emulated clock.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from .._errors import InvalidValueError

__all__ = ["Quota", "QuotaSettings"]


def _limit(_: object, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is None:
        return
    if type(value) not in (int, float) or not (math.isfinite(value) and value > 0):
        raise InvalidValueError(f"{attribute.name} must be a number > 0 or null, got {value!r}")


def _burst(_: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if type(value) not in (int, float) or not (math.isfinite(value) and value >= 0):
        raise InvalidValueError(f"{attribute.name} must be a number of seconds >= 0, got {value!r}")


@attrs.frozen
class QuotaSettings:
    """The limits of every account: ``None`` is no limit; ``burst`` in seconds' worth."""

    rate_limit: float | None = attrs.field(default=None, validator=_limit)
    """Messages per second per account."""
    request_rate_limit: float | None = attrs.field(default=None, validator=_limit)
    """Send requests per second per account."""
    burst: float = attrs.field(default=1.0, validator=_burst)
    """Seconds' worth of either limit a client may be ahead by before it is refused."""


@attrs.define
class _Meters:
    messages: float = 0.0
    """The theoretical arrival time of the message meter (monotonic seconds)."""
    requests: float = 0.0


class Quota:
    """The quota of every account, changeable at run time (thread-safe), with its figures."""

    def __init__(
        self, settings: QuotaSettings, clock: Callable[[], float] = time.monotonic
    ) -> None:
        """A quota with ``settings``; ``clock`` gives monotonic seconds (tests pass a fake)."""
        self.settings = settings
        self._clock = clock
        self._lock = threading.Lock()
        self._meters: dict[str, _Meters] = {}
        self.admitted = 0
        """Send requests admitted."""
        self.admitted_messages = 0
        self.refused = 0
        """Send requests refused (429)."""
        self.refused_messages = 0

    def __repr__(self) -> str:
        return f"Quota({self.settings!r}, admitted={self.admitted}, refused={self.refused})"

    def update(self, changes: Mapping[str, Any]) -> None:
        """Change some settings; unknown names or invalid values change nothing (``ValueError``).

        The meters keep their debt: a lower limit applies from the next request on.
        """
        known = {a.name for a in attrs.fields(QuotaSettings)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise InvalidValueError(
                f"unknown quota setting {unknown[0]!r} (known: {sorted(known)})"
            )
        with self._lock:
            self.settings = attrs.evolve(self.settings, **changes)

    def as_dict(self) -> dict[str, Any]:
        """The settings and the counts, as JSON-ready values."""
        with self._lock:
            return {
                **attrs.asdict(self.settings),
                "admitted": self.admitted,
                "admitted_messages": self.admitted_messages,
                "refused": self.refused,
                "refused_messages": self.refused_messages,
            }

    def admit(self, client_id: str, messages: int) -> float | None:
        """Charge one send request of ``messages`` to ``client_id``'s meters.

        ``None`` when it is admitted (and charged); else the seconds to wait before it would
        be (nothing charged).
        """
        with self._lock:
            settings = self.settings
            if settings.rate_limit is None and settings.request_rate_limit is None:
                self.admitted += 1
                self.admitted_messages += messages
                return None
            now = self._clock()
            meters = self._meters.setdefault(client_id, _Meters(now, now))
            wait = 0.0
            if settings.rate_limit is not None:
                wait = max(wait, meters.messages - now - settings.burst)
            if settings.request_rate_limit is not None:
                wait = max(wait, meters.requests - now - settings.burst)
            if wait > 0:
                self.refused += 1
                self.refused_messages += messages
                return math.ceil(wait * 1000) / 1000
            if settings.rate_limit is not None:
                meters.messages = max(meters.messages, now) + messages / settings.rate_limit
            if settings.request_rate_limit is not None:
                meters.requests = max(meters.requests, now) + 1 / settings.request_rate_limit
            self.admitted += 1
            self.admitted_messages += messages
            return None
