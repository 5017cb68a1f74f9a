"""Delivery-report lookups (chapter 5) in the client: the documented shapes, the DR host, the
one "not found" answer, and reconcile over a socket emulator that answers those shapes."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import anyio.to_thread
import httpx
import orjson
import pytest
import respx
from _support import CLIENT_ID, make_client, rows
from _support import SMS_BROADCAST as CAMPAIGN
from gms_docs import Block, block, of_kind

import hyber_async as hy
from hyber_async import converter
from hyber_async.emulator import running_server
from hyber_async.testing import emulated_client

pytestmark = pytest.mark.anyio

SIMPLE = of_kind("dr-simple")
ADVANCED = of_kind("dr-advanced")
DR_HOST = f"https://dr-v2-eu.hyber.im/{CLIENT_ID}"
MESSAGE_ID = "9f60ac8f-e721-5027-b838-e6fcb95fcd7a"
NOT_FOUND = {"error_code": 40401, "error_text": "No message with extra_id 'AD-1'"}


# --- the documented shapes ------------------------------------------------------------------


def test_every_chapter5_example_is_a_fixture() -> None:
    """The four JSON blocks of chapter 5: two simple answers, two advanced ones."""
    assert (len(SIMPLE), len(ADVANCED)) == (2, 2)


@pytest.mark.parametrize(
    ("example", "model"),
    [(b, hy.SimpleDeliveryReport) for b in SIMPLE]
    + [(b, hy.AdvancedDeliveryReport) for b in ADVANCED],
    ids=lambda v: v.name if isinstance(v, Block) else "",
)
def test_every_documented_lookup_answer_round_trips(example: Block, model: type) -> None:
    """Each example decodes into its model and re-encodes to equal JSON: no field lost."""
    data = example.text
    report = converter.loads(data, model)
    assert orjson.loads(converter.dumps(report)) == orjson.loads(data)


def test_the_advanced_example_reads_into_typed_reports_and_channels() -> None:
    """reports[] are SimpleDeliveryReports, channels[] ChannelTtls, in the documented order."""
    report = converter.loads(block("chapter5.rst", 73).text, hy.AdvancedDeliveryReport)
    assert [(r.last_partner, r.status, r.delivered) for r in report.reports] == [
        ("viber", 3, False),
        ("sms", 2, True),
    ]
    assert report.channels == (hy.ChannelTtl("viber", 60), hy.ChannelTtl("sms", 300))
    assert (report.started, report.processing, report.delivered_via, report.clicks) == (
        True,
        False,
        "sms",
        2,
    )


def test_unknown_fields_never_break_a_lookup_answer() -> None:
    """A new field from the server is ignored, at the top and inside reports and channels."""
    body = block("chapter5.rst", 73).json()
    body["operator"] = "Kyivstar"
    body["reports"][0]["price"] = 0.02
    body["channels"][0]["priority"] = 1
    report = converter.loads(orjson.dumps(body), hy.AdvancedDeliveryReport)
    assert report.reports[0].last_partner == "viber"


@pytest.mark.parametrize(
    "body",
    [b"{}", b'{"number": 380961111111, "status": 2}', b'{"reports": {}}', b"[]"],
    ids=["empty", "callback-shape", "reports-not-a-list", "array"],
)
def test_an_answer_of_another_shape_is_refused(body: bytes) -> None:
    """Neither model takes an object without its required keys (message_id/status, reports)."""
    for model in (hy.SimpleDeliveryReport, hy.AdvancedDeliveryReport):
        with pytest.raises(TypeError):
            converter.loads(body, model)


# --- the client: host, paths, answers -------------------------------------------------------


@pytest.fixture
def dr() -> Iterator[respx.MockRouter]:
    """The mocked DR host of site "eu" for the test client id."""
    with respx.mock(base_url=DR_HOST, assert_all_called=False) as router:
        yield router


@pytest.mark.parametrize("detail", ["simple", "advanced"])
async def test_site_lookups_go_to_the_dr_host_and_decode_the_documented_answers(
    dr: respx.MockRouter, detail: str
) -> None:
    """By message_id and by extra_id, on dr-v2-{site}, each detail answers its model."""
    example = block("chapter5.rst", 40 if detail == "simple" else 73).json()
    by_id = dr.get(f"/api/dr/{MESSAGE_ID}/{detail}").respond(200, json=example)
    by_extra = dr.get(f"/api/dr/external/AD%2F6640/{detail}").respond(200, json=example)
    async with make_client(base_url=None, site="eu") as client:
        first = await client.get_delivery_report(message_id=MESSAGE_ID, detail=detail)  # type: ignore[call-overload]
        second = await client.get_delivery_report(extra_id="AD/6640", detail=detail)  # type: ignore[call-overload]
    model = hy.SimpleDeliveryReport if detail == "simple" else hy.AdvancedDeliveryReport
    assert isinstance(first, model)
    assert first == second
    assert by_id.call_count == by_extra.call_count == 1


async def test_dr_base_url_and_its_environment_variable_choose_the_dr_host(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """dr_base_url= wins; without it, $HYBER_DR_BASE_URL; base_url never."""
    answer = block("chapter5.rst", 40).json()
    with respx.mock(assert_all_called=True) as router:
        explicit = router.get(f"https://dr.test/{CLIENT_ID}/api/dr/external/AD-1/simple")
        explicit.respond(200, json=answer)
        from_env = router.get(f"https://env-dr.test/{CLIENT_ID}/api/dr/external/AD-1/simple")
        from_env.respond(200, json=answer)
        async with make_client(dr_base_url="https://dr.test") as client:
            assert await client.get_delivery_report(extra_id="AD-1") is not None
        monkeypatch.setenv("HYBER_DR_BASE_URL", "https://env-dr.test")
        async with make_client() as client:
            assert await client.get_delivery_report(extra_id="AD-1") is not None


async def test_without_a_dr_host_a_lookup_is_refused_before_sending() -> None:
    """base_url= alone: ValidationError naming dr_base_url, and no request at all."""
    with respx.mock(assert_all_called=False) as router:
        route = router.route().respond(404, json=NOT_FOUND)
        async with make_client() as client:
            assert client.dr_base_url is None
            with pytest.raises(hy.ValidationError) as caught:
                await client.get_delivery_report(extra_id="AD-1")
    assert caught.value.problems[0].field == "dr_base_url"
    assert route.call_count == 0


async def test_only_the_documented_not_found_answer_is_none(dr: respx.MockRouter) -> None:
    """A 404 with the API's error object is "not found" (None), for both details."""
    dr.get("/api/dr/external/AD-1/simple").respond(404, json=NOT_FOUND)
    dr.get("/api/dr/external/AD-1/advanced").respond(404, json=NOT_FOUND)
    async with make_client(base_url=None, site="eu") as client:
        assert await client.get_delivery_report(extra_id="AD-1") is None
        assert await client.get_delivery_report(extra_id="AD-1", detail="advanced") is None


NOT_DOCUMENTED = [
    (404, b"<html><body><h1>404 Not Found</h1></body></html>", hy.NotFoundError),
    (404, b'{"detail": "Not Found"}', hy.NotFoundError),
    (404, b"", hy.NotFoundError),
    (200, b"<html>Welcome</html>", hy.UnexpectedResponseError),
    (200, b'{"status": "ok"}', hy.UnexpectedResponseError),
]


@pytest.mark.parametrize(("status", "body", "error"), NOT_DOCUMENTED)
async def test_an_answer_that_is_not_the_documented_shape_is_never_not_found(
    dr: respx.MockRouter, status: int, body: bytes, error: type[Exception]
) -> None:
    """An HTML 404 page, another service's JSON, an empty body: an error, never None."""
    dr.get("/api/dr/external/AD-1/simple").respond(status, content=body)
    async with make_client(base_url=None, site="eu") as client:
        with pytest.raises(error):
            await client.get_delivery_report(extra_id="AD-1")


async def test_a_bad_detail_is_refused_before_sending(dr: respx.MockRouter) -> None:
    """detail must be "simple" or "advanced"."""
    async with make_client(base_url=None, site="eu") as client:
        with pytest.raises(hy.ValidationError, match="detail"):
            await client.get_delivery_report(extra_id="AD-1", detail="full")  # type: ignore[call-overload]


# --- reconcile over a socket emulator -------------------------------------------------------


@pytest.mark.slow
async def test_reconcile_refuses_without_a_dr_host_and_sends_nothing() -> None:
    """base_url= alone: reconcile(resend=True) raises ValidationError; nothing is resent."""
    async with emulated_client(socket=True, dr_base_url=None) as env:
        env.emulator.faults.update({"errors": 1})  # the chunk is UNKNOWN, never accepted
        report = await env.client.stream_broadcast(CAMPAIGN, rows(10))
        assert report.unknown == 10
        requests = env.emulator.ledger.requests
        with pytest.raises(hy.ValidationError, match="dr_base_url"):
            await env.client.reconcile(report, resend=True)
    assert report.unknown == 10
    assert env.emulator.ledger.requests == requests


async def _html_404(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """An ASGI app answering every request with an HTML 404 page (a host that is not Hyber's)."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    headers = [(b"content-type", b"text/html")]
    await send({"type": "http.response.start", "status": 404, "headers": headers})
    await send({"type": "http.response.body", "body": b"<html><h1>Not Found</h1></html>"})


@contextlib.asynccontextmanager
async def html_404_host() -> AsyncIterator[str]:
    """Serve ``_html_404`` on a loopback socket; yield its base URL."""
    server = running_server(_html_404)
    url = await anyio.to_thread.run_sync(server.__enter__)
    try:
        yield url
    finally:
        await anyio.to_thread.run_sync(server.__exit__, None, None, None)


@pytest.mark.slow
async def test_an_html_404_from_the_dr_host_never_leads_to_a_resend() -> None:
    """Accepted, then a 500: a DR host answering HTML 404 makes reconcile raise, not resend."""
    async with (
        html_404_host() as wrong_host,
        emulated_client(socket=True, dr_base_url=wrong_host) as env,
    ):
        env.emulator.faults.update({"errors": 1, "error_after_accept": True})
        report = await env.client.stream_broadcast(CAMPAIGN, rows(10))
        assert report.unknown == 10
        with pytest.raises(hy.NotFoundError):
            await env.client.reconcile(report, resend=True)
    assert report.unknown == 10
    assert env.emulator.ledger.accepted == 10
    assert env.emulator.ledger.duplicates() == {}


SCENARIOS = {
    "found": ({"errors": 1, "error_after_accept": True}, 0, (10, 0)),
    "not-found": ({"errors": 1}, 0, (0, 10)),
    "partly-found": ({"errors": 1}, 4, (4, 6)),
}
"""fault of the send, recipients that got through beside it, (found, not found)."""


@pytest.mark.slow
@pytest.mark.parametrize("resend", [False, True], ids=["no-resend", "resend"])
@pytest.mark.parametrize("scenario", list(SCENARIOS))
async def test_reconcile_over_a_socket_resolves_unknown_chunks(scenario: str, resend: bool) -> None:
    """Over a socket, with lookups answered in the documented simple shape: found recipients
    become ACCEPTED, the others NOT_SENT (or sent once with resend); no duplicate ever."""
    faults, through, (found, missing) = SCENARIOS[scenario]
    async with emulated_client(socket=True) as env:
        env.emulator.faults.update(faults)
        report = await env.client.stream_broadcast(CAMPAIGN, rows(10))
        assert report.unknown == 10
        if through:
            await env.client.send_broadcast(CAMPAIGN, list(rows(through)))
        await env.client.reconcile(report, resend=resend)
        lookup = await env.client.get_delivery_report(extra_id="r-0")
    assert isinstance(lookup, hy.SimpleDeliveryReport) == (found > 0 or resend)
    assert report.unknown == 0
    if resend:
        assert report.accepted == 10
        assert env.emulator.ledger.counts() == {f"r-{i}": 1 for i in range(10)}
    else:
        assert (report.accepted, report.not_sent) == (found, missing)
        assert [f.extra_id for f in report.failures()] == [f"r-{i}" for i in range(found, 10)]
        assert env.emulator.ledger.accepted == found
    assert env.emulator.ledger.duplicates() == {}


@pytest.mark.slow
async def test_lookup_concurrency_errors_surface_as_themselves() -> None:
    """A lookup that fails (a 500 on every attempt) raises its own error, not a group."""
    async with emulated_client(socket=True) as env:
        env.emulator.faults.update({"errors": 1})
        report = await env.client.stream_broadcast(CAMPAIGN, rows(10))
        env.emulator.faults.update({"errors": 100})
        with pytest.raises(hy.ServerError):
            await env.client.reconcile(report, resend=True)
        env.emulator.faults.clear()
    assert report.unknown == 10
    assert env.emulator.ledger.accepted == 0


@pytest.mark.parametrize(
    "socket", [False, pytest.param(True, marks=pytest.mark.slow)], ids=["in-process", "socket"]
)
async def test_the_emulated_client_is_given_the_dr_host(socket: bool) -> None:
    """hyber_async.testing wires dr_base_url to the emulator (it serves the lookups)."""
    async with emulated_client(socket=socket) as env:
        assert env.client.dr_base_url == env.client.base_url == httpx.URL(env.base_url)


@pytest.mark.parametrize("name", ["dr_base_url", "message_base_url"])
@pytest.mark.parametrize("url", ["ftp://dr.test", "https://user:pw@dr.test"])
def test_a_bad_host_setting_is_named(name: str, url: str) -> None:
    """A non-http(s) URL or one carrying credentials: ValidationError naming the setting."""
    with pytest.raises(hy.ValidationError) as caught:
        make_client(**{name: url})
    assert [p.field for p in caught.value.problems] == [name]
    assert "pw" not in str(caught.value)
