"""The emulator in its own process (``serving_process`` and its async twin): it answers at the
URL it yields, it is gone once the block ends, and one that does not start says why."""

from __future__ import annotations

import httpx
import pytest

from hyber_async.emulator import DEMO_ACCOUNT, serving_process, serving_process_async

pytestmark = pytest.mark.slow


def _answers(url: str) -> bool:
    try:
        response = httpx.get(f"{url}/_emulator/ledger", timeout=5)
    except httpx.TransportError:
        return False
    return response.status_code == 200


def test_the_process_serves_its_url_and_stops_with_the_block() -> None:
    with serving_process("--seed", "1") as url:
        assert url.startswith("http://127.0.0.1:")
        assert _answers(url)
        auth = (DEMO_ACCOUNT.login, DEMO_ACCOUNT.password)
        status = httpx.get(f"{url}/{DEMO_ACCOUNT.client_id}/status/nope", auth=auth, timeout=5)
        assert status.status_code == 404
    assert not _answers(url)


def test_a_process_that_does_not_start_says_why() -> None:
    with (
        pytest.raises(RuntimeError, match=r"(?s)did not start.*--rate-limit: must be"),
        serving_process("--rate-limit", "-1"),
    ):
        pytest.fail("the block must not run")


@pytest.mark.anyio
async def test_the_async_process_serves_its_url_and_stops_with_the_block() -> None:
    async with serving_process_async("--time-scale", "10") as url, httpx.AsyncClient() as http:
        assert (await http.get(f"{url}/_emulator/ledger")).status_code == 200
    assert not _answers(url)


@pytest.mark.anyio
async def test_an_async_process_that_does_not_start_says_why() -> None:
    with pytest.raises(RuntimeError, match=r"(?s)did not start.*--rate-limit: must be"):
        async with serving_process_async("--rate-limit", "-1"):
            pytest.fail("the block must not run")
