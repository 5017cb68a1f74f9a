"""What the subcommands that talk to the API share: exit codes, connection options, one-line
errors.

Exit codes of ``send``, ``status`` and ``wait``:

- 0: everything succeeded (every recipient accepted; every job read or final);
- 1: partly: some recipients were not accepted, or some job could not be read (see the output
  and the result file);
- 2: usage error or bad input (a bad file, line or setting; nothing is sent from the bad line
  on);
- 3: the server could not be reached, or it refused the credentials or every request;
- 4: ``wait``: the deadline passed with jobs still pending;
- 130: interrupted (Ctrl-C); ``send`` still writes its result file.
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import Final

from .._client import HyberClient
from .._errors import (
    AuthenticationError,
    NotSentError,
    OutcomeUnknownError,
    PermissionDeniedError,
    ValidationError,
)

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_CODES",
    "EXIT_DEADLINE",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_PARTIAL",
    "EXIT_SERVER",
    "UsageError",
    "add_connection_arguments",
    "error",
    "is_server_error",
    "make_client",
]

EXIT_OK: Final = 0
EXIT_PARTIAL: Final = 1
EXIT_BAD_INPUT: Final = 2
EXIT_SERVER: Final = 3
EXIT_DEADLINE: Final = 4
EXIT_INTERRUPTED: Final = 130

EXIT_CODES: Final = """\
exit codes:
  0    everything succeeded
  1    partly: some recipients not accepted or some jobs not read (see the output)
  2    usage error or bad input (file, line and field named on stderr)
  3    the server could not be reached, or refused the credentials or every request
  4    wait: the deadline passed with jobs still pending
  130  interrupted"""
"""The epilog of each subcommand's ``--help``."""


class UsageError(Exception):
    """A command-line setting that cannot work; reported on one line with exit code 2."""


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare where and as whom to connect (each falls back to its environment variable)."""
    group = parser.add_argument_group(
        "connection", "each defaults to its environment variable; the password is never printed"
    )
    group.add_argument("--base-url", metavar="URL", help="API base URL ($HYBER_BASE_URL)")
    group.add_argument("--site", help="API site, e.g. eu (instead of --base-url)")
    group.add_argument("--client-id", metavar="ID", help="account id ($HYBER_CLIENT_ID)")
    group.add_argument("--login", metavar="LOGIN", help="login ($HYBER_LOGIN)")
    group.add_argument(
        "--password",
        metavar="PASSWORD",
        help="password ($HYBER_PASSWORD; prefer it: flags show in `ps`)",
    )


def make_client(args: argparse.Namespace) -> HyberClient:
    """A ``HyberClient`` from the connection arguments; missing settings raise ``UsageError``."""
    try:
        return HyberClient(
            args.client_id,
            args.login,
            args.password,
            site=args.site,
            base_url=args.base_url,
        )
    except ValidationError as exc:
        problem = exc.problems[0]
        # The client names its keyword arguments ("pass login="): name the flags instead.
        message = re.sub(
            r"\b(\w+)=", lambda m: "--" + m.group(1).replace("_", "-"), problem.message
        )
        raise UsageError(f"{problem.field} {message}") from None


def _flag(match: re.Match[str]) -> str:
    return "--" + match.group(1).replace("_", "-")


def is_server_error(exc: BaseException) -> bool:
    """True for failures to reach the server or to be let in (exit code 3)."""
    reach = (NotSentError, OutcomeUnknownError, AuthenticationError, PermissionDeniedError)
    return isinstance(exc, reach)


def error(command: str, message: object) -> None:
    """Print a one-line error to stderr."""
    text = " ".join(str(message).split())
    print(f"hyber-async {command}: {text}", file=sys.stderr, flush=True)
