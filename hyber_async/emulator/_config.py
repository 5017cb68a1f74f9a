"""The emulator's settings: accounts, seed, time scale, channel outcomes, callbacks, faults."""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final

import attrs

from .._errors import InvalidValueError
from .._models import Channel
from ._faults import Faults
from ._load import Latency
from ._quota import QuotaSettings

__all__ = ["DEMO_ACCOUNT", "Account", "ChannelOutcomes", "EmulatorConfig"]

CHANNELS: Final = tuple(channel.value for channel in Channel)


@attrs.frozen
class Account:
    """One API account: the ``client_id`` of the URL and the Basic-auth login and password."""

    client_id: str
    login: str
    password: str = attrs.field(repr=False)


DEMO_ACCOUNT: Final = Account(client_id="1234", login="user", password="secret")
"""The account an emulator has when none is configured (the README example's credentials)."""


def _probability(_: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise InvalidValueError(f"{attribute.name} must be a probability in [0, 1], got {value!r}")


def _non_negative(_: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if not value >= 0:
        raise InvalidValueError(f"{attribute.name} must be >= 0, got {value!r}")


@attrs.frozen
class ChannelOutcomes:
    """What happens to a message on one channel of its cascade.

    The message is delivered with probability ``deliver`` (after ``deliver_after`` emulated
    seconds), fails with probability ``fail`` (after ``fail_after`` seconds), and otherwise
    expires when the channel's ``ttl`` from the request runs out. Failing and expiring pass
    the message on to the next channel of the cascade.
    """

    deliver: float = attrs.field(default=0.9, validator=_probability)
    fail: float = attrs.field(default=0.05, validator=_probability)
    deliver_after: float = attrs.field(default=3.0, validator=_non_negative)
    fail_after: float = attrs.field(default=1.0, validator=_non_negative)

    def __attrs_post_init__(self) -> None:
        if self.deliver + self.fail > 1.0 + 1e-9:
            raise InvalidValueError("deliver + fail must not exceed 1 (the rest expires)")

    @property
    def expire(self) -> float:
        """Probability that the channel's ``ttl`` runs out: ``1 - deliver - fail``."""
        return max(0.0, 1.0 - self.deliver - self.fail)


def _outcomes(value: Mapping[str, ChannelOutcomes]) -> Mapping[str, ChannelOutcomes]:
    merged = {name: ChannelOutcomes() for name in CHANNELS}
    for name, outcomes in value.items():
        if name not in merged:
            raise InvalidValueError(f"unknown channel {name!r} (known: {', '.join(CHANNELS)})")
        merged[name] = outcomes
    return MappingProxyType(merged)


def _positive(_: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if not value > 0:
        raise InvalidValueError(f"{attribute.name} must be > 0, got {value!r}")


def _accounts(value: tuple[Account, ...]) -> tuple[Account, ...]:
    accounts = tuple(value)
    if not accounts:
        raise InvalidValueError("an emulator needs at least one account")
    return accounts


@attrs.frozen
class EmulatorConfig:
    """Everything an emulator is started with. All times are in seconds.

    - ``accounts``: who may call; the first one is what ``hyber_async.testing`` logs in with.
    - ``seed``: makes job ids, cascade outcomes and the ``error_rate`` fault reproducible.
      The outcomes of a request depend only on the seed and the request body.
    - ``time_scale``: emulated seconds per real second. 1 is real time; 1000 makes a 60 s
      ``ttl`` pass in 60 ms; 0 freezes the clock (move it with ``emulator.clock.advance``).
    - ``outcomes``: per channel name, the ``ChannelOutcomes`` of the cascade.
    - ``callback_batch_size``: delivery reports per callback POST. 1 posts single objects
      (as example 19), more posts JSON arrays (as example 20).
    - ``callback_period``: real seconds a report may wait for its batch to fill.
    - ``callback_max_attempts``, ``callback_backoff``, ``callback_max_backoff``: a POST that
      is not answered 2xx is retried after ``min(max_backoff, backoff * 2 ** (n - 1))`` real
      seconds, ``max_attempts`` times in all, then its reports are dropped (and counted).
    - ``callback_timeout``: real seconds per callback POST; ``callback_concurrency``: POSTs in
      flight per callback URL.
    - ``faults``: the faults active from the start (``emulator.faults`` changes them later).
    - ``max_body_bytes``: larger request bodies are answered 413.
    - ``latency``: the ``Latency`` distribution of every API answer (on top of the
      ``latency`` fault); ``capacity``: API requests in flight beyond it are answered 503 with
      ``Retry-After: capacity_retry_after`` (``None``: no limit). See ``emulator._load``.
    - ``rate_limit``, ``request_rate_limit``: the account quota, in messages and in send
      requests per second per account (``None``: none), tolerating ``quota_burst`` seconds'
      worth ahead; beyond it a send is refused 429 with ``Retry-After`` (see ``_quota.py``;
      ``emulator.quota`` changes it later).
    """

    accounts: tuple[Account, ...] = attrs.field(default=(DEMO_ACCOUNT,), converter=_accounts)
    seed: int = 0
    time_scale: float = attrs.field(default=1.0, validator=_non_negative)
    outcomes: Mapping[str, ChannelOutcomes] = attrs.field(
        factory=dict, converter=_outcomes, eq=False
    )
    callback_batch_size: int = attrs.field(default=100, validator=_positive)
    callback_period: float = attrs.field(default=1.0, validator=_non_negative)
    callback_max_attempts: int = attrs.field(default=5, validator=_positive)
    callback_backoff: float = attrs.field(default=0.5, validator=_non_negative)
    callback_max_backoff: float = attrs.field(default=30.0, validator=_non_negative)
    callback_timeout: float = attrs.field(default=10.0, validator=_positive)
    callback_concurrency: int = attrs.field(default=4, validator=_positive)
    faults: Faults = attrs.field(factory=Faults, eq=False)
    max_body_bytes: int = attrs.field(default=100 * 2**20, validator=_positive)
    latency: Latency = attrs.field(factory=Latency)
    capacity: int | None = attrs.field(default=None, validator=attrs.validators.optional(_positive))
    capacity_retry_after: float = attrs.field(default=1.0, validator=_non_negative)
    rate_limit: float | None = None
    request_rate_limit: float | None = None
    quota_burst: float = 1.0

    def __attrs_post_init__(self) -> None:
        if math.isinf(self.time_scale):
            raise InvalidValueError("time_scale must be finite")
        self.quota_settings()  # checks the quota fields

    def quota_settings(self) -> QuotaSettings:
        """The quota this emulator starts with."""
        return QuotaSettings(self.rate_limit, self.request_rate_limit, self.quota_burst)
