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
import os
import re
import sys
from typing import Final

import httpx

from .._client import HyberClient
from .._errors import (
    AuthenticationError,
    NotSentError,
    OutcomeUnknownError,
    PermissionDeniedError,
    UsageError,
    ValidationError,
)

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_DEADLINE",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_PARTIAL",
    "EXIT_SERVER",
    "HelpFormatter",
    "UsageError",
    "add_connection_arguments",
    "error",
    "exit_codes",
    "is_server_error",
    "make_client",
    "missing_settings",
]

EXIT_OK: Final = 0
EXIT_PARTIAL: Final = 1
EXIT_BAD_INPUT: Final = 2
EXIT_SERVER: Final = 3
EXIT_DEADLINE: Final = 4
EXIT_INTERRUPTED: Final = 130

_EXIT_MEANINGS: Final = {
    EXIT_OK: "everything succeeded",
    EXIT_PARTIAL: "partly: some jobs could not be read (see the output)",
    EXIT_BAD_INPUT: "usage error or bad input (file, line and field named on stderr)",
    EXIT_SERVER: "the server could not be reached, or refused the credentials or every request",
    EXIT_DEADLINE: "the deadline passed with jobs still pending",
    EXIT_INTERRUPTED: "interrupted",
}


def exit_codes(*codes: int, **meanings: str) -> str:
    """The epilog of a subcommand's ``--help``: the exit codes it can end with, with the
    meaning of ``partial`` (exit code 1) for that command."""
    said = {**_EXIT_MEANINGS, **({EXIT_PARTIAL: meanings["partial"]} if meanings else {})}
    lines = [f"  {code:<4} {said[code]}" for code in codes]
    return "\n".join(["exit codes:", *lines])


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions kept as written, and every option's default shown (when it has one)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if default in (None, False, argparse.SUPPRESS) or "default" in text:
            return text
        return f"{text} (default: %(default)s)"


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


_SETTINGS: Final = (
    ("client_id", "the account id", "--client-id", "HYBER_CLIENT_ID"),
    ("login", "the login", "--login", "HYBER_LOGIN"),
    ("password", "the password", "--password", "HYBER_PASSWORD"),
)


def missing_settings(args: argparse.Namespace) -> list[str]:
    """Every connection setting given neither by its flag nor by its variable, each named
    with both."""
    missing = []
    if args.base_url is None and args.site is None and not os.environ.get("HYBER_BASE_URL"):
        missing.append("the API address: pass --base-url or --site, or set $HYBER_BASE_URL")
    for name, what, flag, variable in _SETTINGS:
        if getattr(args, name) is None and not os.environ.get(variable):
            missing.append(f"{what}: pass {flag} or set ${variable}")
    return missing


def make_client(args: argparse.Namespace) -> HyberClient:
    """A ``HyberClient`` from the connection arguments; missing or bad settings raise
    ``UsageError`` naming every one."""
    missing = missing_settings(args)
    if missing:
        raise UsageError(f"missing {'; '.join(missing)}")
    try:
        return HyberClient(
            args.client_id,
            args.login,
            args.password,
            site=args.site,
            base_url=args.base_url,
        )
    except ValidationError as exc:
        # The client names its keyword arguments ("pass login="): name the flags instead.
        problems = [f"{p.field} {_KEYWORD.sub(_flag, p.message)}" for p in exc.problems]
        raise UsageError("; ".join(problems)) from None
    except httpx.InvalidURL as exc:
        raise UsageError(f"base_url is not a URL: {exc}") from None


_KEYWORD: Final = re.compile(r"\b(\w+)=")


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
