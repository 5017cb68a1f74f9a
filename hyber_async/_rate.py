"""Adaptive rate control: one controller per client paces every send of all its campaigns.

An account has a quota in messages per second, unknown to the client. The controller learns
it from the server's refusals, as the AWS SDKs' adaptive retry mode does (a client-side token
bucket whose rate backs off on throttling and probes upward, CUBIC-style):

- **Pacing.** Every send request waits its turn in one FIFO queue, then charges its message
  count to a bucket filled at ``limit`` messages per second (the next request starts once the
  previous one's messages are paid for). One queue for all campaigns of the client is what
  makes them fair: each gets turns in proportion to the requests it has waiting.
- **Back-off.** A refusal (429, or 503 with ``Retry-After``) of a request sent after the last
  cut cuts the limit to ``beta`` times the lower of the limit and the rate the server accepted
  over the last second; refusals of requests already sent before a cut do not cut again.
  Every refusal holds the whole queue for the server's ``Retry-After`` at least (the floor),
  so the refused request and all the others wait once, in the queue, instead of each
  knocking again on its own.
- **Probing.** While answers are clean the limit grows along the cubic
  ``w_max * (1 + c * (t - k) ** 3)`` of the time ``t`` since the last cut: back to the rate
  at the cut (``w_max``) in ``recovery`` seconds, flat around it, then faster and faster above
  it, so a raised quota is found within seconds.
- **Slow start.** Before its first cut an unseeded controller does not pace (the quota may
  be higher than the client can send) but limits the messages in flight, as TCP's slow start
  with HyStart's delay signal does: one request until the first answer, then each answer that
  comes back within ``1.5 x`` the fastest round-trip of the last second widens the ``window``
  by its messages (it doubles per clean round-trip) and a slower one does not: the server is
  queueing, more in flight would only wait there. (A queue that lasts becomes the fastest of
  the last second, and growth resumes.) A quota tolerates a burst before it refuses, so
  whatever is in flight when the first refusal comes is refused too: the window keeps that
  wave to a few requests instead of every worker of every campaign. The first cut ends the
  slow start.

Seeded with a known quota, the controller has no slow start: it paces from the first request,
with that quota as ``w_max``. A refused request stays refused: the transport resends it by its
retry rule (a refusal is provably not processed), after its wait in the queue.
"""

from __future__ import annotations

import collections
import math

import anyio
import attrs

from ._errors import InvalidValueError

__all__ = ["RateController", "Throttling"]

_WINDOW = 1.0
"""Seconds over which the accepted rate is measured."""
_QUEUED = 1.5
"""In slow start, an answer slower than this many times the fastest round-trip of the last
``_WINDOW`` shows a queue at the server: it does not widen the window."""


@attrs.define
class Throttling:
    """What the rate controller did to one campaign's requests."""

    waited: float = 0.0
    """Seconds its requests waited in the controller's queue, in all (they wait in parallel)."""
    throttled: int = 0
    """Refusals its requests met: 429s and 503s with ``Retry-After``."""
    rate_limit: float | None = None
    """The controller's limit at its last request, in messages per second (``None``: not
    pacing, or no controller)."""


class RateController:
    """Paces the send requests of one client to a limit in messages per second it learns.

    ``initial``: a known quota to start at (``None``: slow start, limiting the messages in
    flight, until the first cut).
    ``beta``: the share of the rate kept on a cut. ``recovery``: seconds to climb back to the
    rate of the last cut. ``minimum``: the limit never goes below it.
    """

    def __init__(
        self,
        initial: float | None = None,
        *,
        beta: float = 0.8,
        recovery: float = 2.0,
        minimum: float = 1.0,
    ) -> None:
        if initial is not None and not (math.isfinite(initial) and initial > 0):
            raise InvalidValueError(f"initial must be a positive finite rate, got {initial!r}")
        self.seed = initial
        """The known quota it was seeded with, if any."""
        self.beta = beta
        self.recovery = recovery
        self.minimum = minimum
        self._cubic = (1.0 - beta) / recovery**3
        self.w_max: float | None = initial
        """The limit at the last cut (or the seed): where the cubic flattens."""
        self._cut_at = -math.inf
        self._cut_from = beta
        """``limit / w_max`` right after the last cut."""
        self._next = -math.inf
        self._accepted: collections.deque[tuple[float, int]] = collections.deque()
        self._lock: anyio.Lock | None = None
        self.window: float | None = None if initial is not None else 0.0
        """In slow start, the messages allowed in flight (one request may always go; ``None``:
        no slow start, seeded or after the first cut)."""
        self.in_flight = 0
        """Messages sent (their turn taken with ``acquire``) and not yet ``done``."""
        self._round_trips: collections.deque[tuple[float, float]] = collections.deque()
        self._freed: anyio.Event | None = None
        self.throttled = 0
        """Refusals seen, in all."""
        self.cuts = 0
        """Times the limit was cut."""

    def __repr__(self) -> str:
        limit = self.limit(anyio.current_time()) if self.w_max is not None else None
        return f"RateController(limit={limit!r}, throttled={self.throttled})"

    def limit(self, now: float) -> float | None:
        """The limit at ``now`` in messages per second; ``None`` while not pacing."""
        if self.w_max is None:
            return None
        if self._cut_at == -math.inf:  # seeded, not started: at the quota
            return self.w_max
        t = now - self._cut_at
        if t >= self.recovery:  # past the plateau: probe upward
            growth = 1.0 + self._cubic * (t - self.recovery) ** 3
        else:  # climbing back from the cut to w_max (concave)
            start = self._cut_from
            growth = 1.0 - (1.0 - start) * ((self.recovery - t) / self.recovery) ** 3
        return max(self.minimum, self.w_max * growth)

    def reserve(self, messages: int, now: float) -> float:
        """Take the next turn for a request of ``messages``: the seconds to wait before it.

        The caller must wait that long (``acquire`` does, in FIFO order).
        """
        start = max(now, self._next)
        if self._cut_at == -math.inf and self.w_max is not None:
            self._cut_at = start - self.recovery  # seeded: start on the plateau at the quota
        limit = self.limit(start)
        self._next = start + (messages / limit if limit is not None else 0.0)
        return start - now

    def accepted(self, messages: int, now: float, sent_at: float | None = None) -> None:
        """Record that the server accepted a request of ``messages`` at ``now``.

        In slow start, ``sent_at`` (when it was sent) tells whether it came back fast enough
        to widen the window by its messages.
        """
        self._accepted.append((now, messages))
        self._prune(now)
        if self.window is not None and sent_at is not None:
            took = now - sent_at
            # the fastest round-trip of the last window: a sliding minimum (a deque of
            # increasing round-trips), so a queue that lasts raises it and growth resumes
            while self._round_trips and self._round_trips[-1][1] >= took:
                self._round_trips.pop()
            self._round_trips.append((now, took))
            while self._round_trips[0][0] < now - _WINDOW:
                self._round_trips.popleft()
            if took <= _QUEUED * self._round_trips[0][1]:
                self.window += messages

    def done(self, messages: int) -> None:
        """A request of ``messages`` whose turn ``acquire`` gave has ended, however it ended."""
        self.in_flight -= messages
        self._wake()

    def refused(self, sent_at: float, floor: float, now: float) -> None:
        """Record a refusal of a request sent at ``sent_at``: hold the queue ``floor`` seconds
        (the server's ``Retry-After``, or the retry back-off) and cut the limit once per cut.
        """
        self.throttled += 1
        self._next = max(self._next, now + floor)
        if sent_at < self._cut_at:
            return  # sent before the last cut: that cut already answered it
        self._prune(now)
        measured = sum(n for _, n in self._accepted) / _WINDOW
        current = self.limit(now)
        if current is None:
            if measured <= 0:
                return  # nothing to learn from yet: only the floor
            rate = measured
        else:
            rate = min(current, measured) if measured > 0 else current
        self.w_max = max(self.minimum, rate)
        self.window = None  # the first cut ends the slow start: the limit paces from now on
        self._wake()
        self._cut_from = self.beta
        self._cut_at = now
        self.cuts += 1

    async def acquire(self, messages: int) -> float:
        """Wait for the turn of a request of ``messages`` (FIFO), and in slow start for room
        in the window; the seconds waited. The caller calls ``done`` when the request ends.
        """
        if self._lock is None:
            self._lock = anyio.Lock()
        began = anyio.current_time()
        async with self._lock:
            while True:
                # a refusal may hold the queue longer while this request waits: sleep until
                # the turn as it stands, then look again (a deadline that moves, not an event)
                if (wait := self._next - anyio.current_time()) > 0:
                    await anyio.sleep(wait)
                elif self._window_full(messages):
                    self._freed = anyio.Event()
                    await self._freed.wait()
                else:
                    break
            self.reserve(messages, anyio.current_time())
            self.in_flight += messages
        return anyio.current_time() - began

    def _window_full(self, messages: int) -> bool:
        """Whether slow start holds a request of ``messages``: one request may always go."""
        return (
            self.window is not None
            and self.in_flight > 0
            and self.in_flight + messages > self.window
        )

    def _wake(self) -> None:
        """Let the request waiting for room in the window look again."""
        if self._freed is not None:
            self._freed.set()
            self._freed = None

    def _prune(self, now: float) -> None:
        while self._accepted and self._accepted[0][0] < now - _WINDOW:
            self._accepted.popleft()
