"""Helpers for your own tests: a ``HyberClient`` wired to a local emulator.

::

    from hyber_async.testing import emulated_client

    async def test_campaign():
        async with emulated_client() as emulated:
            job = await emulated.client.send_batch(campaign, messages)
            assert emulated.emulator.ledger.accepted == len(messages)
            assert emulated.emulator.ledger.duplicates() == {}

In-process by default (``httpx.ASGITransport``, no socket), or on a loopback socket with
``socket=True``; works under asyncio and trio. The client retries without waiting
(``RetryPolicy(wait=False)``) unless you pass ``retry=``. Without a ``config`` the emulator runs
``TEST_TIME_SCALE`` times faster than real time, so ttls and deliveries pass in milliseconds.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any, Final

import anyio
import anyio.to_thread
import attrs
import httpx

from ._client import HyberClient
from ._config import RetryPolicy
from ._errors import InvalidCallError
from .emulator import Emulator, EmulatorConfig, create_app, running_server

__all__ = [
    "TEST_TIME_SCALE",
    "EmulatedClient",
    "emulated_client",
    "serve_emulator",
    "serving_emulator",
]

TEST_TIME_SCALE: Final = 1000.0
"""Emulated seconds per real second of the emulator ``emulated_client`` makes by default."""
_IN_PROCESS_URL: Final = "http://emulator.invalid"


@attrs.frozen
class EmulatedClient:
    """A client wired to an emulator, and the emulator (its ledger, faults and clock)."""

    client: HyberClient
    emulator: Emulator
    base_url: str
    """Where the client points: a loopback URL in socket mode, a placeholder in-process."""


@contextlib.asynccontextmanager
async def serve_emulator(
    emulator: Emulator | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    keep_alive: float | None = None,
) -> AsyncIterator[str]:
    """Serve ``emulator`` (a new default one when ``None``) on a loopback socket with uvicorn,
    in a background thread with its own event loop (so trio tests can use it too); yield its
    base URL and stop it cleanly on exit. Its background work runs in that thread.

    ``keep_alive``: seconds the server keeps an idle keep-alive connection open before closing
    it (uvicorn's default, 5, when ``None``); a short one makes it close connections between
    your requests."""
    app = emulator if emulator is not None else create_app()
    server = running_server(app, host, port, keep_alive=keep_alive)
    url = await anyio.to_thread.run_sync(server.__enter__)
    try:
        yield url
    finally:
        await anyio.to_thread.run_sync(_exit, server)


def _exit(server: contextlib.AbstractContextManager[str]) -> None:
    server.__exit__(None, None, None)


@contextlib.contextmanager
def serving_emulator(
    emulator: Emulator | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    keep_alive: float | None = None,
) -> Iterator[str]:
    """Blocking twin of ``serve_emulator`` for synchronous code and fixtures."""
    app = emulator if emulator is not None else create_app()
    with running_server(app, host, port, keep_alive=keep_alive) as url:
        yield url


@contextlib.asynccontextmanager
async def emulated_client(
    config: EmulatorConfig | None = None,
    *,
    emulator: Emulator | None = None,
    socket: bool = False,
    keep_alive: float | None = None,
    **client_kwargs: Any,
) -> AsyncIterator[EmulatedClient]:
    """A ``HyberClient`` logged in as the emulator's first account, and the emulator.

    The client's ``base_url`` and ``dr_base_url`` are both the emulator's (it serves the
    delivery-report lookups and single messages too), so ``reconcile`` works.

    Give a ``config`` or a ready ``emulator`` (not both); ``client_kwargs`` go to
    ``HyberClient`` (e.g. ``timeouts=``, ``retry=``). In-process, the emulator's background
    work (delivery-report callbacks) runs in a task group for the duration of the block.
    ``keep_alive`` (with ``socket=True`` only) is the server's, as in ``serve_emulator``.
    """
    if emulator is not None and config is not None:
        raise InvalidCallError("pass config= or emulator=, not both")
    if keep_alive is not None and not socket:
        raise InvalidCallError("keep_alive= needs socket=True (there is no connection in-process)")
    if emulator is None:
        emulator = create_app(config or EmulatorConfig(time_scale=TEST_TIME_SCALE))
    account = emulator.config.accounts[0]
    client_kwargs.setdefault("retry", RetryPolicy(wait=False))
    if socket:
        async with serve_emulator(emulator, keep_alive=keep_alive) as url:
            client_kwargs.setdefault("dr_base_url", url)
            async with HyberClient(
                account.client_id, account.login, account.password, base_url=url, **client_kwargs
            ) as client:
                yield EmulatedClient(client, emulator, url)
        return
    client_kwargs.setdefault("dr_base_url", _IN_PROCESS_URL)
    failure: Exception | None = None
    async with anyio.create_task_group() as tasks:
        await tasks.start(emulator.run)
        transport = httpx.ASGITransport(app=emulator)
        try:
            async with (
                httpx.AsyncClient(transport=transport) as http,
                HyberClient(
                    account.client_id,
                    account.login,
                    account.password,
                    base_url=_IN_PROCESS_URL,
                    http_client=http,
                    **client_kwargs,
                ) as client,
            ):
                yield EmulatedClient(client, emulator, _IN_PROCESS_URL)
        except Exception as exc:
            failure = exc  # raised below as itself, not wrapped in an exception group
        finally:
            tasks.cancel_scope.cancel()
    if failure is not None:
        raise failure
