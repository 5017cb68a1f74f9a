"""The emulator's clock: emulated epoch time running ``time_scale`` times faster than real time."""

from __future__ import annotations

import threading
import time
from typing import Final

from .._errors import InvalidValueError

__all__ = ["LATEST", "Clock"]

LATEST: Final = 253_402_300_799
"""The latest emulated time, in epoch seconds (9999-12-31 23:59:59 UTC): beyond it, times in
milliseconds and dates stop being representable."""


class Clock:
    """Emulated time in epoch seconds.

    It starts at the real wall-clock time and then runs ``time_scale`` emulated seconds per
    real second (0 freezes it). ``advance`` jumps it forward, e.g. past every ``ttl`` of a
    test, without waiting.
    """

    def __init__(self, time_scale: float = 1.0) -> None:
        """A clock starting now, running ``time_scale`` times faster than real time."""
        self.time_scale = time_scale
        self._lock = threading.Lock()
        self._origin_real = time.monotonic()
        self._origin = time.time()

    def __repr__(self) -> str:
        return f"Clock(time_scale={self.time_scale!r}, now={self.now():.3f})"

    def now(self) -> float:
        """The emulated time, in epoch seconds."""
        return self._origin + (time.monotonic() - self._origin_real) * self.time_scale

    def now_ms(self) -> int:
        """The emulated time, in epoch milliseconds (the protocol's ``time`` fields)."""
        return int(self.now() * 1000)

    def advance(self, seconds: float) -> None:
        """Move the emulated time ``seconds`` forward; a ``ValueError`` for a negative or
        non-finite step, or one past ``LATEST``, which leaves the clock as it was."""
        with self._lock:
            # also refuses NaN, the infinities and integers beyond any float
            if not 0 <= seconds <= LATEST - self.now():
                raise InvalidValueError(
                    f"the clock moves only forward and never past 9999-12-31 ({LATEST}): "
                    f"cannot advance it by {seconds!r} seconds"
                )
            self._origin += seconds

    def real_delay(self, emulated_seconds: float) -> float | None:
        """Real seconds until ``emulated_seconds`` have passed; ``None`` on a frozen clock."""
        if self.time_scale == 0:
            return None
        return max(0.0, emulated_seconds) / self.time_scale
