"""DeliveryReportReceiver: auth, parsing, de-duplication, handler failure; ASGI and aiohttp."""

from __future__ import annotations

import base64
import gc
import logging
import tracemalloc
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import orjson
import pytest
from _support import aiohttp_serving
from conftest import FIXTURES

from hyber_async import DeliveryReport
from hyber_async._reports import DeliveryReportReceiver, InvalidItem

SECRET = "s3cr3t-0123456789abcdef"
SINGLE = (FIXTURES / "19-delivery-report-callback--single.json").read_bytes()
BATCHED = (FIXTURES / "20-delivery-report-callback--batched.json").read_bytes()


class Recorder:
    """A handler that records the reports it gets and fails on chosen message ids."""

    def __init__(self, fail_on: set[str] | None = None) -> None:
        self.reports: list[DeliveryReport] = []
        self.fail_on = fail_on or set()

    async def __call__(self, report: DeliveryReport) -> None:
        if report.message_id in self.fail_on:
            raise RuntimeError("handler down")
        self.reports.append(report)

    @property
    def ids(self) -> list[str | None]:
        """The message ids handled, in order."""
        return [r.message_id for r in self.reports]


def basic(password: str, login: str = "hyber") -> dict[str, str]:
    """An HTTP Basic Authorization header."""
    token = base64.b64encode(f"{login}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def report(message_id: str, hyber_status: int = 23011) -> dict[str, Any]:
    """A delivered-SMS report of ``message_id``."""
    return {"number": 380961111111, "message_id": message_id, "hyber_status": hyber_status}


@pytest.fixture
def recorder() -> Recorder:
    """A fresh recording handler."""
    return Recorder()


@pytest.fixture
async def asgi(recorder: Recorder) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client talking to a receiver's ASGI app in process."""
    receiver = DeliveryReportReceiver(recorder, secret=SECRET)
    transport = httpx.ASGITransport(app=receiver)
    async with httpx.AsyncClient(transport=transport, base_url="http://receiver") as client:
        yield client


@pytest.mark.anyio
async def test_secret_in_path_accepts_and_hands_over(
    asgi: httpx.AsyncClient, recorder: Recorder
) -> None:
    """A callback to /dr/<secret> answers 200 and every report reaches the handler."""
    response = await asgi.post(f"/dr/{SECRET}", content=BATCHED)
    assert response.status_code == 200
    assert response.json() == {"reports": 3, "new": 3, "invalid": 0}
    assert [r.hyber_status for r in recorder.reports] == [23011, 35015, 23033]


@pytest.mark.anyio
async def test_secret_as_basic_auth_password_accepts(
    asgi: httpx.AsyncClient, recorder: Recorder
) -> None:
    """Basic auth whose password is the secret is accepted on any path."""
    response = await asgi.post("/dr", content=SINGLE, headers=basic(SECRET))
    assert response.status_code == 200
    assert recorder.ids == ["9f60ac8f-e721-5027-b838-e6fcb95fcd7a"]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/dr", {}),
        ("/dr/wrong-secret-0123456789", {}),
        (f"/dr/{SECRET}x", {}),
        ("/dr", basic("wrong-secret-0123456789")),
        ("/dr", {"Authorization": "Basic !!!not-base64"}),
        ("/dr", {"Authorization": f"Bearer {SECRET}"}),
    ],
)
async def test_without_the_secret_401_and_reports_dropped(
    asgi: httpx.AsyncClient, recorder: Recorder, path: str, headers: dict[str, str]
) -> None:
    """A caller without the secret gets 401 and its reports never reach the handler."""
    headers = {**headers}
    expected = (
        200 if headers.get("Authorization", "") == basic(SECRET, "")["Authorization"] else 401
    )
    response = await asgi.post(path, content=SINGLE, headers=headers)
    assert response.status_code == expected
    if expected == 401:
        assert response.headers["www-authenticate"].startswith("Basic")
        assert recorder.reports == []


@pytest.mark.anyio
async def test_non_post_is_405(asgi: httpx.AsyncClient, recorder: Recorder) -> None:
    """GET is refused with 405 and an Allow header."""
    response = await asgi.get(f"/dr/{SECRET}")
    assert (response.status_code, response.headers["allow"]) == (405, "POST")


@pytest.mark.anyio
async def test_body_not_json_is_400_and_nothing_handled(
    asgi: httpx.AsyncClient, recorder: Recorder
) -> None:
    """A body that is not JSON answers 400 naming the problem; nothing is handled."""
    response = await asgi.post(f"/dr/{SECRET}", content=b'[{"number": 1}')
    assert response.status_code == 400
    assert "not JSON" in response.text
    assert recorder.reports == []


@pytest.mark.anyio
async def test_invalid_items_are_reported_and_the_valid_ones_handled(
    recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    """One odd item among valid ones: every valid one is handled, the odd one goes to on_invalid
    with its raw JSON and the reason, and is logged; the answer is 200 so that Hyber does not
    resend the valid ones."""
    invalid: list[InvalidItem] = []

    async def on_invalid(item: InvalidItem) -> None:
        invalid.append(item)

    receiver = DeliveryReportReceiver(recorder, secret=SECRET, on_invalid=on_invalid)
    items: list[Any] = [report(str(i)) for i in range(100)]
    items[40] = {"number": "x", "message_id": "odd"}
    items[70] = 3
    transport = httpx.ASGITransport(app=receiver)
    caplog.set_level(logging.WARNING, logger="hyber_async")
    async with httpx.AsyncClient(transport=transport, base_url="http://receiver") as client:
        response = await client.post(f"/dr/{SECRET}", content=orjson.dumps(items))
    assert response.status_code == 200
    assert response.json() == {"reports": 100, "new": 98, "invalid": 2}
    assert recorder.ids == [str(i) for i in range(100) if i not in (40, 70)]
    assert [(i.index, orjson.loads(i.raw)) for i in invalid] == [(40, items[40]), (70, 3)]
    assert "number" in invalid[0].reason
    assert "invalid delivery report 40 skipped" in caplog.text
    assert "invalid delivery report 70 skipped" in caplog.text


@pytest.mark.anyio
async def test_on_invalid_failing_is_500_before_any_handler(recorder: Recorder) -> None:
    """If on_invalid raises, the answer is 500 and no report was handled yet."""

    async def on_invalid(item: InvalidItem) -> None:
        raise RuntimeError("invalid-item sink down")

    receiver = DeliveryReportReceiver(recorder, secret=SECRET, on_invalid=on_invalid)
    transport = httpx.ASGITransport(app=receiver)
    async with httpx.AsyncClient(transport=transport, base_url="http://receiver") as client:
        body = orjson.dumps([report("a"), {"number": None}])
        response = await client.post(f"/dr/{SECRET}", content=body)
    assert (response.status_code, recorder.reports) == (500, [])


@pytest.mark.anyio
async def test_repeated_callback_handled_once(asgi: httpx.AsyncClient, recorder: Recorder) -> None:
    """The same callback sent twice reaches the handler once; the repeat still answers 200."""
    first = await asgi.post(f"/dr/{SECRET}", content=BATCHED)
    again = await asgi.post(f"/dr/{SECRET}", content=BATCHED)
    assert first.json() == {"reports": 3, "new": 3, "invalid": 0}
    assert again.json() == {"reports": 3, "new": 0, "invalid": 0}
    assert again.status_code == 200
    assert len(recorder.reports) == 3


@pytest.mark.anyio
async def test_duplicate_inside_one_body_handled_once(
    asgi: httpx.AsyncClient, recorder: Recorder
) -> None:
    """A report repeated inside one batch reaches the handler once."""
    body = orjson.dumps([report("a"), report("a"), report("b")])
    response = await asgi.post(f"/dr/{SECRET}", content=body)
    assert response.json() == {"reports": 3, "new": 2, "invalid": 0}
    assert recorder.ids == ["a", "b"]


@pytest.mark.anyio
async def test_new_hyber_status_of_same_message_is_new(
    asgi: httpx.AsyncClient, recorder: Recorder
) -> None:
    """A second status of the same message (e.g. Viber "seen") is a new report."""
    body = orjson.dumps([report("a", 23033), report("a", 23099)])
    await asgi.post(f"/dr/{SECRET}", content=body)
    assert [r.hyber_status for r in recorder.reports] == [23033, 23099]


@pytest.mark.anyio
async def test_reports_without_message_id_are_always_handled(
    asgi: httpx.AsyncClient, recorder: Recorder
) -> None:
    """Without a message_id there is no key: every copy is handed over."""
    body = orjson.dumps({"number": 1, "hyber_status": 23011})
    await asgi.post(f"/dr/{SECRET}", content=body)
    await asgi.post(f"/dr/{SECRET}", content=body)
    assert len(recorder.reports) == 2


@pytest.mark.anyio
async def test_handler_failure_is_500_and_retry_resumes_at_the_failed_report() -> None:
    """On a failing handler: 500; the retry hands over the failed and later reports only."""
    recorder = Recorder(fail_on={"b"})
    receiver = DeliveryReportReceiver(recorder, secret=SECRET)
    body = orjson.dumps([report("a"), report("b"), report("c")])
    transport = httpx.ASGITransport(app=receiver)
    async with httpx.AsyncClient(transport=transport, base_url="http://receiver") as client:
        failed = await client.post(f"/dr/{SECRET}", content=body)
        assert failed.status_code == 500
        assert recorder.ids == ["a"]
        recorder.fail_on.clear()
        retried = await client.post(f"/dr/{SECRET}", content=body)
    assert retried.json() == {"reports": 3, "new": 2, "invalid": 0}
    assert recorder.ids == ["a", "b", "c"]


@pytest.mark.anyio
async def test_dedup_memory_is_bounded_oldest_forgotten(recorder: Recorder) -> None:
    """With dedup_size=2 the least recently seen key is forgotten and handled again."""
    receiver = DeliveryReportReceiver(recorder, secret=SECRET, dedup_size=2)
    transport = httpx.ASGITransport(app=receiver)
    async with httpx.AsyncClient(transport=transport, base_url="http://receiver") as client:
        for message_id in ("a", "b", "c", "b", "a"):
            await client.post(f"/dr/{SECRET}", content=orjson.dumps(report(message_id)))
    assert recorder.ids == ["a", "b", "c", "a"]


async def post_twice_while_first_blocks(
    receiver: DeliveryReportReceiver, entered: anyio.Event, release: anyio.Event
) -> tuple[httpx.Response, httpx.Response, list[str]]:
    """POST SINGLE; once its handler has entered, POST it again; release the first handler
    only after the copy had every chance to be answered. The answers and the order of events."""
    transport = httpx.ASGITransport(app=receiver)
    events: list[str] = []
    answers: dict[str, httpx.Response] = {}
    async with httpx.AsyncClient(transport=transport, base_url="http://receiver") as client:

        async def post(name: str) -> None:
            answers[name] = await client.post(f"/dr/{SECRET}", content=SINGLE)
            events.append(f"{name} answered")

        async with anyio.create_task_group() as tg:
            tg.start_soon(post, "first")
            await entered.wait()
            tg.start_soon(post, "copy")
            for _ in range(50):  # let the copy run as far as it can
                await anyio.lowlevel.checkpoint()
            events.append("released")
            release.set()
    return answers["first"], answers["copy"], events


@pytest.mark.anyio
async def test_copy_arriving_while_first_is_handled_waits_and_is_skipped() -> None:
    """A copy arriving while the first is in the handler is answered only after the handler
    succeeded, and is not handled twice."""
    entered, release = anyio.Event(), anyio.Event()
    calls: list[str | None] = []

    async def slow(report: DeliveryReport) -> None:
        calls.append(report.message_id)
        entered.set()
        await release.wait()

    receiver = DeliveryReportReceiver(slow, secret=SECRET)
    first, copy, events = await post_twice_while_first_blocks(receiver, entered, release)
    assert calls == ["9f60ac8f-e721-5027-b838-e6fcb95fcd7a"]
    assert (first.json()["new"], copy.json()["new"]) == (1, 0)
    assert events.index("released") < events.index("copy answered")


@pytest.mark.anyio
async def test_copy_arriving_while_first_fails_is_never_acknowledged_unhandled() -> None:
    """The first handler blocks, then fails: the copy that arrived meanwhile is not answered
    200 for a report no handler finished; it is handled itself (the handler works again)."""
    entered, release = anyio.Event(), anyio.Event()
    handled: list[str | None] = []

    async def fails_first(report: DeliveryReport) -> None:
        if not entered.is_set():
            entered.set()
            await release.wait()
            raise RuntimeError("handler down")
        handled.append(report.message_id)

    receiver = DeliveryReportReceiver(fails_first, secret=SECRET)
    first, copy, events = await post_twice_while_first_blocks(receiver, entered, release)
    assert first.status_code == 500
    assert (copy.status_code, copy.json()["new"]) == (200, 1)
    assert handled == ["9f60ac8f-e721-5027-b838-e6fcb95fcd7a"]
    assert events.index("released") < events.index("copy answered")


@pytest.mark.anyio
async def test_copy_waiting_on_a_failing_handler_fails_too() -> None:
    """When the handler keeps failing, the waiting copy answers 500 as well (Hyber retries)."""
    entered, release = anyio.Event(), anyio.Event()

    async def broken(report: DeliveryReport) -> None:
        entered.set()
        await release.wait()
        raise RuntimeError("handler down")

    receiver = DeliveryReportReceiver(broken, secret=SECRET)
    first, copy, _ = await post_twice_while_first_blocks(receiver, entered, release)
    assert (first.status_code, copy.status_code) == (500, 500)


@pytest.mark.anyio
async def test_dedup_memory_is_bounded_by_bytes_whatever_the_id_size() -> None:
    """Huge message ids do not make the de-duplication memory grow with their size: 200 keys
    of 50 KB ids (10 MB of ids) keep well under 1 MB."""

    async def ignore(report: DeliveryReport) -> None:
        pass

    receiver = DeliveryReportReceiver(ignore, secret=SECRET, dedup_size=1000)
    transport = httpx.ASGITransport(app=receiver)
    async with httpx.AsyncClient(transport=transport, base_url="http://receiver") as client:
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            for batch in range(10):
                ids = [f"{batch}-{i}-".ljust(50_000, "x") for i in range(20)]
                body = orjson.dumps([report(message_id) for message_id in ids])
                response = await client.post(f"/dr/{SECRET}", content=body)
                assert response.json()["new"] == 20
            del body, ids, response
            gc.collect()
            held = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
    assert held < 1_000_000


@pytest.mark.anyio
async def test_body_above_limit_is_413(recorder: Recorder) -> None:
    """A body larger than max_body_size answers 413 and nothing is handled."""
    receiver = DeliveryReportReceiver(recorder, secret=SECRET, max_body_size=100)
    transport = httpx.ASGITransport(app=receiver)
    async with httpx.AsyncClient(transport=transport, base_url="http://receiver") as client:
        response = await client.post(f"/dr/{SECRET}", content=BATCHED)
    assert response.status_code == 413
    assert recorder.reports == []


@pytest.mark.anyio
async def test_secret_never_in_logs(
    asgi: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    """Refusals and malformed bodies are logged without the secret."""
    caplog.set_level(logging.DEBUG, logger="hyber_async")
    await asgi.post(f"/dr/{SECRET[:-1]}", content=SINGLE, headers=basic(SECRET[1:]))
    await asgi.post(f"/dr/{SECRET}", content=b"{")
    assert "dropped" in caplog.text
    assert "not JSON" in caplog.text
    assert SECRET[1:-1] not in caplog.text


def test_secret_not_in_repr() -> None:
    """The receiver's repr redacts the secret."""
    text = repr(DeliveryReportReceiver(Recorder(), secret=SECRET))
    assert SECRET not in text
    assert "redacted" in text


@pytest.mark.parametrize("secret", ["", "short", "has/slash-0123456789", "space in it 0123456"])
def test_weak_or_unsafe_secret_is_refused(secret: str) -> None:
    """A secret shorter than 16 characters or not URL-safe is a ValueError."""
    with pytest.raises(ValueError, match="secret"):
        DeliveryReportReceiver(Recorder(), secret=secret)


@pytest.mark.anyio
async def test_lifespan_events_are_acknowledged() -> None:
    """Served alone, the app completes the ASGI lifespan startup and shutdown."""
    events = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return events.pop(0)

    async def send(message: Any) -> None:
        sent.append(message)

    await DeliveryReportReceiver(Recorder(), secret=SECRET)({"type": "lifespan"}, receive, send)
    assert sent == [{"type": "lifespan.startup.complete"}, {"type": "lifespan.shutdown.complete"}]


@pytest.mark.anyio
async def test_mounted_in_fastapi(recorder: Recorder) -> None:
    """Mounted under a FastAPI app, the receiver answers at /dr/<secret>."""
    from fastapi import FastAPI

    app = FastAPI()
    app.mount("/dr", DeliveryReportReceiver(recorder, secret=SECRET))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
        response = await client.post(f"/dr/{SECRET}", content=SINGLE)
        refused = await client.post("/dr/nope", content=SINGLE)
    assert (response.status_code, refused.status_code) == (200, 401)
    assert len(recorder.reports) == 1


# --- aiohttp (asyncio only), on a real server on 127.0.0.1 ---------------------------------


@pytest.fixture
async def aiohttp_url(recorder: Recorder) -> AsyncIterator[str]:
    """The base URL of an aiohttp app serving the receiver on a free loopback port."""
    receiver = DeliveryReportReceiver(recorder, secret=SECRET)
    async with aiohttp_serving("/dr/{tail:.*}", receiver.aiohttp_handler, method="*") as url:
        yield url


@pytest.mark.slow
@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_aiohttp_handler_accepts_and_deduplicates(
    aiohttp_url: str, recorder: Recorder
) -> None:
    """Through aiohttp: 200 with the secret in the path, and a repeat is not handled again."""
    async with httpx.AsyncClient(base_url=aiohttp_url) as client:
        first = await client.post(f"/dr/{SECRET}", content=BATCHED)
        again = await client.post(f"/dr/{SECRET}", content=BATCHED)
    assert (first.status_code, first.json()["new"], again.json()["new"]) == (200, 3, 0)
    assert len(recorder.reports) == 3


@pytest.mark.slow
@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_aiohttp_handler_basic_auth_and_refusals(
    aiohttp_url: str, recorder: Recorder
) -> None:
    """Through aiohttp: Basic auth accepted, no secret 401, GET 405, invalid item reported."""
    async with httpx.AsyncClient(base_url=aiohttp_url) as client:
        basic_ok = await client.post("/dr/x", content=SINGLE, headers=basic(SECRET))
        no_secret = await client.post("/dr/x", content=SINGLE)
        get = await client.get(f"/dr/{SECRET}")
        bad = await client.post(f"/dr/{SECRET}", content=b"[1]")
    codes = [r.status_code for r in (basic_ok, no_secret, get, bad)]
    assert codes == [200, 401, 405, 200]
    assert bad.json() == {"reports": 1, "new": 0, "invalid": 1}
    assert len(recorder.reports) == 1


async def chunks_of(body: bytes) -> AsyncIterator[bytes]:
    """``body`` as a stream of small chunks (sent chunked, without a Content-Length)."""
    for start in range(0, len(body), 64):
        yield body[start : start + 64]


@pytest.mark.slow
@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize("chunked", [False, True])
async def test_aiohttp_handler_body_above_limit_is_413(recorder: Recorder, chunked: bool) -> None:
    """Through aiohttp: a body above max_body_size answers 413, declared or streamed."""
    receiver = DeliveryReportReceiver(recorder, secret=SECRET, max_body_size=100)
    async with (
        aiohttp_serving("/dr/{secret}", receiver.aiohttp_handler) as base_url,
        httpx.AsyncClient() as client,
    ):
        url = f"{base_url}/dr/{SECRET}"
        response = await client.post(url, content=chunks_of(BATCHED) if chunked else BATCHED)
    assert response.status_code == 413


@pytest.mark.slow
@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_aiohttp_client_leaving_mid_body_logs_no_error(
    recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    """Through a real aiohttp server: a caller that sends half a body and closes is dropped
    quietly, as on the ASGI path (no ERROR traceback), and nothing is handled."""
    import asyncio

    from aiohttp import web

    receiver = DeliveryReportReceiver(recorder, secret=SECRET)
    app = web.Application()
    app.router.add_post("/dr/{secret}", receiver.aiohttp_handler)
    runner = web.AppRunner(app)  # as web.run_app serves: handlers are not cancelled
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    dealt_with = asyncio.Event()  # the receiver dealt with it, one way or the other

    class Watch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "mid-body" in record.getMessage() or record.levelno >= logging.ERROR:
                dealt_with.set()

    watch = Watch()
    logging.getLogger().addHandler(watch)
    caplog.set_level(logging.DEBUG)
    try:
        port = runner.addresses[0][1]
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        head = f"POST /dr/{SECRET} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(BATCHED)}\r\n\r\n"
        writer.write(head.encode() + BATCHED[: len(BATCHED) // 2])
        await writer.drain()
        writer.close()
        with anyio.fail_after(10):
            await dealt_with.wait()
    finally:
        logging.getLogger().removeHandler(watch)
        await runner.cleanup()
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert recorder.reports == []
