"""The ``hyber-async`` command.

Each subcommand lives in its own module with an ``add(commands)`` function that declares its
arguments and sets the function that runs it (``args.run(args) -> int``); ``main`` only
dispatches. Subcommands:

- ``emulator``: serve a local Hyber emulator on a socket (needs the ``emulator`` extra);
  declared by the emulator package (``hyber_async.emulator.add_command``).
- ``send``: send a campaign to the recipients of a CSV or JSON Lines file.
- ``status``, ``wait``: the counts of jobs' messages, once or until final.
- ``loadtest``: load-test a server or the emulator (needs the ``loadtest`` extra).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from .. import __version__
from ..emulator import add_command as add_emulator_command
from . import _demo, _loadtest, _send, _status

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``hyber-async`` command with ``argv`` (default: the process arguments)."""
    parser = argparse.ArgumentParser(
        prog="hyber-async", description="Tools of the hyber_async client library."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="command", required=True)
    _demo.add(commands)
    add_emulator_command(commands)
    _send.add(commands)
    _status.add(commands)
    _loadtest.add(commands)
    args = parser.parse_args(argv)
    result: int = args.run(args)
    return result
