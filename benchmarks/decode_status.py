"""Decode a status report of 50,000 messages: ``converter.loads(body, JobStatus)`` against a
plain ``orjson.loads`` of the same bytes.

Run: ``python benchmarks/decode_status.py [--messages N] [--runs R]``. The report is generated
like the specification's example 18: half delivered (status 2), a quarter expired
(``error_code`` 35015), a quarter still pending (``status`` -1). Prints the best time of each
over ``R`` runs and their ratio.
"""

from __future__ import annotations

import argparse
import time
import uuid
from collections.abc import Callable
from typing import Any

import orjson

from hyber_async import JobStatus, converter


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


def best_of(runs: int, func: Callable[[], object]) -> float:
    """The fastest of ``runs`` timings of ``func()``, in seconds."""
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        func()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    """Time both decoders and print the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    body = status_body(args.messages)
    decoded = converter.loads(body, JobStatus).messages
    if len(decoded) != args.messages or converter.unstructure(decoded[-1]) != status_item(
        args.messages - 1
    ):
        raise SystemExit("the typed decode does not give back the generated report")
    plain = best_of(args.runs, lambda: orjson.loads(body))
    typed = best_of(args.runs, lambda: converter.loads(body, JobStatus))
    print(
        f"status report: {args.messages:,} messages, {len(body) / 1e6:.1f} MB, best of {args.runs}"
    )
    print(f"orjson.loads                     {plain * 1e3:8.1f} ms")
    print(f"converter.loads(..., JobStatus)  {typed * 1e3:8.1f} ms")
    print(f"ratio                            {typed / plain:8.2f}x")
    print(f"typed decode                     {args.messages / typed / 1e6:8.2f} M messages/s")


if __name__ == "__main__":
    main()
