"""``hyber-async send`` run as a subprocess against an emulator on a loopback socket."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import orjson
import pytest

from hyber_async.emulator import DEMO_ACCOUNT, Emulator, EmulatorConfig, create_app
from hyber_async.testing import TEST_TIME_SCALE, serving_emulator

SMS = ["--channels", "sms", "--sms-alpha-name", "GMSU", "--sms-ttl", "300"]
"""Flags of a valid SMS campaign."""


@attrs.frozen
class Served:
    """An emulator on a socket and the environment that points the CLI at it."""

    emulator: Emulator
    env: dict[str, str]
    cwd: Path

    def run(self, *argv: str, **env: str) -> subprocess.CompletedProcess[str]:
        """Run ``hyber-async argv`` in ``cwd`` (``env`` overrides the environment)."""
        command = [sys.executable, "-m", "hyber_async.cli", *argv]
        return subprocess.run(
            command,
            env={**self.env, **env},
            cwd=self.cwd,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    """A fresh emulator on 127.0.0.1 and the HYBER_* variables of its account."""
    emulator = create_app(EmulatorConfig(time_scale=TEST_TIME_SCALE))
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYBER_")}
    with serving_emulator(emulator) as url:
        env.update(
            HYBER_BASE_URL=url,
            HYBER_CLIENT_ID=DEMO_ACCOUNT.client_id,
            HYBER_LOGIN=DEMO_ACCOUNT.login,
            HYBER_PASSWORD=DEMO_ACCOUNT.password,
        )
        yield Served(emulator, env, tmp_path)


def write_csv(path: Path, rows: int, bad_line: int | None = None) -> list[str]:
    """A batch CSV of ``rows`` rows (extra_id ``r{line}``); return the extra_ids in order.
    The row on ``bad_line`` gets a phone number that is not digits."""
    lines = ["phone_number,extra_id,text"]
    for line in range(2, rows + 2):
        phone = "38096abc" if line == bad_line else str(380960000000 + line)
        lines.append(f"{phone},r{line},Hello {line}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return [f"r{line}" for line in range(2, rows + 2)]


def records(path: Path) -> list[dict[str, Any]]:
    """The objects of a result file."""
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def assert_one_line_error(stderr: str, *parts: str) -> None:
    """stderr is one line naming every part, without a traceback."""
    assert "Traceback" not in stderr
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert all(part in stderr for part in parts), stderr


def test_a_csv_batch_is_sent_once_per_row(served: Served) -> None:
    """Every row of a CSV is accepted exactly once, in jobs whose lines the result file gives."""
    ids = write_csv(served.cwd / "rows.csv", 12)
    done = served.run("send", "batch", "rows.csv", *SMS, "--chunk-size", "5")
    assert done.returncode == 0, done.stderr
    assert served.emulator.ledger.counts() == dict.fromkeys(ids, 1)
    result = records(served.cwd / "rows.csv.result.jsonl")
    jobs = [(r["first_line"], r["last_line"]) for r in result if r["record"] == "job"]
    assert sorted(jobs) == [(2, 6), (7, 11), (12, 13)]
    assert result[-1]["record"] == "summary"
    assert result[-1]["accepted"] == 12


def test_a_jsonl_broadcast_with_a_toml_campaign_prints_json(served: Served) -> None:
    """A JSONL broadcast with a TOML campaign is accepted row by row; --json prints one object."""
    (served.cwd / "campaign.toml").write_text(
        'channels = ["viber"]\n[channel_options.viber]\nttl = 60\ntext = "Hi %name%"\n'
    )
    rows = [{"phone_number": 380961000000 + i, "extra_id": f"b{i}", "name": "A"} for i in range(6)]
    (served.cwd / "people.jsonl").write_bytes(b"\n".join(orjson.dumps(r) for r in rows) + b"\n")
    done = served.run("send", "broadcast", "people.jsonl", "--campaign", "campaign.toml", "--json")
    assert done.returncode == 0, done.stderr
    summary = orjson.loads(done.stdout)
    assert (summary["accepted"], summary["exit_code"]) == (6, 0)
    assert served.emulator.ledger.counts() == {f"b{i}": 1 for i in range(6)}


def test_dry_run_counts_and_sends_nothing(served: Served) -> None:
    """--dry-run counts valid and invalid rows, exits 2 for the invalid one, sends nothing."""
    write_csv(served.cwd / "rows.csv", 9, bad_line=7)
    done = served.run("send", "batch", "rows.csv", *SMS, "--dry-run", "--json")
    summary = orjson.loads(done.stdout)
    assert done.returncode == 2
    assert (summary["valid"], summary["invalid"]) == (8, 1)
    assert summary["problems"][0]["line"] == 7
    assert served.emulator.ledger.requests == 0
    assert not (served.cwd / "rows.csv.result.jsonl").exists()


def test_a_missing_column_is_refused_before_sending(served: Served) -> None:
    """A batch CSV without a text column: exit 2, one line naming file, line 1 and field."""
    (served.cwd / "rows.csv").write_text("phone_number,extra_id\n380961111111,a\n")
    done = served.run("send", "batch", "rows.csv", *SMS)
    assert done.returncode == 2
    assert_one_line_error(done.stderr, "rows.csv:1:", "text", "missing column")
    assert served.emulator.ledger.requests == 0


def test_a_bad_phone_on_line_7_stops_the_send_at_that_line(served: Served) -> None:
    """The rows before line 7 are sent exactly once, nothing from line 7 on; exit 2."""
    ids = write_csv(served.cwd / "rows.csv", 10, bad_line=7)
    done = served.run("send", "batch", "rows.csv", *SMS, "--chunk-size", "2")
    assert done.returncode == 2
    assert_one_line_error(done.stderr, "rows.csv:7:", "phone_number", "38096abc")
    assert served.emulator.ledger.counts() == dict.fromkeys(ids[:5], 1)
    summary = records(served.cwd / "rows.csv.result.jsonl")[-1]
    assert (summary["stopped"]["line"], summary["accepted"]) == (7, 5)


def test_an_unknown_channel_in_the_campaign_file_is_refused(served: Served) -> None:
    """An unknown channel in the campaign file: exit 2, one line naming file and field."""
    write_csv(served.cwd / "rows.csv", 3)
    (served.cwd / "campaign.json").write_text(
        '{"channels": ["sms", "telegram"], "channel_options": {"sms": '
        '{"alpha_name": "GMSU", "ttl": 300}}}'
    )
    done = served.run("send", "batch", "rows.csv", "--campaign", "campaign.json")
    assert done.returncode == 2
    assert_one_line_error(done.stderr, "campaign.json", "channels[1]", "'telegram'")
    assert served.emulator.ledger.requests == 0


def test_an_unreadable_file_is_refused(served: Served) -> None:
    """A file that cannot be read: exit 2, one line naming it, nothing sent."""
    done = served.run("send", "batch", "missing.csv", *SMS)
    assert done.returncode == 2
    assert_one_line_error(done.stderr, "missing.csv", "cannot read the file")
    assert served.emulator.ledger.requests == 0


def test_the_result_file_lists_every_recipient_not_accepted(served: Served) -> None:
    """Skipped rows and an unanswered chunk are in the result file; the ledger has the rest."""
    ids = write_csv(served.cwd / "rows.csv", 10, bad_line=4)
    served.emulator.faults.update({"errors": 1})  # one chunk gets a 500: outcome unknown
    done = served.run(
        "send", "batch", "rows.csv", *SMS, "--skip-invalid", "--chunk-size", "3",
        "--concurrency", "1", "--result", "out.jsonl",
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    listed = {
        r["extra_id"]: (r["outcome"], r["line"])
        for r in records(served.cwd / "out.jsonl")
        if r["record"] in ("invalid", "recipient")
    }
    accepted = served.emulator.ledger.counts()
    assert listed["r4"] == ("not_sent", 4)
    assert {outcome for outcome, _ in listed.values()} == {"not_sent", "unknown"}
    assert all(listed[e][1] == int(e[1:]) for e in listed)
    assert sorted([*listed, *accepted]) == sorted(ids)
    assert set(accepted.values()) == {1}


def test_refused_credentials_exit_3_and_list_every_row(served: Served) -> None:
    """A wrong password: exit 3, one line saying nothing was accepted, every row listed."""
    ids = write_csv(served.cwd / "rows.csv", 4)
    done = served.run("send", "batch", "rows.csv", *SMS, HYBER_PASSWORD="Not-It-QZX-77")
    assert done.returncode == 3
    assert_one_line_error(done.stderr, "nothing was accepted", "401")
    assert "Not-It-QZX-77" not in done.stdout + done.stderr
    listed = [
        r for r in records(served.cwd / "rows.csv.result.jsonl") if r["record"] == "recipient"
    ]
    assert [r["extra_id"] for r in listed] == ids
    assert {r["outcome"] for r in listed} == {"rejected"}


def test_a_journaled_send_run_twice_sends_each_row_once(served: Served) -> None:
    """`--journal`: the same command again sends nothing more and rewrites the same result."""
    ids = write_csv(served.cwd / "rows.csv", 12)
    argv = ["send", "batch", "rows.csv", *SMS, "--chunk-size", "5", "--journal", "j.sqlite"]
    first = served.run(*argv)
    assert first.returncode == 0, first.stderr
    requests = served.emulator.ledger.requests
    again = served.run(*argv)
    assert again.returncode == 0, again.stderr
    assert served.emulator.ledger.requests == requests
    assert served.emulator.ledger.counts() == dict.fromkeys(ids, 1)
    result = records(served.cwd / "rows.csv.result.jsonl")
    assert sum(r["record"] == "job" for r in result) == 3


def test_a_journal_refuses_a_changed_file(served: Served) -> None:
    """A file that changed since the journaled run is refused with one line, exit code 2."""
    write_csv(served.cwd / "rows.csv", 6)
    argv = ["send", "batch", "rows.csv", *SMS, "--journal", "j.sqlite"]
    assert served.run(*argv).returncode == 0
    write_csv(served.cwd / "rows.csv", 7)
    changed = served.run(*argv)
    assert changed.returncode == 2
    assert_one_line_error(changed.stderr, "j.sqlite", "differs from the journal")
    assert served.emulator.ledger.accepted == 6


def test_a_push_broadcast_from_a_campaign_file_and_flags(served: Served) -> None:
    """Push options come from the campaign file's [channel_options.push] and the --push-*
    flags (which override it); the emulator receives push first in the cascade."""
    (served.cwd / "campaign.toml").write_text(
        'channels = ["push", "sms"]\n'
        '[channel_options.push]\nttl = 3600\ntitle = "Old title"\n'
        'img = "https://example.com/image.png"\naction = "https://example.com"\n'
    )
    (served.cwd / "people.csv").write_text("phone_number,extra_id,name\n380961111111,p1,Ann\n")
    flags = ["--push-ttl", "60", "--push-title", "Hi %name%", "--text", "Dear %name%"]
    sms = ["--sms-alpha-name", "GMSU", "--sms-ttl", "300"]
    done = served.run(
        "send", "broadcast", "people.csv", "--campaign", "campaign.toml", *flags, *sms
    )
    assert done.returncode == 0, done.stderr
    located = served.emulator.ledger.latest("p1")
    assert located is not None
    job = served.emulator.store.job(located[0])
    assert job is not None
    assert job.channels == ("push", "sms")
    assert job.channel_options["push"] == {
        "ttl": 60,
        "title": "Hi %name%",
        "text": "Dear %name%",
        "img": "https://example.com/image.png",
        "action": "https://example.com",
    }


def test_a_bad_push_ttl_flag_is_refused_naming_field_and_flag(served: Served) -> None:
    """--push-ttl 29 (the documented range is 30..86400): exit 2, one line, nothing sent."""
    write_csv(served.cwd / "rows.csv", 2)
    done = served.run(
        "send", "batch", "rows.csv", "--channels", "push", "--push-ttl", "29", "--push-title", "T"
    )
    assert done.returncode == 2
    assert_one_line_error(done.stderr, "channel_options.push.ttl", "got 29", "--push-ttl")
    assert served.emulator.ledger.requests == 0
