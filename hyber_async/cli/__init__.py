"""The ``hyber-async`` command.

Each subcommand lives in its own module with an ``add(commands)`` function that declares its
arguments and sets the function that runs it (``args.run(args) -> int``); ``main`` only
dispatches. Subcommands:

- ``emulator``: serve a local Hyber emulator on a socket (needs the ``emulator`` extra).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from . import _demo, _emulator

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``hyber-async`` command with ``argv`` (default: the process arguments)."""
    parser = argparse.ArgumentParser(
        prog="hyber-async", description="Tools of the hyber_async client library."
    )
    commands = parser.add_subparsers(dest="command", metavar="command", required=True)
    for module in (_demo, _emulator):
        module.add(commands)
    args = parser.parse_args(argv)
    result: int = args.run(args)
    return result
