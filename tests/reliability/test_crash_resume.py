"""A campaign killed with SIGKILL mid-way resumes from its journal: everyone once, none lost;
a second process on a journal in use is refused, and the lock dies with its holder."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from hyber_async.emulator import DEMO_ACCOUNT, EmulatorConfig, create_app
from hyber_async.journal import JournalLockedError, SqliteJournal
from hyber_async.testing import serving_emulator

pytestmark = pytest.mark.slow  # subprocesses killed and resumed

RECIPIENTS = 3_000
CHUNK = 100
CAMPAIGN_SCRIPT = textwrap.dedent(
    """
    import os
    import sys
    import time

    import anyio
    import hyber_async as hy
    from hyber_async.journal import SqliteJournal

    CAMPAIGN = hy.Campaign(
        channels=(hy.Channel.SMS,),
        channel_options=hy.ChannelOptions(
            sms=hy.SmsOptions(alpha_name="GMSU", ttl=300, text="Hi %name%")
        ),
    )


    def rows(n):
        for i in range(n):
            row = {"phone_number": 380500000000 + i, "name": "Ann"}
            if i % 3:
                row["extra_id"] = f"r-{i}"
            yield row


    HOLD = os.environ.get("HOLD_UNTIL")


    def progress(p):
        print("done", p.chunks_done, flush=True)
        # With HOLD_UNTIL, stop (journal open) after the first chunk until that file exists.
        for _ in range(6000 if HOLD and p.chunks_done == 1 else 0):
            if os.path.exists(HOLD):
                break
            time.sleep(0.01)


    async def main(journal_path, recipients, chunk, reconcile):
        async with hy.HyberClient(retry=hy.RetryPolicy(wait=False)) as client:
            with SqliteJournal(journal_path) as journal:
                report = await client.stream_broadcast(
                    CAMPAIGN, rows(recipients), chunk_size=chunk, concurrency=2,
                    journal=journal, on_progress=progress,
                )
                print("resumed", report.accepted, report.unknown, report.not_sent, flush=True)
                if reconcile:
                    await client.reconcile(report, resend=True, journal=journal)
        print("finished", report.accepted, report.unknown, report.not_sent, flush=True)


    anyio.run(main, sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), "--reconcile" in sys.argv)
    """
)


def _wait_for_a_chunk_in_flight(journal_path: Path, after: int) -> None:
    """Return once the journal shows chunk ``after`` or a later one in flight: one whose
    request has just left, not one about to be answered (bounded: 20 s)."""
    journal = sqlite3.connect(f"file:{journal_path}?mode=ro", uri=True)
    try:
        for _ in range(4000):
            query = "SELECT count(*) FROM chunk WHERE state = 'in_flight' AND number >= ?"
            if journal.execute(query, (after,)).fetchone()[0]:
                return
            time.sleep(0.005)
    finally:
        journal.close()
    raise AssertionError("no chunk was ever in flight")


def _env(url: str) -> dict[str, str]:
    return {
        **os.environ,
        "HYBER_CLIENT_ID": DEMO_ACCOUNT.client_id,
        "HYBER_LOGIN": DEMO_ACCOUNT.login,
        "HYBER_PASSWORD": DEMO_ACCOUNT.password,
        "HYBER_BASE_URL": url,
        "HYBER_DR_BASE_URL": url,
    }


def test_sigkill_mid_campaign_then_resume_sends_everyone_exactly_once(tmp_path: Path) -> None:
    """Kill the sending process after a few chunks; resume + reconcile; the ledger has each once."""
    script = tmp_path / "campaign.py"
    script.write_text(CAMPAIGN_SCRIPT, encoding="utf-8")
    journal_path = tmp_path / "campaign.journal"
    emulator = create_app(EmulatorConfig(time_scale=1000))
    emulator.faults.update({"latency": 0.2})
    with serving_emulator(emulator) as url:
        argv = [sys.executable, str(script), str(journal_path), str(RECIPIENTS), str(CHUNK)]
        with subprocess.Popen(argv, env=_env(url), stdout=subprocess.PIPE, text=True) as child:
            assert child.stdout is not None
            for line in child.stdout:
                if line.startswith("done") and int(line.split()[1]) >= 3:
                    break
            _wait_for_a_chunk_in_flight(journal_path, after=4)
            os.kill(child.pid, signal.SIGKILL)
            child.wait()
        assert child.returncode == -signal.SIGKILL
        killed_at = emulator.ledger.accepted
        assert 0 < killed_at < RECIPIENTS

        # The emulator answers after 0.2 s of latency and may still accept the request of the
        # killed process: reconcile once the server has settled, as one must with Hyber too.
        time.sleep(0.5)
        emulator.faults.clear()
        resumed = subprocess.run(
            [*argv, "--reconcile"], env=_env(url), capture_output=True, text=True, timeout=120
        )
    assert resumed.returncode == 0, resumed.stderr
    lines = resumed.stdout.splitlines()
    after_resume = next(line for line in lines if line.startswith("resumed")).split()
    assert int(after_resume[2]) > 0, resumed.stdout  # in flight at the kill: UNKNOWN
    assert lines[-1] == f"finished {RECIPIENTS} 0 0"
    counts = emulator.ledger.counts()
    assert len(counts) == RECIPIENTS
    assert set(counts.values()) == {1}
    assert emulator.ledger.duplicates() == {}


def test_a_second_process_on_a_journal_in_use_is_refused_and_sends_nothing(
    tmp_path: Path,
) -> None:
    """Two runs of one campaign on one journal at once (an overlapping cron job): the second
    fails at once naming the holder, and the ledger has every recipient exactly once."""
    script = tmp_path / "campaign.py"
    script.write_text(CAMPAIGN_SCRIPT, encoding="utf-8")
    journal_path = tmp_path / "campaign.journal"
    go = tmp_path / "go"
    emulator = create_app(EmulatorConfig(time_scale=1000))
    with serving_emulator(emulator) as url:
        argv = [sys.executable, str(script), str(journal_path), str(RECIPIENTS), str(CHUNK)]
        env = {**_env(url), "HOLD_UNTIL": str(go)}
        with subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, text=True) as first:
            assert first.stdout is not None
            assert first.stdout.readline().startswith("done")  # holds the journal, paused
            second = subprocess.run(argv, env=_env(url), capture_output=True, text=True, timeout=60)
            go.touch()
            rest = first.stdout.read()
        assert first.returncode == 0
    assert second.returncode == 1
    assert "JournalLockedError" in second.stderr
    assert f"the journal {journal_path} is in use by pid {first.pid} on " in second.stderr
    assert second.stdout == ""
    assert rest.splitlines()[-1] == f"finished {RECIPIENTS} 0 0"
    counts = emulator.ledger.counts()
    assert len(counts) == RECIPIENTS
    assert set(counts.values()) == {1}


HOLDER_SCRIPT = textwrap.dedent(
    """
    import sys
    import time

    from hyber_async.journal import SqliteJournal

    with SqliteJournal(sys.argv[1]):
        print("holding", flush=True)
        time.sleep(60)
    """
)


def test_the_lock_of_a_journal_ends_with_its_process_killed_by_sigkill(tmp_path: Path) -> None:
    """A holder killed with SIGKILL (no close, no cleanup) leaves the journal free to open."""
    journal_path = tmp_path / "campaign.journal"
    argv = [sys.executable, "-c", HOLDER_SCRIPT, str(journal_path)]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) as holder:
        try:
            assert holder.stdout is not None
            assert holder.stdout.readline() == "holding\n"
            with pytest.raises(JournalLockedError, match=f"in use by pid {holder.pid} on "):
                SqliteJournal(journal_path)
        finally:
            os.kill(holder.pid, signal.SIGKILL)
            holder.wait()
    assert holder.returncode == -signal.SIGKILL
    with SqliteJournal(journal_path) as journal:
        assert journal.entries() == {}


@pytest.fixture(autouse=True)
def _posix_only() -> None:
    """SIGKILL exists only on POSIX systems."""
    if not hasattr(signal, "SIGKILL"):
        pytest.skip("SIGKILL is POSIX")
