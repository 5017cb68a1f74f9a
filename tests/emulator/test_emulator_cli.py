"""``hyber-async emulator`` and ``python -m hyber_async.emulator``."""

from __future__ import annotations

import shlex
import socket
import subprocess
import sys

import httpx
import pytest
from conftest import FIXTURES

from hyber_async.cli import main

pytestmark = pytest.mark.slow  # subprocesses


def test_the_module_serves_an_emulator_and_prints_how_to_reach_it() -> None:
    """python -m hyber_async.emulator --port 0 prints a base URL and credentials that work."""
    command = [sys.executable, "-m", "hyber_async.emulator", "--port", "0", "--login", "ann"]
    command += ["--password", "pw-1", "--client-id", "77", "--log-level", "warning"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        assert process.stdout is not None
        try:
            lines = [process.stdout.readline() for _ in range(5)]
            printed = dict(line.strip().split(":", 1) for line in lines[1:] if ":" in line)
            url = printed["base_url"].strip()
            auth = httpx.BasicAuth(printed["login"].strip(), printed["password"].strip())
            body = (FIXTURES / "05-send-batch-sms-messages-request.json").read_bytes()
            answer = httpx.post(
                f"{url}/{printed['client_id'].strip()}/batch",
                content=body,
                headers={"content-type": "application/json"},
                auth=auth,
            )
        finally:
            process.terminate()
            process.wait(timeout=10)
    assert url.startswith("http://127.0.0.1:")
    assert answer.status_code == 200


def start_and_send(*argv: str) -> tuple[str, dict[str, str]]:
    """Start ``hyber-async emulator --port 0 argv``, send one batch with the settings of the
    export line it prints, stop it; return the job id and what it printed, by label."""
    command = [sys.executable, "-m", "hyber_async.cli", "emulator", "--port", "0"]
    command += ["--log-level", "warning", *argv]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        assert process.stdout is not None
        try:
            lines = list(iter(process.stdout.readline, "\n"))
            printed = {
                label.strip(): value.strip()
                for label, _, value in (line.partition(":") for line in lines)
            }
            export = next(line for line in lines if line.strip().startswith("export "))
            env = dict(item.split("=", 1) for item in shlex.split(export)[1:])
            body = (FIXTURES / "05-send-batch-sms-messages-request.json").read_bytes()
            answer = httpx.post(
                f"{env['HYBER_BASE_URL']}/{env['HYBER_CLIENT_ID']}/batch",
                content=body,
                headers={"content-type": "application/json"},
                auth=httpx.BasicAuth(env["HYBER_LOGIN"], env["HYBER_PASSWORD"]),
            )
        finally:
            process.terminate()
            process.wait(timeout=10)
    assert answer.status_code == 200
    return str(answer.json()["job_id"]), printed


def test_job_ids_differ_across_restarts_unless_seeded() -> None:
    """Two starts without --seed give different job ids (an old result file never points at a
    new job); the printed export line works as is; --seed with the printed seed repeats."""
    first, printed = start_and_send()
    second, _ = start_and_send()
    assert first != second
    seed = printed["seed"].split()[0]
    again, _ = start_and_send("--seed", seed)
    assert again == first


def test_help_lists_the_emulator_options(capsys: pytest.CaptureFixture[str]) -> None:
    """hyber-async emulator --help documents the time scale and the credentials."""
    with pytest.raises(SystemExit) as exited:
        main(["emulator", "--help"])
    out = capsys.readouterr().out
    assert exited.value.code == 0
    assert all(option in out for option in ("--time-scale", "--client-id", "--seed"))


def test_a_subcommand_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    """hyber-async without a subcommand is a usage error."""
    with pytest.raises(SystemExit) as exited:
        main([])
    assert exited.value.code == 2
    assert "command" in capsys.readouterr().err


def test_a_busy_port_is_reported_with_exit_status_1(capsys: pytest.CaptureFixture[str]) -> None:
    """A port already listened on gives a one-line error and status 1, no traceback."""
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        status = main(["emulator", "--port", str(port), "--log-level", "warning"])
    assert status == 1
    assert "hyber-async emulator:" in capsys.readouterr().err
