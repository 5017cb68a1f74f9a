"""The emulator's delivery-report lookups (chapter 5): GET api/dr/{message_id}/{detail} and
api/dr/external/{extra_id}/{detail}, answered in the documented simple and advanced shapes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import httpx
import orjson
import pytest
from conftest import FIXTURES
from gms_docs import block

import hyber_async as hy
from hyber_async._codec import converter
from hyber_async.emulator import (
    DEMO_ACCOUNT,
    Account,
    ChannelOutcomes,
    Emulator,
    EmulatorConfig,
    ErrorCodes,
    create_app,
)
from hyber_async.emulator._state import StringColumn

pytestmark = pytest.mark.anyio

AUTH = httpx.BasicAuth(DEMO_ACCOUNT.login, DEMO_ACCOUNT.password)
JSON = {"content-type": "application/json"}
API = f"/{DEMO_ACCOUNT.client_id}"
OTHER = Account(client_id="77", login="other", password="other-pw")
DELIVER_SMS = EmulatorConfig(
    time_scale=0,
    accounts=(DEMO_ACCOUNT, OTHER),
    outcomes={"sms": ChannelOutcomes(deliver=1.0, fail=0.0, deliver_after=5.0)},
)
"""Frozen clock (moved by the tests); every SMS delivered 5 emulated seconds after its start."""
FAIL_SMS = EmulatorConfig(
    time_scale=0, outcomes={"sms": ChannelOutcomes(deliver=0.0, fail=1.0, fail_after=2.0)}
)


def example(number: int) -> dict[str, Any]:
    """The spec's example ``number`` as parsed JSON."""
    (path,) = FIXTURES.glob(f"{number:02d}-*.json")
    data: dict[str, Any] = orjson.loads(path.read_bytes())
    return data


def sms_batch(*extra_ids: str) -> bytes:
    """Example 5 (a batch on SMS alone) with one message per ``extra_id``."""
    body = example(5)
    body["messages"] = [
        {"phone_number": 380_961_111_111 + i, "extra_id": e, "text": f"Hello {i}"}
        for i, e in enumerate(extra_ids)
    ]
    return orjson.dumps(body)


@pytest.fixture
async def http() -> AsyncIterator[tuple[httpx.AsyncClient, Emulator]]:
    """Plain httpx on an in-process emulator whose SMS are all delivered, frozen clock."""
    emulator = create_app(DELIVER_SMS)
    transport = httpx.ASGITransport(app=emulator)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://emulator", auth=AUTH
    ) as client:
        yield client, emulator


async def send(client: httpx.AsyncClient, body: bytes, path: str = "batch/sync") -> Any:
    """POST ``body`` to ``path``; the decoded answer (which must be a 200)."""
    answer = await client.post(f"{API}/{path}", content=body, headers=JSON)
    assert answer.status_code == 200, answer.text
    return answer.json()


def by_extra_id(extra_id: str, detail: str = "simple") -> str:
    """The lookup path of ``extra_id``, percent-encoded as a client sends it."""
    return f"{API}/api/dr/external/{quote(extra_id, safe='')}/{detail}"


async def test_a_final_message_answers_the_documented_simple_shape(
    http: tuple[httpx.AsyncClient, Emulator],
) -> None:
    """Once delivered, the simple lookup has exactly the keys of chapter 5's example, in its
    order (no ``clicks`` without ``ctr``), with this message's values."""
    client, emulator = http
    sent = await send(client, sms_batch("AD-1", "AD-2"))
    message_id = sent["messages"][1]["message_id"]
    emulator.clock.advance(10)
    answer = await client.get(f"{API}/api/dr/{message_id}/simple")
    assert answer.status_code == 200
    report = answer.json()
    assert list(report) == [k for k in block("chapter5.rst", 40).json() if k != "clicks"]
    assert report["phone_number"] == "380961111112"
    assert (report["message_id"], report["extra_id"]) == (message_id, "AD-2")
    assert (report["status"], report["hyber_status"], report["last_partner"]) == (2, 23011, "sms")
    assert report["time"] == emulator.clock.now_ms() - 5_000


async def test_the_answers_decode_as_the_lookup_models(
    http: tuple[httpx.AsyncClient, Emulator],
) -> None:
    """The bodies read as the client's SimpleDeliveryReport and AdvancedDeliveryReport."""
    client, emulator = http
    await send(client, sms_batch("AD-1"))
    emulator.clock.advance(10)
    simple = converter.loads(
        (await client.get(by_extra_id("AD-1"))).content, hy.SimpleDeliveryReport
    )
    assert (simple.extra_id, simple.delivered, simple.phone_number) == (
        "AD-1",
        True,
        "380961111111",
    )
    answer = await client.get(by_extra_id("AD-1", "advanced"))
    advanced = converter.loads(answer.content, hy.AdvancedDeliveryReport)
    assert advanced.reports == (simple,)
    assert (advanced.started, advanced.processing, advanced.delivered_via) == (True, False, "sms")
    assert advanced.channels == (hy.ChannelTtl("sms", 300),)


async def test_a_message_not_final_yet_has_status_minus_one_and_no_final_codes(
    http: tuple[httpx.AsyncClient, Emulator],
) -> None:
    """Before its final status: status -1, last_partner "hyber", acceptance time, no codes."""
    client, emulator = http
    accepted_ms = emulator.clock.now_ms()
    sent = await send(client, sms_batch("AD-1"))
    emulator.clock.advance(1)
    answer = await client.get(by_extra_id("AD-1"))
    assert answer.status_code == 200
    message_id = sent["messages"][0]["message_id"]
    assert answer.json() == {
        "phone_number": "380961111111",
        "last_partner": "hyber",
        "message_id": message_id,
        "extra_id": "AD-1",
        "time": accepted_ms,
        "status": hy.Status.NOT_FINAL,
    }
    advanced = (await client.get(by_extra_id("AD-1", "advanced"))).json()
    assert advanced == {
        "reports": [
            {
                "phone_number": "380961111111",
                "last_partner": "sms",
                "message_id": message_id,
                "extra_id": "AD-1",
                "time": accepted_ms,
                "status": hy.Status.NOT_FINAL,
            }
        ],
        "started": True,
        "processing": True,
        "delivered_via": "hyber",
        "channels": [{"channel": "sms", "ttl": 300}],
    }


async def test_the_advanced_report_lists_each_channel_attempt_in_the_documented_shape() -> None:
    """Viber expired then SMS delivered: two reports (viber 3/35, sms 2/23 with its parts),
    delivered_via sms, the channels with their ttl, clicks with ctr; the keys of chapter 5."""
    config = EmulatorConfig(
        time_scale=0,
        outcomes={
            "viber": ChannelOutcomes(deliver=0.0, fail=0.0),
            "sms": ChannelOutcomes(deliver=1.0, fail=0.0, deliver_after=5.0),
        },
    )
    emulator = create_app(config)
    body = example(1)
    body["channel_options"]["viber"]["ctr"] = True
    body["messages"] = [{"phone_number": 380961111111, "extra_id": "AD-1", "text": "Hi"}]
    transport = httpx.ASGITransport(app=emulator)
    async with httpx.AsyncClient(transport=transport, base_url="http://e", auth=AUTH) as client:
        accepted_ms = emulator.clock.now_ms()
        await send(client, orjson.dumps(body), "batch")
        emulator.clock.advance(60 + 5)
        advanced = (await client.get(by_extra_id("AD-1", "advanced"))).json()
        simple = (await client.get(by_extra_id("AD-1"))).json()
    documented = block("chapter5.rst", 73).json()
    assert list(advanced) == list(documented)
    viber, sms = advanced["reports"]
    assert set(viber) == set(documented["reports"][0])
    assert set(sms) == set(documented["reports"][1])
    assert (viber["last_partner"], viber["status"], viber["substatus"]) == ("viber", 3, 35)
    assert viber["time"] == accepted_ms + 60_000
    assert (sms["last_partner"], sms["status"], sms["hyber_status"]) == ("sms", 2, 23011)
    assert sms["time"] == accepted_ms + 65_000
    assert (advanced["started"], advanced["processing"], advanced["delivered_via"]) == (
        True,
        False,
        "sms",
    )
    assert advanced["channels"] == [{"channel": "viber", "ttl": 60}, {"channel": "sms", "ttl": 300}]
    assert simple == {**sms, "clicks": advanced["clicks"]}


async def test_a_message_whose_start_time_has_not_come_is_not_started(
    http: tuple[httpx.AsyncClient, Emulator],
) -> None:
    """A future start_time: advanced answers started false, no reports, processing false."""
    client, _ = http
    body = orjson.loads(sms_batch("AD-1"))
    body["start_time"] = "2999-01-01 00:00:00+00:00"
    await send(client, orjson.dumps(body), "batch")
    advanced = (await client.get(by_extra_id("AD-1", "advanced"))).json()
    assert (advanced["reports"], advanced["started"], advanced["processing"]) == ([], False, False)
    assert advanced["delivered_via"] == "hyber"
    simple = (await client.get(by_extra_id("AD-1"))).json()
    assert (simple["status"], simple["last_partner"]) == (hy.Status.NOT_FINAL, "hyber")


async def test_an_undelivered_message_reports_its_failure_codes() -> None:
    """A failed SMS answers status 3 with its hyber_status and 0 delivered parts."""
    emulator = create_app(FAIL_SMS)
    transport = httpx.ASGITransport(app=emulator)
    async with httpx.AsyncClient(transport=transport, base_url="http://e", auth=AUTH) as client:
        await send(client, sms_batch("AD-1"), "batch")
        emulator.clock.advance(10)
        report = (await client.get(by_extra_id("AD-1"))).json()
    assert (report["status"], report["substatus"], report["hyber_status"]) == (3, 34, 34011)
    assert report["delivered_sms_parts"] == 0


async def test_the_lookups_by_message_id_and_by_extra_id_agree(
    http: tuple[httpx.AsyncClient, Emulator],
) -> None:
    """Both routes answer the same report for every message of an async job."""
    client, emulator = http
    extra_ids = [f"AD-{i}" for i in range(5)]
    job = await send(client, sms_batch(*extra_ids), "batch")
    emulator.clock.advance(10)
    status = emulator.status(job["job_id"])
    assert status is not None
    for item in status:
        by_id = (await client.get(f"{API}/api/dr/{item['message_id']}/simple")).json()
        by_extra = (await client.get(by_extra_id(item["extra_id"]))).json()
        assert by_id == by_extra
        assert (by_id["message_id"], by_id["hyber_status"]) == (
            item["message_id"],
            item["hyber_status"],
        )


async def test_an_extra_id_accepted_twice_answers_the_latest_message(
    http: tuple[httpx.AsyncClient, Emulator],
) -> None:
    """When an extra_id was accepted more than once, the lookup answers the last one."""
    client, _ = http
    first = await send(client, sms_batch("AD-1", "AD-2"))
    second = await send(client, sms_batch("AD-0", "AD-1"))
    answer = (await client.get(by_extra_id("AD-1"))).json()
    assert answer["message_id"] == second["messages"][1]["message_id"]
    assert answer["message_id"] != first["messages"][0]["message_id"]


async def test_sync_items_rejected_in_between_do_not_shift_the_lookup(
    http: tuple[httpx.AsyncClient, Emulator],
) -> None:
    """With a rejected phone number before it, an extra_id still finds its own message."""
    client, _ = http
    body = orjson.loads(sms_batch("AD-1", "AD-bad", "AD-3"))
    body["messages"][1]["phone_number"] = 12345
    sent = await send(client, orjson.dumps(body))
    assert [m["accepted"] for m in sent["messages"]] == [True, False, True]
    answer = (await client.get(by_extra_id("AD-3"))).json()
    assert answer["message_id"] == sent["messages"][2]["message_id"]
    assert answer["phone_number"] == str(body["messages"][2]["phone_number"])
    missing = await client.get(by_extra_id("AD-bad"))
    assert missing.status_code == 404


@pytest.mark.parametrize("extra_id", ["a/b", "with space", "percent%41", "ключ?&#"])
async def test_extra_ids_with_reserved_characters_are_found(
    http: tuple[httpx.AsyncClient, Emulator], extra_id: str
) -> None:
    """A percent-encoded extra_id (slashes, spaces, '%', non-ASCII) is looked up as itself."""
    client, _ = http
    await send(client, sms_batch(extra_id))
    answer = await client.get(by_extra_id(extra_id))
    assert answer.status_code == 200
    assert answer.json()["extra_id"] == extra_id


@pytest.mark.parametrize(
    "path",
    [
        "api/dr/external/never-sent/simple",
        "api/dr/00000000-0000-4000-8000-000000000000/simple",
        "api/dr/not-a-message-id/simple",
        "api/dr/external//simple",
        "api/dr/external/never-sent/advanced",
        "api/dr/not-a-message-id/advanced",
    ],
)
async def test_an_unknown_id_is_404_with_the_error_body(
    http: tuple[httpx.AsyncClient, Emulator], path: str
) -> None:
    """No accepted message with that id: 404 and error_code 40401 naming the id."""
    client, _ = http
    await send(client, sms_batch("AD-1"))
    answer = await client.get(f"{API}/{path}")
    assert answer.status_code == 404
    assert answer.json()["error_code"] == ErrorCodes.NOT_FOUND
    assert "No message with" in answer.json()["error_text"]


@pytest.mark.parametrize("path", ["api/dr/x/detailed", "api/dr", "api/dr/external/x/y"])
async def test_other_dr_paths_are_404(http: tuple[httpx.AsyncClient, Emulator], path: str) -> None:
    """Only the /simple and /advanced lookups are served."""
    client, _ = http
    answer = await client.get(f"{API}/{path}")
    assert answer.status_code == 404
    assert answer.json()["error_code"] == ErrorCodes.NOT_FOUND


async def test_a_message_of_another_client_is_not_found(
    http: tuple[httpx.AsyncClient, Emulator],
) -> None:
    """An extra_id or message_id accepted for another account answers 404."""
    client, _ = http
    sent = await send(client, sms_batch("AD-1"))
    other = httpx.BasicAuth(OTHER.login, OTHER.password)
    message_id = sent["messages"][0]["message_id"]
    for path in (f"api/dr/{message_id}/simple", "api/dr/external/AD-1/simple"):
        answer = await client.get(f"/{OTHER.client_id}/{path}", auth=other)
        assert answer.status_code == 404


async def test_lookups_need_the_credentials_of_the_client(
    http: tuple[httpx.AsyncClient, Emulator],
) -> None:
    """Without auth 401; with another client's credentials 403; POST 405."""
    client, _ = http
    path = f"{API}/api/dr/external/AD-1/simple"
    unauthenticated = await client.get(path, auth=None)
    assert unauthenticated.status_code == 401
    foreign = await client.get(path, auth=httpx.BasicAuth(OTHER.login, OTHER.password))
    assert foreign.status_code == 403
    posted = await client.post(path, content=b"{}", headers=JSON)
    assert (posted.status_code, posted.headers["allow"]) == (405, "GET")


async def test_a_lookup_by_extra_id_reads_no_column_once_indexed(
    http: tuple[httpx.AsyncClient, Emulator], monkeypatch: pytest.MonkeyPatch
) -> None:
    """After the first query builds the index, a lookup costs no scan of the stored messages."""
    client, emulator = http
    extra_ids = [f"L-{i}" for i in range(20_000)]
    for start in range(0, len(extra_ids), 5_000):
        await send(client, sms_batch(*extra_ids[start : start + 5_000]), "batch")
    assert emulator.ledger.count("L-0") == 1  # builds the index
    reads = 0
    real_values = StringColumn.values

    def counting_values(self: StringColumn) -> list[Any]:
        nonlocal reads
        reads += 1
        return real_values(self)

    monkeypatch.setattr(StringColumn, "values", counting_values)
    for extra_id in ("L-0", "L-12345", "L-19999"):
        answer = await client.get(by_extra_id(extra_id))
        assert answer.json()["extra_id"] == extra_id
    assert reads == 0


async def test_the_ledger_latest_names_the_job_and_index() -> None:
    """Ledger.latest gives (job id, index) of the last acceptance, None for unknown ids."""
    emulator = create_app(DELIVER_SMS)
    transport = httpx.ASGITransport(app=emulator)
    async with httpx.AsyncClient(transport=transport, base_url="http://e", auth=AUTH) as client:
        first = await send(client, sms_batch("A", "B", "C"), "batch")
        second = await send(client, sms_batch("C", "D"), "batch")
    ledger = emulator.ledger
    assert ledger.latest("B") == (first["job_id"], 1)
    assert ledger.latest("C") == (second["job_id"], 0)
    assert ledger.latest("Z") is None
    assert ledger.counts() == {"A": 1, "B": 1, "C": 2, "D": 1}
    assert ledger.duplicates() == {"C": 2}
