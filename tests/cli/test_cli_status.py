"""``hyber-async status`` and ``hyber-async wait`` run as subprocesses against an emulator on a
loopback socket, on jobs created in it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from conftest import FIXTURES

from hyber_async.emulator import DEMO_ACCOUNT, EmulatorConfig, create_app
from hyber_async.testing import TEST_TIME_SCALE, serving_emulator

pytestmark = pytest.mark.slow  # subprocesses of a socket emulator

BATCH = FIXTURES / "05-send-batch-sms-messages-request.json"
MESSAGES = len(orjson.loads(BATCH.read_bytes())["messages"])


class Served:
    """An emulator on a socket, the CLI pointed at it, and a way to create jobs in it."""

    def __init__(self, url: str, cwd: Path) -> None:
        self.url = url
        self.cwd = cwd
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("HYBER_")}
        self.env.update(
            HYBER_BASE_URL=url,
            HYBER_CLIENT_ID=DEMO_ACCOUNT.client_id,
            HYBER_LOGIN=DEMO_ACCOUNT.login,
            HYBER_PASSWORD=DEMO_ACCOUNT.password,
        )

    def create_job(self) -> str:
        """Post the spec's batch example; return its job id."""
        answer = httpx.post(
            f"{self.url}/{DEMO_ACCOUNT.client_id}/batch",
            content=BATCH.read_bytes(),
            headers={"content-type": "application/json"},
            auth=(DEMO_ACCOUNT.login, DEMO_ACCOUNT.password),
        )
        job_id: str = answer.raise_for_status().json()["job_id"]
        return job_id

    def run(self, *argv: str) -> subprocess.CompletedProcess[str]:
        """Run ``hyber-async argv``."""
        command = [sys.executable, "-m", "hyber_async.cli", *argv]
        return subprocess.run(
            command, env=self.env, cwd=self.cwd, capture_output=True, text=True, timeout=60
        )


def serve(tmp_path: Path, time_scale: float) -> Iterator[Served]:
    """An emulator running at ``time_scale`` on 127.0.0.1, for the time of the test."""
    with serving_emulator(create_app(EmulatorConfig(time_scale=time_scale))) as url:
        yield Served(url, tmp_path)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    """An emulator whose messages end within milliseconds."""
    yield from serve(tmp_path, TEST_TIME_SCALE)


@pytest.fixture
def frozen(tmp_path: Path) -> Iterator[Served]:
    """An emulator whose clock stands still: its messages never end."""
    yield from serve(tmp_path, 0.0)


def test_status_prints_the_counts_of_each_job(served: Served) -> None:
    """status --json gives each job's message counts, which add up to its messages."""
    jobs = [served.create_job(), served.create_job()]
    done = served.run("status", *jobs, "--json")
    assert done.returncode == 0, done.stderr
    rows = orjson.loads(done.stdout)["jobs"]
    assert [row["job_id"] for row in rows] == jobs
    for row in rows:
        counts = (row["delivered"], row["expired"], row["failed"], row["pending"])
        assert row["messages"] == sum(counts) == MESSAGES


def test_status_of_an_unknown_job_exits_1_and_names_it(served: Served) -> None:
    """A job the server does not know: the others are printed, exit 1, one line naming it."""
    known = served.create_job()
    done = served.run("status", known, "no-such-job")
    assert done.returncode == 1
    assert known in done.stdout
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert "no-such-job" in done.stderr


def test_wait_follows_the_jobs_of_a_result_file_to_the_end(served: Served) -> None:
    """wait --jobs-from reads a send result file and exits 0 once every message is final."""
    jobs = [served.create_job(), served.create_job()]
    lines = [orjson.dumps({"record": "job", "job_id": job}) for job in jobs]
    (served.cwd / "result.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    done = served.run(
        "wait", "--jobs-from", "result.jsonl", "--deadline", "30", "--interval", "0.05", "--json"
    )
    assert done.returncode == 0, done.stderr
    summary: dict[str, Any] = orjson.loads(done.stdout)
    assert (summary["jobs"], summary["complete"], summary["pending"]) == (2, True, 0)
    assert summary["messages"] == 2 * MESSAGES


def test_wait_exits_4_at_the_deadline_naming_the_pending_jobs(frozen: Served) -> None:
    """Jobs that cannot end: wait exits 4 at its deadline and names them."""
    job = frozen.create_job()
    done = frozen.run("wait", job, "--deadline", "0.3", "--interval", "0.05")
    assert done.returncode == 4
    assert job in done.stdout
    assert "  not yet known " in done.stdout  # the channel of a pending message
    assert "unknown" not in done.stdout
    assert "deadline" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
