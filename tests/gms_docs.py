"""Every JSON block of the published GMS JSON V2 documentation, as fixtures with their origin.

The documentation (``shared/spec/gms-docs/*.rst``) is the authority, but a user's clone does not
have it, so its blocks are copied into ``tests/fixtures/gms-docs/``: one file per block, named
after the file and line it starts on, and ``index.json`` saying what each one is. Where the
documentation is present (a developer's checkout, CI), a test extracts the blocks again and
compares, so the copy cannot drift from the source.

Regenerate after the documentation changes: ``python tests/gms_docs.py``.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs

DOCS = Path(__file__).resolve().parents[2] / "shared" / "spec" / "gms-docs"
"""The documentation beside the checkout, where it exists."""
FIXTURES = Path(__file__).parent / "fixtures" / "gms-docs"
INDEX = FIXTURES / "index.json"

KINDS = (
    "message-request",
    "message-accepted",
    "error-answer",
    "batch-request",
    "broadcast-request",
    "job-accepted",
    "sync-result",
    "job-status",
    "dr-callback",
    "dr-simple",
    "dr-advanced",
    "user-reply",
)
"""What a block can be: a request to one of the endpoints, or an answer, report or reply."""


@attrs.frozen
class Block:
    """One ``.. code-block:: json`` of the documentation, where it stands and what it is."""

    source: str
    """The documentation file, e.g. ``chapter3.rst``."""
    line: int
    """The line of the file that the JSON starts on (1-based)."""
    section: str
    """The heading of the section the block is in."""
    kind: str
    """One of ``KINDS``."""
    text: str
    """The block as published, dedented; not always valid JSON (see ``is_json``)."""

    @property
    def fixture(self) -> str:
        """The fixture's file name: the source and the line, so a failure points at the docs."""
        return f"{self.source.removesuffix('.rst')}-L{self.line:03d}.json"

    @property
    def name(self) -> str:
        """A short id for test parametrisation."""
        return f"{self.source.removesuffix('.rst')}:{self.line}"

    def json(self) -> Any:
        """The block as JSON (raises ``ValueError`` for the one block that is not JSON)."""
        return json.loads(self.text)


_HEADING_RULE = re.compile(r"^(=+|-+|~+)\s*$")


def _blocks_of(path: Path) -> Iterator[tuple[int, str, str]]:
    """(first line, section heading, dedented text) of each JSON code block of ``path``."""
    lines = path.read_text(encoding="utf-8").splitlines()
    section = ""
    index = 0
    while index < len(lines):
        line = lines[index]
        if index + 1 < len(lines) and line.strip() and _HEADING_RULE.match(lines[index + 1]):
            section = line.strip()
        if line.strip() == ".. code-block:: json":
            index += 1
            while index < len(lines) and not lines[index].strip():
                index += 1
            start = index
            while index < len(lines) and (not lines[index].strip() or lines[index][:1] == " "):
                index += 1
            body = [
                text[3:] if text.startswith("   ") else text.strip() for text in lines[start:index]
            ]
            yield start + 1, section, "\n".join(body).rstrip() + "\n"
            continue
        index += 1


def _kind(source: str, section: str, text: str, position: int) -> str:
    """What a block is, from where it stands (``position``: its index within the section)."""
    if source == "chapter2.rst":
        if section.startswith("Response"):
            return ("message-accepted", "error-answer")[position]
        return "message-request"
    if source == "chapter3.rst":
        if section.startswith("Send batch"):
            return "batch-request"
        if section.startswith("Send broadcast"):
            return "broadcast-request"
        if section.startswith("Response"):
            return ("job-accepted", "sync-result")[position]
        return "job-status"
    if source == "chapter5.rst":
        return "dr-advanced" if '"reports"' in text else "dr-simple"
    if source == "chapter6.rst":
        return "user-reply"
    if source == "part4.rst":
        return "dr-callback"
    raise ValueError(f"{source}: a JSON block in a file of no known kind ({section})")


def extract(docs: Path = DOCS) -> list[Block]:
    """Every JSON block of every ``.rst`` file of ``docs``, in file and line order."""
    blocks = []
    for path in sorted(docs.glob("*.rst")):
        seen: dict[str, int] = {}
        for line, section, text in _blocks_of(path):
            position = seen.get(section, 0)
            seen[section] = position + 1
            kind = _kind(path.name, section, text, position)
            blocks.append(Block(path.name, line, section, kind, text))
    return blocks


def load() -> list[Block]:
    """The blocks as copied into ``tests/fixtures/gms-docs``."""
    entries = json.loads(INDEX.read_text(encoding="utf-8"))
    return [
        Block(e["source"], e["line"], e["section"], e["kind"], _read(e["fixture"])) for e in entries
    ]


def of_kind(*kinds: str) -> list[Block]:
    """The blocks of ``kinds`` (see ``KINDS``), in file and line order."""
    return [b for b in load() if b.kind in kinds]


def block(source: str, line: int) -> Block:
    """The block of ``source`` (e.g. ``chapter2.rst``) that starts on ``line``."""
    (found,) = (b for b in load() if (b.source, b.line) == (source, line))
    return found


def _read(fixture: str) -> str:
    return (FIXTURES / fixture).read_text(encoding="utf-8")


def write(blocks: list[Block]) -> None:
    """Copy ``blocks`` into the fixtures folder, replacing what was there."""
    FIXTURES.mkdir(parents=True, exist_ok=True)
    for old in FIXTURES.glob("*.json"):
        old.unlink()
    for block in blocks:
        (FIXTURES / block.fixture).write_text(block.text, encoding="utf-8")
    entries = [
        {
            "fixture": b.fixture,
            "source": b.source,
            "line": b.line,
            "section": b.section,
            "kind": b.kind,
        }
        for b in blocks
    ]
    INDEX.write_text(json.dumps(entries, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    found = extract(Path(sys.argv[1]) if len(sys.argv) > 1 else DOCS)
    write(found)
    print(f"{len(found)} blocks written to {FIXTURES}")
