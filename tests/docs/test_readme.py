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

README = Path(__file__).parents[2] / "README.md"
TEXT = README.read_text(encoding="utf-8")
PYTHON_BLOCKS = re.findall(r"```python\n(.*?)```", TEXT, flags=re.S)


def test_readme_starts_with_the_demo_and_the_test_command() -> None:
    """The first two commands are `hyber-async demo` and the whole test suite."""
    commands = re.findall(r"```bash\n(.*?)\n```", TEXT, flags=re.S)
    assert commands[0].endswith("&& hyber-async demo")
    assert commands[1].endswith("&& python -m pytest -q")
    assert TEXT.index("<!-- demo-command -->") < TEXT.index("<!-- test-command -->")


def time_scale_for(block: str) -> float:
    """The emulator speed a block runs at: the ``--time-scale`` of the emulator command the
    README gives just before it (a newcomer runs it so), else 1000."""
    before = TEXT[: TEXT.index(block)].rsplit("```python", 1)[0][-400:]
    found = re.findall(r"hyber-async emulator [^\n]*--time-scale (\d+)", before)
    return float(found[-1]) if found else 1000.0


def test_readme_names_no_file_a_user_does_not_have() -> None:
    """Every file the README names by path (in backquotes: a path with a folder, or a .md
    document) is in the project a user has, e.g. not the design sketch kept outside it."""
    named = set(re.findall(r"`([\w./-]+\.(?:md|py|toml))`", TEXT))
    paths = sorted(n for n in named if "/" in n or n.endswith(".md"))
    assert [n for n in paths if not (README.parent / n).exists()] == []


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(PYTHON_BLOCKS)))
def test_readme_example_runs(index: int, tmp_path: Path) -> None:
    """Each ```python block of the README runs to the end without an error, at the emulator
    speed the README starts it with."""
    script = tmp_path / f"readme_{index}.py"
    script.write_text(PYTHON_BLOCKS[index], encoding="utf-8")
    emulator = create_app(EmulatorConfig(time_scale=time_scale_for(PYTHON_BLOCKS[index])))
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
