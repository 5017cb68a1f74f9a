"""Running a load test from a program: the target, the built-in emulator in its own process,
workers sharing the rate, an injected stall, and the CPU warnings."""

from __future__ import annotations

import concurrent.futures
import contextlib
import multiprocessing
import threading
from collections.abc import Callable, Iterator
from typing import Any, Final

import anyio
import attrs
import httpx

from .._errors import InvalidValueError
from ..emulator import serving_process
from ._recorder import Recorder, merge_results
from ._runner import follow_jobs, loadtest_client, run_workload
from ._workload import Workload

__all__ = ["Follow", "Target", "emulator_process", "emulator_stats", "run"]

CPU_BUSY: Final = 0.9
"""Share of one core above which a process is said to have run out of CPU."""


@attrs.frozen
class Target:
    """Where the load goes and as whom (``None``: the ``HYBER_*`` environment variables)."""

    base_url: str | None = None
    client_id: str | None = None
    login: str | None = None
    password: str | None = attrs.field(default=None, repr=False)


@contextlib.contextmanager
def emulator_process(
    *,
    latency: str | None = None,
    capacity: int | None = None,
    time_scale: float | None = None,
    port: int = 0,
) -> Iterator[str]:
    """Start ``hyber-async emulator`` in its own process on a loopback port; yield its base URL;
    stop it on exit. ``latency``, ``capacity`` and ``time_scale`` as the emulator command takes
    them (see ``hyber_async.emulator.serving_process``)."""
    options = ["--port", str(port)]
    if latency is not None:
        options += ["--latency", latency]
    if capacity is not None:
        options += ["--capacity", str(capacity)]
    if time_scale is not None:
        options += ["--time-scale", repr(time_scale)]
    with serving_process(*options) as url:
        yield url


def emulator_stats(base_url: str) -> dict[str, Any] | None:
    """The emulator's ``/_emulator/stats``, or ``None`` when ``base_url`` is not an emulator."""
    try:
        response = httpx.get(f"{base_url.rstrip('/')}/_emulator/stats", timeout=5)
        data = response.json() if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        return None
    return data if isinstance(data, dict) and "answers" in data else None


def _stall(base_url: str, at: float, seconds: float) -> threading.Timer:
    """Ask the emulator at ``base_url`` to stall for ``seconds``, ``at`` seconds from now."""

    def post() -> None:
        with contextlib.suppress(httpx.HTTPError):
            httpx.post(f"{base_url.rstrip('/')}/_emulator/stall", json={"seconds": seconds})

    timer = threading.Timer(at, post)
    timer.daemon = True
    timer.start()
    return timer


@attrs.frozen
class Follow:
    """Follow the accepted jobs after the run: poll every ``interval`` s for ``deadline`` s."""

    deadline: float
    interval: float = 1.0


async def _run_one(
    workload: Workload,
    target: Target,
    at: Callable[[float, Recorder], Any] | None,
    follow: Follow | None = None,
) -> dict[str, Any]:
    recorder = Recorder()
    connections = workload.max_in_flight or workload.connections
    async with loadtest_client(
        recorder,
        connections=connections,
        base_url=target.base_url,
        client_id=target.client_id,
        login=target.login,
        password=target.password,
    ) as client:
        await run_workload(client, workload, recorder, at=at)
        if follow is not None:
            await follow_jobs(client, recorder, deadline=follow.deadline, interval=follow.interval)
    result = recorder.to_json()
    busy = recorder.cpu_seconds / recorder.elapsed if recorder.elapsed else 0.0
    result["client_cpu"] = round(busy, 3)
    result["warnings"] = []
    if busy > CPU_BUSY:
        result["warnings"].append(
            f"the client used {busy:.0%} of a core: the figures may show its own limit, "
            "not the server's (try --workers)"
        )
    return result


def _worker(workload: Workload, target: Target, follow: Follow | None) -> dict[str, Any]:
    """One worker process: run its share and return its result."""
    return anyio.run(_run_one, workload, target, None, follow)


def run(
    workload: Workload,
    target: Target,
    *,
    workers: int = 1,
    stall: tuple[float, float] | None = None,
    at: Callable[[float, Recorder], Any] | None = None,
    follow: Follow | None = None,
) -> dict[str, Any]:
    """Run ``workload`` against ``target`` and return the result (see the README).

    ``workers`` processes share the rate (each ``1/workers`` of it, interleaved, on its own
    recipients) or the requests in flight, and their results are merged. ``stall``
    ``(at, seconds)`` asks an emulator target to stall ``at`` seconds into the run. ``at``:
    the live view's callback (one worker only). ``follow``: poll the accepted jobs afterwards
    (async endpoints) for the time to final status and the delivered share. When the target
    is an emulator, its CPU use is measured and a warning added if it ran out of CPU.
    """
    if workers < 1:
        raise InvalidValueError(f"workers must be >= 1, got {workers!r}")
    base_url = target.base_url
    before = emulator_stats(base_url) if base_url else None
    timer = _stall(base_url, stall[0], stall[1]) if stall and base_url else None
    try:
        if workers == 1:
            result = anyio.run(_run_one, workload, target, at, follow)
        else:
            shares = [_share(workload, workers, w) for w in range(workers)]
            context = multiprocessing.get_context("spawn")
            with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
                futures = [pool.submit(_worker, share, target, follow) for share in shares]
                result = merge_results([f.result() for f in futures])
    finally:
        if timer is not None:
            timer.cancel()
    after = emulator_stats(base_url) if before is not None and base_url else None
    if before is not None and after is not None:
        wall = after["monotonic_s"] - before["monotonic_s"]
        busy = (after["cpu_s"] - before["cpu_s"]) / wall if wall > 0 else 0.0
        result["emulator_cpu"] = round(busy, 3)
        result["emulator_answers"] = {
            k: v - before["answers"].get(k, 0) for k, v in after["answers"].items()
        }
        if busy > CPU_BUSY:
            result.setdefault("warnings", []).append(
                f"the emulator used {busy:.0%} of a core: the figures may show its limit"
            )
    result["workers_count"] = workers
    return result


def _share(workload: Workload, workers: int, index: int) -> Workload:
    """Worker ``index``'s share of ``workload``: its rate, its phase, its recipients."""
    low, high = workload.numbers
    span = len(workload.recipients) or high - low + 1
    offset = workload.offset + index * (span // workers)
    if workload.max_in_flight is not None:
        in_flight = max(1, workload.max_in_flight // workers)
        return attrs.evolve(workload, max_in_flight=in_flight, offset=offset)
    rate = None if workload.rate is None else workload.rate / workers
    ramp = (
        None if workload.ramp is None else (workload.ramp[0] / workers, workload.ramp[1] / workers)
    )
    connections = max(1, workload.connections // workers)
    return attrs.evolve(
        workload,
        rate=rate,
        ramp=ramp,
        connections=connections,
        offset=offset,
        phase=index / workers,
    )
