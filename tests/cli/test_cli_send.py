"""``hyber-async send`` run as a subprocess against an emulator on a loopback socket."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import orjson
import pytest

from hyber_async.emulator import DEMO_ACCOUNT, Emulator, EmulatorConfig, create_app
from hyber_async.testing import TEST_TIME_SCALE, serving_emulator

pytestmark = pytest.mark.slow  # subprocesses and a socket emulator

SMS = ["--channels", "sms", "--sms-alpha-name", "GMSU", "--sms-ttl", "300"]
"""Flags of a valid SMS campaign."""


@attrs.frozen
class Served:
    """An emulator on a socket and the environment that points the CLI at it."""

    emulator: Emulator
    env: dict[str, str]
    cwd: Path

    def run(
        self, *argv: str, stdin: str | None = None, **env: str
    ) -> subprocess.CompletedProcess[str]:
        """Run ``hyber-async argv`` in ``cwd`` (``env`` overrides the environment), with
        ``stdin`` as its standard input."""
        command = [sys.executable, "-m", "hyber_async.cli", *argv]
        return subprocess.run(
            command,
            env={**self.env, **env},
            cwd=self.cwd,
            input=stdin,
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


def test_a_bad_row_is_found_before_sending_and_the_fixed_file_goes_once(served: Served) -> None:
    """The whole file is checked first: a bad line 7 sends nothing (exit 2, the line named);
    the fixed file sent with the same command is accepted once per row."""
    ids = write_csv(served.cwd / "rows.csv", 10, bad_line=7)
    argv = ["send", "batch", "rows.csv", *SMS, "--chunk-size", "2"]
    done = served.run(*argv)
    assert done.returncode == 2
    assert "rows.csv:7: phone_number: must be a phone number in digits, got '38096abc'" in (
        done.stderr
    )
    assert "nothing was sent: fix the file and run the same command again" in done.stderr
    assert served.emulator.ledger.requests == 0
    assert not (served.cwd / "rows.csv.result.jsonl").exists()
    write_csv(served.cwd / "rows.csv", 10)
    fixed = served.run(*argv)
    assert fixed.returncode == 0, fixed.stderr
    assert served.emulator.ledger.counts() == dict.fromkeys(ids, 1)


def test_a_pipe_stops_at_a_bad_row_and_the_same_command_sends_the_rest(served: Served) -> None:
    """A pipe is checked as it is sent: a bad line 7 stops it at its chunk's edge (lines 2-5
    sent, nothing from line 6 on), the stop message says to fix it and run the same command;
    doing so sends the rest, every recipient is accepted exactly once, and the result file
    accounts for every row of both runs."""
    ids = write_csv(served.cwd / "bad.csv", 10, bad_line=7)
    write_csv(served.cwd / "good.csv", 10)
    argv = ["send", "batch", "-", "--format", "csv", "--result", "out.jsonl", *SMS]
    argv += ["--chunk-size", "2"]
    done = served.run(*argv, stdin=(served.cwd / "bad.csv").read_text())
    assert done.returncode == 2
    assert "-:7: phone_number:" in done.stderr
    assert "stopped at line 7: nothing from line 6 on was sent (4 rows before it were)" in (
        done.stdout
    )
    assert "fix line 7 and run the same command again: its journal out.journal" in (done.stdout)
    assert served.emulator.ledger.counts() == dict.fromkeys(ids[:4], 1)
    fixed = served.run(*argv, stdin=(served.cwd / "good.csv").read_text())
    assert fixed.returncode == 0, fixed.stderr
    assert served.emulator.ledger.counts() == dict.fromkeys(ids, 1)
    result = records(served.cwd / "out.jsonl")
    lines = sorted(
        line
        for r in result
        if r["record"] == "job"
        for line in range(r["first_line"], r["last_line"] + 1)
    )
    assert lines == list(range(2, 12))
    assert (result[-1]["rows"], result[-1]["accepted"]) == (10, 10)


def test_max_rate_is_said_and_a_journal_refusal_names_what_differs(served: Served) -> None:
    """--max-rate's chunk size is in the summary; a resume with another chunk size or TTL is
    refused naming the flag and both values; nothing is sent again."""
    ids = write_csv(served.cwd / "rows.csv", 4)
    argv = ["send", "batch", "rows.csv", "--channels", "sms", "--sms-alpha-name", "GMSU"]
    first = served.run(*argv, "--sms-ttl", "300", "--max-rate", "20")
    assert first.returncode == 0, first.stderr
    assert "2 (--max-rate 20/s caps it at a tenth of the rate)" in first.stdout
    no_rate = served.run(*argv, "--sms-ttl", "300")
    assert no_rate.returncode == 2
    assert_one_line_error(
        no_rate.stderr, "rows.csv.result.journal", "chunk size", "--max-rate 20/s", "50,000"
    )
    ttl = served.run(*argv, "--sms-ttl", "400", "--max-rate", "20")
    assert ttl.returncode == 2
    assert_one_line_error(ttl.stderr, "--sms-ttl (journal: 300, now: 400)")
    assert served.emulator.ledger.counts() == dict.fromkeys(ids, 1)


def test_only_a_new_result_file_sends_a_file_again(served: Served) -> None:
    """--resume without a journal refuses to start; a result file without its journal is
    refused; a new --result is the one way to send the same file again."""
    ids = write_csv(served.cwd / "rows.csv", 3)
    resume = served.run("send", "batch", "rows.csv", *SMS, "--resume")
    assert resume.returncode == 2
    assert_one_line_error(resume.stderr, "rows.csv.result.journal", "nothing to resume")
    assert served.run("send", "batch", "rows.csv", *SMS, "--no-journal").returncode == 0
    again = served.run("send", "batch", "rows.csv", *SMS)
    assert again.returncode == 2
    assert_one_line_error(again.stderr, "may have been sent", "pass a new --result FILE")
    assert served.emulator.ledger.counts() == dict.fromkeys(ids, 1)
    deliberate = served.run("send", "batch", "rows.csv", *SMS, "--result", "second.jsonl")
    assert deliberate.returncode == 0, deliberate.stderr
    assert served.emulator.ledger.counts() == dict.fromkeys(ids, 2)


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
    """A wrong password: exit 3, one line saying nothing was accepted, every row listed; the
    same command with the right password then sends every row once (the journal of refused
    requests does not hold them back)."""
    ids = write_csv(served.cwd / "rows.csv", 4)
    done = served.run("send", "batch", "rows.csv", *SMS, HYBER_PASSWORD="Not-It-QZX-77")
    assert done.returncode == 3
    assert_one_line_error(done.stderr, "nothing was accepted", "401")
    assert "Not-It-QZX-77" not in done.stdout + done.stderr
    assert "fix the cause and run the same command again" in done.stdout
    listed = [
        r for r in records(served.cwd / "rows.csv.result.jsonl") if r["record"] == "recipient"
    ]
    assert [r["extra_id"] for r in listed] == ids
    assert {r["outcome"] for r in listed} == {"rejected"}
    fixed = served.run("send", "batch", "rows.csv", *SMS)
    assert fixed.returncode == 0, fixed.stderr
    assert served.emulator.ledger.counts() == dict.fromkeys(ids, 1)


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


def test_a_journal_that_cannot_be_created_is_one_line_naming_it_once(served: Served) -> None:
    """A journal in a directory that does not exist: one line naming the file (once), exit
    code 2, nothing sent (SQLite's own error escaped as a traceback before)."""
    write_csv(served.cwd / "rows.csv", 3)
    done = served.run("send", "batch", "rows.csv", *SMS, "--journal", "nowhere/j.sqlite")
    assert done.returncode == 2
    assert_one_line_error(done.stderr, "nowhere/j.sqlite", "cannot be opened or created")
    assert done.stderr.count("nowhere/j.sqlite") == 1
    assert served.emulator.ledger.requests == 0


def test_a_semicolon_cp1251_file_with_written_phones_is_sent_once(served: Served) -> None:
    """A European spreadsheet export: semicolons (found from the header), cp1251 text
    (--encoding), phone numbers as people write them (--phone-region UA): each valid row is
    accepted once with its E.164 number and its text intact; the number libphonenumber refuses
    keeps its line and reason."""
    rows = [
        "phone_number;extra_id;name",
        "+380 (96) 111-11-11;a;Олена",
        "380-96-111-11-14;b;Петро",
        "096 111 11 12;c;Ірина",
        "12345;d;Bad",
    ]
    (served.cwd / "people.csv").write_bytes("\r\n".join(rows).encode("cp1251") + b"\r\n")
    done = served.run(
        "send", "broadcast", "people.csv", "--encoding", "cp1251", "--phone-region", "UA",
        *SMS, "--sms-text", "Hi %name%", "--skip-invalid",
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert served.emulator.ledger.counts() == {"a": 1, "b": 1, "c": 1}
    (job,) = served.emulator.store.jobs()
    assert list(job.phones) == [380961111111, 380961111114, 380961111112]
    assert list(job.variables["name"].values()) == ["Олена", "Петро", "Ірина"]
    (invalid,) = [r for r in records(served.cwd / "people.csv.result.jsonl") if r.get("line") == 5]
    assert (invalid["record"], invalid["field"]) == ("invalid", "phone_number")
    assert "'12345'" in invalid["reason"]


def test_a_slow_pipe_interrupted_then_resumed_sends_each_row_once(served: Served) -> None:
    """Rows arriving slowly on a pipe: a whole chunk is accepted while the command still waits
    for more (the pipe is read in a thread). Ctrl-C then: exit 130, and the message says to run
    the same command again; doing so with the whole input sends only the rest, and the result
    file accounts for every row of both runs."""
    argv = ["send", "batch", "-", "--format", "csv", "--result", "out.jsonl", *SMS]
    argv += ["--chunk-size", "2"]
    rows = "phone_number,extra_id,text\n380961111111,a,Hi\n380961111112,b,Hi\n"
    command = [sys.executable, "-m", "hyber_async.cli", *argv]
    with subprocess.Popen(
        command,
        env=served.env,
        cwd=served.cwd,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as process:
        assert process.stdin is not None
        process.stdin.write(rows)
        process.stdin.flush()
        waited = 0
        while served.emulator.ledger.accepted < 2 and waited < 300:
            time.sleep(0.1)  # bounded wait: the first chunk, while the pipe stays open
            waited += 1
        assert served.emulator.ledger.counts() == {"a": 1, "b": 1}
        process.send_signal(signal.SIGINT)
        out, _ = process.communicate(timeout=60)
    assert process.returncode == 130
    assert "interrupted: nothing more was read or sent; to send the rest, run the same " in out
    again = served.run(*argv, stdin=rows + "380961111113,c,Hi\n")
    assert again.returncode == 0, again.stderr
    assert served.emulator.ledger.counts() == {"a": 1, "b": 1, "c": 1}
    result = records(served.cwd / "out.jsonl")
    jobs = sorted((r["first_line"], r["last_line"]) for r in result if r["record"] == "job")
    assert jobs == [(2, 3), (4, 4)]


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


def test_a_send_that_meets_the_quota_says_how_often_it_was_throttled(served: Served) -> None:
    """Under a small quota every row goes once, and the summary counts the refusals."""
    served.emulator.quota.update({"rate_limit": 200, "burst": 0.1})
    ids = write_csv(served.cwd / "rows.csv", 200)
    done = served.run("send", "batch", "rows.csv", *SMS, "--chunk-size", "50")
    assert done.returncode == 0, done.stderr
    assert served.emulator.ledger.counts() == dict.fromkeys(ids, 1)
    summary = records(served.cwd / "rows.csv.result.jsonl")[-1]
    assert summary["throttled"] == served.emulator.quota.as_dict()["refused"] >= 1
    assert "throttled (quota)" in done.stdout
