"""Decode a status report of 50,000 messages: what polling spends on it, and the typed models,
against a plain ``orjson.loads`` of the same bytes.

- ``orjson.loads``: the floor, plain dicts;
- polling, counts only: what ``wait_for_jobs`` spends per answer: each piece of the answer
  parsed, counted by its outcome fields and dropped (``read_status_answer(...,
  keep_messages=False)``), and the job's summary (``summarize_tallies``); freeing the messages
  is part of it (it happens piece by piece);
- polling, answers kept: what ``poll_jobs`` spends per answer when its updates carry the answer:
  the parse, then the tally (``StatusAnswer.tally``) and the summary;
- ``converter.loads(body, JobStatus)``: the typed models (what ``get_status`` builds, and what
  polling built for every answer before issue 14).

Run: ``python benchmarks/decode_status.py [--messages N] [--runs R]``. The report is generated
like the specification's example 18: half delivered (status 2), a quarter expired
(``error_code`` 35015), a quarter still pending (``status`` -1). Prints the median time of each
over ``R`` runs (interleaved) and its ratio to the floor.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

import anyio
import httpx
import orjson

from hyber_async import JobStatus, converter
from hyber_async._poller import summarize, summarize_tallies
from hyber_async._status_answer import read_status_answer


def status_item(i: int) -> dict[str, Any]:
    """One status-report message shaped like example 18 (delivered, expired or pending)."""
    item: dict[str, Any] = {
        "time": 1477417294667 + i,
        "phone_number": str(380960000000 + i),
        "message_id": str(uuid.UUID(int=i)),
        "extra_id": f"AD-{i}",
        "processed": False,
        "accepted": True,
        "total_sms_parts": 1,
    }
    kind = i % 4
    if kind in (0, 1):
        item.update(
            delivered_sms_parts=1,
            status_text="SMS delivered",
            status=2,
            substatus=23,
            hyber_status=23011,
            clicks=2,
        )
    elif kind == 2:
        item.update(error_text="SMS expired", error_code=35015, clicks=0)
    else:
        item.update(status=-1, status_text="Sending")
    return item


def status_body(count: int) -> bytes:
    """The JSON body of a status report of ``count`` messages."""
    return orjson.dumps({"messages": [status_item(i) for i in range(count)]})


def timed(func: Callable[[], object]) -> float:
    """One timing of ``func()``, in seconds (freeing its result is not timed)."""
    start = time.perf_counter()
    result = func()
    seconds = time.perf_counter() - start
    del result
    return seconds


async def timed_polling(response: httpx.Response, keep_messages: bool) -> float:
    """One timing of what polling spends on ``response``: parse, tally and summary."""
    start = time.perf_counter()
    answer = await read_status_answer(response, keep_messages=keep_messages)
    summarize_tallies({"job": await answer.tally()})
    seconds = time.perf_counter() - start
    del answer  # freeing what it holds is not timed, as for the others
    return seconds


def main() -> None:
    """Time both decoders and print the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    body = status_body(args.messages)
    decoded = converter.loads(body, JobStatus).messages
    if len(decoded) != args.messages or converter.unstructure(decoded[-1]) != status_item(
        args.messages - 1
    ):
        raise SystemExit("the typed decode does not give back the generated report")
    response = httpx.Response(200, content=body)
    polled = anyio.run(read_status_answer, response)
    tally = anyio.run(polled.tally)
    if summarize_tallies({"job": tally}) != summarize({"job": polled.status}):
        raise SystemExit("the polling summary differs from the one of the typed models")
    counted = anyio.run(lambda: read_status_answer(response, keep_messages=False))
    if anyio.run(counted.tally) != tally:
        raise SystemExit("counting the answer as it is parsed gives another tally")
    times: dict[str, list[float]] = {"loads": [], "counted": [], "kept": [], "typed": []}
    for _ in range(args.runs):  # interleaved, so that the machine's load hits each alike
        times["loads"].append(timed(lambda: orjson.loads(body)))
        times["counted"].append(anyio.run(timed_polling, response, False))
        times["kept"].append(anyio.run(timed_polling, response, True))
        times["typed"].append(timed(lambda: converter.loads(body, JobStatus)))
    median = {name: statistics.median(values) for name, values in times.items()}
    plain = median["loads"]
    print(
        f"status report: {args.messages:,} messages, {len(body) / 1e6:.1f} MB, "
        f"median of {args.runs}\n"
    )
    print("| decode | median | ratio to orjson.loads |")
    print("|---|---:|---:|")
    labels = {
        "loads": "`orjson.loads` (plain dicts)",
        "counted": "polling, counts only (`wait_for_jobs`): pieces parsed, counted, dropped",
        "kept": "polling, answers kept (`poll_jobs`): parse, tally, summary",
        "typed": "`converter.loads(body, JobStatus)` (typed models)",
    }
    for name, label in labels.items():
        print(f"| {label} | {median[name] * 1e3:.1f} ms | {median[name] / plain:.2f}x |")


if __name__ == "__main__":
    main()
