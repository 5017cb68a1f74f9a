"""Issue 14: polling reads a status answer for its outcome fields only, in pieces, and stops
asking for final jobs. Counted in requests and models built, never in time."""

from __future__ import annotations

import random
import tracemalloc
from collections import Counter
from typing import Any

import httpx
import orjson
import pytest
import respx
from _support import make_client
from test_poller import FAST, ScriptedAPI, report, router  # noqa: F401  (router: a fixture)

import hyber_async as hy
from hyber_async import _status_answer
from hyber_async._poller import PollOptions, poll_jobs, summarize, summarize_tallies
from hyber_async._status_answer import StatusCounter, parse_status_body, read_status_answer


def answer_of(body: bytes) -> httpx.Response:
    """A status answer with ``body``, as the transport hands it over."""
    return httpx.Response(200, content=body, request=httpx.Request("GET", "https://api.test/1/s"))


@pytest.mark.anyio
async def test_polling_stops_asking_for_final_jobs(router: respx.MockRouter) -> None:  # noqa: F811
    """A final job is requested once; a pending one goes on being polled until final."""
    pending = report("pending")
    api = ScriptedAPI(
        router, {"done": [report("sms")], "late": [pending, pending, pending, report("viber")]}
    )
    async with make_client() as client:
        summary = await client.wait_for_jobs(["done", "late"], **FAST)
    assert summary.complete
    assert api.calls == {"done": 1, "late": 4}


STATES = ["pending", "sms", "viber", "template", "expired", "rejected", "undelivered"]


def random_message(rng: random.Random, i: int) -> dict[str, Any]:
    """A status message with random outcome fields: numbers or strings of digits, present or
    not, and keys no model knows."""
    item: dict[str, Any] = {"phone_number": str(380960000000 + i), "extra_id": f"e{i}"}
    for name, values in (
        ("status", [-1, 2, 3, None, "2"]),
        ("hyber_status", [23011, 23033, 23043, 34001, 35015, 35035, None, "23011"]),
        ("error_code", [None, None, 35015, 36024, 35035, "35015"]),
        ("delivered_sms_parts", [None, 1, 2, "1"]),
    ):
        value = rng.choice(values)
        if value is not None:
            item[name] = value
    if rng.random() < 0.2:
        item["someday"] = {"a": [1, 2]}
    return item


@pytest.mark.anyio
@pytest.mark.parametrize("seed", range(20))
async def test_the_polling_summary_equals_the_one_of_the_typed_models(seed: int) -> None:
    """The tally of the outcome fields gives the summary the typed models give."""
    rng = random.Random(seed)
    messages = [random_message(rng, i) for i in range(rng.randrange(0, 3000))]
    body = orjson.dumps({"messages": messages, "next": None})
    answer = await read_status_answer(answer_of(body))
    fast = summarize_tallies({"job": await answer.tally()})
    assert fast == summarize({"job": answer.status})
    assert fast == summarize({"job": hy.converter.loads(body, hy.JobStatus)})


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("field", "value"),
    [("status", True), ("status", 2.0), ("hyber_status", "x1"), ("error_code", [1])],
)
async def test_the_tally_refuses_what_the_models_refuse(field: str, value: object) -> None:
    """An outcome field of the wrong JSON type is an error, as for the typed models (a boolean
    is not counted as the integer it equals)."""
    messages = [{"status": 1}, {"status": 2, "hyber_status": 23011}, {field: value}]
    response = answer_of(orjson.dumps({"messages": messages}))
    answer = await read_status_answer(response)
    with pytest.raises(hy.UnexpectedResponseError, match=field):
        await answer.tally()
    with pytest.raises(hy.UnexpectedResponseError, match=field):
        _ = answer.status


@pytest.mark.anyio
@pytest.mark.parametrize(
    "body", [b"[]", b'{"messages": 5}', b"not json", b'{"messages": [1]}', b'{"messages": [[]]}']
)
async def test_an_answer_that_is_not_a_report_is_refused(body: bytes) -> None:
    """Not an object with a ``messages`` array of objects: ``UnexpectedResponseError``."""

    async def read() -> None:
        await (await read_status_answer(answer_of(body))).tally()

    with pytest.raises(hy.UnexpectedResponseError, match="JobStatus"):
        await read()


@pytest.mark.anyio
async def test_updates_build_models_only_when_read(router: respx.MockRouter) -> None:  # noqa: F811
    """An update carries the parsed answer; its typed ``status`` is built on first access."""
    ScriptedAPI(router, {"j": [report("sms", "expired")]})
    async with make_client() as client:
        (update,) = [u async for u in poll_jobs(client, ["j"], **FAST)]
    assert update.answer is not None
    assert "status" not in vars(update.answer)  # not built yet
    assert update.status == hy.converter.structure(
        {"messages": report("sms", "expired")}, hy.JobStatus
    )
    assert update.answer.messages == report("sms", "expired")


TRICKY = ['},{"status":2}', "]}", '{"messages":[', "\\", '"', "é", ""]


def tricky_message(rng: random.Random, i: int) -> dict[str, Any]:
    """A message whose strings and unknown fields hold the text the parser cuts at."""
    item = random_message(rng, i)
    if rng.random() < 0.3:
        item["error_text"] = rng.choice(TRICKY) * rng.randrange(1, 4)
    if rng.random() < 0.2:
        item["nested"] = [{"a": 1}, {"b": [{"c": rng.choice(TRICKY)}]}]
    return item


@pytest.mark.anyio
@pytest.mark.parametrize("seed", range(30))
async def test_a_body_parsed_in_pieces_reads_as_the_whole(seed: int) -> None:
    """Whatever the strings and nesting, and wherever the cuts fall, the pieces give what one
    ``orjson.loads`` of the body gives; a body of another shape is parsed whole."""
    rng = random.Random(seed)
    messages = [tricky_message(rng, i) for i in range(rng.randrange(0, 200))]
    body = orjson.dumps({"messages": messages})
    if seed % 5 == 4:  # other shapes: more keys, spaces
        body = rng.choice(
            [orjson.dumps({"messages": messages, "more": 1}), body.replace(b":[", b": [", 1)]
        )
    piece = rng.choice([1, 17, 100, 1000])
    assert await parse_status_body(body, piece) == orjson.loads(body)


@pytest.mark.anyio
@pytest.mark.parametrize(
    "body",
    [b'{"messages":[{"a":1},{"b":]}', b'{"messages":[{"a":1},{"b":2}}]}', b'{"messages":[}]}'],
)
async def test_a_broken_body_parsed_in_pieces_is_refused(body: bytes) -> None:
    """A body that is not JSON raises as ``orjson.loads`` does, however it was cut."""
    with pytest.raises(orjson.JSONDecodeError):
        await parse_status_body(body, 1)


@pytest.mark.anyio
async def test_wait_for_jobs_keeps_no_answer(router: respx.MockRouter) -> None:  # noqa: F811
    """``finish_polling`` wants only the summary: no update keeps its answer, and each answer
    is read counted, keeping no message."""
    ScriptedAPI(router, {"a": [report("sms", "pending"), report("sms", "expired")]})
    seen: list[hy.StatusAnswer] = []
    async with make_client() as client:
        read = client.read_status

        async def spy(job_id: str, *, keep_messages: bool = True) -> hy.StatusAnswer:
            assert not keep_messages
            answer = await read(job_id, keep_messages=keep_messages)
            seen.append(answer)
            return answer

        client.read_status = spy  # type: ignore[method-assign]
        poller = hy.JobPoller(client, ["a"], PollOptions(FAST["interval"], FAST["max_interval"]))
        updates: list[hy.JobUpdate] = []
        poller.keep_answers = False
        async for update in poller:
            updates.append(update)
        summary = poller.summary
    assert [u.answer for u in updates] == [None, None]
    assert len(seen) == 2
    assert all(answer.messages == [] for answer in seen)
    assert (summary.counts.delivered, summary.counts.expired) == (1, 1)


@pytest.mark.anyio
async def test_updates_waiting_to_be_read_are_bounded_by_the_concurrency(
    router: respx.MockRouter,  # noqa: F811
) -> None:
    """Each update carries a parsed answer (up to 50,000 messages): a round polls at most
    ``max_concurrency`` jobs, so no more answers than that wait for the caller at once, however
    many jobs the campaign has."""
    jobs = {f"j{i}": [report("sms")] for i in range(12)}
    api = ScriptedAPI(router, jobs)
    async with make_client() as client:
        poller = poll_jobs(client, list(jobs), max_concurrency=3, **FAST)
        waiting = []
        async for _ in poller:
            waiting.append(len(poller._ready) + 1)
    assert max(waiting) <= 3
    assert api.calls == dict.fromkeys(jobs, 1)


async def counted_and_kept(body: bytes) -> tuple[Any, Any]:
    """The tally of ``body`` read with ``keep_messages=False``, and read whole then counted
    (each an exception instead, when it raises)."""
    results: list[Any] = []
    for keep in (False, True):
        try:
            answer = await read_status_answer(answer_of(body), keep_messages=keep)
            results.append(await answer.tally())
        except hy.UnexpectedResponseError as exc:
            results.append(type(exc))
    return results[0], results[1]


@pytest.mark.anyio
@pytest.mark.parametrize(
    "body",
    [
        b"[]",
        b'{"messages": 5}',
        b"not json",
        b'{"messages":[1]}',
        b'{"messages":[{"status":2},[]]}',
        b'{"messages":[{"status":2},{"status":true}]}',
        b'{"messages":[{"status":2},{"hyber_status":"x1"}]}',
        b'{"messages":[{"status":2},{"b":]}',
        b'{"messages":[{"status":2},{"status":3}}]}',
        b'{"messages":[{"status":2},{"status":3}]',
    ],
)
async def test_an_answer_counted_as_it_is_parsed_refuses_what_the_whole_refuses(
    body: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cut into one-byte pieces, a broken or mistyped answer is refused as when read whole."""
    monkeypatch.setattr(_status_answer, "PARSE_SLICE", 1)
    counted, kept = await counted_and_kept(body)
    assert counted is kept is hy.UnexpectedResponseError


@pytest.mark.anyio
async def test_an_answer_counted_as_it_is_parsed_has_no_models_to_build() -> None:
    """Its typed ``status`` cannot be built from nothing: a clear error, never an empty report."""
    body = orjson.dumps({"messages": report("sms", "expired")})
    answer = await read_status_answer(answer_of(body), keep_messages=False)
    assert answer.messages == []
    with pytest.raises(hy.InvalidCallError, match="keep_messages=False"):
        _ = answer.status


async def _peak_traced(body: bytes, *, keep: bool) -> int:
    """The most memory traced while ``body`` is read and counted."""
    response = answer_of(body)
    tracemalloc.start()
    try:
        answer = await read_status_answer(response, keep_messages=keep)
        await answer.tally()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.anyio
async def test_an_answer_counted_as_it_is_parsed_is_never_held_whole() -> None:
    """Counted piece by piece, an answer of 40,000 messages takes no more memory than one of
    5,000 (a piece at a time), where holding it parsed grows with it (traced
    allocations, not time)."""
    rng = random.Random(7)
    messages = [random_message(rng, i) for i in range(40_000)]
    small = orjson.dumps({"messages": messages[:5_000]})
    large = orjson.dumps({"messages": messages})
    counted_small = await _peak_traced(small, keep=False)
    counted_large = await _peak_traced(large, keep=False)
    kept_large = await _peak_traced(large, keep=True)
    assert counted_large < 1.3 * counted_small
    assert 3 * counted_large < kept_large


async def _counted_in_chunks(body: bytes, rng: random.Random) -> Any:
    """``body`` fed to a ``StatusCounter`` in chunks of random sizes, as a socket hands it
    over: the tally, or the type of the error."""
    counter = StatusCounter()
    start = 0
    while start < len(body):
        size = rng.choice([1, 2, 3, 7, 64, 1000, 70_000])
        counter.feed(body[start : start + size])
        start += size
    try:
        return await (await counter.answer(answer_of(body))).tally()
    except hy.UnexpectedResponseError as exc:
        return type(exc)


@pytest.mark.anyio
@pytest.mark.parametrize("seed", range(40))
async def test_an_answer_counted_as_it_arrives_counts_as_the_whole(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever the chunks a body arrives in, wherever the cuts fall (strings and nested
    objects holding the text the counter cuts at), and whatever follows the array, the counter
    gives the tally of the whole answer, or refuses it as the whole is refused."""
    rng = random.Random(seed)
    monkeypatch.setattr(_status_answer, "PARSE_SLICE", rng.choice([1, 17, 100, 1000]))
    messages = [tricky_message(rng, i) for i in range(rng.randrange(0, 300))]
    body = orjson.dumps({"messages": messages})
    if seed % 4 == 3:
        body = rng.choice(
            [
                orjson.dumps({"messages": messages, "more": {"a": "},{"}}),
                body.replace(b":[", b": [", 1),
                body[: rng.randrange(len(body))],  # cut short: not JSON
                body.replace(b'"status":2', b'"status":true', 1),  # a field of the wrong type
            ]
        )
    counted, whole = await counted_and_kept(body)
    assert counted == whole
    assert await _counted_in_chunks(body, rng) == whole
    if isinstance(whole, Counter):
        typed = hy.converter.loads(body, hy.JobStatus)
        assert summarize_tallies({"j": whole}) == summarize({"j": typed})


@pytest.mark.anyio
async def test_a_string_full_of_cuts_costs_few_parse_attempts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A message whose string holds the cut text ten thousand times: the counter makes its
    piece longer by doubling steps, not one cut at a time (counted parse attempts)."""
    trap = {"status": 2, "error_text": "},{" * 10_000}
    body = orjson.dumps({"messages": [{"status": 2}, trap, {"status": 3}]})
    monkeypatch.setattr(_status_answer, "PARSE_SLICE", 10)
    attempts = 0
    loads = orjson.loads

    def counting(data: Any) -> Any:
        nonlocal attempts
        attempts += 1
        return loads(data)

    monkeypatch.setattr(_status_answer.orjson, "loads", counting)
    counter = StatusCounter()
    counter.feed(body)
    tally = await (await counter.answer(answer_of(body))).tally()
    monkeypatch.undo()
    assert sum(tally.values()) == 3
    assert attempts < 40
