"""Jobs and their messages, in compact columnar storage.

No object or ``dict`` is kept per message. A job keeps its envelope once and one column per
message field: phone numbers in an ``array('q')``, the path of each message through the cascade
in ``bytes``, and strings (``extra_id``, batch texts, the broadcast ``%key%`` values that are
used) joined into a single ``str``. ``message_id`` is never stored: it is the job id with its
last group replaced by the message's index in the job, so it is unique and maps back to its job.
"""

from __future__ import annotations

import random
import threading
import uuid
from array import array
from collections.abc import Mapping, Sequence
from typing import Any, Final

from .._models import Kind
from .._validation import GSM7_EXTENSION, is_gsm7, render
from ._cascade import Cascade

__all__ = ["Job", "Store", "StringColumn", "sms_parts"]

_SEPARATOR: Final = "\x00"
_PREFIX_LENGTH: Final = 24
"""A message id is the job id's first 24 characters plus 12 hex digits of the index."""
SMS_SINGLE_GSM7: Final = 160
SMS_PART_GSM7: Final = 153
SMS_SINGLE_UCS2: Final = 70
SMS_PART_UCS2: Final = 67


def sms_parts(text: str) -> int:
    """SMS parts of ``text``: GSM-7 160 single / 153 per part (extension characters count
    twice), otherwise UCS-2 70 / 67 [doc]."""
    length = len(text)
    if length <= SMS_SINGLE_UCS2:
        return 1
    if is_gsm7(text):
        length += sum(text.count(c) for c in GSM7_EXTENSION)
        single, part = SMS_SINGLE_GSM7, SMS_PART_GSM7
    else:
        single, part = SMS_SINGLE_UCS2, SMS_PART_UCS2
    return 1 if length <= single else -(-length // part)


class StringColumn:
    """A column of strings, held as one joined ``str`` (a list only if a value can't be joined)."""

    __slots__ = ("_blob", "_count", "_values")

    def __init__(self, values: Sequence[Any]) -> None:
        """Store ``values`` (strings, or anything when the column falls back to a tuple)."""
        self._count = len(values)
        self._values: tuple[Any, ...] | None = None
        self._blob = ""
        try:
            blob = _SEPARATOR.join(values)
        except TypeError:
            self._values = tuple(values)
            return
        if blob.count(_SEPARATOR) != self._count - 1:
            self._values = tuple(values)
        else:
            self._blob = blob

    def __len__(self) -> int:
        return self._count

    def values(self) -> list[Any]:
        """Every value, in order."""
        if self._values is not None:
            return list(self._values)
        return self._blob.split(_SEPARATOR) if self._count else []

    @property
    def nbytes(self) -> int:
        """Approximate memory held by the column's data."""
        if self._values is not None:
            return 8 * self._count + sum(len(str(v)) + 49 for v in self._values)
        return len(self._blob.encode("utf-8"))


class Job:
    """A job: the messages of one accepted request, sharing one envelope and one start time."""

    __slots__ = (
        "_parts",
        "accepted_at",
        "callback_url",
        "cascade",
        "channel_options",
        "channels",
        "client_id",
        "count",
        "ctr",
        "extra_ids",
        "job_id",
        "kind",
        "message_prefix",
        "offsets",
        "paths",
        "phones",
        "placeholders",
        "start",
        "texts",
        "ttls",
        "variables",
    )

    def __init__(
        self,
        *,
        job_id: str,
        client_id: str,
        kind: Kind,
        envelope: Mapping[str, Any],
        items: Sequence[Mapping[str, Any]],
        placeholders: frozenset[str],
        cascade: Cascade,
        paths: bytes,
        accepted_at: float,
        start: float,
    ) -> None:
        """Store the accepted ``items`` of a request (wire dicts, already validated)."""
        self.job_id = job_id
        self.client_id = client_id
        self.kind = kind
        self.channels: tuple[str, ...] = cascade.channels
        options = envelope["channel_options"]
        self.channel_options: dict[str, dict[str, Any]] = {
            c: dict(options[c]) for c in self.channels
        }
        self.callback_url: str | None = envelope.get("callback_url")
        self.ctr = any(o.get("ctr") is True for o in self.channel_options.values())
        self.accepted_at = accepted_at
        self.start = start
        self.count = len(items)
        self.message_prefix = job_id[:_PREFIX_LENGTH]
        self.cascade = cascade
        self.paths = paths
        self.ttls = {c: float(o["ttl"]) for c, o in self.channel_options.items()}
        self.offsets = cascade.offsets(self.ttls)
        self.phones = array("q", [m["phone_number"] for m in items])
        self.extra_ids = StringColumn([m.get("extra_id") or "" for m in items])
        self.texts = StringColumn([m["text"] for m in items]) if kind is Kind.BATCH else None
        self.placeholders = tuple(sorted(placeholders))
        self.variables = {k: StringColumn([m[k] for m in items]) for k in self.placeholders}
        self._parts: bytes | int | None = None

    def message_id(self, index: int) -> str:
        """The message id of the ``index``-th message."""
        return f"{self.message_prefix}{index:012x}"

    def extra_id_list(self) -> list[str | None]:
        """The ``extra_id`` of every message (``None`` where absent)."""
        return [e or None for e in self.extra_ids.values()]

    def sms_parts(self) -> bytes | int:
        """SMS parts of every message (``bytes``), or one count for all (``int``; 0 without
        an SMS channel). Worked out on first use."""
        if self._parts is None:
            if "sms" not in self.channels:
                self._parts = 0
            elif self.texts is not None:
                self._parts = bytes(min(255, sms_parts(t)) for t in self.texts.values())
            else:
                template = self.channel_options["sms"].get("text") or ""
                used = [k for k in self.placeholders if f"%{k}%" in template]
                if not used:
                    self._parts = sms_parts(template)
                else:
                    columns = [self.variables[k].values() for k in used]
                    self._parts = bytes(
                        min(255, sms_parts(_fill(template, used, row)))
                        for row in zip(*columns, strict=True)
                    )
        return self._parts

    def render(self, index: int) -> dict[str, dict[str, Any]]:
        """The channel options of message ``index`` as sent: ``%key%`` filled with the
        recipient's values in every option string, or the batch text on every channel."""
        rendered: dict[str, dict[str, Any]] = {}
        if self.texts is not None:
            text = self.texts.values()[index]
            for channel, options in self.channel_options.items():
                rendered[channel] = {**options, "text": text}
            return rendered
        keys = list(self.placeholders)
        row = [self.variables[k].values()[index] for k in keys]
        for channel, options in self.channel_options.items():
            rendered[channel] = {
                name: _fill(value, keys, row) if isinstance(value, str) else value
                for name, value in options.items()
            }
        return rendered

    @property
    def nbytes(self) -> int:
        """Approximate memory held by the per-message columns."""
        columns = [self.extra_ids, *self.variables.values()]
        if self.texts is not None:
            columns.append(self.texts)
        total = self.phones.itemsize * len(self.phones) + len(self.paths)
        return total + sum(c.nbytes for c in columns)


def _fill(template: str, keys: Sequence[str], values: Sequence[Any]) -> str:
    return render(template, dict(zip(keys, values, strict=True)))


class Store:
    """Every job, by job id, and the generator of job ids (seeded)."""

    def __init__(self, seed: int) -> None:
        """An empty store whose job ids follow from ``seed``."""
        self._rng = random.Random(f"jobs/{seed}")
        self._lock = threading.Lock()
        self._jobs: dict[str, Job] = {}
        self._by_prefix: dict[str, Job] = {}

    def __len__(self) -> int:
        return len(self._jobs)

    def new_job_id(self) -> str:
        """A fresh job id (a version-4 UUID) whose message-id prefix is unused."""
        with self._lock:
            while True:
                job_id = str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
                if job_id[:_PREFIX_LENGTH] not in self._by_prefix:
                    return job_id

    def add(self, job: Job) -> None:
        """Keep ``job``."""
        with self._lock:
            self._jobs[job.job_id] = job
            self._by_prefix[job.message_prefix] = job

    def job(self, job_id: str) -> Job | None:
        """The job ``job_id``, if any."""
        return self._jobs.get(job_id)

    def jobs(self) -> list[Job]:
        """Every job, oldest first."""
        with self._lock:
            return list(self._jobs.values())

    def find_message(self, message_id: str) -> tuple[Job, int] | None:
        """The job and index of ``message_id``, if it exists."""
        job = self._by_prefix.get(message_id[:_PREFIX_LENGTH])
        if job is None or len(message_id) != _PREFIX_LENGTH + 12:
            return None
        try:
            index = int(message_id[_PREFIX_LENGTH:], 16)
        except ValueError:
            return None
        return (job, index) if 0 <= index < job.count else None
