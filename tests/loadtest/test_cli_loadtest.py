"""``hyber-async loadtest``: safe by default, thresholds as exit codes, JSON, report, compare."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from hyber_async.cli import main

pytestmark = pytest.mark.slow  # load runs against an emulator in its own process

JSON_KEYS = {
    "target_rate",
    "achieved_rate",
    "duration_s",
    "requests",
    "outcomes",
    "latency_ms",
    "per_second",
    "histogram",
}


def test_runs_against_the_built_in_emulator(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --base-url it starts the emulator, writes the JSON and the HTML report, and a
    missed threshold exits 1 with a line naming it."""
    out, page = tmp_path / "run.json", tmp_path / "run.html"
    code = main(
        [
            "loadtest",
            "--rate", "500",
            "--duration", "1",
            "--chunk-size", "10",
            "--json", str(out),
            "--report", str(page),
            "--threshold", "p99<1us",
            "--threshold", "rejected<0.1%",
            "--quiet",
        ]
    )  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 1
    assert "threshold 'p99<1us' missed: p99 was" in printed
    assert "rejected<0.1%" not in printed
    result = json.loads(out.read_text())
    assert result.keys() >= JSON_KEYS
    assert set(result["latency_ms"]) >= {"p50", "p90", "p99", "p999", "max"}
    assert {"t", "recipients", "requests", "p99_ms"} <= result["per_second"][0].keys()
    assert result["outcomes"]["accepted"] == 500
    assert "Plotly" in page.read_text()
    assert main(["loadtest", "compare", str(out), str(out)]) == 0
    assert "achieved_rate" in capsys.readouterr().out


def test_refuses_a_target_that_is_not_an_emulator(capsys: pytest.CaptureFixture[str]) -> None:
    """A --base-url that is not an emulator needs --real-messages; nothing is sent."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    code = main(["loadtest", "--base-url", f"http://127.0.0.1:{port}", "--quiet"])
    assert code == 2
    assert "real, paid message" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--threshold", "p99<5%"], "threshold"),
        (["--chunk-size", "0"], "chunk_size"),
        (["--workers", "0"], "workers"),
        (["--base-url", "http://127.0.0.1:9", "--emulator-capacity", "2"], "built-in"),
    ],
)
def test_bad_settings_exit_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A setting that cannot work exits 2 with a line naming it, before anything starts."""
    assert main(["loadtest", "--quiet", *args]) == 2
    assert message in capsys.readouterr().err


def test_recipients_from_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--recipients cycles through a file's rows; a bad row exits 2 naming its line."""
    good = tmp_path / "people.csv"
    good.write_text("phone_number\n380961111111\n380962222222\n+380963333333\n")
    out = tmp_path / "run.json"
    args = ["loadtest", "--rate", "200", "--duration", "0.5", "--chunk-size", "5", "--quiet"]
    assert main([*args, "--recipients", str(good), "--json", str(out)]) == 0
    assert json.loads(out.read_text())["outcomes"]["accepted"] == 100
    bad = tmp_path / "bad.csv"
    bad.write_text("phone_number\n380961111111\nnot-a-number\n")
    capsys.readouterr()
    assert main([*args, "--recipients", str(bad)]) == 2
    assert "bad.csv:3" in capsys.readouterr().err
