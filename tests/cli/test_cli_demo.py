"""``hyber-async demo`` run as a user runs it: a subprocess, real sockets, the whole job."""

from __future__ import annotations

import subprocess
import sys

import orjson
import pytest

pytestmark = pytest.mark.slow  # a subprocess


def test_demo_accounts_for_every_recipient_and_report() -> None:
    """A small demo sends every recipient, follows the jobs to the end and gets every report."""
    command = [sys.executable, "-m", "hyber_async.cli", "demo", "--recipients", "3000", "--json"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    summary = orjson.loads(done.stdout)
    assert summary["recipients"] == 3000
    assert summary["accounted for"] == 3000
    assert summary["accepted"] == 3000
    assert summary["pending"] == 0
    assert summary["delivered"] + summary["expired"] + summary["failed"] == 3000
    assert summary["delivery reports received"] == 3000
    assert "Traceback" not in done.stderr
