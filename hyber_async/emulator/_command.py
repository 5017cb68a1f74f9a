"""The emulator's command line: serve a local Hyber emulator on a socket.

``python -m hyber_async.emulator`` runs ``main``; the ``hyber-async`` command declares the same
options as its ``emulator`` subcommand with ``add_command``, so the emulator never imports
the command line.
"""

from __future__ import annotations

import argparse
import secrets
import shlex
import sys
from collections.abc import Sequence
from typing import Any

from .._arguments import positive_number
from ._app import create_app
from ._config import DEMO_ACCOUNT, Account, EmulatorConfig
from ._load import Latency, parse_latency
from ._server import serve

__all__ = ["add_command", "main"]

_DESCRIPTION = "Serve a faithful local Hyber JSON V2 server (python -m hyber_async.emulator)."


def add_command(commands: Any) -> None:
    """Declare the ``emulator`` subcommand on ``commands`` (what ``add_subparsers`` returns);
    the parsed arguments' ``run(args)`` serves it."""
    parser = commands.add_parser(
        "emulator", help="serve a local Hyber emulator", description=_DESCRIPTION
    )
    _add_arguments(parser)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m hyber_async.emulator``: serve an emulator as ``argv`` (default: the process
    arguments) says; the exit status."""
    parser = argparse.ArgumentParser(prog="hyber-async emulator", description=_DESCRIPTION)
    _add_arguments(parser)
    args = parser.parse_args(argv)
    result: int = args.run(args)
    return result


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    # each help says its default itself: both parsers print the same help
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: %(default)s)"
    )
    parser.add_argument(
        "--port", type=int, default=8080, help="port (0 picks a free one) (default: %(default)s)"
    )
    parser.add_argument(
        "--client-id", default=DEMO_ACCOUNT.client_id, help="the account id (default: %(default)s)"
    )
    parser.add_argument(
        "--login", default=DEMO_ACCOUNT.login, help="the account's login (default: %(default)s)"
    )
    parser.add_argument(
        "--password", default=DEMO_ACCOUNT.password, help="its password (default: %(default)s)"
    )
    parser.add_argument(
        "--seed",
        type=int,
        help="seed of job ids and outcomes, to repeat a run (default: a new one each start, so "
        "that job ids never repeat across restarts)",
    )
    parser.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        help="emulated seconds per real second (1000 makes a 60 s ttl pass in 60 ms) "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--callback-batch-size",
        type=int,
        default=100,
        help="delivery reports per callback (default: %(default)s)",
    )
    parser.add_argument(
        "--callback-period",
        type=float,
        default=1.0,
        help="seconds a delivery report waits for its batch to fill (default: %(default)s)",
    )
    parser.add_argument(
        "--keep-alive",
        type=_seconds,
        default=None,
        metavar="S",
        help="seconds an idle keep-alive connection stays open (default 5)",
    )
    parser.add_argument(
        "--latency",
        type=_latency,
        default=None,
        metavar="DIST",
        help="latency of every API answer: fixed:MS, uniform:MIN:MAX or lognormal:MEDIAN:P99 "
        "(e.g. fixed:20ms, lognormal:10ms:200ms; default: none)",
    )
    parser.add_argument(
        "--capacity",
        type=int,
        default=None,
        metavar="N",
        help="API requests in flight beyond N are answered 503 with Retry-After (default: none)",
    )
    parser.add_argument(
        "--rate-limit",
        type=_rate,
        default=None,
        metavar="N",
        help="the account quota: messages per second (429 with Retry-After beyond it; "
        "default none; change it at run time with POST /_emulator/quota)",
    )
    parser.add_argument(
        "--request-rate-limit",
        type=_rate,
        default=None,
        metavar="N",
        help="the account quota: send requests per second (default none)",
    )
    parser.add_argument(
        "--quota-burst",
        type=_seconds,
        default=1.0,
        metavar="S",
        help="seconds' worth of the quota a client may be ahead by before it is refused "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--log-level", default="info", help="uvicorn log level (default: %(default)s)"
    )
    parser.set_defaults(run=_run_emulator)


_seconds = positive_number("a number of seconds")
_rate = positive_number("a number per second")


def _latency(text: str) -> Latency:
    """A ``Latency`` for argparse."""
    try:
        return parse_latency(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _run_emulator(args: argparse.Namespace) -> int:
    account = Account(client_id=args.client_id, login=args.login, password=args.password)
    seed = args.seed if args.seed is not None else secrets.randbits(63)
    try:
        config = EmulatorConfig(
            accounts=(account,),
            seed=seed,
            time_scale=args.time_scale,
            callback_batch_size=args.callback_batch_size,
            callback_period=args.callback_period,
            latency=args.latency or Latency(),
            capacity=args.capacity,
            rate_limit=args.rate_limit,
            request_rate_limit=args.request_rate_limit,
            quota_burst=args.quota_burst,
        )
    except ValueError as exc:
        print(f"hyber-async emulator: {exc}", file=sys.stderr)
        return 2

    def ready(url: str) -> None:
        print(f"Hyber emulator listening on {url}", flush=True)
        print(f"  base_url:  {url}")
        print(f"  client_id: {account.client_id}")
        print(f"  login:     {account.login}")
        print(f"  password:  {account.password}")
        admin = "also /faults, /quota, /stats, /clock, /callbacks"
        print(f"  admin:     {url}/_emulator/ledger  ({admin})")
        print(
            f"  HyberClient(client_id={account.client_id!r}, login={account.login!r}, "
            f"password=..., base_url={url!r}, dr_base_url={url!r})",
        )
        settings = {
            "HYBER_BASE_URL": url,
            "HYBER_DR_BASE_URL": url,
            "HYBER_CLIENT_ID": account.client_id,
            "HYBER_LOGIN": account.login,
            "HYBER_PASSWORD": account.password,
        }
        print("  export " + " ".join(f"{k}={shlex.quote(v)}" for k, v in settings.items()))
        print(f"  seed:      {seed}" + ("" if args.seed is not None else " (--seed to repeat)"))
        print(flush=True)

    try:
        serve(
            create_app(config),
            args.host,
            args.port,
            log_level=args.log_level,
            ready=ready,
            keep_alive=args.keep_alive,
        )
    except KeyboardInterrupt:
        return 0
    except (OSError, RuntimeError) as exc:
        print(f"hyber-async emulator: {exc}", file=sys.stderr)
        return 1
    return 0
