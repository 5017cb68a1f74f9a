"""The emulator in its own process: the command that starts it on a free loopback port, and
context managers that start it, yield its base URL and stop it (a blocking one for programs,
tests and benchmarks, an async one for code already in an event loop, such as the demo)."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import tempfile
import threading
from collections.abc import AsyncIterator, Iterator
from functools import partial
from typing import Final

import anyio
from anyio.streams.buffered import BufferedByteReceiveStream

__all__ = ["STARTUP_TIMEOUT", "emulator_command", "serving_process", "serving_process_async"]

STARTUP_TIMEOUT: Final = 30.0
"""Seconds the emulator is given to print that it listens."""
_LISTENING: Final = "listening on "
_STOP_TIMEOUT: Final = 10.0


def emulator_command(*options: str) -> list[str]:
    """The command that serves the emulator on a free loopback port, with ``options`` as
    ``hyber-async emulator`` takes them (a later ``--port`` or ``--log-level`` wins). It logs
    warnings only, and its first line of output names its base URL."""
    emulator = [sys.executable, "-m", "hyber_async.emulator"]
    return [*emulator, "--port", "0", "--log-level", "warning", *options]


def _base_url(first_line: str, said: str) -> str:
    """The base URL the emulator's first line announces; ``RuntimeError`` with what it
    ``said`` (its log or output) when it did not start."""
    if _LISTENING not in first_line:
        what = said.strip() or first_line.strip() or "nothing"
        raise RuntimeError(f"the emulator did not start: {what}")
    return first_line.rsplit(_LISTENING, 1)[-1].strip()


@contextlib.contextmanager
def serving_process(*options: str) -> Iterator[str]:
    """Start the emulator in its own process (``emulator_command(*options)``), yield its base
    URL once it listens, and stop it on exit. Blocks while it starts: from async code, use
    ``serving_process_async``.

    Its log goes to a temporary file (named in the error when it does not start), and its
    output is drained by a thread, so that a full pipe never blocks it.
    """
    with tempfile.TemporaryFile("w+") as log:
        process = subprocess.Popen(
            emulator_command(*options),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
        assert process.stdout is not None
        drain = threading.Thread(target=process.stdout.read, daemon=True)
        try:
            line = process.stdout.readline()
            said = ""
            if _LISTENING not in line:  # what it logged before it stopped
                process.wait(STARTUP_TIMEOUT)
                log.seek(0)
                said = log.read()
            url = _base_url(line, said)
            drain.start()
            yield url
        finally:
            process.terminate()
            try:
                process.wait(_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:  # pragma: no cover - a stuck emulator
                process.kill()
                process.wait()
            if drain.is_alive():
                drain.join(5)
            process.stdout.close()


@contextlib.asynccontextmanager
async def serving_process_async(*options: str) -> AsyncIterator[str]:
    """``serving_process`` for code in an event loop: the child is started and awaited without
    blocking the loop, and its output is drained by a task."""
    async with await anyio.open_process(
        emulator_command(*options), stdin=subprocess.DEVNULL, stderr=subprocess.STDOUT
    ) as process:
        try:
            assert process.stdout is not None
            lines = BufferedByteReceiveStream(process.stdout)
            said = ""
            with anyio.fail_after(STARTUP_TIMEOUT):
                line = (await _first_line(lines)).decode(errors="replace")
                if _LISTENING not in line:  # what it said before it stopped
                    said = line + (await _read_to_end(lines, keep=True)).decode(errors="replace")
            url = _base_url(line, said)
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(partial(_read_to_end, lines, keep=False))
                yield url
                tasks.cancel_scope.cancel()
        finally:
            with contextlib.suppress(ProcessLookupError):  # it may have ended on its own
                process.terminate()


async def _first_line(lines: BufferedByteReceiveStream) -> bytes:
    """The child's first line of output (what there is of it when it stops before one)."""
    try:
        return await lines.receive_until(b"\n", 4096)
    except (anyio.EndOfStream, anyio.IncompleteRead, anyio.DelimiterNotFound):
        return lines.buffer


async def _read_to_end(lines: BufferedByteReceiveStream, *, keep: bool) -> bytes:
    """Read the child's output until it closes it: all of it when ``keep``; otherwise discarded
    as it comes (to drain it, so that the child never blocks on a full pipe)."""
    said = []
    with contextlib.suppress(anyio.EndOfStream, anyio.ClosedResourceError):
        while True:
            chunk = await lines.receive()
            if keep:
                said.append(chunk)
    return b"".join(said)
