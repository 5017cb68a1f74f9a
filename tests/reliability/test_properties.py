"""Properties (Hypothesis): random inputs and fault schedules; random and mutated answers.

Profiles: by default a CI profile (few examples, seconds); ``HYBER_FULL=1`` runs the full
profile (many more examples), e.g.
``HYBER_FULL=1 python -m pytest tests/reliability/test_properties.py``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from typing import Any, Final

import httpx
import orjson
import pytest
from _support import CASCADE as CAMPAIGN
from conftest import FIXTURES
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import hyber_async as hy
from hyber_async._codec import decode_answer
from hyber_async._errors import raise_for_answer
from hyber_async.testing import emulated_client

pytestmark = pytest.mark.slow  # Hypothesis runs many sends

FULL: Final = os.environ.get("HYBER_FULL") == "1"
"""The full profile: ``HYBER_FULL=1``."""
SENDS: Final = settings(
    max_examples=2_000 if FULL else 25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
"""Random campaigns against the in-process emulator (each example is a whole send)."""
PARSES: Final = settings(max_examples=20_000 if FULL else 300, deadline=None)
"""Random and mutated bodies fed to one parser."""

MAX_SIZE: Final = 3_000
MAX_REQUESTS: Final = 40
"""Chunks per send at most, so that an example stays fast."""
DEADLINE: Final = 0.25
"""The client's total deadline per request; a long ``slow`` answer overruns it."""


# --- (a) random sends under random fault schedules --------------------------------------------


def fault_steps(refusals: bool) -> st.SearchStrategy[dict[str, Any]]:
    """One step of a schedule: fault settings applied at once (``Faults.update``).

    A 503 with ``Retry-After`` is a refusal to the client (resent; see ``RetryPolicy``), so a
    schedule either injects such refusals (``refusals``) or 5xx answers after processing
    (``error_after_accept``), never both: a server that processed a request and then asks for
    it again is outside what any client can handle without duplicates.
    """
    optional: dict[str, st.SearchStrategy[Any]] = {
        "rate_limit": st.integers(0, 3),
        "retry_after": st.just(0),
        "errors": st.integers(0, 3),
        "error_rate": st.sampled_from([0.0, 0.1, 0.3]),
        "error_status": st.sampled_from([500, 502, 503]),
        "reset": st.integers(0, 2),
        "reset_before": st.integers(0, 2),
        "slow": st.integers(0, 1),
        "slow_seconds": st.sampled_from([0.01, 2 * DEADLINE]),
    }
    if refusals:
        optional["error_retry_after"] = st.sampled_from([None, 0])
    else:
        optional["error_after_accept"] = st.booleans()
    return st.fixed_dictionaries({}, optional=optional)


@st.composite
def sends(draw: st.DrawFn) -> dict[str, Any]:
    """A send: input size, chunking, concurrency, sync or not, invalid items, fault schedule."""
    size = draw(st.integers(0, MAX_SIZE))
    requests = draw(st.integers(1, MAX_REQUESTS))
    return {
        "size": size,
        "chunk_size": max(1, math.ceil(size / requests)),
        "concurrency": draw(st.integers(1, 8)),
        "sync": draw(st.booleans()),
        "invalid": draw(st.sets(st.integers(0, size - 1), max_size=4)) if size else set(),
        "schedule": draw(st.lists(fault_steps(draw(st.booleans())), min_size=1, max_size=4)),
    }


def rows(size: int, invalid: set[int]) -> Iterator[dict[str, Any]]:
    """Broadcast rows ``p-{index}``; those in ``invalid`` have a phone number too short."""
    for i in range(size):
        phone = 12345 if i in invalid else 380_500_000_000 + i
        yield {"phone_number": phone, "extra_id": f"p-{i}", "name": "Ann"}


@pytest.mark.anyio
@SENDS
@given(sends())
async def test_every_recipient_is_accounted_once_under_any_fault_schedule(
    send: dict[str, Any],
) -> None:
    """Whatever the faults: the report partitions the input, accepted ones are in the ledger
    once, NOT_SENT ones never, UNKNOWN ones at most once, and nothing is accepted twice."""
    size = send["size"]
    schedule: list[dict[str, Any]] = send["schedule"]
    async with emulated_client(timeouts=hy.Timeouts(total=DEADLINE)) as env:
        faults = env.emulator.faults
        faults.update(schedule[0])
        steps = iter(schedule[1:])

        def next_step(_: hy.Progress) -> None:
            step = next(steps, None)
            if step is not None:
                faults.update(step)

        report = await env.client.stream_broadcast(
            CAMPAIGN,
            rows(size, send["invalid"]),
            chunk_size=send["chunk_size"],
            concurrency=send["concurrency"],
            sync=send["sync"],
            on_progress=next_step,
        )
    ledger = env.emulator.ledger
    event("outcomes: " + (", ".join(o.value for o, n in report.counts.items() if n) or "none"))
    assert report.complete
    assert report.read == size
    assert sum(report.counts.values()) == size
    failed = {f.index: f for f in report.failures()}
    assert len(failed) == size - report.accepted  # each failure once, the rest accepted
    counts = ledger.counts()
    assert set(counts) <= {f"p-{i}" for i in range(size)}
    unknown_in_ledger = 0
    for index in range(size):
        count = counts.get(f"p-{index}", 0)
        failure = failed.get(index)
        if failure is None:
            assert count == 1, index
            continue
        assert failure.extra_id == f"p-{index}"
        if failure.outcome is hy.Outcome.UNKNOWN:
            assert count <= 1, index
            unknown_in_ledger += count
        else:
            assert count == 0, (index, failure)
    for index in send["invalid"]:
        assert failed[index].outcome is hy.Outcome.NOT_SENT
    event(f"unknown and in the ledger: {unknown_in_ledger > 0}")
    assert ledger.accepted == report.accepted + unknown_in_ledger
    assert ledger.duplicates() == {}


# --- (b) parsers fed random and mutated JSON -------------------------------------------------

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**64), max_value=2**65)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
"""Any JSON value."""


def example(number: int) -> Any:
    """The spec's example ``number`` as parsed JSON."""
    (path,) = FIXTURES.glob(f"{number:02d}-*.json")
    return orjson.loads(path.read_bytes())


@st.composite
def mutated(draw: st.DrawFn, value: Any, depth: int = 0) -> Any:
    """``value`` with random changes at any depth: keys dropped, values replaced by any JSON,
    containers emptied or wrapped."""
    if depth > 4 or draw(st.integers(0, 9)) == 0:
        return draw(JSON_VALUES)
    if isinstance(value, dict):
        changed = dict(value)
        for key in draw(st.lists(st.sampled_from(sorted(value)), max_size=3)) if value else []:
            if draw(st.booleans()):
                changed.pop(key, None)
            else:
                changed[key] = draw(mutated(value[key], depth + 1))
        if draw(st.integers(0, 9)) == 0:
            changed[draw(st.text(max_size=8))] = draw(JSON_VALUES)
        return changed
    if isinstance(value, list):
        if not value or draw(st.integers(0, 9)) == 0:
            return draw(st.lists(JSON_VALUES, max_size=3))
        index = draw(st.integers(0, len(value) - 1))
        return [*value[:index], draw(mutated(value[index], depth + 1)), *value[index + 1 :]]
    return draw(JSON_VALUES) if draw(st.booleans()) else value


@st.composite
def bodies(draw: st.DrawFn, *examples: int) -> bytes:
    """A body derived from one of ``examples``: mutated JSON, or its bytes cut or corrupted;
    sometimes any JSON or any bytes at all. Encoded by the standard library, which writes
    integers beyond 64 bits too."""
    base = example(draw(st.sampled_from(examples)))
    kind = draw(st.sampled_from(["mutated", "mutated", "cut", "flipped", "any-json", "bytes"]))
    if kind == "any-json":
        return json.dumps(draw(JSON_VALUES)).encode()
    if kind == "bytes":
        return draw(st.binary(max_size=64))
    if kind == "mutated":
        return json.dumps(draw(mutated(base))).encode()
    raw = orjson.dumps(base)
    if kind == "cut":
        return raw[: draw(st.integers(0, len(raw) - 1))]
    position = draw(st.integers(0, len(raw) - 1))
    return raw[:position] + bytes([draw(st.integers(0, 255))]) + raw[position + 1 :]


def answer(body: bytes, status: int = 200) -> httpx.Response:
    """``body`` as the server's answer to a request of the client."""
    request = httpx.Request("POST", "https://hyber.test/1234/broadcast")
    return httpx.Response(status, content=body, request=request)


ANSWERS: Final[list[tuple[type[Any], int]]] = [
    (hy.JobAccepted, 16),
    (hy.SyncResult, 17),
    (hy.JobStatus, 18),
    (hy.DeliveryReport, 19),
]
"""Each answer model and the example it is read from (the DR lookup answers example 19)."""


@pytest.mark.parametrize(("model", "number"), ANSWERS, ids=lambda v: getattr(v, "__name__", v))
def test_the_examples_decode(model: type[Any], number: int) -> None:
    """Each unmutated example decodes as its model (the mutations start from valid input)."""
    assert isinstance(decode_answer(answer(orjson.dumps(example(number))), model), model)


@pytest.mark.parametrize(("model", "number"), ANSWERS, ids=lambda v: getattr(v, "__name__", v))
def test_answers_raise_only_unexpected_response_error(model: type[Any], number: int) -> None:
    """decode_answer on random and mutated bodies returns the model or raises
    UnexpectedResponseError, nothing else."""

    @PARSES
    @given(bodies(number))
    def decode(body: bytes) -> None:
        try:
            decoded = decode_answer(answer(body), model)
        except hy.UnexpectedResponseError:
            return
        assert isinstance(decoded, model)

    decode()


@PARSES
@given(bodies(19, 20, 21))
def test_callbacks_raise_only_report_parse_error(body: bytes) -> None:
    """parse_delivery_reports on random and mutated callbacks: reports or ReportParseError."""
    try:
        reports = hy.parse_delivery_reports(body)
    except hy.ReportParseError:
        return
    assert all(isinstance(report, hy.DeliveryReport) for report in reports)


ERROR_STATUSES = st.sampled_from([200, 201, 400, 401, 403, 404, 413, 422, 429, 500, 503, 599])
RETRY_AFTER = st.sampled_from(
    ["1", "0.5", "-3", "nan", "inf", "1e999", "Wed, 21 Oct 2015"]
) | st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=8)


@PARSES
@given(ERROR_STATUSES, bodies(16, 17), st.none() | RETRY_AFTER)
def test_error_answers_raise_only_api_errors(status: int, body: bytes, retry: str | None) -> None:
    """raise_for_answer on any status, body and Retry-After: returns on a 2xx without an error
    body, else raises an APIError whose retry_after is absent or a finite number >= 0."""
    response = answer(body, status)
    if retry is not None:
        response.headers["retry-after"] = retry
    error: hy.APIError | None = None
    try:
        raise_for_answer(response)
    except hy.APIError as raised:
        error = raised
    if error is None:
        assert 200 <= status < 300
        return
    assert error.status_code == status
    delay = error.retry_after
    assert delay is None or (math.isfinite(delay) and delay >= 0)
