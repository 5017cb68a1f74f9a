"""What ``hyber-async send`` says about messy files and missing settings, before any request
(run in-process: nothing here reaches a server)."""

from __future__ import annotations

from pathlib import Path

import pytest

import hyber_async
from hyber_async.cli import main

SMS = ["--channels", "sms", "--sms-alpha-name", "GMSU", "--sms-ttl", "300"]
NOWHERE = {
    "HYBER_BASE_URL": "http://127.0.0.1:9",
    "HYBER_CLIENT_ID": "1",
    "HYBER_LOGIN": "u",
    "HYBER_PASSWORD": "p",
}
"""Settings of a server that is never reached (every case stops before sending)."""


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in NOWHERE:
        monkeypatch.delenv(name, raising=False)


CASES = {
    "tab-delimited, forced": (
        b"phone_number\ttext\n380961111111\tHi\n",
        ["batch", "rows.csv", *SMS, "--delimiter", "tab", "--dry-run"],
        0,
        ["1 valid rows, 0 invalid rows"],
    ),
    "bad bytes on line 3": (
        b"phone_number,text\n380961111111,Hi\n380961111112,\xcf\xf0\xe8\n",
        ["batch", "rows.csv", *SMS, "--dry-run"],
        2,
        ["rows.csv:3: is not valid utf-8 text: pass --encoding (e.g. cp1251 or latin-1)"],
    ),
    "a directory": (
        None,
        ["batch", ".", *SMS, "--dry-run"],
        2,
        ["is a directory"],
    ),
    "a huge field": (
        b'phone_number,text\n380961111111,Hi\n380961111112,"' + b"x" * 140_000 + b'"\n',
        ["batch", "rows.csv", *SMS, "--dry-run"],
        2,
        ["rows.csv:3: a field is longer than 131,072 characters"],
    ),
    "a placeholder without a column": (
        b"phone_number,name\n380961111111,Ann\n380961111112,Bo\n",
        ["broadcast", "rows.csv", *SMS, "--sms-text", "Hi %missing%", "--dry-run"],
        2,
        ["the file has no column 'missing', used as %missing% in channel_options.sms.text"],
    ),
    "a header only": (
        b"phone_number,text\n",
        ["batch", "rows.csv", *SMS],
        2,
        ["rows.csv: the file has no rows, only a header: nothing was sent"],
    ),
    "missing options and credentials": (
        b"phone_number,text\n380961111111,Hi\n",
        ["batch", "rows.csv", "--channels", "sms"],
        2,
        ["--sms-ttl", "--sms-alpha-name", "--base-url", "$HYBER_CLIENT_ID", "$HYBER_PASSWORD"],
    ),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_send_says_what_is_wrong_once(
    case: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each messy case: the exit code, and every expected phrase said exactly once."""
    content, argv, code, phrases = CASES[case]
    if content is not None:
        Path("rows.csv").write_bytes(content)
    if case not in ("missing options and credentials",):
        for name, value in NOWHERE.items():
            monkeypatch.setenv(name, value)
    assert main(["send", *argv]) == code
    out = capsys.readouterr()
    said = out.out + out.err
    assert "Traceback" not in said
    for phrase in phrases:
        assert said.count(phrase) == 1, said
    assert "the 0 rows" not in said


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    """hyber-async --version prints the package version."""
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"hyber-async {hyber_async.__version__}"


def help_of(*argv: str, capsys: pytest.CaptureFixture[str]) -> str:
    """The ``--help`` text of ``hyber-async argv``."""
    with pytest.raises(SystemExit):
        main([*argv, "--help"])
    return capsys.readouterr().out


def test_help_is_specific_shows_defaults_and_only_possible_exit_codes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """send batch and send broadcast each describe their own file; defaults and every ttl
    range are shown; only the exit codes a command can end with are listed."""
    batch = help_of("send", "batch", capsys=capsys)
    broadcast = help_of("send", "broadcast", capsys=capsys)
    wait = help_of("wait", capsys=capsys)
    emulator = help_of("emulator", capsys=capsys)
    assert "CSV columns: phone_number (digits, a leading + allowed), text" in batch
    assert "--text TEXT" not in batch
    assert "every other\ncolumn is a %variable% of its row" in broadcast
    assert "--text TEXT" in broadcast
    for text in (batch, broadcast):
        assert all(r in text for r in ("(40-86400)", "(300-259200)", "(1-604800)")), text
        assert "(default: 50000)" in text
        assert "(default: 4)" in text
        assert "  4    " not in text
        assert "  130  interrupted" in text
    assert "  4    the deadline passed" in wait
    assert "(default: 8080)" in emulator
