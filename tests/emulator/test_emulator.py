"""The emulator in-process: jobs, cascade, status evolution, rendering, faults, ledger."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import orjson
import pytest
from _support import batch_campaign, broadcast_campaign
from conftest import FIXTURES

import hyber_async as hy
from hyber_async.emulator import (
    DEMO_ACCOUNT,
    ChannelOutcomes,
    Emulator,
    EmulatorConfig,
    ErrorCodes,
    Faults,
    create_app,
)
from hyber_async.emulator._state import sms_parts
from hyber_async.testing import EmulatedClient, emulated_client

pytestmark = pytest.mark.anyio

FROZEN = EmulatorConfig(time_scale=0)
"""The clock only moves when a test advances it: every status is deterministic."""


BATCH_PATH = f"/{DEMO_ACCOUNT.client_id}/batch"
AUTH = httpx.BasicAuth(DEMO_ACCOUNT.login, DEMO_ACCOUNT.password)
JSON = {"content-type": "application/json"}


def example(number: int) -> dict[str, Any]:
    """The spec's example ``number`` (1-21) as parsed JSON."""
    (path,) = FIXTURES.glob(f"{number:02d}-*.json")
    data: dict[str, Any] = orjson.loads(path.read_bytes())
    return data


@pytest.fixture
async def raw() -> AsyncIterator[tuple[httpx.AsyncClient, Emulator]]:
    """A plain httpx client on a frozen-clock emulator, in-process."""
    emulator = create_app(FROZEN)
    transport = httpx.ASGITransport(app=emulator)
    async with httpx.AsyncClient(transport=transport, base_url="http://emulator") as http:
        yield http, emulator


@pytest.fixture
async def emulated() -> AsyncIterator[EmulatedClient]:
    """Here, ``emulated_client(FROZEN)``: the emulator's clock does not move unless told to."""
    async with emulated_client(FROZEN) as env:
        yield env


def messages(count: int, prefix: str = "m") -> list[hy.Message]:
    """``count`` batch messages with distinct phones and ``extra_id``s."""
    return [hy.Message(380_500_000_000 + i, f"Hello {i}", f"{prefix}-{i}") for i in range(count)]


def outcomes(status: hy.JobStatus) -> list[tuple[str | None, int | None, int | None]]:
    """(phone, final code, time) of each message, id-free, so two runs can be compared."""
    return [(m.phone_number, m.hyber_status or m.error_code, m.time) for m in status.messages]


ALWAYS_EXPIRE = ChannelOutcomes(deliver=0.0, fail=0.0)
ALWAYS_FAIL = ChannelOutcomes(deliver=0.0, fail=1.0, fail_after=2.0)
ALWAYS_DELIVER = ChannelOutcomes(deliver=1.0, fail=0.0, deliver_after=5.0)
COIN = ChannelOutcomes(deliver=0.5, fail=0.25)


# --- jobs and status evolution ----------------------------------------------------------------


async def test_async_batch_returns_a_job_whose_messages_are_not_final_at_first(
    emulated: EmulatedClient,
) -> None:
    """A new job's messages report status -1 and processed true until the clock moves."""
    job = await emulated.client.send_batch(batch_campaign(), messages(3))
    status = await emulated.client.get_status(job.job_id)
    assert [m.status for m in status.messages] == [hy.Status.NOT_FINAL] * 3
    assert all(m.processed for m in status.messages)
    assert not status.is_final


async def test_status_becomes_final_once_the_cascade_ends(emulated: EmulatedClient) -> None:
    """After the clock passes every ttl, each message has a documented final status."""
    job = await emulated.client.send_batch(batch_campaign(), messages(50))
    emulated.emulator.clock.advance(10_000)
    status = await emulated.client.get_status(job.job_id)
    assert status.is_final
    assert {m.processed for m in status.messages} == {False}


async def test_message_ids_are_unique_and_map_back_to_their_job(emulated: EmulatedClient) -> None:
    """Every message gets its own message_id, and the emulator finds its job from it."""
    job = await emulated.client.send_batch(batch_campaign(), messages(20))
    status = await emulated.client.get_status(job.job_id)
    ids = [m.message_id for m in status.messages]
    found = [emulated.emulator.message(i) for i in ids if i is not None]
    assert len(set(ids)) == 20
    assert {f["job_id"] for f in found if f is not None} == {job.job_id}


async def test_delivery_on_the_first_channel_stops_the_cascade() -> None:
    """A message delivered by Viber never reaches SMS: it ends 2/23/23033 via viber."""
    config = EmulatorConfig(time_scale=0, outcomes={"viber": ALWAYS_DELIVER})
    async with emulated_client(config) as emulated:
        job = await emulated.client.send_batch(batch_campaign(), messages(5))
        emulated.emulator.clock.advance(5)
        status = await emulated.client.get_status(job.job_id)
    assert {(m.status, m.substatus, m.hyber_status) for m in status.messages} == {(2, 23, 23033)}
    assert {m.delivered_sms_parts for m in status.messages} == {0}


async def test_a_failed_channel_passes_the_message_to_the_next_one() -> None:
    """Viber failing after 2 s hands over to SMS, which delivers 5 s later: 23011 at +7 s."""
    config = EmulatorConfig(time_scale=0, outcomes={"viber": ALWAYS_FAIL, "sms": ALWAYS_DELIVER})
    async with emulated_client(config) as emulated:
        job = await emulated.client.send_batch(batch_campaign(), messages(4))
        emulated.emulator.clock.advance(6.9)
        before = await emulated.client.get_status(job.job_id)
        emulated.emulator.clock.advance(0.2)
        after = await emulated.client.get_status(job.job_id)
    assert not any(m.is_final for m in before.messages)
    assert {m.hyber_status for m in after.messages} == {hy.HyberStatus.SMS_DELIVERED}
    assert {m.delivered_sms_parts for m in after.messages} == {1}


async def test_an_expiring_channel_waits_for_its_own_ttl() -> None:
    """Viber expiring hands over only when its ttl (60 s) has run out."""
    config = EmulatorConfig(time_scale=0, outcomes={"viber": ALWAYS_EXPIRE, "sms": ALWAYS_DELIVER})
    async with emulated_client(config) as emulated:
        job = await emulated.client.send_batch(batch_campaign(), messages(2))
        emulated.emulator.clock.advance(64.9)
        before = await emulated.client.get_status(job.job_id)
        emulated.emulator.clock.advance(0.2)
        after = await emulated.client.get_status(job.job_id)
    assert not any(m.is_final for m in before.messages)
    assert after.is_final


async def test_expiry_on_the_last_channel_reports_error_code_35015() -> None:
    """An SMS that expires is reported as in example 18: error_code 35015, "SMS expired"."""
    config = EmulatorConfig(time_scale=0, outcomes={"viber": ALWAYS_FAIL, "sms": ALWAYS_EXPIRE})
    async with emulated_client(config) as emulated:
        job = await emulated.client.send_batch(batch_campaign(), messages(2))
        emulated.emulator.clock.advance(10_000)
        status = await emulated.client.get_status(job.job_id)
    item = status.messages[0]
    assert (item.error_code, item.error_text, item.status) == (35015, "SMS expired", None)


async def test_the_same_seed_gives_the_same_outcomes() -> None:
    """Two emulators with one seed give the same outcome and time to every message."""
    results = []
    for _ in range(2):
        config = EmulatorConfig(seed=7, time_scale=0, outcomes={"viber": COIN, "sms": COIN})
        async with emulated_client(config) as emulated:
            job = await emulated.client.send_batch(batch_campaign(), messages(200))
            emulated.emulator.clock.advance(10_000)
            status = await emulated.client.get_status(job.job_id)
        results.append(sorted((p, c) for p, c, _ in outcomes(status)))
    assert results[0] == results[1]
    assert len({c for _, c in results[0]}) > 2


async def test_another_seed_gives_other_outcomes() -> None:
    """Changing the seed changes the outcomes of the same request."""
    results = []
    for seed in (1, 2):
        config = EmulatorConfig(seed=seed, time_scale=0, outcomes={"viber": COIN, "sms": COIN})
        async with emulated_client(config) as emulated:
            job = await emulated.client.send_batch(batch_campaign(), messages(200))
            emulated.emulator.clock.advance(10_000)
            results.append(
                [c for _, c, _ in outcomes(await emulated.client.get_status(job.job_id))]
            )
    assert results[0] != results[1]


async def test_outcomes_do_not_depend_on_the_order_requests_arrive_in() -> None:
    """A request gets the same outcomes whether it arrives first or second."""
    first, second = messages(100, "a"), messages(100, "b")
    seen: list[list[int | None]] = []
    for order in ((first, second), (second, first)):
        config = EmulatorConfig(seed=3, time_scale=0, outcomes={"viber": COIN, "sms": COIN})
        async with emulated_client(config) as emulated:
            jobs = [await emulated.client.send_batch(batch_campaign(), m) for m in order]
            emulated.emulator.clock.advance(10_000)
            job_id = jobs[order.index(first)].job_id
            seen.append([c for _, c, _ in outcomes(await emulated.client.get_status(job_id))])
    assert seen[0] == seen[1]


async def test_a_future_start_time_delays_the_cascade() -> None:
    """Messages stay "Scheduled" until start_time, then run their cascade from there."""
    config = EmulatorConfig(time_scale=0, outcomes={"viber": ALWAYS_DELIVER})
    async with emulated_client(config) as emulated:
        clock = emulated.emulator.clock
        start = datetime.fromtimestamp(clock.now(), timezone.utc) + timedelta(hours=1)
        campaign = batch_campaign(start_time=start.replace(microsecond=0))
        job = await emulated.client.send_batch(campaign, messages(2))
        clock.advance(3590)
        waiting = await emulated.client.get_status(job.job_id)
        clock.advance(16)
        done = await emulated.client.get_status(job.job_id)
    assert {(m.status, m.status_text) for m in waiting.messages} == {(-1, "Scheduled")}
    assert done.is_final


async def test_a_start_time_without_offset_is_kyiv_time(emulated: EmulatedClient) -> None:
    """'YYYY-MM-DD hh:mm:ss' without an offset is read as Kyiv local time."""
    clock = emulated.emulator.clock
    kyiv = datetime.fromtimestamp(clock.now(), ZoneInfo("Europe/Kyiv")) + timedelta(hours=2)
    campaign = batch_campaign(start_time=kyiv.strftime("%Y-%m-%d %H:%M:%S"))
    job = await emulated.client.send_batch(campaign, messages(1))
    clock.advance(7190)
    status = await emulated.client.get_status(job.job_id)
    assert status.messages[0].status_text == "Scheduled"


async def test_a_start_time_in_the_past_starts_at_once(emulated: EmulatedClient) -> None:
    """The examples' 2020 start_time does not delay anything."""
    campaign = batch_campaign(start_time="2020-12-12 10:10:10+03:00")
    job = await emulated.client.send_batch(campaign, messages(1))
    status = await emulated.client.get_status(job.job_id)
    assert status.messages[0].status_text == "In progress"


async def test_clicks_are_reported_only_when_ctr_is_on(emulated: EmulatedClient) -> None:
    """With ctr every status item carries clicks; without it none does."""
    ctr_campaign = hy.Campaign(
        channels=(hy.Channel.SMS,),
        channel_options=hy.ChannelOptions(sms=hy.SmsOptions(alpha_name="GMSU", ttl=300, ctr=True)),
    )
    with_ctr = await emulated.client.send_batch(ctr_campaign, messages(3))
    without = await emulated.client.send_batch(batch_campaign(), messages(3))
    emulated.emulator.clock.advance(10_000)
    on = await emulated.client.get_status(with_ctr.job_id)
    off = await emulated.client.get_status(without.job_id)
    assert all(m.clicks is not None for m in on.messages)
    assert all(m.clicks is None for m in off.messages)


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("a" * 306, 2),
        ("a" * 307, 3),
        ("{" * 80, 1),
        ("{" * 81, 2),
        ("ж" * 70, 1),
        ("ж" * 71, 2),
        ("ж" * 135, 3),
    ],
)
def test_sms_parts_follow_the_documented_lengths(text: str, parts: int) -> None:
    """GSM-7 160/153 (extension characters twice), UCS-2 70/67."""
    assert sms_parts(text) == parts


async def test_total_sms_parts_counts_each_batch_text(emulated: EmulatedClient) -> None:
    """A 200-character Latin SMS text takes 2 parts."""
    job = await emulated.client.send_batch(
        batch_campaign(), [hy.Message(380961111111, "x" * 200), hy.Message(380962222222, "x")]
    )
    status = await emulated.client.get_status(job.job_id)
    assert [m.total_sms_parts for m in status.messages] == [2, 1]


# --- broadcast rendering ---------------------------------------------------------------------


async def test_broadcast_placeholders_are_filled_per_recipient(
    raw: tuple[httpx.AsyncClient, Emulator],
) -> None:
    """%greeting% and %name% of example 8 are replaced in the Viber and SMS texts."""
    http, emulator = raw
    body = orjson.dumps(example(8))
    answer = await http.post(
        f"/{DEMO_ACCOUNT.client_id}/broadcast/sync", content=body, headers=JSON, auth=AUTH
    )
    message_id = answer.json()["messages"][1]["message_id"]
    content = emulator.message(message_id)
    assert content is not None
    assert content["content"]["viber"]["text"] == "Dear Ms.  Zoya! Here is a Viber message for you"
    assert content["content"]["sms"]["text"] == "Dear Ms.  Zoya! Here is an SMS"


async def test_placeholders_are_filled_in_every_option_string(
    raw: tuple[httpx.AsyncClient, Emulator],
) -> None:
    """Example 12 fills file_name and action per recipient, not only text."""
    http, emulator = raw
    body = orjson.dumps(example(12))
    answer = await http.post(
        f"/{DEMO_ACCOUNT.client_id}/broadcast/sync", content=body, headers=JSON, auth=AUTH
    )
    message_id = answer.json()["messages"][0]["message_id"]
    content = emulator.message(message_id)
    assert content is not None
    viber = content["content"]["viber"]
    assert (viber["file_name"], viber["action"]) == (
        "Name_for_document1.docx",
        "https://example.com/file1.docx",
    )


async def test_batch_text_goes_to_every_channel(raw: tuple[httpx.AsyncClient, Emulator]) -> None:
    """In a batch, each message's own text is what every channel sends."""
    http, emulator = raw
    answer = await http.post(
        f"{BATCH_PATH}/sync", content=orjson.dumps(example(1)), headers=JSON, auth=AUTH
    )
    message_id = answer.json()["messages"][0]["message_id"]
    content = emulator.message(message_id)
    assert content is not None
    texts = {c["text"] for c in content["content"].values()}
    assert texts == {"Text for all channels, recipient #380961111111"}


# --- the foundation client against the emulator, all five endpoints ---------------------------


@pytest.fixture(
    params=[False, pytest.param(True, marks=pytest.mark.slow)], ids=["in-process", "socket"]
)
def socket(request: pytest.FixtureRequest) -> bool:
    """Run the client test in-process and over a loopback socket."""
    return bool(request.param)


async def test_client_send_batch(socket: bool) -> None:
    """send_batch returns a job the emulator knows, with every message recorded."""
    async with emulated_client(FROZEN, socket=socket) as emulated:
        job = await emulated.client.send_batch(batch_campaign(), messages(3))
        assert emulated.emulator.status(job.job_id) is not None
        assert emulated.emulator.ledger.accepted == 3


async def test_client_send_batch_sync(socket: bool) -> None:
    """send_batch_sync returns one accepted result per message, in order."""
    async with emulated_client(FROZEN, socket=socket) as emulated:
        result = await emulated.client.send_batch_sync(batch_campaign(), messages(3))
    assert [r.extra_id for r in result.messages] == ["m-0", "m-1", "m-2"]
    assert all(r.accepted and r.message_id for r in result.messages)


async def test_client_send_broadcast(socket: bool) -> None:
    """send_broadcast returns a job whose messages are in the ledger."""
    recipients = [hy.Recipient(380961111111, "r-1", {"name": "Ann"})]
    async with emulated_client(FROZEN, socket=socket) as emulated:
        job = await emulated.client.send_broadcast(broadcast_campaign(), recipients)
        assert emulated.emulator.ledger.count("r-1") == 1
        assert job.job_id


async def test_client_send_broadcast_sync(socket: bool) -> None:
    """send_broadcast_sync answers per recipient with the phone number as a string."""
    recipients = [hy.Recipient(380961111111, "r-1", {"name": "Ann"})]
    async with emulated_client(FROZEN, socket=socket) as emulated:
        result = await emulated.client.send_broadcast_sync(broadcast_campaign(), recipients)
    assert result.messages[0].phone_number == "380961111111"
    assert result.messages[0].accepted


async def test_client_get_status(socket: bool) -> None:
    """get_status reads the emulator's report into a final JobStatus once time has passed."""
    async with emulated_client(FROZEN, socket=socket) as emulated:
        job = await emulated.client.send_batch(batch_campaign(), messages(3))
        emulated.emulator.clock.advance(10_000)
        status = await emulated.client.get_status(job.job_id)
    assert status.is_final
    assert [m.extra_id for m in status.messages] == ["m-0", "m-1", "m-2"]


async def test_client_get_status_of_an_unknown_job_is_an_api_error(
    emulated: EmulatedClient,
) -> None:
    """An unknown job id is answered 404 with the emulator's error code."""
    with pytest.raises(hy.APIError) as caught:
        await emulated.client.get_status("00000000-0000-4000-8000-000000000000")
    assert (caught.value.status_code, caught.value.error_code) == (404, ErrorCodes.NOT_FOUND)


# --- the sync endpoints' partial rejection ---------------------------------------------------


async def test_a_bad_phone_is_rejected_alone_on_a_sync_endpoint(
    raw: tuple[httpx.AsyncClient, Emulator],
) -> None:
    """Item 1 with a 3-digit phone is accepted: false / 36024; items 0 and 2 are accepted."""
    http, emulator = raw
    body = example(1)
    body["messages"].insert(1, {"phone_number": 123, "extra_id": "bad", "text": "x"})
    answer = await http.post(
        f"{BATCH_PATH}/sync", content=orjson.dumps(body), headers=JSON, auth=AUTH
    )
    items = answer.json()["messages"]
    assert answer.status_code == 200
    assert [i["accepted"] for i in items] == [True, False, True]
    assert (items[1]["error_code"], items[1]["phone_number"]) == (36024, "123")
    assert (emulator.ledger.accepted, emulator.ledger.rejected) == (2, 1)


async def test_a_bad_phone_fails_a_whole_async_request(
    raw: tuple[httpx.AsyncClient, Emulator],
) -> None:
    """On an async endpoint a bad phone is a 400 with error_code 36024 naming the item."""
    http, emulator = raw
    body = example(1)
    body["messages"][1]["phone_number"] = 123
    answer = await http.post(BATCH_PATH, content=orjson.dumps(body), headers=JSON, auth=AUTH)
    error = answer.json()
    assert (answer.status_code, error["error_code"]) == (400, 36024)
    assert "messages[1].phone_number" in error["error_text"]
    assert "AD-6640-7007" in error["error_text"]
    assert emulator.ledger.accepted == 0


# --- faults ----------------------------------------------------------------------------------


async def test_rate_limit_answers_429_with_retry_after_then_recovers(
    raw: tuple[httpx.AsyncClient, Emulator],
) -> None:
    """rate_limit=2: two 429s with Retry-After, then the request is processed."""
    http, emulator = raw
    emulator.faults.update({"rate_limit": 2, "retry_after": 3})
    body = orjson.dumps(example(5))
    answers = [await http.post(BATCH_PATH, content=body, headers=JSON, auth=AUTH) for _ in range(3)]
    assert [a.status_code for a in answers] == [429, 429, 200]
    assert answers[0].headers["retry-after"] == "3"
    assert emulator.ledger.accepted == 2


async def test_the_client_retries_through_a_rate_limit(emulated: EmulatedClient) -> None:
    """HyberClient resends after 429s; the messages are accepted exactly once."""
    emulated.emulator.faults.rate_limit = 2
    await emulated.client.send_batch(batch_campaign(), messages(3))
    ledger = emulated.emulator.ledger
    assert (ledger.requests, ledger.accepted, ledger.duplicates()) == (3, 3, {})


async def test_a_503_with_retry_after_is_resent_and_accepted_once() -> None:
    """errors=1 as 503 + Retry-After before processing: the client resends, nothing twice."""
    faults = Faults(errors=1, error_status=503, error_retry_after=1.0)
    async with emulated_client(EmulatorConfig(time_scale=0, faults=faults)) as emulated:
        await emulated.client.send_batch(batch_campaign(), messages(2))
        assert emulated.emulator.ledger.accepted == 2
        assert emulated.emulator.ledger.requests == 2


async def test_a_500_after_accept_is_recorded_but_reported_as_unknown() -> None:
    """error_after_accept: the ledger has the messages, the client an OutcomeUnknownError."""
    faults = Faults(errors=1, error_after_accept=True)
    async with emulated_client(EmulatorConfig(time_scale=0, faults=faults)) as emulated:
        with pytest.raises(hy.OutcomeUnknownError) as caught:
            await emulated.client.send_batch(batch_campaign(), messages(2))
        assert emulated.emulator.ledger.count("m-0") == 1
    assert tuple(caught.value.extra_ids) == ("m-0", "m-1")


def test_error_rate_is_reproducible_under_a_seed() -> None:
    """Two fault sets with one seed fail the same requests."""
    runs = []
    for _ in range(2):
        faults = Faults(error_rate=0.5)
        faults.seed(11)
        runs.append([faults.take().status for _ in range(40)])
    assert runs[0] == runs[1]
    assert set(runs[0]) == {None, 500}


async def test_latency_delays_answers_past_a_deadline() -> None:
    """latency longer than the client's total deadline makes the call time out, unprocessed."""
    timeouts = hy.Timeouts(total=0.05)
    async with emulated_client(FROZEN, timeouts=timeouts) as emulated:
        emulated.emulator.faults.latency = 30.0
        with pytest.raises(hy.OutcomeUnknownError):
            await emulated.client.send_batch(batch_campaign(), messages(1))
        assert emulated.emulator.ledger.accepted == 0


async def test_a_slow_answer_is_processed_before_the_client_gives_up() -> None:
    """slow=1: the request is processed, the answer comes too late for the deadline."""
    timeouts = hy.Timeouts(total=0.05)
    async with emulated_client(FROZEN, timeouts=timeouts) as emulated:
        emulated.emulator.faults.update({"slow": 1, "slow_seconds": 30.0})
        with pytest.raises(hy.OutcomeUnknownError):
            await emulated.client.send_batch(batch_campaign(), messages(1))
        assert emulated.emulator.ledger.accepted == 1
        assert emulated.emulator.faults.slow == 0


async def test_reset_in_process_raises_a_read_error_after_processing(
    emulated: EmulatedClient,
) -> None:
    """In-process the reset fault surfaces as a transport failure: outcome unknown, recorded."""
    emulated.emulator.faults.reset = 1
    with pytest.raises(hy.OutcomeUnknownError):
        await emulated.client.send_batch(batch_campaign(), messages(1))
    assert emulated.emulator.ledger.accepted == 1


async def test_faults_are_set_through_the_admin_route(
    raw: tuple[httpx.AsyncClient, Emulator],
) -> None:
    """POST /_emulator/faults sets a fault that the next API answer shows."""
    http, _ = raw
    await http.post("/_emulator/faults", json={"errors": 1, "error_status": 502})
    answer = await http.post(BATCH_PATH, content=orjson.dumps(example(5)), headers=JSON, auth=AUTH)
    assert (answer.status_code, answer.json()["error_code"]) == (502, 50201)


async def test_the_admin_route_refuses_unknown_faults(
    raw: tuple[httpx.AsyncClient, Emulator],
) -> None:
    """An unknown fault name is a 400 and changes nothing."""
    http, emulator = raw
    answer = await http.post("/_emulator/faults", json={"rate_limit": 1, "teleport": 1})
    assert answer.status_code == 400
    assert emulator.faults.rate_limit == 0


async def test_delete_clears_every_fault(raw: tuple[httpx.AsyncClient, Emulator]) -> None:
    """DELETE /_emulator/faults removes the faults in force."""
    http, emulator = raw
    emulator.faults.update({"rate_limit": 5, "latency": 1.0})
    answer = await http.delete("/_emulator/faults")
    assert (answer.json()["rate_limit"], emulator.faults.latency) == (0, 0.0)


def test_invalid_fault_values_change_nothing() -> None:
    """update() validates every value before changing any."""
    faults = Faults()
    with pytest.raises(ValueError, match="error_status"):
        faults.update({"rate_limit": 3, "error_status": 404})
    assert faults.rate_limit == 0


# --- ledger and clock ------------------------------------------------------------------------


async def test_the_ledger_counts_a_request_posted_twice_as_duplicates(
    raw: tuple[httpx.AsyncClient, Emulator],
) -> None:
    """Posting example 1 twice accepts its two extra_ids twice each."""
    http, emulator = raw
    body = orjson.dumps(example(1))
    for _ in range(2):
        await http.post(BATCH_PATH, content=body, headers=JSON, auth=AUTH)
    assert emulator.ledger.duplicates() == {"AD-6640-7006": 2, "AD-6640-7007": 2}
    assert (emulator.ledger.accepted, emulator.ledger.count("AD-6640-7006")) == (4, 2)


async def test_the_ledger_route_reports_totals_and_counts(
    raw: tuple[httpx.AsyncClient, Emulator],
) -> None:
    """GET /_emulator/ledger gives totals, duplicates, one count and every count."""
    http, _ = raw
    await http.post(BATCH_PATH, content=orjson.dumps(example(1)), headers=JSON, auth=AUTH)
    answer = await http.get("/_emulator/ledger", params={"extra_id": "AD-6640-7006", "counts": 1})
    report = answer.json()
    assert (report["accepted"], report["requests"], report["count"]) == (2, 1, 1)
    assert report["counts"] == {"AD-6640-7006": 1, "AD-6640-7007": 1}


async def test_the_clock_route_advances_emulated_time(
    raw: tuple[httpx.AsyncClient, Emulator],
) -> None:
    """POST /_emulator/clock {"advance": s} moves the frozen clock by s seconds."""
    http, emulator = raw
    before = emulator.clock.now_ms()
    answer = await http.post("/_emulator/clock", json={"advance": 60})
    assert answer.json()["now"] - before == 60_000


def test_a_frozen_clock_does_not_move_by_itself() -> None:
    """time_scale 0 keeps the emulated time where it is until advanced."""
    emulator = create_app(FROZEN)
    first = emulator.clock.now()
    assert emulator.clock.now() == first


def test_channel_outcomes_must_leave_room_for_expiry() -> None:
    """deliver + fail above 1 is refused."""
    with pytest.raises(ValueError, match="deliver \\+ fail"):
        ChannelOutcomes(deliver=0.8, fail=0.3)


def test_account_passwords_stay_out_of_reprs() -> None:
    """The password of an account never shows in the config's repr."""
    config = EmulatorConfig()
    assert DEMO_ACCOUNT.password not in repr(config)
    assert base64.b64encode(DEMO_ACCOUNT.password.encode()).decode() not in repr(config)


async def test_extra_ids_needing_json_escapes_survive_the_status_report(
    emulated: EmulatedClient,
) -> None:
    """Quotes, backslashes and newlines in extra_id come back intact in the status report."""
    odd = ['say "hi"', "back\\slash", "line\nbreak", "plain"]
    job = await emulated.client.send_batch(
        batch_campaign(), [hy.Message(380_500_000_000 + i, "Hi", e) for i, e in enumerate(odd)]
    )
    status = await emulated.client.get_status(job.job_id)
    assert [m.extra_id for m in status.messages] == odd


async def test_non_string_placeholder_values_are_rendered_as_text(
    raw: tuple[httpx.AsyncClient, Emulator],
) -> None:
    """A recipient's number value fills %amount% with its text."""
    http, emulator = raw
    body = {
        "recipients": [{"phone_number": 380961111111, "amount": 42}],
        "channels": ["viber"],
        "channel_options": {"viber": {"ttl": 60, "text": "You owe %amount% UAH"}},
    }
    path = f"/{DEMO_ACCOUNT.client_id}/broadcast/sync"
    answer = await http.post(path, content=orjson.dumps(body), headers=JSON, auth=AUTH)
    content = emulator.message(answer.json()["messages"][0]["message_id"])
    assert content is not None
    assert content["content"]["viber"]["text"] == "You owe 42 UAH"
