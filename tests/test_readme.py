"""The README's examples run as written, against the emulator on a loopback socket."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from hyber_async.emulator import DEMO_ACCOUNT, EmulatorConfig, create_app
from hyber_async.testing import serving_emulator

README = Path(__file__).parent.parent / "README.md"
TEXT = README.read_text(encoding="utf-8")
PYTHON_BLOCKS = re.findall(r"```python\n(.*?)```", TEXT, flags=re.S)


def test_readme_starts_with_the_demo_and_the_test_command() -> None:
    """The first two commands are `hyber-async demo` and the whole test suite."""
    commands = re.findall(r"```bash\n(.*?)\n```", TEXT, flags=re.S)
    assert commands[0].endswith("&& hyber-async demo")
    assert commands[1].endswith("&& python -m pytest -q")
    assert TEXT.index("<!-- demo-command -->") < TEXT.index("<!-- test-command -->")


@pytest.mark.parametrize("index", range(len(PYTHON_BLOCKS)))
def test_readme_example_runs(index: int, tmp_path: Path) -> None:
    """Each ```python block of the README runs to the end without an error."""
    script = tmp_path / f"readme_{index}.py"
    script.write_text(PYTHON_BLOCKS[index], encoding="utf-8")
    emulator = create_app(EmulatorConfig(time_scale=1000))
    with serving_emulator(emulator) as url:
        env = {
            **os.environ,
            "HYBER_CLIENT_ID": DEMO_ACCOUNT.client_id,
            "HYBER_LOGIN": DEMO_ACCOUNT.login,
            "HYBER_PASSWORD": DEMO_ACCOUNT.password,
            "HYBER_BASE_URL": url,
            "HYBER_DR_BASE_URL": url,
        }
        done = subprocess.run(
            [sys.executable, str(script)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert done.returncode == 0, done.stderr
    assert emulator.ledger.accepted > 0
    assert emulator.ledger.duplicates() == {}
