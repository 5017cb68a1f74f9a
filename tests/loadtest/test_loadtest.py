"""hyber_async.loadtest: schedule, recorder, thresholds, reports, and runs in-process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from hyber_async import Outcome, RetryPolicy
from hyber_async.emulator import EmulatorConfig, Faults, create_app
from hyber_async.loadtest import (
    Recorder,
    Workload,
    check_thresholds,
    compare,
    follow_jobs,
    loadtest_client,
    merge_results,
    parse_threshold,
    render_html,
    run_workload,
    summary,
)
from hyber_async.loadtest._recorder import decode


def test_constant_rate_schedule() -> None:
    """At R recipients/s in chunks of C, request k is intended at k * C / R."""
    workload = Workload(duration=1.0, rate=1000, chunk_size=10)
    starts = list(workload.schedule())
    assert len(starts) == 100
    assert starts[:3] == [0.0, 0.01, 0.02]


def test_ramp_schedule_follows_the_rate() -> None:
    """A ramp from 0 to 2000/s over 2 s asks for a * t + (b - a) t^2 / (2 D) by time t."""
    workload = Workload(duration=2.0, ramp=(0, 2000), chunk_size=10)
    starts = list(workload.schedule())
    assert len(starts) == 200  # 2000 recipients: the mean rate 1000/s times 2 s
    first_second = sum(1 for t in starts if t < 1.0)
    assert first_second == 50  # 500 t^2 recipients by t: 500 in the first second


def test_workload_needs_exactly_one_shape() -> None:
    """rate, ramp and max_in_flight exclude each other; one is required."""
    with pytest.raises(ValueError, match="exactly one"):
        Workload(duration=1, rate=10, max_in_flight=2)
    with pytest.raises(ValueError, match="exactly one"):
        Workload(duration=1)
    with pytest.raises(ValueError, match="chunk_size"):
        Workload(duration=1, rate=10, chunk_size=50_001)


def test_thresholds_name_what_was_missed() -> None:
    """A missed threshold gives a line naming it and the measured value; met ones none."""
    result = {
        "latency_ms": {"p50": 10.0, "p90": 20.0, "p99": 600.0, "p999": 700.0, "max": 800.0},
        "outcomes": {"accepted": 998, "rejected": 2, "not_sent": 0, "unknown": 0},
        "achieved_rate": 990.0,
        "target_rate": 1000.0,
        "errors": {},
        "request_count": 10,
    }
    thresholds = [
        parse_threshold(text)
        for text in ("p99<500ms", "p50<1s", "rejected<0.1%", "unknown<=0", "rate>=98%")
    ]
    missed = check_thresholds(thresholds, result)
    assert missed == [
        "threshold 'p99<500ms' missed: p99 was 600 ms",
        "threshold 'rejected<0.1%' missed: rejected was 0.2%",
    ]


@pytest.mark.parametrize("text", ["p99", "p99<5%", "latency<5ms", "rejected<5ms"])
def test_bad_thresholds_are_refused(text: str) -> None:
    """A threshold that cannot be checked is refused, naming it."""
    with pytest.raises(ValueError, match="threshold"):
        parse_threshold(text)


def _recorded(latencies_ms: list[float], start: float = 0.0) -> Recorder:
    recorder = Recorder()
    for i, ms in enumerate(latencies_ms):
        t = start + i * 0.1
        recorder.started(t, 10)
        recorder.finished(t, t, t + ms / 1000, {Outcome.ACCEPTED: 10})
    recorder.send_window = recorder.elapsed
    return recorder


def test_merged_result_equals_the_merge_of_the_histograms() -> None:
    """Merging results adds their histograms exactly, their counts and their series."""
    first, second = _recorded([5, 6, 7, 900]), _recorded([1, 2, 3], start=0.05)
    for recorder, delivered in ((first, 30), (second, 20)):
        recorder.follow = {"jobs": 1, "final_jobs": 1, "delivered": delivered, "pending": 0}
        recorder.to_final.record_value(2_000_000, delivered)
    a, b = first.to_json(), second.to_json()
    merged = merge_results([a, b])
    assert merged["follow"]["delivered"] == 50
    assert merged["follow"]["jobs"] == 2
    assert decode(merged["follow"]["histogram"]).get_total_count() == 50
    expected = decode(a["histogram"])
    expected.add(decode(b["histogram"]))
    assert decode(merged["histogram"]).equals(expected)
    assert merged["outcomes"]["accepted"] == 70
    assert merged["request_count"] == 7
    assert sum(row["requests"] for row in merged["per_second"]) == 7
    assert [w["request_count"] for w in merged["workers"]] == [4, 3]
    assert merged["latency_ms"]["max"] == pytest.approx(900, rel=0.001)


def test_corrected_latency_counts_from_the_intended_start() -> None:
    """A request intended at 0, started at 0.9 and answered at 1.0 is 1000 ms corrected,
    100 ms uncorrected."""
    recorder = Recorder()
    recorder.started(0.9, 1)
    recorder.finished(0.0, 0.9, 1.0, {Outcome.ACCEPTED: 1})
    result = recorder.to_json()
    assert result["latency_ms"]["max"] == pytest.approx(1000, rel=0.001)
    assert result["latency_uncorrected_ms"]["max"] == pytest.approx(100, rel=0.001)


def test_summary_compare_and_html() -> None:
    """The summary, the comparison and a self-contained HTML report render a result."""
    result = _recorded([5, 6, 7, 900]).to_json()
    result.update(target_rate=100.0, duration_s=1.0, endpoint="broadcast", mode="open")
    text = summary(result)
    assert "p99" in text
    assert "accepted" in text
    assert "+0.0%" in compare(result, result)
    page = render_html(result)
    assert page.startswith("<!DOCTYPE html>")
    assert "Plotly" in page
    assert '<script src="http' not in page  # plotly.js inlined: opens offline


CHROMIUM = Path("/usr/bin/chromium")


@pytest.mark.slow
@pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium (apt-get install)"
)
def test_html_report_draws_its_plots_in_headless_chromium(tmp_path: Path) -> None:
    """Opened offline in headless Chromium, the report draws its four plots (plotly's SVGs
    are in the DOM) and its screenshot is a real picture."""
    result = _recorded([5, 6, 7, 900, 12, 8]).to_json()
    result.update(target_rate=100.0, duration_s=1.0)
    page = tmp_path / "report.html"
    page.write_text(render_html(result), encoding="utf-8")
    flags = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-dev-shm-usage",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1400,1000",
        "--virtual-time-budget=5000",
    ]
    dom = subprocess.run(
        [*flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120
    ).stdout
    assert dom.count("subplot xy") + dom.count("cartesianlayer") >= 1
    assert dom.count('class="main-svg"') >= 2
    shot = tmp_path / "report.png"
    subprocess.run(
        [*flags, f"--screenshot={shot}", page.as_uri()], capture_output=True, timeout=120
    )
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 20_000


@pytest.mark.slow
@pytest.mark.anyio
@pytest.mark.parametrize(("kind", "sync"), [("broadcast", False), ("batch", True)])
async def test_closed_loop_counts_outcomes_and_statuses(kind: str, sync: bool) -> None:
    """A closed-loop run accounts every recipient and counts each answer by status,
    including 429 refusals (retried) and their Retry-After."""
    emulator = create_app(EmulatorConfig(time_scale=1000, faults=Faults(rate_limit=2)))
    emulator.faults.update({"retry_after": 0.0})
    recorder = Recorder()
    workload = Workload(duration=0.3, max_in_flight=2, chunk_size=5, kind=kind, sync=sync)  # type: ignore[arg-type]
    async with loadtest_client(
        recorder,
        connections=2,
        base_url="http://emulator.invalid",
        client_id="1234",
        login="user",
        password="secret",
        retry=RetryPolicy(wait=False),
        transport=httpx.ASGITransport(app=emulator),
    ) as client:
        await run_workload(client, workload, recorder)
    result = recorder.to_json()
    assert result["recipients"] == 5 * result["request_count"] > 0
    assert result["outcomes"]["accepted"] == result["recipients"]
    assert result["requests"] == {"200": result["request_count"], "429": 2}
    assert result["retry_after"]["answers"] == 2
    assert result["endpoint"] == kind + ("/sync" if sync else "")
    assert emulator.ledger.accepted == result["recipients"]


@pytest.mark.slow
@pytest.mark.anyio
async def test_follow_reports_time_to_final_and_delivered_share() -> None:
    """Following the accepted jobs accounts every message as delivered, expired or failed and
    records a time to final status per message; the status polls are not counted as sends."""
    emulator = create_app(EmulatorConfig(time_scale=1000))
    recorder = Recorder()
    async with loadtest_client(
        recorder,
        connections=2,
        base_url="http://emulator.invalid",
        client_id="1234",
        login="user",
        password="secret",
        transport=httpx.ASGITransport(app=emulator),
    ) as client:
        await run_workload(client, Workload(duration=0.2, max_in_flight=2, chunk_size=20), recorder)
        await follow_jobs(client, recorder, deadline=30, interval=0.05)
    result = recorder.to_json()
    follow = result["follow"]
    assert follow["jobs"] == follow["final_jobs"] == result["request_count"]
    messages = follow["delivered"] + follow["expired"] + follow["failed"]
    assert messages == result["outcomes"]["accepted"]
    assert follow["pending"] == 0
    assert decode(follow["histogram"]).get_total_count() == messages
    assert result["requests"] == {"200": result["request_count"]}


@pytest.mark.slow
def test_core_library_does_not_import_the_loadtest_extra() -> None:
    """Importing hyber_async and its CLI loads neither hdrhistogram nor plotly."""
    code = (
        "import sys, hyber_async, hyber_async.cli; "
        "assert 'hdrh' not in sys.modules and 'plotly' not in sys.modules, sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
