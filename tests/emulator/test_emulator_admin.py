"""The emulator's admin routes refuse what would break it: a clock step beyond representable
time, and a body over ``max_body_bytes`` (413, never read as ``{}``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from _support import batch_campaign

import hyber_async as hy
from hyber_async.emulator import DEMO_ACCOUNT, Emulator, EmulatorConfig, create_app
from hyber_async.emulator._clock import LATEST, Clock

pytestmark = pytest.mark.anyio

AUTH = httpx.BasicAuth(DEMO_ACCOUNT.login, DEMO_ACCOUNT.password)
BATCH = {
    "messages": [{"phone_number": 380_500_000_001, "text": "Hi", "extra_id": "a-1"}],
    **hy.converter.unstructure(batch_campaign()),
}


@pytest.fixture
async def raw() -> AsyncIterator[tuple[httpx.AsyncClient, Emulator]]:
    """A plain httpx client on a frozen-clock emulator taking bodies of at most 4 KiB."""
    emulator = create_app(EmulatorConfig(time_scale=0, max_body_bytes=4096))
    transport = httpx.ASGITransport(app=emulator)
    async with httpx.AsyncClient(transport=transport, base_url="http://emulator") as http:
        yield http, emulator


async def status_code_of_a_job(http: httpx.AsyncClient) -> int:
    """Send a batch and ask its status: the status code of that answer."""
    sent = await http.post(f"/{DEMO_ACCOUNT.client_id}/batch", json=BATCH, auth=AUTH)
    assert sent.status_code == 200
    job_id = sent.json()["job_id"]
    answer = await http.get(f"/{DEMO_ACCOUNT.client_id}/status/{job_id}", auth=AUTH)
    return answer.status_code


@pytest.mark.parametrize("advance", [1e308, 1e20, float(LATEST)])
async def test_a_clock_step_past_representable_time_is_refused(
    raw: tuple[httpx.AsyncClient, Emulator], advance: float
) -> None:
    """One huge step is a 400 that leaves the clock alone: status requests keep working."""
    http, emulator = raw
    before = emulator.clock.now()
    answer = await http.post("/_emulator/clock", json={"advance": advance})
    assert answer.status_code == 400
    assert "never past 9999-12-31" in answer.json()["error_text"]
    assert emulator.clock.now() == before
    assert await status_code_of_a_job(http) == 200


async def test_the_clock_can_reach_the_latest_time_and_status_still_works(
    raw: tuple[httpx.AsyncClient, Emulator],
) -> None:
    """A step to just before the limit is taken, and a status is still answered."""
    http, emulator = raw
    step = LATEST - emulator.clock.now() - 60
    answer = await http.post("/_emulator/clock", json={"advance": step})
    assert answer.status_code == 200
    assert await status_code_of_a_job(http) == 200


@pytest.mark.parametrize(
    "seconds",
    [float("nan"), float("inf"), -1.0, 10**400, LATEST + 1],
    ids=["nan", "inf", "backwards", "10**400", "past-9999"],
)
def test_the_clock_refuses_a_step_that_is_not_a_finite_forward_one(seconds: Any) -> None:
    """NaN, infinity, backwards, and integers beyond any float: ValueError, clock unchanged."""
    clock = Clock(time_scale=0)
    before = clock.now()
    with pytest.raises(ValueError, match="clock"):
        clock.advance(seconds)
    assert clock.now() == before


@pytest.mark.filterwarnings(
    # the emulator stops reading at the limit; trio warns that the in-process transport's
    # body generator was left unexhausted
    "ignore:Async generator .* was garbage collected before it had been exhausted:ResourceWarning"
)
@pytest.mark.parametrize(
    ("path", "payload"),
    [
        ("/_emulator/faults", {"errors": 1, "padding": "x" * 8192}),
        ("/_emulator/clock", {"advance": 60, "padding": "x" * 8192}),
    ],
)
async def test_an_admin_body_over_the_limit_is_413_and_changes_nothing(
    raw: tuple[httpx.AsyncClient, Emulator], path: str, payload: dict[str, Any]
) -> None:
    """An admin body over ``max_body_bytes`` is refused, not read as an empty object."""
    http, emulator = raw
    before = emulator.clock.now()
    answer = await http.post(path, content=orjson.dumps(payload))
    assert answer.status_code == 413
    assert "larger than 4096 bytes" in answer.json()["error_text"]
    assert emulator.faults.as_dict() == (await http.get("/_emulator/faults")).json()
    assert (await http.get("/_emulator/faults")).json()["errors"] == 0
    assert emulator.clock.now() == before
