"""What makes the emulator worth load-testing: a latency distribution, a capacity, a stall, and
the counts of its answers.

- ``Latency``: the time every API answer takes, drawn per request from a fixed, uniform or
  lognormal distribution (seeded by the emulator's seed).
- ``capacity`` (in ``EmulatorConfig``): API requests in flight beyond it are answered at once
  with 503 and ``Retry-After: capacity_retry_after`` (nothing processed), as an overloaded
  server sheds load.
- A stall (``Emulator.stall(seconds)``, ``POST /_emulator/stall``): every API answer, of the
  requests in flight and of those arriving meanwhile, is held until the stall ends, as a
  server pausing (a GC pause, a failover) holds them.
- ``AnswerStats``: API answers counted by HTTP status, requests in flight and their peak, and
  the process's CPU time (so a load test can tell when the emulator ran out of CPU).
"""

from __future__ import annotations

import math
import random
import re
import time
from typing import Any, Final, Literal

import attrs

from .._errors import InvalidValueError

__all__ = ["AnswerStats", "Latency", "parse_latency"]

_DURATION: Final = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*(us|ms|s)?\s*$")
_UNITS: Final = {"us": 1e-6, "ms": 1e-3, "s": 1.0, None: 1e-3}


def _seconds(_: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if type(value) not in (int, float) or not (value >= 0 and math.isfinite(value)):
        raise InvalidValueError(f"{attribute.name} must be a number of seconds >= 0, got {value!r}")


@attrs.frozen
class Latency:
    """How long the emulator takes to answer an API request, in seconds.

    - ``fixed``: always ``a``;
    - ``uniform``: uniformly between ``a`` and ``b``;
    - ``lognormal``: median ``a``, 99th percentile ``b`` (``b >= a``), a long right tail as
      real servers have.
    """

    kind: Literal["fixed", "uniform", "lognormal"] = "fixed"
    a: float = attrs.field(default=0.0, validator=_seconds)
    b: float = attrs.field(default=0.0, validator=_seconds)

    def __attrs_post_init__(self) -> None:
        if self.kind not in ("fixed", "uniform", "lognormal"):
            raise InvalidValueError(
                f"latency kind must be fixed, uniform or lognormal: {self.kind!r}"
            )
        if self.kind != "fixed" and self.b < self.a:
            raise InvalidValueError(
                f"{self.kind} latency needs a <= b, got {self.a!r} > {self.b!r}"
            )
        if self.kind == "lognormal" and self.a <= 0:
            raise InvalidValueError("lognormal latency needs a median > 0")

    def draw(self, rng: random.Random) -> float:
        """One latency in seconds."""
        if self.kind == "fixed":
            return self.a
        if self.kind == "uniform":
            return rng.uniform(self.a, self.b)
        sigma = math.log(self.b / self.a) / 2.3263478740408408  # z of the 99th percentile
        return rng.lognormvariate(math.log(self.a), sigma)


def _duration(text: str) -> float:
    match = _DURATION.match(text)
    if match is None:
        raise InvalidValueError(f"not a duration: {text!r} (e.g. 50ms, 0.2s, 500us)")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_latency(text: str) -> Latency:
    """A ``Latency`` from ``fixed:50ms``, ``uniform:10ms:90ms`` or ``lognormal:20ms:200ms``
    (median, p99); a plain number is milliseconds. Raises ``ValueError`` naming what is wrong."""
    kind, _, rest = text.partition(":")
    values = [_duration(part) for part in rest.split(":")] if rest else []
    expected = 1 if kind == "fixed" else 2
    if kind not in ("fixed", "uniform", "lognormal") or len(values) != expected:
        raise InvalidValueError(
            f"latency {text!r}: use fixed:MS, uniform:MIN:MAX or lognormal:MEDIAN:P99"
        )
    return Latency(kind, values[0], values[-1])  # type: ignore[arg-type]


@attrs.define
class AnswerStats:
    """API answers counted by HTTP status, and the requests in flight."""

    answers: dict[int, int] = attrs.field(factory=dict)
    in_flight: int = 0
    max_in_flight: int = 0
    shed: int = 0
    """Requests answered 503 because ``capacity`` requests were in flight."""

    def as_dict(self) -> dict[str, Any]:
        """The JSON view: ``answers`` by status (string keys), in-flight figures, CPU time."""
        return {
            "answers": {str(k): v for k, v in sorted(self.answers.items())},
            "requests": sum(self.answers.values()),
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "shed": self.shed,
            "cpu_s": time.process_time(),
            "monotonic_s": time.monotonic(),
        }
