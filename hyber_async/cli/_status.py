"""``hyber-async status JOB_ID...`` and ``hyber-async wait JOB_ID... --deadline S``.

``status`` reads each job's status report once and prints its counts: delivered, expired,
failed and pending messages. ``wait`` polls the jobs (``wait_for_jobs``) until every message is
final or the deadline passes, then prints the campaign summary. Job ids come from the arguments
and/or from a ``send`` result file (``--jobs-from``).
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

import anyio
import attrs
import orjson

from .._client import HyberClient
from .._errors import HyberError
from .._models import JobStatus
from .._poller import (
    DEFAULT_INTERVAL,
    DEFAULT_MAX_INTERVAL,
    CampaignSummary,
    Counts,
    PollDeadlineError,
    summarize,
)
from ._common import (
    EXIT_BAD_INPUT,
    EXIT_DEADLINE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_PARTIAL,
    EXIT_SERVER,
    HelpFormatter,
    UsageError,
    add_connection_arguments,
    error,
    exit_codes,
    is_server_error,
    make_client,
)

__all__ = ["add"]


def add(commands: Any) -> None:
    """Declare ``hyber-async status`` and ``hyber-async wait``."""
    status = commands.add_parser(
        "status",
        help="print the counts of jobs' messages",
        description="Read each job's status report once and print its message counts.",
        epilog=exit_codes(EXIT_OK, EXIT_PARTIAL, EXIT_BAD_INPUT, EXIT_SERVER, EXIT_INTERRUPTED),
        formatter_class=HelpFormatter,
    )
    _job_arguments(status)
    status.set_defaults(run=_run_status)

    wait = commands.add_parser(
        "wait",
        help="poll jobs until every message is final",
        description="Poll jobs until every message is final (or the deadline passes) and "
        "print the campaign summary: counts by outcome, channel and error code.",
        epilog=exit_codes(
            EXIT_OK, EXIT_PARTIAL, EXIT_BAD_INPUT, EXIT_SERVER, EXIT_DEADLINE, EXIT_INTERRUPTED
        ),
        formatter_class=HelpFormatter,
    )
    _job_arguments(wait)
    wait.add_argument(
        "--deadline", type=float, metavar="S", help="give up after S seconds (default: never)"
    )
    wait.add_argument(
        "--interval",
        type=float,
        default=DEFAULT_INTERVAL,
        metavar="S",
        help=f"seconds between polls of a changing job (default {DEFAULT_INTERVAL:g}; "
        f"unchanged jobs back off up to {DEFAULT_MAX_INTERVAL:g})",
    )
    wait.set_defaults(run=_run_wait)


def _job_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("job_ids", nargs="*", metavar="JOB_ID", help="job ids")
    parser.add_argument("--jobs-from", metavar="FILE", help="also the jobs of a `send` result file")
    parser.add_argument("--json", action="store_true", help="print JSON")
    add_connection_arguments(parser)


def _job_ids(args: argparse.Namespace) -> list[str]:
    """The job ids of the arguments, then those of ``--jobs-from``, each once."""
    ids = list(args.job_ids)
    if args.jobs_from is not None:
        try:
            with open(args.jobs_from, "rb") as lines:
                for number, line in enumerate(lines, start=1):
                    try:
                        record = orjson.loads(line)
                    except orjson.JSONDecodeError:
                        raise UsageError(
                            f"{args.jobs_from}:{number}: not a JSON line of a result file"
                        ) from None
                    if isinstance(record, dict) and record.get("record") == "job":
                        ids.append(str(record["job_id"]))
        except OSError as exc:
            raise UsageError(f"{args.jobs_from}: cannot read: {exc.strerror or exc}") from None
    if not ids:
        raise UsageError("give at least one JOB_ID (or --jobs-from with jobs in it)")
    return list(dict.fromkeys(ids))


def _counts(counts: Counts) -> dict[str, int]:
    return {"messages": counts.total, **attrs.asdict(counts)}


def _describe(exc: HyberError) -> dict[str, Any]:
    return {"type": type(exc).__name__, "message": " ".join(str(exc).split())}


def _exit_code(errors: list[HyberError]) -> int:
    if any(is_server_error(e) for e in errors):
        return EXIT_SERVER
    return EXIT_PARTIAL if errors else EXIT_OK


def _prepare(args: argparse.Namespace, command: str) -> tuple[list[str], HyberClient] | int:
    try:
        if getattr(args, "deadline", None) is not None and args.deadline <= 0:
            raise UsageError("--deadline must be positive")
        if getattr(args, "interval", 1.0) <= 0:
            raise UsageError("--interval must be positive")
        return _job_ids(args), make_client(args)
    except UsageError as exc:
        error(command, exc)
        return EXIT_BAD_INPUT


# --- status ---------------------------------------------------------------------------------


async def _read_statuses(
    client: HyberClient, job_ids: list[str]
) -> dict[str, JobStatus | HyberError]:
    """Each job's status report (or the error reading it), at most a pool's worth at once."""
    found: dict[str, JobStatus | HyberError] = {}
    limiter = anyio.CapacityLimiter(client.max_connections)

    async def read(job_id: str) -> None:
        async with limiter:
            try:
                found[job_id] = await client.get_status(job_id)
            except HyberError as exc:
                found[job_id] = exc

    async with client, anyio.create_task_group() as tasks:
        for job_id in job_ids:
            tasks.start_soon(read, job_id)
    return {job_id: found[job_id] for job_id in job_ids}


def _run_status(args: argparse.Namespace) -> int:
    prepared = _prepare(args, "status")
    if isinstance(prepared, int):
        return prepared
    job_ids, client = prepared
    try:
        statuses = anyio.run(_read_statuses, client, job_ids)
    except KeyboardInterrupt:
        error("status", "interrupted")
        return EXIT_INTERRUPTED
    errors = [s for s in statuses.values() if isinstance(s, HyberError)]
    code = _exit_code(errors)
    rows: list[dict[str, Any]] = []
    for job_id, status in statuses.items():
        if isinstance(status, HyberError):
            rows.append({"job_id": job_id, "error": _describe(status)})
            continue
        summary = summarize({job_id: status})
        rows.append(
            {"job_id": job_id, **_counts(summary.counts), "final": not summary.pending_jobs}
        )
    if args.json:
        print(orjson.dumps({"jobs": rows, "exit_code": code}).decode())
    else:
        print(
            f"{'job':<38} {'messages':>9} {'delivered':>9} {'expired':>8} {'failed':>7} "
            f"{'pending':>8}"
        )
        for row in rows:
            if "error" in row:
                print(f"{row['job_id']:<38} error: {row['error']['message']}")
                continue
            state = "final" if row["final"] else ""
            print(
                f"{row['job_id']:<38} {row['messages']:>9} {row['delivered']:>9} "
                f"{row['expired']:>8} {row['failed']:>7} {row['pending']:>8}  {state}"
            )
    if errors:
        error("status", f"{len(errors)} of {len(job_ids)} job(s) could not be read: {errors[0]}")
    return code


# --- wait -----------------------------------------------------------------------------------


def _summary_dict(summary: CampaignSummary, pending: Mapping[str, Counts]) -> dict[str, Any]:
    return {
        "jobs": summary.jobs,
        "complete": summary.complete and not pending,
        **_counts(summary.counts),
        "by_channel": {name: _counts(c) for name, c in sorted(summary.by_channel.items())},
        "by_error_code": {str(code): n for code, n in sorted(summary.by_error_code.items())},
        "pending_jobs": sorted(set(summary.pending_jobs) | set(pending)),
        "failed_jobs": {job: _describe(exc) for job, exc in summary.failed_jobs.items()},
    }


def _print_summary(report: dict[str, Any], deadline_passed: bool) -> None:
    print(
        f"{report['jobs']} job(s), {report['messages']} messages: "
        f"{report['delivered']} delivered, {report['expired']} expired, "
        f"{report['failed']} failed, {report['pending']} pending"
    )
    for name, counts in report["by_channel"].items():
        print(
            f"  {name:<13} {counts['delivered']:>9} delivered {counts['expired']:>9} expired "
            f"{counts['failed']:>9} failed {counts['pending']:>9} pending"
        )
    for code, count in report["by_error_code"].items():
        print(f"  error_code {code}: {count}")
    if deadline_passed:
        print(f"deadline passed; jobs still pending: {' '.join(report['pending_jobs'])}")
    for job, failure in report["failed_jobs"].items():
        print(f"  {job}: could not be read: {failure['message']}")


def _run_wait(args: argparse.Namespace) -> int:
    prepared = _prepare(args, "wait")
    if isinstance(prepared, int):
        return prepared
    job_ids, client = prepared

    async def wait() -> CampaignSummary:
        async with client:
            return await client.wait_for_jobs(
                job_ids,
                interval=args.interval,
                max_interval=max(DEFAULT_MAX_INTERVAL, args.interval),
                deadline=args.deadline,
            )

    pending: Mapping[str, Counts] = {}
    try:
        summary = anyio.run(wait)
    except PollDeadlineError as exc:
        summary, pending = exc.summary, exc.pending
    except KeyboardInterrupt:
        error("wait", "interrupted")
        return EXIT_INTERRUPTED
    failures = list(summary.failed_jobs.values())
    code = EXIT_DEADLINE if pending else _exit_code(failures)
    report = _summary_dict(summary, pending)
    if args.json:
        print(orjson.dumps({**report, "exit_code": code}).decode())
    else:
        _print_summary(report, bool(pending))
    if pending:
        error("wait", f"deadline of {args.deadline:g}s passed: {len(pending)} job(s) pending")
    elif failures:
        error("wait", f"{len(failures)} job(s) could not be read: {failures[0]}")
    return code
