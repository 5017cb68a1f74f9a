"""Status reports (example 18) and delivery reports (examples 19-21) of stored messages.

A message is not final (``status`` -1, ``processed: true``) until its path through the cascade
ends; then it carries its final codes and ``processed: false`` (as in the documentation's
examples). In a status report a delivered message has ``status``/``substatus``/``hyber_status``
and ``status_text``; an undelivered one has ``error_code`` (its ``hyber_status``) and
``error_text``, as in example 18. ``clicks`` appears only when a channel has ``ctr`` on.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Final

import attrs
import orjson

from .._models import Status
from ._cascade import Result
from ._state import Job

__all__ = ["current_report", "delivery_report", "final_time", "status_items", "status_json"]

SCHEDULED_TEXT: Final = "Scheduled"
"""``status_text`` of a message whose ``start_time`` has not come yet [ours]."""
IN_PROGRESS_TEXT: Final = "In progress"
"""``status_text`` of a message on its way through the cascade [ours]."""


_NEEDS_ESCAPE: Final = re.compile(r'["\\\x01-\x1f]')
"""Characters a JSON string must escape (the column separator ``\\x00`` aside)."""


@attrs.frozen
class _Ending:
    """Everything a status item needs about one path of a job, as JSON text fragments."""

    final_ms: int
    via_sms: bool
    delivered: bool
    tail: str
    """The final fields, e.g. ``,"status_text":"SMS delivered","status":2,...``."""


def _fields(fields: dict[str, Any]) -> str:
    return "," + orjson.dumps(fields).decode()[1:-1]


def _endings(job: Job) -> list[_Ending]:
    endings = []
    for index, offset in enumerate(job.offsets):
        channel, result, code = job.cascade.final(index)
        delivered = result is Result.DELIVER
        if delivered:
            fields: dict[str, Any] = {
                "status_text": code.text,
                "status": code.status,
                "substatus": code.substatus,
                "hyber_status": code.hyber_status,
            }
        else:
            fields = {"error_text": code.text, "error_code": code.hyber_status}
        final_ms = int((job.start + offset) * 1000)
        endings.append(_Ending(final_ms, channel == "sms", delivered, _fields(fields)))
    return endings


def final_time(job: Job, path: int) -> float:
    """Emulated epoch seconds when a message of ``path`` becomes final."""
    return job.start + job.offsets[path]


def status_json(job: Job, now_ms: int, indices: Sequence[int] | None = None) -> bytes:
    """The status report of ``job`` (or of its messages ``indices``) at ``now_ms``, as the
    JSON body of the status endpoint.

    Written as JSON text from per-path fragments, one f-string per message: no ``dict`` per
    message, so a 50,000-message report takes tens of milliseconds.
    """
    endings = _endings(job)
    phones = job.phones
    paths = job.paths
    extra_ids = job.extra_ids.values()
    plain = _NEEDS_ESCAPE.search("".join(extra_ids)) is None
    parts = job.sms_parts()
    prefix = job.message_prefix
    ctr = job.ctr
    accepted_ms = int(job.accepted_at * 1000)
    pending_text = SCHEDULED_TEXT if now_ms < int(job.start * 1000) else IN_PROGRESS_TEXT
    pending = _fields({"status_text": pending_text, "status": Status.NOT_FINAL})
    items: list[str] = []
    append = items.append
    for i in range(job.count) if indices is None else indices:
        ending = endings[paths[i]]
        total = parts if isinstance(parts, int) else parts[i]
        extra_id = extra_ids[i]
        if not extra_id:
            extra = ""
        elif plain:
            extra = f',"extra_id":"{extra_id}"'
        else:
            extra = ',"extra_id":' + orjson.dumps(extra_id).decode()
        if now_ms >= ending.final_ms:
            time, processed = ending.final_ms, "false"
            if ending.delivered:
                delivered_parts = total if ending.via_sms else 0
                tail = f',"delivered_sms_parts":{delivered_parts}{ending.tail}'
            else:
                tail = ending.tail
            clicks = (phones[i] + i) % 3 if ending.delivered else 0
        else:
            time, processed, tail, clicks = accepted_ms, "true", pending, 0
        if ctr:
            tail = f'{tail},"clicks":{clicks}'
        append(
            f'{{"time":{time},"phone_number":"{phones[i]}","message_id":"{prefix}{i:012x}"'
            f'{extra},"processed":{processed},"accepted":true,"total_sms_parts":{total}{tail}}}'
        )
    return ('{"messages":[' + ",".join(items) + "]}").encode()


def status_items(
    job: Job, now_ms: int, indices: Sequence[int] | None = None
) -> list[dict[str, Any]]:
    """The status report items of ``job`` (or of its messages ``indices``) at ``now_ms``."""
    items: list[dict[str, Any]] = orjson.loads(status_json(job, now_ms, indices))["messages"]
    return items


def delivery_report(
    job: Job, index: int, extra_id: str | None, *, number_as_string: bool
) -> dict[str, Any]:
    """The delivery report of message ``index`` of ``job`` (which must be final).

    ``number`` is a string in batched reports and a number in single ones, as in the
    documentation's examples 20 and 19.
    """
    path = job.paths[index]
    channel, result, code = job.cascade.final(path)
    phone = job.phones[index]
    report: dict[str, Any] = {
        "number": str(phone) if number_as_string else phone,
        "time": int(final_time(job, path) * 1000),
        "status": code.status,
        "substatus": code.substatus,
        "hyber_status": code.hyber_status,
        "message_id": job.message_id(index),
    }
    if extra_id:
        report["extra_id"] = extra_id
    report["sent_via"] = channel
    if channel == "sms":
        parts = job.sms_parts()
        total = parts if isinstance(parts, int) else parts[index]
        report["total_sms_parts"] = total
        report["delivered_sms_parts"] = total if result is Result.DELIVER else 0
    return report


def current_report(job: Job, index: int, extra_id: str | None, now_ms: int) -> dict[str, Any]:
    """Message ``index`` of ``job`` at ``now_ms`` as the delivery-report lookup answers it.

    A final message gives its delivery report (example 19, ``number`` as a number). Before that
    the same shape with ``status`` -1 (not final), ``time`` the acceptance time, and none of the
    final fields (``substatus``, ``hyber_status``, ``sent_via``, SMS parts) [ours].
    """
    if now_ms >= int(final_time(job, job.paths[index]) * 1000):
        return delivery_report(job, index, extra_id, number_as_string=False)
    report: dict[str, Any] = {
        "number": job.phones[index],
        "time": int(job.accepted_at * 1000),
        "status": Status.NOT_FINAL,
        "message_id": job.message_id(index),
    }
    if extra_id:
        report["extra_id"] = extra_id
    return report
