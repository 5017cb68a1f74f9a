"""The recorder: latencies in HDR histograms, answers and outcomes counted, a per-second series;
its JSON result, and the merge of results (from several workers or machines).

Latencies are recorded in microseconds, with 3 significant digits, up to one hour. The
*corrected* latency of a request runs from its intended start (the schedule's) to its answer;
the *uncorrected* one from the moment it could actually start (a connection slot was free),
which is what a tool that waits for a slot before it starts the clock reports: it hides a
server stall (coordinated omission). In the closed loop the two are the same.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

import attrs
import httpx
from hdrh.histogram import HdrHistogram  # type: ignore[import-untyped]

from .._errors import InvalidValueError, parse_retry_after
from .._send_report import Outcome

__all__ = [
    "PERCENTILES",
    "RESULT_VERSION",
    "Recorder",
    "decode",
    "encode",
    "encoded_equal",
    "merge_results",
    "new_histogram",
    "summary_ms",
]

RESULT_VERSION: Final = 1
PERCENTILES: Final = {"p50": 50.0, "p90": 90.0, "p99": 99.0, "p999": 99.9}
_HIGHEST_US: Final = 3_600_000_000
_SECOND_DIGITS: Final = 2
"""Significant digits of the per-second histograms (small: one per second of the run)."""


def new_histogram(digits: int = 3) -> Any:
    """An empty latency histogram (microseconds, 1 us to 1 h)."""
    return HdrHistogram(1, _HIGHEST_US, digits)


def encode(histogram: Any) -> str:
    """The histogram in HdrHistogram's compressed base64 form."""
    data: bytes = histogram.encode()
    return data.decode("ascii")


def decode(text: str) -> Any:
    """A histogram from ``encode``'s text."""
    return HdrHistogram.decode(text.encode("ascii"))


def summary_ms(histogram: Any) -> dict[str, float]:
    """``p50``, ``p90``, ``p99``, ``p999``, ``max`` and ``mean`` of ``histogram``, in ms."""
    if histogram.get_total_count() == 0:
        return dict.fromkeys((*PERCENTILES, "max", "mean"), 0.0)
    figures = {name: histogram.get_value_at_percentile(p) / 1000 for name, p in PERCENTILES.items()}
    figures["max"] = histogram.get_max_value() / 1000
    figures["mean"] = round(histogram.get_mean_value() / 1000, 3)
    return figures


@attrs.define
class _Second:
    recipients: int = 0
    requests: int = 0
    answered: int = 0
    latency: Any = attrs.field(factory=lambda: new_histogram(_SECOND_DIGITS))


def _count(counts: dict[str, int], key: str, n: int = 1) -> None:
    counts[key] = counts.get(key, 0) + n


@attrs.define
class Recorder:
    """Everything measured in one run; ``to_json`` is the result, ``from_json`` reads it back
    and ``merge`` adds another run's (workers sharing a rate)."""

    corrected: Any = attrs.field(factory=new_histogram)
    uncorrected: Any = attrs.field(factory=new_histogram)
    statuses: dict[str, int] = attrs.field(factory=dict)
    """Every answer (each attempt) by HTTP status; ``"error"`` for no answer."""
    errors: dict[str, int] = attrs.field(factory=dict)
    """Failed requests (after retries) by ``"status/error_code"`` or exception name."""
    outcomes: dict[str, int] = attrs.field(factory=lambda: {o.value: 0 for o in Outcome})
    retry_after_answers: int = 0
    retry_after_seconds: float = 0.0
    requests: int = 0
    sent_recipients: int = 0
    send_window: float = 0.0
    """Seconds from the start to the end of the send window (the duration, or the last late
    start): the achieved rate is ``sent_recipients / send_window``."""
    elapsed: float = 0.0
    """Seconds from the start to the last answer."""
    in_flight: int = 0
    seconds: dict[int, _Second] = attrs.field(factory=dict)
    cpu_seconds: float = 0.0
    job_starts: dict[str, float] = attrs.field(factory=dict)
    """Each accepted job's request start (seconds into the run), to follow it (not saved)."""
    origin: float = 0.0
    """The run's start on the event loop's clock (not saved)."""
    to_final: Any = attrs.field(factory=new_histogram)
    """Followed jobs: from the request's start to the poll that saw every message final."""
    follow: dict[str, int] | None = None
    """Followed jobs' messages: ``jobs``, ``final_jobs``, ``delivered``, ``expired``,
    ``failed``, ``pending`` (``None``: not followed)."""
    info: dict[str, Any] = attrs.field(factory=dict)
    """The workload's settings and the run's notes (target rate, endpoint, warnings...)."""
    workers: list[dict[str, Any]] = attrs.field(factory=list)

    def _second(self, t: float) -> _Second:
        key = max(int(t), 0)
        second = self.seconds.get(key)
        if second is None:
            second = self.seconds[key] = _Second()
        return second

    async def on_response(self, response: httpx.Response) -> None:
        """httpx response hook: count each answer to a send (a POST; not the polls of
        ``follow_jobs``) by status, and its ``Retry-After``."""
        if response.request.method != "POST":
            return
        _count(self.statuses, str(response.status_code))
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        if retry_after is not None and response.status_code in (429, 503):
            self.retry_after_answers += 1
            self.retry_after_seconds += retry_after

    def started(self, actual: float, recipients: int) -> None:
        """A request of ``recipients`` started ``actual`` seconds into the run."""
        self.in_flight += 1
        self.requests += 1
        self.sent_recipients += recipients
        second = self._second(actual)
        second.requests += 1
        second.recipients += recipients

    def finished(
        self,
        intended: float,
        actual: float,
        end: float,
        outcomes: Mapping[Outcome, int],
        error: str | None = None,
    ) -> None:
        """A request intended at ``intended``, started at ``actual``, answered at ``end``
        (seconds into the run), whose recipients ended in ``outcomes``."""
        self.in_flight -= 1
        corrected = max(round((end - intended) * 1e6), 1)
        self.corrected.record_value(min(corrected, _HIGHEST_US))
        self.uncorrected.record_value(min(max(round((end - actual) * 1e6), 1), _HIGHEST_US))
        self._second(intended).latency.record_value(min(corrected, _HIGHEST_US))
        self._second(end).answered += sum(outcomes.values())
        for outcome, n in outcomes.items():
            self.outcomes[outcome.value] += n
        if error is not None:
            _count(self.errors, error)
        self.elapsed = max(self.elapsed, end)

    def merge(self, other: Recorder) -> None:
        """Add ``other``'s figures to these (histograms added, counts summed, per second)."""
        self.corrected.add(other.corrected)
        self.uncorrected.add(other.uncorrected)
        for mine, theirs in (
            (self.statuses, other.statuses),
            (self.errors, other.errors),
            (self.outcomes, other.outcomes),
        ):
            for key, n in theirs.items():
                _count(mine, key, n)
        self.retry_after_answers += other.retry_after_answers
        self.retry_after_seconds += other.retry_after_seconds
        self.requests += other.requests
        self.sent_recipients += other.sent_recipients
        self.send_window = max(self.send_window, other.send_window)
        self.elapsed = max(self.elapsed, other.elapsed)
        self.cpu_seconds += other.cpu_seconds
        if other.follow is not None:
            self.follow = self.follow or {}
            for key, n in other.follow.items():
                _count(self.follow, key, n)
            self.to_final.add(other.to_final)
        for t, theirs_second in other.seconds.items():
            second = self._second(t)
            second.recipients += theirs_second.recipients
            second.requests += theirs_second.requests
            second.answered += theirs_second.answered
            second.latency.add(theirs_second.latency)

    def to_json(self) -> dict[str, Any]:
        """The result: every figure, and the encoded histograms (see the README)."""
        window = self.send_window or self.elapsed
        span = max(self.send_window, self.elapsed)
        info = dict(self.info)
        target = info.get("target_rate")
        result: dict[str, Any] = {
            "version": RESULT_VERSION,
            "target_rate": target,
            "achieved_rate": round(self.sent_recipients / window, 3) if window else 0.0,
            "throughput": round(self.outcomes[Outcome.ACCEPTED.value] / span, 3) if span else 0.0,
            "duration_s": info.pop("duration_s", None),
            "send_window_s": round(self.send_window, 6),
            "elapsed_s": round(self.elapsed, 6),
            "recipients": self.sent_recipients,
            "request_count": self.requests,
            "requests": dict(sorted(self.statuses.items())),
            "errors": dict(sorted(self.errors.items())),
            "outcomes": dict(self.outcomes),
            "retry_after": {
                "answers": self.retry_after_answers,
                "seconds": round(self.retry_after_seconds, 3),
            },
            "latency_ms": summary_ms(self.corrected),
            "latency_uncorrected_ms": summary_ms(self.uncorrected),
            "per_second": [
                {
                    "t": t,
                    "recipients": s.recipients,
                    "requests": s.requests,
                    "answered": s.answered,
                    "p50_ms": summary_ms(s.latency)["p50"],
                    "p99_ms": summary_ms(s.latency)["p99"],
                    "histogram": encode(s.latency),
                }
                for t, s in sorted(self.seconds.items())
            ],
            "cpu_s": round(self.cpu_seconds, 3),
            "histogram": encode(self.corrected),
            "histogram_uncorrected": encode(self.uncorrected),
        }
        if self.follow is not None:
            result["follow"] = {
                **self.follow,
                "time_to_final_ms": summary_ms(self.to_final),
                "histogram": encode(self.to_final),
            }
        result.update(info)
        if self.workers:
            result["workers"] = self.workers
        return result

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Recorder:
        """The recorder a ``to_json`` result came from (its counts, histograms, series)."""
        recorder = cls(
            corrected=decode(data["histogram"]),
            uncorrected=decode(data["histogram_uncorrected"]),
            statuses=dict(data["requests"]),
            errors=dict(data["errors"]),
            outcomes={o.value: int(data["outcomes"].get(o.value, 0)) for o in Outcome},
            retry_after_answers=data["retry_after"]["answers"],
            retry_after_seconds=data["retry_after"]["seconds"],
            requests=data["request_count"],
            sent_recipients=data["recipients"],
            send_window=data["send_window_s"],
            elapsed=data["elapsed_s"],
            cpu_seconds=data.get("cpu_s", 0.0),
        )
        follow = data.get("follow")
        if follow is not None:
            recorder.to_final = decode(follow["histogram"])
            recorder.follow = {
                k: v for k, v in follow.items() if k not in ("time_to_final_ms", "histogram")
            }
        for row in data["per_second"]:
            recorder.seconds[int(row["t"])] = _Second(
                row["recipients"], row["requests"], row["answered"], decode(row["histogram"])
            )
        return recorder


def merge_results(results: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """One result of several runs that shared a load (workers, machines): histograms and
    series merged losslessly; the target rates add up; each run's own result kept under
    ``workers`` (without its per-second series)."""
    results = list(results)
    if not results:
        raise InvalidValueError("nothing to merge")
    merged = Recorder()
    for result in results:
        merged.merge(Recorder.from_json(result))
    skip = {*_MEASURED, "workers"}
    merged.info = {k: v for k, v in results[0].items() if k not in skip}
    merged.info["duration_s"] = results[0].get("duration_s")
    targets = [r.get("target_rate") for r in results]
    merged.info["target_rate"] = None if None in targets else sum(t for t in targets if t)
    merged.workers = [
        {k: v for k, v in r.items() if k not in ("per_second", "workers")} for r in results
    ]
    merged.info["client_cpu"] = max(float(r.get("client_cpu", 0.0)) for r in results)
    warnings = [w for r in results for w in r.get("warnings", [])]
    merged.info["warnings"] = list(dict.fromkeys(warnings))
    return merged.to_json()


_MEASURED: Final = frozenset(
    {
        "version",
        "achieved_rate",
        "throughput",
        "send_window_s",
        "elapsed_s",
        "recipients",
        "request_count",
        "requests",
        "errors",
        "outcomes",
        "retry_after",
        "latency_ms",
        "latency_uncorrected_ms",
        "per_second",
        "cpu_s",
        "histogram",
        "histogram_uncorrected",
        "follow",
    }
)


def encoded_equal(a: str, b: str) -> bool:
    """Whether two encoded histograms hold the same counts."""
    return bool(decode(a).equals(decode(b)))
