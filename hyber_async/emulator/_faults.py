"""Faults the emulator injects into its API answers, set at start or at run time.

Counted faults ("the next N answers") are deterministic; ``error_rate`` draws from a generator
seeded by the emulator's seed, so a run with the same requests in the same order fails the same
way. Each API request gets at most one fault, in this order of precedence: ``rate_limit``
(429 before processing), ``errors`` / ``error_rate`` (a 5xx before processing, or after it when
``error_after_accept``), ``reset_before`` (the connection is reset before the request is read:
nothing processed), ``reset`` (processed, then the connection is reset), ``slow`` (processed,
then answered after ``slow_seconds``). ``latency`` delays every API answer.

The two resets look the same to a client (a connection lost after it wrote its request), which
is the point: it cannot know whether the request was processed.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Mapping
from typing import Any

import attrs

from .._errors import InvalidValueError

__all__ = ["Fault", "Faults"]


def _non_negative(_: object, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None and not value >= 0:
        raise InvalidValueError(f"{attribute.name} must be >= 0, got {value!r}")


def _count(_: object, attribute: attrs.Attribute[Any], value: int) -> None:
    if type(value) is not int or value < 0:
        raise InvalidValueError(f"{attribute.name} must be an integer >= 0, got {value!r}")


def _number(_: object, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None and (type(value) not in (int, float)):
        raise InvalidValueError(f"{attribute.name} must be a number, got {value!r}")


def _rate(_: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if type(value) not in (int, float) or not 0.0 <= value <= 1.0:
        raise InvalidValueError(f"{attribute.name} must be a probability in [0, 1], got {value!r}")


def _server_status(_: object, attribute: attrs.Attribute[Any], value: int) -> None:
    if type(value) is not int or not 500 <= value <= 599:
        raise InvalidValueError(f"{attribute.name} must be a 5xx status code, got {value!r}")


def _flag(_: object, attribute: attrs.Attribute[Any], value: bool) -> None:
    if not isinstance(value, bool):
        raise InvalidValueError(f"{attribute.name} must be true or false, got {value!r}")


_seconds = [_number, _non_negative]


@attrs.frozen
class Fault:
    """What one API request gets: decided once, when it arrives."""

    latency: float = 0.0
    status: int | None = None
    """Answer this status (429 or 5xx) instead of the real answer."""
    retry_after: float | None = None
    after_accept: bool = False
    """Process (and record) the request before answering ``status``."""
    reset: bool = False
    """Reset the connection after processing the request."""
    reset_before: bool = False
    """Reset the connection before reading the request (nothing processed)."""
    slow: float = 0.0


@attrs.define
class Faults:
    """The faults in force; change them as attributes, with ``update`` or ``clear``.

    Safe to change from another thread than the one serving (``serve_emulator`` runs the
    emulator in its own thread).
    """

    latency: float = attrs.field(default=0.0, validator=_seconds)
    """Seconds added before every API answer."""
    rate_limit: int = attrs.field(default=0, validator=_count)
    """The next N API answers are 429 with ``Retry-After: retry_after`` (nothing processed)."""
    retry_after: float = attrs.field(default=1.0, validator=_seconds)
    errors: int = attrs.field(default=0, validator=_count)
    """The next N API answers are ``error_status``."""
    error_rate: float = attrs.field(default=0.0, validator=_rate)
    """Besides ``errors``: each API answer is ``error_status`` with this probability (seeded)."""
    error_status: int = attrs.field(default=500, validator=_server_status)
    error_retry_after: float | None = attrs.field(default=None, validator=_seconds)
    """``Retry-After`` of the injected 5xx answers, if any."""
    error_after_accept: bool = attrs.field(default=False, validator=_flag)
    """Process and record the request before answering the 5xx (the "maybe sent" case)."""
    slow: int = attrs.field(default=0, validator=_count)
    """The next N API requests are processed, then answered after ``slow_seconds``."""
    slow_seconds: float = attrs.field(default=30.0, validator=_seconds)
    reset: int = attrs.field(default=0, validator=_count)
    """The next N API requests are processed, then their connection is reset before the answer
    (on a socket server; in-process the transport raises ``httpx.ReadError``)."""
    reset_before: int = attrs.field(default=0, validator=_count)
    """The next N API requests get their connection reset before their body is read: nothing
    is processed nor recorded but the request itself (in-process: ``httpx.ReadError``)."""
    _lock: threading.Lock = attrs.field(factory=threading.Lock, init=False, repr=False, eq=False)
    _rng: random.Random = attrs.field(factory=random.Random, init=False, repr=False, eq=False)

    def seed(self, seed: int) -> None:
        """Seed the generator of ``error_rate``."""
        self._rng.seed(f"faults/{seed}")

    def copy(self) -> Faults:
        """An independent copy of these settings."""
        return Faults(**self.as_dict())

    def as_dict(self) -> dict[str, Any]:
        """The settings as JSON-ready values."""
        with self._lock:
            return attrs.asdict(self, filter=lambda a, _: a.init)

    def update(self, changes: Mapping[str, Any]) -> None:
        """Set several faults at once; unknown names or invalid values change nothing."""
        known = {a.name for a in attrs.fields(Faults) if a.init}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise InvalidValueError(
                f"unknown fault setting {unknown[0]!r} (known: {sorted(known)})"
            )
        merged = {**self.as_dict(), **changes}
        checked = Faults(**merged)
        with self._lock:
            for name in changes:
                object.__setattr__(self, name, getattr(checked, name))

    def clear(self) -> None:
        """Remove every fault."""
        self.update(Faults().as_dict())

    def take(self) -> Fault:
        """Decide the fault of one arriving API request and consume the counters it uses."""
        with self._lock:
            latency = self.latency
            if self.rate_limit:
                self.rate_limit -= 1
                return Fault(latency, status=429, retry_after=self.retry_after)
            failing = bool(self.errors)
            if failing:
                self.errors -= 1
            elif self.error_rate:
                failing = self._rng.random() < self.error_rate
            if failing:
                return Fault(
                    latency,
                    status=self.error_status,
                    retry_after=self.error_retry_after,
                    after_accept=self.error_after_accept,
                )
            if self.reset_before:
                self.reset_before -= 1
                return Fault(latency, reset_before=True)
            if self.reset:
                self.reset -= 1
                return Fault(latency, reset=True)
            if self.slow:
                self.slow -= 1
                return Fault(latency, slow=self.slow_seconds)
            return Fault(latency)
