"""The cascade: which channels a message tries, in order, and how each attempt ends.

A message tries the channels of its request in order. On each channel it is delivered (the
cascade stops), fails, or expires when the channel's ``ttl`` runs out; failing and expiring
pass it to the next channel. The whole story of a message is one *path*, e.g.
``(viber expired, sms delivered)``. A campaign of ``k`` channels has at most ``2**(k+1) - 1``
paths, so each message stores just the index of its path (one byte), drawn at acceptance from a
generator seeded by the emulator seed and the request body: the same seed and the same request
give the same outcomes, in whatever order requests arrive.

Final codes (documented ones marked [doc], the emulator's own [ours]):

==========  ======  =========  ============  ===================
channel     result  status     substatus     hyber_status
==========  ======  =========  ============  ===================
sms         deliver 2          23            23011 [doc]
viber       deliver 2          23            23033 [doc]
whatsapp    deliver 2          23            23053 [ours]
push        deliver 2          23            23063 [ours]
sms         expire  3          35            35015 [doc]
viber       expire  3          35            35035 [ours]
whatsapp    expire  3          35            35055 [ours]
push        expire  3          35            35065 [ours]
sms         fail    3          34            34011 [ours]
viber       fail    3          34            34033 [ours]
whatsapp    fail    3          34            34053 [ours]
push        fail    3          34            34063 [ours]
==========  ======  =========  ============  ===================
"""

from __future__ import annotations

import enum
import itertools
import random
from collections.abc import Mapping, Sequence
from typing import Final

import attrs

from .._errors import InvalidValueError
from ._config import ChannelOutcomes

__all__ = ["FINAL_CODES", "Cascade", "FinalCode", "Result"]


class Result(enum.Enum):
    """How one channel attempt ends."""

    DELIVER = "deliver"
    FAIL = "fail"
    EXPIRE = "expire"


@attrs.frozen
class FinalCode:
    """The codes a message ends with."""

    status: int
    substatus: int
    hyber_status: int
    text: str


FINAL_CODES: Final[Mapping[tuple[str, Result], FinalCode]] = {
    ("sms", Result.DELIVER): FinalCode(2, 23, 23011, "SMS delivered"),
    ("viber", Result.DELIVER): FinalCode(2, 23, 23033, "Viber delivered"),
    ("whatsapp", Result.DELIVER): FinalCode(2, 23, 23053, "WhatsApp delivered"),
    ("push", Result.DELIVER): FinalCode(2, 23, 23063, "Push delivered"),
    ("sms", Result.EXPIRE): FinalCode(3, 35, 35015, "SMS expired"),
    ("viber", Result.EXPIRE): FinalCode(3, 35, 35035, "Viber expired"),
    ("whatsapp", Result.EXPIRE): FinalCode(3, 35, 35055, "WhatsApp expired"),
    ("push", Result.EXPIRE): FinalCode(3, 35, 35065, "Push expired"),
    ("sms", Result.FAIL): FinalCode(3, 34, 34011, "SMS undelivered"),
    ("viber", Result.FAIL): FinalCode(3, 34, 34033, "Viber undelivered"),
    ("whatsapp", Result.FAIL): FinalCode(3, 34, 34053, "WhatsApp undelivered"),
    ("push", Result.FAIL): FinalCode(3, 34, 34063, "Push undelivered"),
}
"""The final codes by (channel, result of the last attempt)."""

Path = tuple[tuple[str, Result], ...]


class Cascade:
    """The possible paths of a message through ``channels``, with their probabilities."""

    def __init__(self, channels: Sequence[str], outcomes: Mapping[str, ChannelOutcomes]) -> None:
        """Enumerate the paths through ``channels`` given each channel's ``outcomes``."""
        self.channels: tuple[str, ...] = tuple(channels)
        paths: list[Path] = []
        weights: list[float] = []
        for length in range(1, len(self.channels) + 1):
            head = self.channels[: length - 1]
            last = self.channels[length - 1]
            endings = [Result.DELIVER]
            if length == len(self.channels):
                endings += [Result.FAIL, Result.EXPIRE]
            for passed in itertools.product((Result.FAIL, Result.EXPIRE), repeat=length - 1):
                for ending in endings:
                    path = (*zip(head, passed, strict=True), (last, ending))
                    paths.append(path)
                    weights.append(self._weight(path, outcomes))
        self.paths: tuple[Path, ...] = tuple(paths)
        self._indices = range(len(paths))
        self._cum_weights = list(itertools.accumulate(weights))
        self._outcomes = {c: outcomes[c] for c in self.channels}

    @staticmethod
    def _weight(path: Path, outcomes: Mapping[str, ChannelOutcomes]) -> float:
        weight = 1.0
        for channel, result in path:
            chances = outcomes[channel]
            if result is Result.DELIVER:
                weight *= chances.deliver
            elif result is Result.FAIL:
                weight *= chances.fail
            else:
                weight *= chances.expire
        return weight

    def draw(self, rng: random.Random, count: int) -> bytes:
        """The path index of each of ``count`` messages."""
        if self._cum_weights[-1] <= 0:
            raise InvalidValueError("every channel outcome has probability 0")
        return bytes(rng.choices(self._indices, cum_weights=self._cum_weights, k=count))

    def offsets(self, ttls: Mapping[str, float]) -> tuple[float, ...]:
        """Emulated seconds from the start of a message to its final status, per path."""
        return tuple(self.timeline(index, ttls)[-1][2] for index in range(len(self.paths)))

    def timeline(
        self, path_index: int, ttls: Mapping[str, float]
    ) -> tuple[tuple[str, Result, float], ...]:
        """Each attempt of path ``path_index``: its channel, its result, and the emulated
        seconds from the start of the message to its end."""
        steps: list[tuple[str, Result, float]] = []
        elapsed = 0.0
        for channel, outcome in self.paths[path_index]:
            chances = self._outcomes[channel]
            if outcome is Result.DELIVER:
                elapsed += chances.deliver_after
            elif outcome is Result.FAIL:
                elapsed += min(chances.fail_after, ttls[channel])
            else:
                elapsed += ttls[channel]
            steps.append((channel, outcome, elapsed))
        return tuple(steps)

    def final(self, path_index: int) -> tuple[str, Result, FinalCode]:
        """The channel, result and codes a message of path ``path_index`` ends with."""
        channel, outcome = self.paths[path_index][-1]
        return channel, outcome, FINAL_CODES[channel, outcome]
