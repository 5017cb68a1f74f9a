"""The one rule set of the protocol's limits, on the wire form (``dict``s as JSON has them).

The client checks what it is about to send with it, the mass sender checks each chunk with it,
and the emulator checks what it receives with it: the limits are written once, here.

Sources are marked as in ``PROTOCOL.md``: [doc] documented by GMS, [ours] our choice where the
documentation is silent.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from itertools import chain, repeat
from operator import itemgetter
from typing import Any, Final

import attrs
import orjson

from ._errors import Problem
from ._models import Kind, unknown_channel

__all__ = [
    "MAX_ITEMS",
    "MESSAGE_KEYS",
    "ItemRules",
    "Template",
    "all_strings",
    "check_envelope",
    "check_items",
    "check_message",
    "check_request",
    "check_start_time_value",
    "is_gsm7",
    "item_rules",
    "placeholders_in",
    "render",
    "scalar_problem",
    "scalar_text",
]

MAX_ITEMS: Final = 50_000
"""Items in one batch or broadcast request [doc]."""
PHONE_MIN: Final = 10**6
PHONE_MAX: Final = 10**15 - 1
"""International numbers of 7 to 15 digits (E.164) [ours]."""
EXTRA_ID_MAX: Final = 64
CALLBACK_URL_MAX: Final = 256
TAG_MAX: Final = 64
DIVISION_CODE_MAX: Final = 100

GSM7_BASIC: Final = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION: Final = frozenset("^{}\\[~]|€\f")
_GSM7: Final = GSM7_BASIC | GSM7_EXTENSION
SMS_TEXT_MAX_GSM7: Final = 765
SMS_TEXT_MAX_UNICODE: Final = 335
_EXTENSIONS = (
    "doc docx rtf dot dotx odt odf fodt txt info pdf xps pdax eps xls xlsx ods fods csv xlsm xltx"
)
VIBER_FILE_EXTENSIONS: Final = frozenset(_EXTENSIONS.split())
VIBER_ACTION_SCHEMES: Final = ("http://", "https://", "viber://", "tel:")
URL_SCHEMES: Final = ("http://", "https://")
VIDEO_SIZE_MAX: Final = 200
"""Megabytes of a Viber video (``file_size``) [ours: the 200 MB file limit of chapter 8]."""
VIDEO_DURATION_MAX: Final = 600
"""Seconds of a Viber video (``duration``) [ours: Viber's own limit; the docs are silent]."""
INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1
_PLACEHOLDER = re.compile(r"(?<!%[0-9A-Fa-f]{2})%(?![0-9A-Fa-f]{2}%)((?!\d)\w+)%")
"""A placeholder [ours; the docs show ``%name%`` only]: ``%`` + a name of letters, digits and
``_`` that does not start with a digit + ``%``. Percent-encoded bytes are never placeholders:
a name of exactly two hex digits (``%C3%``) is one, and so is a ``%`` right after one
(``%C3%A9t%``), so ``My%20File%20v2.pdf`` and ``caf%C3%A9%C3%A9t%C3%A9`` hold none."""
_START_TIME = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}([+-]\d{2}:\d{2})?")


def is_gsm7(text: str) -> bool:
    """True when every character of ``text`` is in the GSM-7 alphabet (with its extension)."""
    return _GSM7.issuperset(text)


def placeholders_in(value: str) -> set[str]:
    """The ``%key%`` names used in ``value`` (see ``_PLACEHOLDER`` for the grammar)."""
    return set(_PLACEHOLDER.findall(value))


def scalar_text(value: Any) -> str:
    """A variable's value as it reads in a filled placeholder: a string as it is, any other
    JSON scalar as its JSON text (``5``, ``1.5``, ``true``)."""
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def render(template: str, values: Mapping[str, Any]) -> str:
    """``template`` with each placeholder filled from ``values`` (a recipient); a placeholder
    without a value is left as it is."""
    parts = _PLACEHOLDER.split(template)
    for i in range(1, len(parts), 2):
        name = parts[i]
        parts[i] = scalar_text(values[name]) if name in values else f"%{name}%"
    return "".join(parts)


def scalar_problem(value: Any) -> str | None:
    """Why ``value`` cannot be a recipient's value (a JSON string, 64-bit integer, finite
    number or boolean), or ``None``."""
    if isinstance(value, (str, bool)):
        return None
    if isinstance(value, int):
        if INT64_MIN <= value <= INT64_MAX:
            return None
        return f"an integer beyond 64 bits cannot be sent, got {value}"
    if isinstance(value, float):
        return None if math.isfinite(value) else f"must be a finite number, got {value!r}"
    kind = "null" if value is None else type(value).__name__
    return f"must be a string, a number or true/false, got {kind}"


def check_start_time_value(value: object) -> str | None:
    """Why a ``start_time`` (model or wire value) is invalid, or ``None`` when it is fine."""
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            return "a naive datetime is ambiguous: give it a timezone"
        return None
    if not isinstance(value, str):
        return "must be a string 'YYYY-MM-DD hh:mm:ss+hh:mm'"
    if _START_TIME.fullmatch(value) is None:
        return f"{value!r} is not of the form 'YYYY-MM-DD hh:mm:ss+hh:mm'"
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return f"{value!r} is not a valid date and time"
    return None


# --- the envelope ---------------------------------------------------------------------------


@attrs.frozen
class _Text:
    """The rules of one option string, applied to its value or, when it holds placeholders,
    to each recipient's filled value."""

    max_len: int
    required: bool = False
    schemes: tuple[str, ...] = ()
    extra: Callable[[str], str | None] | None = None
    """A further rule, run on a value that passed the others."""
    extra_free_len: int = 0
    """Values at most this long always pass ``extra`` (0: no such length)."""

    def problem(self, value: str) -> str | None:
        """Why ``value`` breaks the rules, or ``None``."""
        if not value and self.required:
            return "must not be empty"
        if len(value) > self.max_len:
            return f"must be at most {self.max_len} characters, got {len(value)}"
        if self.schemes and not value.startswith(self.schemes):
            return f"must start with one of {', '.join(self.schemes)}, got {value[:40]!r}"
        return self.extra(value) if self.extra is not None else None


@attrs.frozen
class Template:
    """An option string holding placeholders, checked once filled for each recipient."""

    field: str
    """Its path, e.g. ``channel_options.sms.text``."""
    parts: tuple[str, ...]
    """Literal text and placeholder names, alternating (``_PLACEHOLDER.split``)."""
    rule: _Text

    @property
    def names(self) -> tuple[str, ...]:
        """The placeholder names, in order (repeats kept)."""
        return self.parts[1::2]

    def problem(self, item: Mapping[str, Any]) -> str | None:
        """Why the value filled for ``item`` (which has every name) breaks the rule."""
        filled = list(self.parts)
        for i in range(1, len(filled), 2):
            filled[i] = scalar_text(item[filled[i]])
        reason = self.rule.problem("".join(filled))
        return None if reason is None else f"{self.field} filled for this recipient {reason}"

    def certainly_valid(self, columns: Mapping[str, list[str]], longest: Mapping[str, int]) -> bool:
        """True when the value filled for every recipient of a chunk passes; ``columns`` are
        the chunk's values of each name (all strings), ``longest`` their longest length.

        First a bound (literal text plus the longest value of each name); past it, every
        filled value is built and checked in C-level passes. False means "check each"."""
        rule = self.rule
        literal = "".join(self.parts[0::2])
        bound = len(literal) + sum(longest[name] for name in self.names)
        if (
            bound <= rule.max_len
            and (literal or not rule.required)
            and (not rule.schemes or self.parts[0].startswith(rule.schemes))
            and (rule.extra is None or bound <= rule.extra_free_len)
        ):
            return True
        filled = self._fill_all(columns)
        if rule.required and "" in filled:
            return False
        if max(map(len, filled)) > rule.max_len:
            return False
        if rule.schemes and not all(map(str.startswith, filled, repeat(rule.schemes))):
            return False
        return rule.extra is None or not any(map(rule.extra, filled))

    def _fill_all(self, columns: Mapping[str, list[str]]) -> list[str]:
        """Every recipient's filled value, built by one ``str.join`` per recipient in C."""
        count = len(next(iter(columns.values()))) if columns else 0
        pieces = [
            columns[part] if i % 2 else repeat(part, count) for i, part in enumerate(self.parts)
        ]
        return list(map("".join, zip(*pieces, strict=True)))


class _Checker:
    """Collects problems of one object, with the path of each field."""

    def __init__(self, problems: list[Problem], prefix: str, templated: bool) -> None:
        self.problems = problems
        self.prefix = prefix
        self.templated = templated
        """Strings holding placeholders are filled per recipient: they go to ``templates``,
        to be checked once filled."""
        self.templates: list[Template] = []

    def fail(self, key: str, message: str) -> None:
        self.problems.append(Problem(f"{self.prefix}{key}", message))

    def integer(
        self, obj: Mapping[str, Any], key: str, low: int, high: int, required: bool
    ) -> None:
        value = obj.get(key)
        if value is None:
            if required:
                self.fail(key, "is required")
        elif type(value) is not int:
            self.fail(key, f"must be an integer, got {value!r}")
        elif not low <= value <= high:
            self.fail(key, f"must be between {low} and {high}, got {value}")

    def string(
        self,
        obj: Mapping[str, Any],
        key: str,
        max_len: int,
        *,
        required: bool = False,
        schemes: tuple[str, ...] = (),
        extra: Callable[[str], str | None] | None = None,
        extra_free_len: int = 0,
    ) -> None:
        rule = _Text(max_len, required, schemes, extra, extra_free_len)
        value = obj.get(key)
        if value is None:
            if rule.required:
                self.fail(key, "is required")
            return
        if not isinstance(value, str):
            self.fail(key, f"must be a string, got {type(value).__name__}")
            return
        if self.templated:
            parts = tuple(_PLACEHOLDER.split(value))
            if len(parts) > 1:
                self._template(key, parts, rule)
                return
        problem = rule.problem(value)
        if problem:
            self.fail(key, problem)

    def _template(self, key: str, parts: tuple[str, ...], rule: _Text) -> None:
        """Keep a string holding placeholders to check once filled; refuse it now when no
        recipient's values could make it valid."""
        literal = "".join(parts[0::2])
        start = parts[0]
        if len(literal) > rule.max_len:
            got = f"got {len(literal)} besides its placeholders"
            self.fail(key, f"must be at most {rule.max_len} characters, {got}")
        elif rule.schemes and not any(
            start.startswith(scheme) or scheme.startswith(start) for scheme in rule.schemes
        ):
            schemes = ", ".join(rule.schemes)
            self.fail(key, f"must start with one of {schemes}, got {start[:40]!r}")
        else:
            self.templates.append(Template(f"{self.prefix}{key}", parts, rule))

    def boolean(self, obj: Mapping[str, Any], key: str) -> None:
        value = obj.get(key)
        if value is not None and not isinstance(value, bool):
            self.fail(key, f"must be true or false, got {value!r}")

    def choice(self, obj: Mapping[str, Any], key: str, allowed: tuple[str, ...]) -> None:
        value = obj.get(key)
        if value is not None and value not in allowed:
            self.fail(key, f"must be one of {', '.join(allowed)}, got {value!r}")

    def coordinate(self, obj: Mapping[str, Any], key: str, limit: float) -> None:
        value = obj.get(key)
        if value is None:
            return
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(key, f"must be a decimal number, got {value!r}")
            return
        if not -limit <= number <= limit:
            self.fail(key, f"must be between -{limit:g} and {limit:g}, got {value!r}")


def sms_text_problem(text: str) -> str | None:
    """Why ``text`` is too long for an SMS [doc: 765 GSM-7 / 335 other characters], or None."""
    length = len(text)
    if length <= SMS_TEXT_MAX_UNICODE:
        return None
    if not is_gsm7(text):
        limit = SMS_TEXT_MAX_UNICODE
        return f"an SMS text outside GSM-7 may have at most {limit} characters, got {length}"
    if length + sum(text.count(c) for c in GSM7_EXTENSION) > SMS_TEXT_MAX_GSM7:
        return f"a GSM-7 SMS text may have at most {SMS_TEXT_MAX_GSM7} characters, got {length}"
    return None


def _file_name_problem(file_name: str) -> str | None:
    if file_name.rpartition(".")[2].lower() in VIBER_FILE_EXTENSIONS:
        return None
    return f"must end in a supported extension, got {file_name!r}"


def _alpha_name_problem(alpha_name: str) -> str | None:
    if GSM7_BASIC.issuperset(alpha_name):
        return None
    return f"must use only the GSM-7 default alphabet, got {alpha_name!r}"


_VIDEO_KEYS: Final = ("thumbnail", "file_size", "duration", "action")
"""A Viber video [doc: chapter 3, "Video only"]: all four together [ours]."""


def _check_viber(c: _Checker, options: Mapping[str, Any], kind: Kind) -> None:
    c.integer(options, "ttl", 40, 86_400, required=True)
    c.string(options, "text", 1000)
    c.choice(options, "device", ("all", "phone"))
    c.string(options, "alpha_name", 64)
    c.string(options, "img", 256, schemes=URL_SCHEMES)
    c.string(options, "caption", 30)
    c.string(options, "action", 256, schemes=VIBER_ACTION_SCHEMES)
    c.string(options, "file_name", 25, extra=_file_name_problem)
    c.string(options, "thumbnail", 256, schemes=URL_SCHEMES)
    c.integer(options, "file_size", 1, VIDEO_SIZE_MAX, required=False)
    c.integer(options, "duration", 1, VIDEO_DURATION_MAX, required=False)
    c.boolean(options, "ctr")
    video = [key for key in _VIDEO_KEYS[:3] if options.get(key) is not None]
    if video:
        for key in _VIDEO_KEYS:
            if options.get(key) is None:
                c.fail(key, f"is required for a video (with {', '.join(video)})")
    media = ("text", "img", "file_name", "thumbnail")
    if kind is Kind.BROADCAST and not any(options.get(k) for k in media):
        c.fail("text", "a broadcast Viber message needs a text, an img, a file_name or a video")


def _check_sms(c: _Checker, options: Mapping[str, Any], kind: Kind) -> None:
    c.integer(options, "ttl", 300, 259_200, required=True)
    c.string(options, "alpha_name", 11, required=True, extra=_alpha_name_problem)
    c.string(
        options,
        "text",
        SMS_TEXT_MAX_GSM7,
        required=kind is Kind.BROADCAST,
        extra=sms_text_problem,
        extra_free_len=SMS_TEXT_MAX_UNICODE,
    )
    c.boolean(options, "ctr")


def _check_whatsapp(c: _Checker, options: Mapping[str, Any], kind: Kind) -> None:
    c.integer(options, "ttl", 1, 604_800, required=True)
    c.string(options, "text", 1000)
    for key in ("img", "doc", "audio", "video"):
        c.string(options, key, 256, schemes=URL_SCHEMES)
    for key in ("img_name", "doc_name", "video_name"):
        c.string(options, key, 1000)
    c.coordinate(options, "latitude", 90)
    c.coordinate(options, "longitude", 180)
    c.boolean(options, "ctr")
    media = ("text", "img", "doc", "audio", "video", "latitude")
    if kind is Kind.BROADCAST and not any(options.get(k) for k in media):
        c.fail("text", "a broadcast WhatsApp message needs a text or a media field")


def _check_push(c: _Checker, options: Mapping[str, Any], kind: Kind) -> None:
    """[doc] chapter 8, push parameters 32-37 and ``ctr``; a batch's text comes from each
    message. [ours] ``img`` and ``action`` are http(s) URLs (documented only as "URL")."""
    c.integer(options, "ttl", 30, 86_400, required=True)
    c.string(options, "title", 20, required=True)
    c.string(options, "text", 1000, required=kind is not Kind.BATCH)
    c.string(options, "img", 256, schemes=URL_SCHEMES)
    c.string(options, "caption", 30)
    c.string(options, "action", 256, schemes=URL_SCHEMES)
    c.boolean(options, "ctr")


_CHANNEL_RULES = {
    "viber": _check_viber,
    "sms": _check_sms,
    "whatsapp": _check_whatsapp,
    "push": _check_push,
}


def check_envelope(wire: Mapping[str, Any], kind: Kind) -> list[Problem]:
    """Every problem of the campaign envelope (all keys but the item list)."""
    return _check_envelope(wire, kind)[0]


def _check_envelope(wire: Mapping[str, Any], kind: Kind) -> tuple[list[Problem], list[Template]]:
    """The envelope's problems, and its option strings that hold placeholders."""
    problems: list[Problem] = []
    templates: list[Template] = []
    top = _Checker(problems, "", templated=False)
    channels = wire.get("channels")
    listed: list[str] = []
    if not isinstance(channels, list) or not channels:
        top.fail("channels", "must be a non-empty list of channels")
    else:
        for i, name in enumerate(channels):
            if name not in _CHANNEL_RULES:
                problems.append(unknown_channel(i, name))
            elif name in listed:
                top.fail(f"channels[{i}]", f"channel {name!r} is listed twice")
            else:
                listed.append(name)
    options = wire.get("channel_options")
    if not isinstance(options, Mapping):
        top.fail("channel_options", "must be an object with the options of each channel")
        options = {}
    for name in listed:
        channel_options = options.get(name)
        if not isinstance(channel_options, Mapping):
            top.fail(f"channel_options.{name}", f"is required: channel {name!r} is listed")
            continue
        checker = _Checker(problems, f"channel_options.{name}.", kind is Kind.BROADCAST)
        _CHANNEL_RULES[name](checker, channel_options, kind)
        templates.extend(checker.templates)
    top.string(wire, "callback_url", CALLBACK_URL_MAX, schemes=URL_SCHEMES)
    top.string(wire, "tag", TAG_MAX)
    top.string(wire, "division_code", DIVISION_CODE_MAX)
    start_time = wire.get("start_time")
    if start_time is not None:
        reason = check_start_time_value(start_time)
        if reason:
            top.fail("start_time", reason)
    return problems, templates


# --- the items ------------------------------------------------------------------------------


@attrs.frozen
class ItemRules:
    """What each item of a campaign must satisfy, worked out once per campaign."""

    kind: Kind
    sms_text: bool = False
    """Batch texts go to SMS too, so the SMS length limits apply."""
    text_max: int = 1000
    placeholders: frozenset[str] = frozenset()
    """Keys every broadcast recipient must carry."""
    templates: tuple[Template, ...] = ()
    """Option strings whose value filled for each recipient must pass their rule."""


def item_rules(wire: Mapping[str, Any], kind: Kind) -> ItemRules:
    """The per-item rules implied by a (valid) campaign envelope."""
    channels = wire.get("channels") or ()
    if kind is Kind.BATCH:
        sms = "sms" in channels
        return ItemRules(kind, sms_text=sms, text_max=SMS_TEXT_MAX_GSM7 if sms else 1000)
    needed: set[str] = set()
    options = wire.get("channel_options") or {}
    for name in channels:
        channel_options = options.get(name)
        if isinstance(channel_options, Mapping):
            for value in channel_options.values():
                if isinstance(value, str):
                    needed |= placeholders_in(value)
    templates = tuple(_check_envelope(wire, kind)[1])
    return ItemRules(kind, placeholders=frozenset(needed), templates=templates)


def check_items(
    items: Sequence[Any],
    rules: ItemRules,
    *,
    first_index: int = 0,
    extra_ids: list[Any] | None = None,
) -> list[Problem]:
    """Every problem of ``items``; ``first_index`` is the input position of ``items[0]``.

    It runs for every recipient of a campaign, so a chunk is first checked as a whole with a
    few C-level passes; only a chunk that fails them is walked item by item. ``extra_ids``,
    when the caller has read them already, is each item's ``dict.get("extra_id")`` (so every
    item is a ``dict``), saving that pass.
    """
    if _all_valid(items, rules, extra_ids):
        return []
    problems: list[Problem] = []
    key = rules.kind.items_key
    for offset, item in enumerate(items):
        index = first_index + offset
        if isinstance(item, Mapping):
            problems.extend(_item_problems(item, index, key, rules))
        else:
            problems.append(Problem(f"{key}[{index}]", "must be an object", index))
    return problems


def _all_valid(items: Sequence[Any], rules: ItemRules, extra_ids: list[Any] | None = None) -> bool:
    """True when every item is certainly valid; False means "look at each item".

    Each test is one pass in C over the chunk: ``dict.get`` raises on a non-dict, ``sum`` of
    ints is an int only when none is a float or other number, ``"".join`` raises unless every
    value is a string, and each option string holding placeholders is checked for the chunk at
    once (``Template.certainly_valid``). Every value is then known to be plain JSON when the
    items hold no key beyond those checked (one ``len`` per item); only otherwise are the
    types of every key and value looked at.
    """
    if not items:
        return False
    try:
        if extra_ids is None:
            extra_ids = list(map(dict.get, items, repeat("extra_id")))
        phones = list(map(itemgetter("phone_number"), items))
        if type(sum(phones)) is not int or min(phones) < PHONE_MIN or max(phones) > PHONE_MAX:
            return False
        missing = _missing_extra_ids(extra_ids)
        if missing is None:
            return False
        if rules.kind is Kind.BATCH:
            columns = {"text": list(map(itemgetter("text"), items))}
        else:
            columns = {name: list(map(itemgetter(name), items)) for name in rules.placeholders}
        lengths = {name: _str_lengths(values) for name, values in columns.items()}
    except (KeyError, TypeError):
        return False
    checked = len(items) * (1 + len(columns)) + len(items) - missing
    if sum(map(len, items)) != checked and not _plain_json(items):
        return False
    longest = {name: max(found) for name, found in lengths.items()}
    if rules.kind is Kind.BATCH:
        fast_max = SMS_TEXT_MAX_UNICODE if rules.sms_text else rules.text_max
        return 0 not in lengths["text"] and longest["text"] <= fast_max
    return all(t.certainly_valid(columns, longest) for t in rules.templates)


def _missing_extra_ids(extra_ids: list[Any]) -> int | None:
    """How many items have no ``extra_id`` when every one present is certainly valid (``None``
    when one may not be): all strings of a valid length, or none at all."""
    try:
        lengths = _str_lengths(extra_ids)
    except TypeError:  # not all strings: valid only when none has an extra_id
        missing = extra_ids.count(None)
        return missing if missing == len(extra_ids) else None
    if 0 in lengths or max(lengths) > EXTRA_ID_MAX:
        return None
    return 0


def all_strings(values: list[Any]) -> bool:
    """True when every value is a string: one pass in C (``"".join`` refuses anything else)."""
    try:
        "".join(values)
    except TypeError:
        return False
    return True


def _str_lengths(values: list[Any]) -> set[int]:
    """The distinct lengths of ``values``, in two passes in C; raises ``TypeError`` unless every
    value is a string (``"".join`` refuses anything else). A set of the few lengths answers
    both "is one empty" and "how long is the longest", cheaper than a pass for each."""
    "".join(values)
    return set(map(len, values))


def _plain_json(items: Sequence[dict[Any, Any]]) -> bool:
    """True when every key is a string and every value a string, but for one integer per
    item (its phone number, checked already)."""
    if set(map(type, chain.from_iterable(items))) != {str}:
        return False
    types = list(map(type, chain.from_iterable(map(dict.values, items))))
    return set(types) <= {str, int} and types.count(int) == len(items)


def _item_problems(  # noqa: C901, PLR0912 -- one flat check per documented field limit
    item: Mapping[str, Any], index: int, key: str, rules: ItemRules
) -> list[Problem]:
    """Name every problem of one item (the slow path of ``check_items``)."""
    extra_id = item.get("extra_id")
    ident = extra_id if isinstance(extra_id, str) else None
    found: list[Problem] = []

    def fail(field: str, message: str) -> None:
        found.append(Problem(f"{key}[{index}].{field}", message, index, ident))

    phone = item.get("phone_number")
    if phone is None:
        fail("phone_number", "is required")
    elif type(phone) is not int:
        fail("phone_number", f"must be a number of 7 to 15 digits, got {phone!r}")
    elif not PHONE_MIN <= phone <= PHONE_MAX:
        fail("phone_number", f"must have 7 to 15 digits, got {phone}")
    if extra_id is not None:
        if type(extra_id) is not str:
            fail("extra_id", f"must be a string, got {type(extra_id).__name__}")
        elif not 0 < len(extra_id) <= EXTRA_ID_MAX:
            fail("extra_id", f"must have 1 to {EXTRA_ID_MAX} characters, got {len(extra_id)}")
    unsendable: set[str] = set()
    fields = _BATCH_FIELDS if rules.kind is Kind.BATCH else _RECIPIENT_FIELDS
    for name, value in item.items():
        if not isinstance(name, str):
            fail(repr(name), f"a key must be a string, got {type(name).__name__}")
        elif name not in fields:
            problem = scalar_problem(value)
            if problem:
                unsendable.add(name)
                fail(name, problem)
    if rules.kind is Kind.BATCH:
        text = item.get("text")
        if text is None:
            fail("text", "is required")
        elif type(text) is not str:
            fail("text", f"must be a string, got {type(text).__name__}")
        elif not text:
            fail("text", "must not be empty")
        elif len(text) > rules.text_max:
            fail("text", f"must be at most {rules.text_max} characters, got {len(text)}")
        elif rules.sms_text:
            problem = sms_text_problem(text)
            if problem:
                fail("text", problem)
        return found
    missing = sorted(rules.placeholders - item.keys())
    if missing:
        listed = ", ".join(f"%{m}%" for m in missing)
        fail(missing[0], f"missing value for {listed} used in channel_options")
    for template in rules.templates:
        names = template.names
        if unsendable.isdisjoint(names) and all(name in item for name in names):
            problem = template.problem(item)
            if problem:
                fail(names[0], problem)
    return found


_RECIPIENT_FIELDS: Final = frozenset({"phone_number", "extra_id"})
_BATCH_FIELDS: Final = _RECIPIENT_FIELDS | {"text"}
"""Keys of an item checked by their own rules; any other key is a JSON scalar."""


def check_request(wire: Mapping[str, Any], kind: Kind) -> list[Problem]:
    """Every problem of a whole request body: envelope, item count and items."""
    problems = check_envelope(wire, kind)
    key = kind.items_key
    items = wire.get(key)
    if not isinstance(items, list):
        problems.append(Problem(key, "must be a list"))
    elif not items:
        problems.append(Problem(key, "must hold at least one item"))
    elif len(items) > MAX_ITEMS:
        problems.append(Problem(key, f"must hold at most {MAX_ITEMS} items, got {len(items)}"))
    else:
        problems.extend(check_items(items, item_rules(wire, kind)))
    return problems


MESSAGE_KEYS: Final = ("phone_number", "extra_id")
"""The keys of a single-message request that are not the campaign envelope's."""


def _message_recipient(wire: Mapping[str, Any]) -> list[Problem]:
    """Every problem of the ``phone_number`` and ``extra_id`` of a single-message request,
    checked as a broadcast recipient's and named by their own key."""
    item = {key: wire[key] for key in MESSAGE_KEYS if key in wire}
    found = _item_problems(item, 0, "", ItemRules(Kind.BROADCAST))
    return [Problem(p.field.partition(".")[2], p.message) for p in found]


def check_message(wire: Mapping[str, Any]) -> list[Problem]:
    """Every problem of a single-message request body (chapter 2): its envelope checked as a
    broadcast's (each channel's text in its options), its recipient as a broadcast recipient.

    A single message has no variables: its option strings are sent as written, so they are
    checked as written, ``%`` included (it is hidden from the broadcast rules, which would
    skip a string holding a ``%key%`` as a template filled later).
    """
    envelope = {key: value for key, value in wire.items() if key not in MESSAGE_KEYS}
    options = envelope.get("channel_options")
    if isinstance(options, Mapping):
        envelope["channel_options"] = {
            name: {key: _literal(value) for key, value in channel.items()}
            if isinstance(channel, Mapping)
            else channel
            for name, channel in options.items()
        }
    return check_envelope(envelope, Kind.BROADCAST) + _message_recipient(wire)


def _literal(value: object) -> object:
    """``value`` with no ``%`` to read as a placeholder: ``#`` has the same length and is in
    the same GSM-7 alphabet, so every limit reads the same."""
    return value.replace("%", "#") if isinstance(value, str) else value
