"""A status answer read for what polling needs, cheaply and without holding the event loop.

A status answer lists every message of a job: 50,000 of them are 13 MB of JSON. Polling needs
only each message's outcome and channel, so ``StatusAnswer`` reads those four fields
(``error_code``, ``status``, ``hyber_status``, ``delivered_sms_parts``) straight from the parsed
JSON, a slice at a time with a checkpoint before each, checked as strictly as the typed models
read them; the typed ``JobStatus`` (a model per message, every field checked) is built only
when asked for. The parse itself is done in pieces of about 256 KB (``parse_status_body``), one
answer at a time in the whole event loop, so that two parses never run back to back without the
loop getting its turn in between. A poller that wants only the counts reads an answer with
``keep_messages=False`` (``StatusCounter``, fed by the transport as the body is read): each
piece is parsed and counted as soon as it has arrived, while its messages are in the CPU cache,
and dropped, so that no answer is ever held whole, as bytes or as Python objects.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from functools import cached_property
from itertools import repeat
from operator import is_not
from typing import Any, Final

import anyio
import httpx
import orjson
from anyio.lowlevel import RunVar, checkpoint

from ._codec import _UNREADABLE, _read_leniently, converter
from ._errors import InvalidCallError, UnexpectedResponseError
from ._models import JobStatus

__all__ = [
    "DECODE_SLICE",
    "OUTCOME_FIELDS",
    "PARSE_SLICE",
    "StatusAnswer",
    "StatusCounter",
    "Tally",
    "parse_status_body",
    "read_status_answer",
]

DECODE_SLICE: Final = 5_000
"""Messages tallied between two checkpoints."""

_CACHED: Final = 1_000
"""Messages whose four fields are read column by column: few enough that the messages stay
in the CPU cache from the first column to the last (a third faster than whole slices)."""

OUTCOME_FIELDS: Final = ("error_code", "status", "hyber_status", "delivered_sms_parts")
"""The fields of a message that tell its outcome and channel (all integers or absent)."""

Tally = Counter[tuple[int | None, int | None, int | None, bool]]
"""Messages by ``(error_code, status, hyber_status, has delivered_sms_parts)``."""

PARSE_SLICE: Final = 1 << 18
"""Bytes of a status answer parsed between two checkpoints (about 1,000 messages): a piece's
messages stay in the CPU cache while they are counted (``keep_messages=False``)."""
_HEAD: Final = b'{"messages":['
_TAIL: Final = b"]}"

_PARSING: RunVar[anyio.Lock] = RunVar("hyber_async status parsing")
"""One parse of a large answer at a time in each event loop."""


def _parsing_lock() -> anyio.Lock:
    try:
        return _PARSING.get()
    except LookupError:
        lock = anyio.Lock()
        _PARSING.set(lock)
        return lock


class StatusAnswer:
    """The parsed answer of the status endpoint (``HyberClient.read_status``).

    ``messages`` are the messages as JSON objects (unknown keys kept); ``status`` is the typed
    ``JobStatus``, built on first access (a model per message: about twice the parse). An answer
    read with ``keep_messages=False`` was counted as it was parsed: it keeps no message, only its
    ``tally``.
    """

    def __init__(
        self, response: httpx.Response, messages: list[Any], counted: Tally | None = None
    ) -> None:
        self._response = response
        self.messages: list[Any] = messages
        """Every message of the job, as the JSON object the server sent (none when the answer
        was read with ``keep_messages=False``)."""
        self._counted = counted

    def _error(self, detail: str) -> UnexpectedResponseError:
        return UnexpectedResponseError(self._response, detail=f"the answer is not a {detail}")

    @cached_property
    def status(self) -> JobStatus:
        """The typed report, every field of every message checked; built on first access.

        Raises ``UnexpectedResponseError`` naming the field when a message does not read as a
        ``MessageStatus``, and ``InvalidCallError`` when the answer was read with
        ``keep_messages=False`` (it has no messages to build it from).
        """
        if self._counted is not None:
            message = "this answer was counted as it was read (keep_messages=False): no messages"
            raise InvalidCallError(message)
        try:
            return converter.structure({"messages": self.messages}, JobStatus)
        except (TypeError, ValueError) as exc:
            raise self._error(f"JobStatus: {exc}") from None

    async def tally(self) -> Tally:
        """Count the messages by the fields that tell their outcome, a slice at a time.

        Each field is read as the typed model reads it (an integer, a string of digits, or
        absent/``null``); anything else raises ``UnexpectedResponseError`` naming the field.
        """
        if self._counted is not None:
            return Counter(self._counted)
        tally: Tally = Counter()
        messages = self.messages
        for start in range(0, len(messages), DECODE_SLICE):
            await checkpoint()
            self._count(tally, messages[start : start + DECODE_SLICE])
        return tally

    def _count(self, tally: Tally, messages: list[Any]) -> None:
        """Add ``messages`` to ``tally``; ``UnexpectedResponseError`` naming what is wrong."""
        wrong = _count(tally, messages)
        if wrong is not None:
            raise self._error(wrong)


Keys = Iterator[tuple[int | None, int | None, int | None, bool]]


def _keys(part: list[Any]) -> Keys | str:
    """The outcome fields of each message of ``part``, checked, as tally keys; or, when one
    does not read as the typed model reads it, what is wrong (a detail of the error)."""
    try:
        columns = [list(map(dict.get, part, repeat(name))) for name in OUTCOME_FIELDS]
    except TypeError:  # dict.get refuses anything but a JSON object
        got = next(type(m).__name__ for m in part if type(m) is not dict)
        return f"JobStatus: MessageStatus: expected a JSON object, got {got}"
    for name, column in zip(OUTCOME_FIELDS, columns, strict=True):
        if not set(map(type, column)) <= _INTEGER_TYPES:
            read = _read_column(name, column)
            if isinstance(read, str):
                return read
            column[:] = read
    error_codes, statuses, hyber_statuses, parts = columns
    has_parts = map(is_not, parts, repeat(None))
    return zip(error_codes, statuses, hyber_statuses, has_parts, strict=True)


def _read_column(name: str, column: Iterable[Any]) -> list[int | None] | str:
    """``column`` with strings of digits read as integers; what is wrong, when a value is
    anything else."""
    read: list[int | None] = []
    for value in column:
        if value is None or type(value) is int:
            read.append(value)
            continue
        number = _read_leniently(value, _INTEGER_TYPES)
        if number is _UNREADABLE:
            got = type(value).__name__
            return f"JobStatus: MessageStatus.{name}: expected int or null, got {got}"
        read.append(number)
    return read


_INTEGER_TYPES: Final = frozenset({int, type(None)})


async def read_status_answer(
    response: httpx.Response, *, keep_messages: bool = True
) -> StatusAnswer:
    """Parse a successful status answer (see ``parse_status_body``), one at a time in the event
    loop. Raises ``UnexpectedResponseError`` when the body is not JSON, not an object with a
    ``messages`` array, or (``keep_messages=False``) a message's outcome field is unreadable.

    With ``keep_messages=False`` the answer is counted a piece at a time (``StatusCounter``)
    and holds only its tally.
    """
    body = response.content
    if not keep_messages:
        counter = StatusCounter()
        for start in range(0, len(body), PARSE_SLICE):
            await checkpoint()
            counter.feed(body[start : start + PARSE_SLICE])
        return await counter.answer(response)
    return StatusAnswer(response, _messages_of(await _parsed(body, response), response))


async def _parsed(body: bytes, response: httpx.Response) -> Any:
    """``parse_status_body(body)``, one parse at a time in the event loop;
    ``UnexpectedResponseError`` when it is not JSON."""
    async with _parsing_lock():
        try:
            return await parse_status_body(body)
        except orjson.JSONDecodeError as exc:
            detail = f"the answer is not a JobStatus: {exc}"
            raise UnexpectedResponseError(response, detail=detail) from None


def _messages_of(wire: Any, response: httpx.Response) -> list[Any]:
    """The ``messages`` array of a parsed answer; ``UnexpectedResponseError`` without one."""
    messages = wire.get("messages") if type(wire) is dict else None
    if type(messages) is not list:
        detail = "the answer is not a JobStatus: expected an object with a 'messages' array"
        raise UnexpectedResponseError(response, detail=detail)
    return messages


class StatusCounter:
    """A status answer counted as its body arrives, a piece at a time: what a poller that
    keeps no answers reads (``read_status(job_id, keep_messages=False)``), handed to the
    transport as the body's sink.

    As soon as the body holds a whole piece of about ``PARSE_SLICE`` bytes of the messages
    array (cut after a ``}`` that a ``,{`` follows), the piece is parsed as an array of its own,
    counted by its outcome fields while its messages are in the CPU cache, and dropped: the
    answer is never held whole, as bytes or as objects. A cut that falls inside a string or a
    nested object makes a piece that does not parse; the piece is then made longer (to the
    next cut, the distance doubling at each miss), so the pieces counted are always whole
    messages, and their concatenation the array. What is left at the end, the last messages
    and whatever follows the array, is parsed with the array's head as the whole answer would
    be; a body that does not start as ``{"messages":[`` is read whole and parsed at the end.
    """

    def __init__(self) -> None:
        self.start()

    def start(self) -> None:
        """Forget what was fed: a body (a new attempt's) begins."""
        self._buffer = bytearray()
        self._tally: Tally = Counter()
        self._in_pieces: bool | None = None
        """Whether the body starts as ``{"messages":[`` (None until its head is read)."""
        self._search = PARSE_SLICE
        """Where the next cut is looked for, from the start of the buffer."""
        self._wrong: str | None = None

    def feed(self, data: bytes) -> None:
        """The next bytes of the body: each whole piece is counted and dropped."""
        if self._wrong is not None:
            return
        buffer = self._buffer
        buffer += data
        if self._in_pieces is None:
            if len(buffer) < len(_HEAD):
                return
            self._in_pieces = buffer.startswith(_HEAD)
            if self._in_pieces:
                del buffer[: len(_HEAD)]
        if self._in_pieces:
            self._count_pieces()

    def _count_pieces(self) -> None:
        buffer = self._buffer
        start = 0
        while self._wrong is None:
            cut = buffer.find(b"},{", start + self._search)
            if cut < 0:
                break
            try:
                messages = orjson.loads(b"".join((b"[", buffer[start : cut + 1], b"]")))
            except orjson.JSONDecodeError:  # a cut inside a string: a longer piece
                self._search = max(cut + 1 - start, 2 * self._search)
                continue
            self._wrong = _count(self._tally, messages)
            start, self._search = cut + 2, PARSE_SLICE
        del buffer[:start]

    async def answer(self, response: httpx.Response) -> StatusAnswer:
        """The answer, counted, once its whole body was fed (``response`` is the answer it
        came with). Raises ``UnexpectedResponseError`` as ``read_status_answer`` does."""
        answer = StatusAnswer(response, [], self._tally)
        if self._wrong is not None:
            raise answer._error(self._wrong)
        rest = _HEAD + self._buffer if self._in_pieces else bytes(self._buffer)
        self._buffer = bytearray()
        last = _messages_of(await _parsed(rest, response), response)
        self._tally.update(await StatusAnswer(response, last).tally())
        return answer


async def parse_status_body(body: bytes, piece: int = PARSE_SLICE) -> Any:
    """``orjson.loads(body)``, in pieces of about ``piece`` bytes with a checkpoint before each
    when the body is the compact ``{"messages":[...]}`` that the API and the emulator write.

    The array's text is cut after a ``}`` that a ``,{`` follows, and each piece is parsed as
    an array of its own. When every piece parses, the whole array is their concatenation (JSON
    arrays joined with commas are an array of the elements of each), so a cut that fell inside
    a string or a nested object cannot go unnoticed: its piece does not parse, and the body is
    then parsed whole, as is any other body.
    """
    if len(body) > piece and body.startswith(_HEAD) and body.endswith(_TAIL):
        view = memoryview(body)
        messages: list[Any] = []
        start, end = len(_HEAD), len(body) - len(_TAIL)
        while start < end:
            cut = body.find(b"},{", start + piece, end)
            stop = end if cut < 0 else cut + 1
            await checkpoint()
            try:
                messages += orjson.loads(b"".join((b"[", view[start:stop], b"]")))
            except orjson.JSONDecodeError:
                break
            start = stop + 1
        else:
            return {"messages": messages}
    await checkpoint()
    return orjson.loads(body)


def _count(tally: Tally, messages: list[Any]) -> str | None:
    """Add ``messages`` to ``tally``, ``_CACHED`` of them at a time; what is wrong with one
    that does not read as the typed model reads it (then the tally is partial), else None."""
    for start in range(0, len(messages), _CACHED):
        keys = _keys(messages[start : start + _CACHED])
        if isinstance(keys, str):
            return keys
        tally.update(keys)
    return None
