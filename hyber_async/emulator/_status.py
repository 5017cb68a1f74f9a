"""Status reports (example 18), delivery reports (examples 19-21) and the delivery-report
lookups (chapter 5, simple and advanced) of stored messages.

A message is not final (``status`` -1, ``processed: true``) until its path through the cascade
ends; then it carries its final codes and ``processed: false`` (as in the documentation's
examples). In a status report a delivered message has ``status``/``substatus``/``hyber_status``
and ``status_text``; an undelivered one has ``error_code`` (its ``hyber_status``) and
``error_text``, as in example 18. ``clicks`` appears only when a channel has ``ctr`` on.

A lookup answers the documented shapes: the simple one with ``status`` -1 and ``last_partner``
``"hyber"`` while not final; the advanced one with a report per channel attempt ended so far,
plus one with ``status`` -1 for the attempt in progress.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Final

import attrs
import orjson

from .._models import Status
from ._cascade import FINAL_CODES, Result
from ._state import Job

__all__ = [
    "advanced_report",
    "clicks",
    "delivery_report",
    "final_time",
    "simple_report",
    "status_items",
    "status_json",
]

NOT_FINAL_PARTNER: Final = "hyber"
"""``last_partner`` / ``delivered_via`` of a message without a final status [doc]."""

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
            clicked = clicks(job, i, ending.delivered)
        else:
            time, processed, tail, clicked = accepted_ms, "true", pending, 0
        if ctr:
            tail = f'{tail},"clicks":{clicked}'
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
        report.update(_sms_fields(job, index, result is Result.DELIVER))
    return report


def _sms_fields(job: Job, index: int, delivered: bool) -> dict[str, int]:
    """``total_sms_parts`` and ``delivered_sms_parts`` of message ``index`` sent by SMS."""
    parts = job.sms_parts()
    total = parts if isinstance(parts, int) else parts[index]
    return {"total_sms_parts": total, "delivered_sms_parts": total if delivered else 0}


def clicks(job: Job, index: int, delivered: bool) -> int:
    """The clicks counted for message ``index`` of ``job``: 0 to 2 once delivered [ours]."""
    return (job.phones[index] + index) % 3 if delivered else 0


def _identity(job: Job, index: int, extra_id: str | None, partner: str) -> dict[str, Any]:
    report: dict[str, Any] = {
        "phone_number": str(job.phones[index]),
        "last_partner": partner,
        "message_id": job.message_id(index),
    }
    if extra_id:
        report["extra_id"] = extra_id
    return report


def _attempt(
    job: Job, index: int, extra_id: str | None, channel: str, result: Result, end: float
) -> dict[str, Any]:
    """The report of one ended channel attempt, in the shape of chapter 5's examples."""
    code = FINAL_CODES[channel, result]
    report = _identity(job, index, extra_id, channel)
    report["time"] = int((job.start + end) * 1000)
    report["status"] = code.status
    report["substatus"] = code.substatus
    report["hyber_status"] = code.hyber_status
    if channel == "sms":
        report.update(_sms_fields(job, index, result is Result.DELIVER))
    return report


def simple_report(job: Job, index: int, extra_id: str | None, now_ms: int) -> dict[str, Any]:
    """Message ``index`` of ``job`` at ``now_ms`` as the simple lookup answers it (chapter 5).

    A final message: its last channel attempt's report. Before that ``last_partner`` "hyber",
    ``status`` -1, ``time`` the acceptance, and no other codes [doc: -1; ours: the rest].
    ``clicks`` only when a channel has ``ctr`` on [doc].
    """
    path = job.paths[index]
    channel, result, _ = job.cascade.final(path)
    final = now_ms >= int(final_time(job, path) * 1000)
    if final:
        report = _attempt(job, index, extra_id, channel, result, job.offsets[path])
    else:
        report = _identity(job, index, extra_id, NOT_FINAL_PARTNER)
        report["time"] = int(job.accepted_at * 1000)
        report["status"] = Status.NOT_FINAL
    if job.ctr:
        report["clicks"] = clicks(job, index, final and result is Result.DELIVER)
    return report


def advanced_report(job: Job, index: int, extra_id: str | None, now_ms: int) -> dict[str, Any]:
    """Message ``index`` of ``job`` at ``now_ms`` as the advanced lookup answers it (chapter 5):
    a report per channel attempt ended by ``now_ms``, then, while the message is not final, one
    with ``status`` -1 for the attempt in progress (``time`` its start) [ours]. ``started``
    once its ``start_time`` has come, ``processing`` from then until final, ``delivered_via``
    its last channel once final ("hyber" before), ``channels`` each with its ``ttl``."""
    started = now_ms >= int(job.start * 1000)
    reports: list[dict[str, Any]] = []
    begun = 0.0
    for channel, result, end in job.cascade.timeline(job.paths[index], job.ttls):
        if not started:
            break
        if now_ms < int((job.start + end) * 1000):
            report = _identity(job, index, extra_id, channel)
            report["time"] = int((job.start + begun) * 1000)
            report["status"] = Status.NOT_FINAL
            reports.append(report)
            break
        reports.append(_attempt(job, index, extra_id, channel, result, end))
        begun = end
    final = bool(reports) and reports[-1]["status"] != Status.NOT_FINAL
    answer: dict[str, Any] = {
        "reports": reports,
        "started": started,
        "processing": started and not final,
        "delivered_via": reports[-1]["last_partner"] if final else NOT_FINAL_PARTNER,
    }
    if job.ctr:
        delivered = final and reports[-1]["status"] == Status.DELIVERED
        answer["clicks"] = clicks(job, index, delivered)
    answer["channels"] = [
        {"channel": channel, "ttl": job.channel_options[channel]["ttl"]} for channel in job.channels
    ]
    return answer
