"""Typed models of the Hyber JSON V2 mass-messaging protocol.

Every model is a frozen, slotted attrs class whose field names are the wire keys, so
``converter.dumps(model)`` writes exactly what the API expects and ``converter.loads`` reads what
it sends (unknown keys from the server are ignored). Optional fields default to ``None`` and are
left out of the JSON when absent.

Requests: ``Campaign`` (the envelope shared by every chunk of a campaign), ``Message`` (one batch
item with its own text), ``Recipient`` (one broadcast item with its own ``%key%`` variables),
``BatchRequest`` / ``BroadcastRequest`` (envelope plus items, i.e. one request body).

Responses: ``JobAccepted`` (async endpoints), ``SyncResult`` of ``MessageResult`` (sync endpoints),
``JobStatus`` of ``MessageStatus`` (status endpoint), ``DeliveryReport`` (callbacks),
``SimpleDeliveryReport`` and ``AdvancedDeliveryReport`` (the delivery-report lookups),
``MessageAccepted`` (the single-message endpoint, whose request is ``MessageRequest``).

Status codes are open integers: unknown values pass through untouched. The known ones are named
in ``Status``, ``HyberStatus`` and ``ErrorCode``.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Final

import attrs

from ._errors import InvalidCallError, Problem, ValidationError

__all__ = [
    "AdvancedDeliveryReport",
    "BatchRequest",
    "BroadcastRequest",
    "Campaign",
    "Channel",
    "ChannelOptions",
    "ChannelTtl",
    "DeliveryReport",
    "ErrorCode",
    "HyberStatus",
    "JobAccepted",
    "JobStatus",
    "Kind",
    "Message",
    "MessageAccepted",
    "MessageRequest",
    "MessageResult",
    "MessageStatus",
    "PushOptions",
    "Recipient",
    "SimpleDeliveryReport",
    "SmsOptions",
    "Status",
    "SyncResult",
    "ViberOptions",
    "WhatsAppOptions",
    "unknown_channel",
]


RECIPIENT_KEYS: Final = frozenset({"phone_number", "extra_id"})
"""Keys of a broadcast recipient that are not ``%key%`` variables."""


class Channel(str, enum.Enum):
    """A delivery channel. The order of ``Campaign.channels`` is the cascade order."""

    VIBER = "viber"
    SMS = "sms"
    WHATSAPP = "whatsapp"
    PUSH = "push"

    def __str__(self) -> str:
        return self.value


def unknown_channel(index: int, name: object) -> Problem:
    """The problem of ``channels[index]`` naming no channel of the protocol."""
    known = ", ".join(c.value for c in Channel)
    return Problem(f"channels[{index}]", f"unknown channel {name!r} (known: {known})")


class Kind(str, enum.Enum):
    """The two request shapes, named by their endpoint."""

    BATCH = "batch"
    BROADCAST = "broadcast"

    @property
    def items_key(self) -> str:
        """The wire key of the item list: ``messages`` or ``recipients``."""
        return "messages" if self is Kind.BATCH else "recipients"


class Status:
    """Known values of ``status`` in status reports and delivery reports (an open integer)."""

    NOT_FINAL: Final = -1
    """Not sent to any channel yet, or no final status yet."""
    DELIVERED: Final = 2
    UNDELIVERED: Final = 3
    """Not delivered: expired or failed on every channel of the cascade."""
    FINAL: Final = frozenset({2, 3})


class HyberStatus:
    """Known values of ``hyber_status`` (an open integer; ``substatus * 1000 + detail``)."""

    SMS_DELIVERED: Final = 23011
    VIBER_DELIVERED: Final = 23033
    VIBER_TEMPLATE_DELIVERED: Final = 23043
    SMS_EXPIRED: Final = 35015


class ErrorCode:
    """Known values of ``error_code`` (an open integer)."""

    SMS_EXPIRED: Final = 35015
    PHONE_NUMBER_INCORRECT: Final = 36024


# --- requests -------------------------------------------------------------------------------


@attrs.frozen
class ViberOptions:
    """Options of the Viber channel. ``ttl`` (seconds, 40..86400) is required."""

    ttl: int
    text: str | None = None
    device: str | None = None
    """``"all"`` or ``"phone"``."""
    alpha_name: str | None = None
    """Selects the Viber service (sender) to use."""
    img: str | None = None
    caption: str | None = None
    action: str | None = None
    file_name: str | None = None
    ctr: bool | None = None
    """Rewrite links and count clicks."""
    thumbnail: str | None = None
    """A video's preview image (URL). A video message gives ``thumbnail``, ``file_size``,
    ``duration`` and the video's URL in ``action``, all four."""
    file_size: int | None = None
    """A video's size in megabytes (1..200)."""
    duration: int | None = None
    """A video's length in seconds (1..600)."""


@attrs.frozen
class SmsOptions:
    """Options of the SMS channel. ``alpha_name`` (<= 11 GSM-7 chars) and ``ttl`` are required."""

    alpha_name: str
    ttl: int
    text: str | None = None
    """Broadcast text; in a batch the text comes from each ``Message``."""
    ctr: bool | None = None


@attrs.frozen
class WhatsAppOptions:
    """Options of the WhatsApp channel. ``ttl`` is required (documented value 604800)."""

    ttl: int
    text: str | None = None
    img: str | None = None
    img_name: str | None = None
    doc: str | None = None
    doc_name: str | None = None
    audio: str | None = None
    video: str | None = None
    video_name: str | None = None
    latitude: str | None = None
    """Decimal degrees as a string, as in the documentation's examples."""
    longitude: str | None = None
    ctr: bool | None = None


@attrs.frozen
class PushOptions:
    """Options of the push channel. ``ttl`` (seconds, 30..86400) and ``title`` (<= 20 chars)
    are required; so is ``text`` (<= 1000 chars) but in a batch, where it comes from each
    ``Message``."""

    ttl: int
    title: str
    text: str | None = None
    img: str | None = None
    """URL of an image (<= 256 chars)."""
    caption: str | None = None
    """Label of the button (<= 30 chars)."""
    action: str | None = None
    """URL the button opens (<= 256 chars)."""
    ctr: bool | None = None
    """Rewrite links (in ``text`` and ``action``) and count clicks."""


@attrs.frozen
class ChannelOptions:
    """One options object per channel listed in ``Campaign.channels``."""

    viber: ViberOptions | None = None
    sms: SmsOptions | None = None
    whatsapp: WhatsAppOptions | None = None
    push: PushOptions | None = None


def _as_channels(value: object) -> tuple[Channel, ...]:
    if isinstance(value, (str, Channel)):
        value = (value,)
    if not isinstance(value, (list, tuple)):
        raise InvalidCallError(
            f"channels must be a sequence of Channel, got {type(value).__name__}"
        )
    unknown = [unknown_channel(i, v) for i, v in enumerate(value) if v not in _CHANNEL_VALUES]
    if unknown:
        raise ValidationError(unknown)
    return tuple(Channel(v) for v in value)


_CHANNEL_VALUES = frozenset(Channel) | frozenset(c.value for c in Channel)


@attrs.frozen
class Campaign:
    """The envelope of a batch or broadcast: everything but the list of items.

    ``start_time`` takes an aware ``datetime`` or the documented string
    ``"YYYY-MM-DD hh:mm:ss+hh:mm"`` (without an offset the API reads Kyiv time).
    """

    channels: tuple[Channel, ...] = attrs.field(converter=_as_channels)
    channel_options: ChannelOptions
    callback_url: str | None = None
    start_time: datetime | str | None = None
    tag: str | None = None
    division_code: str | None = None


@attrs.frozen
class Message:
    """One batch item: a recipient with its own text for every channel."""

    phone_number: int
    text: str
    extra_id: str | None = None
    """Your id of the message (<= 64 chars); it comes back in reports."""


@attrs.frozen
class Recipient:
    """One broadcast item. ``variables`` fill the ``%key%`` placeholders of the channel options
    and go onto the wire as the recipient's own keys. A value is a JSON scalar: a string, a
    64-bit integer, a finite number or a boolean (a number fills as its JSON text)."""

    phone_number: int
    extra_id: str | None = None
    variables: Mapping[str, str | int | float | bool] = attrs.field(factory=dict, hash=False)

    @variables.validator
    def _no_reserved_keys(self, _: object, value: Mapping[str, object]) -> None:
        clash = sorted(RECIPIENT_KEYS & value.keys())
        if clash:
            reason = "is a recipient field, not a variable"
            raise ValidationError([Problem(f"variables.{key}", reason) for key in clash])


def _messages(items: Iterable[Message]) -> tuple[Message, ...]:
    return tuple(items)


def _recipients(items: Iterable[Recipient]) -> tuple[Recipient, ...]:
    return tuple(items)


@attrs.frozen
class BatchRequest:
    """One batch request body: the campaign envelope plus at most 50,000 messages."""

    campaign: Campaign
    messages: tuple[Message, ...] = attrs.field(converter=_messages)


@attrs.frozen
class BroadcastRequest:
    """One broadcast request body: the campaign envelope plus at most 50,000 recipients."""

    campaign: Campaign
    recipients: tuple[Recipient, ...] = attrs.field(converter=_recipients)


@attrs.frozen
class MessageRequest:
    """One single-message request body (``send_message``): the campaign envelope (with every
    channel's text in its options) and one recipient, written flat as the API expects."""

    campaign: Campaign
    phone_number: int
    extra_id: str | None = None
    """Your id of the message (<= 64 chars); it comes back in reports and lookups."""


# --- responses ------------------------------------------------------------------------------


@attrs.frozen
class JobAccepted:
    """Answer of the async endpoints: the id of the job to poll."""

    job_id: str


@attrs.frozen
class MessageAccepted:
    """Answer of the single-message endpoint: the id of the message."""

    message_id: str


@attrs.frozen
class MessageResult:
    """One item of a sync answer. ``phone_number`` is echoed as a string."""

    phone_number: str | None = None
    message_id: str | None = None
    extra_id: str | None = None
    processed: bool | None = None
    accepted: bool | None = None
    error_code: int | None = None
    error_text: str | None = None
    job_id: str | None = None
    """The campaign's id, a documented response parameter."""


@attrs.frozen
class SyncResult:
    """Answer of the ``/sync`` endpoints: one result per message, in request order."""

    messages: tuple[MessageResult, ...]


@attrs.frozen
class MessageStatus:
    """One message of a campaign status report.

    ``processed`` means "still being processed" and is *not* a failure signal: a message is final
    when it has a ``status`` of 2 or 3, or an ``error_code``.
    """

    time: int | None = None
    """Epoch milliseconds."""
    phone_number: str | None = None
    message_id: str | None = None
    extra_id: str | None = None
    processed: bool | None = None
    accepted: bool | None = None
    total_sms_parts: int | None = None
    delivered_sms_parts: int | None = None
    status_text: str | None = None
    status: int | None = None
    substatus: int | None = None
    hyber_status: int | None = None
    clicks: int | None = None
    """Present only when ``ctr`` was on."""
    error_text: str | None = None
    error_code: int | None = None
    matching_template_id: int | None = None
    """The Viber template the message matched (0: none)."""
    last_partner: str | None = None
    """The last channel of delivery (``"hyber"`` while not final or when blocked)."""

    @property
    def is_final(self) -> bool:
        """True when the message reached a final state (delivered, undelivered or failed)."""
        return self.error_code is not None or self.status in Status.FINAL


@attrs.frozen
class JobStatus:
    """Answer of the status endpoint: every message of the job so far."""

    messages: tuple[MessageStatus, ...]

    @property
    def is_final(self) -> bool:
        """True when every message of the job is final."""
        return all(m.is_final for m in self.messages)


@attrs.frozen
class DeliveryReport:
    """A delivery report that Hyber POSTs to the campaign's ``callback_url``.

    ``number`` keeps the JSON type it arrived with (the documentation shows both a number and a
    string); ``phone_number`` gives it as an ``int``.
    """

    number: int | str
    message_id: str | None = None
    extra_id: str | None = None
    time: int | None = None
    status: int | None = None
    substatus: int | None = None
    hyber_status: int | None = None
    sent_via: str | None = None
    """``"sms"``, ``"viber"``, ``"whatsapp"``, ``"push"``, or ``"hyber"`` when the platform
    blocked it."""
    total_sms_parts: int | None = None
    delivered_sms_parts: int | None = None
    matching_template_id: int | None = None
    status_text: str | None = None
    clicks: int | None = None
    """Present only when ``ctr`` was on."""
    error_code: int | None = None
    error_text: str | None = None

    @property
    def phone_number(self) -> int:
        """The recipient's phone number as an integer."""
        return int(self.number)

    @property
    def delivered(self) -> bool:
        """True for a delivered status (``status == 2``)."""
        return self.status == Status.DELIVERED


@attrs.frozen
class SimpleDeliveryReport:
    """The answer of a simple delivery-report lookup (``detail="simple"``), and each channel's
    report in an ``AdvancedDeliveryReport``.

    ``status`` is -1 (``Status.NOT_FINAL``) while the message has no final status, or was not
    sent to any channel yet. ``phone_number`` keeps the documented string form.
    """

    message_id: str
    status: int
    phone_number: str | None = None
    last_partner: str | None = None
    """The last channel of delivery; ``"hyber"`` while not final or when the platform blocked
    it. In an advanced report, the channel this report is about."""
    extra_id: str | None = None
    time: int | None = None
    """Epoch milliseconds of the last action of a channel."""
    substatus: int | None = None
    hyber_status: int | None = None
    total_sms_parts: int | None = None
    delivered_sms_parts: int | None = None
    matching_template_id: int | None = None
    """The Viber template the message matched (0: none)."""
    clicks: int | None = None
    """Present only when ``ctr`` was on."""
    status_text: str | None = None
    error_code: int | None = None
    error_text: str | None = None

    @property
    def is_final(self) -> bool:
        """True once the message has a final status (delivered or undelivered)."""
        return self.status in Status.FINAL

    @property
    def delivered(self) -> bool:
        """True for a delivered status (``status == 2``)."""
        return self.status == Status.DELIVERED


@attrs.frozen
class ChannelTtl:
    """One channel of an advanced report's ``channels``: its name and its ttl in seconds."""

    channel: str
    ttl: int | None = None


@attrs.frozen
class AdvancedDeliveryReport:
    """The answer of a detailed delivery-report lookup (``detail="advanced"``): a report per
    channel tried (``reports``), and the message's progress."""

    reports: tuple[SimpleDeliveryReport, ...]
    started: bool | None = None
    """False while processing has not started (or started late)."""
    processing: bool | None = None
    """True only while the message is being processed."""
    delivered_via: str | None = None
    """The channel that delivered it; ``"hyber"`` while not final or when blocked."""
    clicks: int | None = None
    """Present only when ``ctr`` was on."""
    channels: tuple[ChannelTtl, ...] | None = None
    """The channels of the request, in cascade order, with their ttl."""
