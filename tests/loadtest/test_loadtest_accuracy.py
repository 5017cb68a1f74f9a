"""The load tester's figures against what the emulator was configured to do.

Each run is a few seconds against the emulator in its own process (as the command runs it);
the assertions compare measured figures with configured ones, with the issue's tolerances.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hyber_async.emulator import DEMO_ACCOUNT
from hyber_async.loadtest import Target, Workload, emulator_process, run
from hyber_async.loadtest._recorder import decode

pytestmark = pytest.mark.slow  # load runs measured against the clock


def _target(url: str) -> Target:
    return Target(url, DEMO_ACCOUNT.client_id, DEMO_ACCOUNT.login, DEMO_ACCOUNT.password)


@pytest.fixture(scope="module")
def emulator_url() -> Iterator[str]:
    """An emulator without added latency, in its own process."""
    with emulator_process() as url:
        yield url


def test_achieved_rate_is_within_2_percent_of_the_target(emulator_url: str) -> None:
    """At 2000 recipients/s for 3 s (within capacity) the achieved rate is within 2%, and the
    emulator answered every request."""
    result = run(Workload(duration=3, rate=2000, chunk_size=20), _target(emulator_url))
    assert result["achieved_rate"] == pytest.approx(2000, rel=0.02)
    assert result["recipients"] == 6000
    assert result["outcomes"]["accepted"] == 6000
    assert result["emulator_answers"] == {"200": 300}
    assert sum(row["recipients"] for row in result["per_second"]) == 6000


def test_p50_matches_the_emulators_fixed_latency() -> None:
    """With the emulator's latency fixed at 250 ms the reported p50 is within 1 ms + 5%."""
    with emulator_process(latency="fixed:250ms") as url:
        result = run(Workload(duration=2, rate=200, chunk_size=10), _target(url))
    assert abs(result["latency_ms"]["p50"] - 250) <= 1 + 0.05 * 250
    assert result["latency_ms"]["p50"] >= 250


def test_a_stall_shows_in_the_corrected_p99_only(emulator_url: str) -> None:
    """A 1 s stall in a 4 s run at 100 requests/s on 2 connections: the corrected p99 shows it
    (>= 500 ms); the uncorrected one, which starts the clock when a connection is free (2
    requests wait out the stall, 0.5% of 400), does not."""
    workload = Workload(duration=4, rate=1000, chunk_size=10, connections=2)
    result = run(workload, _target(emulator_url), stall=(1.5, 1.0))
    assert result["latency_ms"]["p99"] >= 500
    assert result["latency_uncorrected_ms"]["p99"] < 500
    assert result["latency_uncorrected_ms"]["max"] >= 500  # the stall was there
    assert result["outcomes"]["accepted"] == 4000


def test_two_workers_share_the_rate_and_merge_exactly(emulator_url: str) -> None:
    """--workers 2 at 2000/s: each worker within 2% of 1000/s, and the merged histogram is
    the merge of the workers' own."""
    result = run(Workload(duration=2, rate=2000, chunk_size=20), _target(emulator_url), workers=2)
    workers = result["workers"]
    assert len(workers) == 2
    for worker in workers:
        assert worker["achieved_rate"] == pytest.approx(1000, rel=0.02)
    merged = decode(workers[0]["histogram"])
    merged.add(decode(workers[1]["histogram"]))
    assert decode(result["histogram"]).equals(merged)
    assert result["recipients"] == 4000
    assert result["target_rate"] == 2000
