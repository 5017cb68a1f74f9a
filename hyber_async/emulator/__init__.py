"""A faithful local Hyber server, to develop, test and load-test against without credentials.

``create_app(config)`` gives an ``Emulator``: an ASGI app of the five endpoints of the JSON V2
mass-messaging API (auth, validation with the project's one rule set, jobs, the channel cascade,
status reports, delivery-report callbacks) and of the delivery-report lookups by ``message_id``
and ``extra_id``, with a ``ledger`` of everything it accepted, run-time ``faults`` and an
emulated ``clock``. Serve it in-process with ``hyber_async.testing``, in a background thread
with ``running_server``, on a socket with ``hyber-async emulator`` / ``python -m
hyber_async.emulator`` (``serve``), or in its own process with ``serving_process`` (the last
three need uvicorn: the ``emulator`` extra).
"""

from ._app import Emulator, ErrorCodes, create_app
from ._callbacks import CallbackStats
from ._cascade import FINAL_CODES, FinalCode, Result
from ._clock import Clock
from ._command import add_command
from ._config import DEMO_ACCOUNT, Account, ChannelOutcomes, EmulatorConfig
from ._faults import Faults
from ._ledger import Ledger
from ._load import AnswerStats, Latency, parse_latency
from ._process import emulator_command, serving_process, serving_process_async
from ._server import running_server, serve

__all__ = [
    "DEMO_ACCOUNT",
    "FINAL_CODES",
    "Account",
    "AnswerStats",
    "CallbackStats",
    "ChannelOutcomes",
    "Clock",
    "Emulator",
    "EmulatorConfig",
    "ErrorCodes",
    "Faults",
    "FinalCode",
    "Latency",
    "Ledger",
    "Result",
    "add_command",
    "create_app",
    "emulator_command",
    "parse_latency",
    "running_server",
    "serve",
    "serving_process",
    "serving_process_async",
]
