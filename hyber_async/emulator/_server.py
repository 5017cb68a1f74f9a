"""Serving an ASGI app (the emulator) on a real socket with uvicorn.

uvicorn is imported lazily: it is in the ``emulator`` extra, not a core dependency. A socket
server is also what makes the ``reset`` and ``reset_before`` faults real: the connection is
aborted with ``SO_LINGER`` 0, so the client gets a TCP reset after it wrote its request (read and
processed, or not read at all). ``keep_alive`` sets how long an idle keep-alive connection stays
open before the server closes it (uvicorn's ``timeout_keep_alive``).
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any, Final

from .._errors import InvalidValueError
from ._app import Emulator, Resetter

__all__ = ["listening_socket", "running_server", "serve", "url_of"]

STARTUP_TIMEOUT: Final = 10.0
GRACEFUL_SHUTDOWN: Final = 1
"""Seconds uvicorn waits for requests in flight (e.g. a ``slow`` fault) when stopping."""


def _uvicorn() -> ModuleType:
    try:
        import uvicorn
    except ImportError:  # pragma: no cover - depends on the environment
        raise RuntimeError(
            "serving the emulator on a socket needs uvicorn: pip install 'hyber-async[emulator]'"
        ) from None
    return uvicorn


def listening_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0 picks a free one)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host, port), family=family)
    # Accepted sockets inherit TCP_NODELAY. asyncio sets it only on sockets whose ``proto`` is
    # IPPROTO_TCP, which create_server's (proto 0) are not: without it Nagle's algorithm holds
    # the body of an answer written after its headers until the client's delayed ACK, ~40 ms
    # per request on a kept-alive connection.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def url_of(sock: socket.socket) -> str:
    """The ``http://host:port`` base URL of a listening socket."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _resetter(server: Any) -> Resetter:
    """A function that aborts the connection of an ASGI ``client`` address on ``server``."""

    def reset(client: Any) -> bool:
        for protocol in list(server.server_state.connections):
            if client is not None and getattr(protocol, "client", None) == tuple(client):
                transport = protocol.transport
                raw = transport.get_extra_info("socket")
                if raw is not None:
                    raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                transport.abort()
                return True
        return False

    return reset


def _keep_alive_option(keep_alive: float | None) -> dict[str, Any]:
    """uvicorn's ``timeout_keep_alive`` for ``keep_alive`` seconds (its default when ``None``)."""
    if keep_alive is None:
        return {}
    if type(keep_alive) not in (int, float) or not keep_alive > 0:
        raise InvalidValueError(f"keep_alive must be a number of seconds > 0, got {keep_alive!r}")
    return {"timeout_keep_alive": keep_alive}


@contextlib.contextmanager
def _server(
    app: Any, *, log_level: str, configure_logging: bool, keep_alive: float | None
) -> Iterator[Any]:
    uvicorn = _uvicorn()
    options: dict[str, Any] = _keep_alive_option(keep_alive)
    if not configure_logging:
        options["log_config"] = None
    config = uvicorn.Config(
        app,
        lifespan="on" if isinstance(app, Emulator) else "off",
        log_level=log_level,
        access_log=False,
        loop="asyncio",
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN,
        **options,
    )
    server = uvicorn.Server(config)
    if not isinstance(app, Emulator):
        yield server
        return
    reset = _resetter(server)
    app._resetters.append(reset)
    try:
        yield server
    finally:
        app._resetters.remove(reset)


def serve(
    emulator: Emulator,
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    log_level: str = "info",
    ready: Callable[[str], None] | None = None,
    keep_alive: float | None = None,
) -> None:
    """Serve ``emulator`` on ``host:port`` until interrupted (Ctrl-C). ``ready`` is called with
    the base URL once the socket listens (port 0 picks a free port). ``keep_alive``: seconds an
    idle keep-alive connection stays open (uvicorn's default, 5, when ``None``)."""
    with (
        listening_socket(host, port) as sock,
        _server(
            emulator, log_level=log_level, configure_logging=True, keep_alive=keep_alive
        ) as server,
    ):
        if ready is not None:
            ready(url_of(sock))
        server.run(sockets=[sock])


@contextlib.contextmanager
def running_server(
    app: Any, host: str = "127.0.0.1", port: int = 0, *, keep_alive: float | None = None
) -> Iterator[str]:
    """Serve ``app`` with uvicorn in a background thread (its own asyncio loop); yield its base
    URL; stop it on exit. The emulator's background work runs there, through its lifespan.
    ``keep_alive`` as in ``serve``."""
    with (
        listening_socket(host, port) as sock,
        _server(app, log_level="warning", configure_logging=False, keep_alive=keep_alive) as server,
    ):
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="hyber-emulator", daemon=True
        )
        thread.start()
        try:
            deadline = time.monotonic() + STARTUP_TIMEOUT
            while not server.started:
                if not thread.is_alive() or time.monotonic() > deadline:
                    raise RuntimeError(f"the server on {url_of(sock)} did not start")
                time.sleep(0.005)
            yield url_of(sock)
        finally:
            server.should_exit = True
            thread.join()
