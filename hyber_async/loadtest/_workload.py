"""What a load test sends and when: the workload and its schedule of intended starts."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any, Final, Literal

import attrs

from .._errors import InvalidValueError
from .._models import Campaign, Channel, ChannelOptions, SmsOptions
from .._validation import MAX_ITEMS, PHONE_MAX, PHONE_MIN

__all__ = ["DEFAULT_NUMBERS", "Workload"]

DEFAULT_NUMBERS: Final = (380_990_000_000, 380_999_999_999)
"""The synthetic recipients' phone numbers (inclusive): a made-up test range, cycled."""
_TEXT: Final = "hyber-async load test"


def _positive(_: object, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None and not (value > 0 and math.isfinite(value)):
        raise InvalidValueError(f"{attribute.name} must be a finite number > 0, got {value!r}")


@attrs.frozen
class Workload:
    """A load test's shape.

    Exactly one of:

    - ``rate``: open loop, a constant arrival rate of ``rate`` recipients per second;
    - ``ramp``: open loop, the rate rising (or falling) linearly from ``ramp[0]`` to ``ramp[1]``
      recipients per second over ``duration``;
    - ``max_in_flight``: closed loop, as fast as the server answers, with that many requests
      in flight.

    In the open loop each request (``chunk_size`` recipients) has an intended start from the
    schedule; at most ``connections`` requests are in flight, a late one starts as soon as one
    finishes, and its latency counts from its intended start (coordinated omission). ``kind``
    is ``"broadcast"`` or ``"batch"``; ``sync`` uses the ``/sync`` endpoints. Recipients are
    synthetic numbers from ``numbers`` (inclusive), or the wire items of ``recipients`` (see
    ``hyber-async loadtest --recipients FILE``), cycled, starting at ``offset`` into them.
    ``phase`` (0 to 1) shifts the schedule by that share of one request's interval, so that
    workers sharing a rate interleave.
    """

    duration: float = attrs.field(validator=_positive)
    rate: float | None = attrs.field(default=None, validator=_positive)
    ramp: tuple[float, float] | None = None
    max_in_flight: int | None = attrs.field(default=None, validator=_positive)
    connections: int = attrs.field(default=64, validator=_positive)
    chunk_size: int = 100
    kind: Literal["broadcast", "batch"] = "broadcast"
    sync: bool = False
    numbers: tuple[int, int] = DEFAULT_NUMBERS
    offset: int = 0
    phase: float = 0.0
    recipients: tuple[dict[str, Any], ...] = attrs.field(default=(), repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        given = [n for n, v in (("rate", self.rate), ("ramp", self.ramp)) if v is not None]
        if self.max_in_flight is not None:
            given.append("max_in_flight")
        if len(given) != 1:
            raise InvalidValueError("give exactly one of rate, ramp and max_in_flight (--max)")
        if self.ramp is not None:
            start, end = self.ramp
            if not (start >= 0 and end >= 0 and start + end > 0 and math.isfinite(start + end)):
                raise InvalidValueError(
                    f"ramp must go between rates >= 0, not both 0, got {self.ramp}"
                )
        if type(self.chunk_size) is not int or not 1 <= self.chunk_size <= MAX_ITEMS:
            raise InvalidValueError(f"chunk_size must be 1 to {MAX_ITEMS}, got {self.chunk_size!r}")
        if self.kind not in ("broadcast", "batch"):
            raise InvalidValueError(f"kind must be broadcast or batch, got {self.kind!r}")
        low, high = self.numbers
        if not PHONE_MIN <= low <= high <= PHONE_MAX:
            raise InvalidValueError(
                f"numbers must be a range of 7 to 15 digit numbers: {self.numbers}"
            )
        if not 0 <= self.phase < 1:
            raise InvalidValueError(f"phase must be in [0, 1), got {self.phase!r}")

    @property
    def open_loop(self) -> bool:
        """Whether requests follow a schedule (``rate`` or ``ramp``)."""
        return self.max_in_flight is None

    @property
    def target_rate(self) -> float | None:
        """The mean target in recipients per second (``None`` in the closed loop)."""
        if self.ramp is not None:
            return (self.ramp[0] + self.ramp[1]) / 2
        return self.rate

    @property
    def endpoint(self) -> str:
        """The path the requests go to: ``broadcast``, ``batch/sync``, ..."""
        return self.kind + ("/sync" if self.sync else "")

    def rate_at(self, t: float) -> float | None:
        """The target rate ``t`` seconds into the run (``None`` in the closed loop)."""
        if self.ramp is not None:
            start, end = self.ramp
            return start + (end - start) * min(max(t / self.duration, 0.0), 1.0)
        return self.rate

    def schedule(self) -> Iterator[float]:
        """The intended start of each request, in seconds from the run's start, below
        ``duration``: request ``k`` starts when the target has asked for ``(k + phase) *
        chunk_size`` recipients (for a ramp, solving ``a t + (b - a) t^2 / (2 D) = n``)."""
        k = 0
        while True:
            wanted = (k + self.phase) * self.chunk_size
            if self.ramp is None:
                assert self.rate is not None
                t = wanted / self.rate
            else:
                start, end = self.ramp
                slope = (end - start) / self.duration
                if slope == 0:
                    t = wanted / start
                else:
                    root = start * start + 2 * slope * wanted
                    if root < 0:
                        return
                    t = (math.sqrt(root) - start) / slope
            if t >= self.duration:
                return
            yield t
            k += 1

    def campaign(self) -> Campaign:
        """The campaign every request carries: SMS, with the text in the options for a
        broadcast and in each item for a batch."""
        text = _TEXT if self.kind == "broadcast" else None
        sms = SmsOptions(alpha_name="LOADTEST", ttl=300, text=text)
        return Campaign(channels=(Channel.SMS,), channel_options=ChannelOptions(sms=sms))

    def items(self, first: int) -> list[dict[str, Any]]:
        """The wire items of the request that holds recipients ``first`` on."""
        start = self.offset + first
        if self.recipients:
            pool = self.recipients
            return [pool[(start + i) % len(pool)] for i in range(self.chunk_size)]
        low, high = self.numbers
        span = high - low + 1
        if self.kind == "broadcast":
            return [{"phone_number": low + (start + i) % span} for i in range(self.chunk_size)]
        return [
            {"phone_number": low + (start + i) % span, "text": _TEXT}
            for i in range(self.chunk_size)
        ]
