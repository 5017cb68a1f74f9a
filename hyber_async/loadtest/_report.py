"""Rendering results: the summary table, the comparison of two results, the HTML report.

The HTML report is one self-contained page (plotly.js inlined, nothing fetched) with four
plots: latency over time, throughput over time, the percentile spectrum and the outcomes.
plotly is imported only here, from the ``loadtest`` extra.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any, Final

from ._recorder import decode

__all__ = ["compare", "render_html", "summary"]

_LATENCY_ROWS: Final = ("p50", "p90", "p99", "p999", "max")


def _rate(value: object) -> str:
    return "-" if value is None else f"{float(value):,.1f}"  # type: ignore[arg-type]


def summary(result: Mapping[str, Any]) -> str:
    """The final summary table of a result, as text."""
    corrected, uncorrected = result["latency_ms"], result["latency_uncorrected_ms"]
    total = sum(result["outcomes"].values()) or 1
    lines = [
        f"endpoint {result.get('endpoint', '?')}, chunk {result.get('chunk_size', '?')}, "
        f"{result.get('mode', '?')} loop, {result.get('duration_s')} s"
        + (f", {len(result['workers'])} workers" if result.get("workers") else ""),
        f"{'rate (recipients/s)':<24}{'target':>12}{'achieved':>12}{'accepted/s':>12}",
        f"{'':<24}{_rate(result['target_rate']):>12}{_rate(result['achieved_rate']):>12}"
        f"{_rate(result['throughput']):>12}",
        f"{'latency (ms)':<24}{'corrected':>12}{'uncorrected':>12}",
    ]
    lines += [
        f"{'  ' + name:<24}{corrected[name]:>12.1f}{uncorrected[name]:>12.1f}"
        for name in _LATENCY_ROWS
    ]
    lines.append(f"{'recipients':<24}{'count':>12}{'share':>12}")
    lines += [
        f"{'  ' + name:<24}{n:>12,}{n / total:>12.2%}" for name, n in result["outcomes"].items()
    ]
    statuses = ", ".join(f"{k}: {v:,}" for k, v in result["requests"].items()) or "none"
    lines.append(f"requests {result['request_count']:,} (answers by status: {statuses})")
    if result["errors"]:
        lines.append(
            "failed requests: " + ", ".join(f"{k}: {v}" for k, v in result["errors"].items())
        )
    retry = result["retry_after"]
    if retry["answers"]:
        lines.append(f"Retry-After: {retry['answers']} answers, {retry['seconds']:g} s asked")
    follow = result.get("follow")
    if follow is not None:
        messages = sum(follow[k] for k in ("delivered", "expired", "failed", "pending")) or 1
        shares = ", ".join(
            f"{k} {follow[k] / messages:.2%}" for k in ("delivered", "expired", "failed", "pending")
        )
        final = follow["time_to_final_ms"]
        lines.append(f"followed {follow['final_jobs']}/{follow['jobs']} jobs final: {shares}")
        lines.append(
            f"time to final status (ms, as polled): p50 {final['p50']:.0f}, "
            f"p99 {final['p99']:.0f}, max {final['max']:.0f}"
        )
    lines += [f"warning: {w}" for w in result.get("warnings", [])]
    return "\n".join(lines)


def compare(a: Mapping[str, Any], b: Mapping[str, Any], names: tuple[str, str] = ("A", "B")) -> str:
    """A table of the main figures of two results, with B's change relative to A."""
    rows: list[tuple[str, float, float]] = [
        ("achieved_rate", a["achieved_rate"], b["achieved_rate"]),
        ("throughput", a["throughput"], b["throughput"]),
    ]
    rows += [(f"{k}_ms", a["latency_ms"][k], b["latency_ms"][k]) for k in _LATENCY_ROWS]
    for outcome in a["outcomes"]:
        rows.append((outcome, a["outcomes"][outcome], b["outcomes"].get(outcome, 0)))
    lines = [f"{'':<16}{names[0]:>14}{names[1]:>14}{'change':>10}"]
    for name, x, y in rows:
        change = f"{(y - x) / x:+.1%}" if x else ("=" if x == y else "new")
        lines.append(f"{name:<16}{x:>14,.1f}{y:>14,.1f}{change:>10}")
    return "\n".join(lines)


def _spectrum(encoded: str) -> tuple[list[float], list[float]]:
    """The percentile spectrum: x = 1 / (1 - percentile) (log axis), y = latency in ms."""
    histogram = decode(encoded)
    xs: list[float] = []
    ys: list[float] = []
    if histogram.get_total_count() == 0:
        return xs, ys
    for item in histogram.get_percentile_iterator(5):
        percentile = item.percentile_level_iterated_to
        if percentile >= 100:
            break
        xs.append(1 / (1 - percentile / 100))
        ys.append(item.value_iterated_to / 1000)
    return xs, ys


def render_html(result: Mapping[str, Any], title: str = "hyber-async load test") -> str:
    """The self-contained HTML report of ``result``."""
    try:
        import plotly.graph_objects as go  # type: ignore[import-untyped]
        from plotly.subplots import make_subplots  # type: ignore[import-untyped]
    except ImportError:  # pragma: no cover - depends on the environment
        raise RuntimeError(
            "the HTML report needs plotly: pip install 'hyber-async[loadtest]'"
        ) from None
    seconds = result["per_second"]
    t = [row["t"] for row in seconds]
    figure = make_subplots(
        rows=2,
        cols=2,
        subplot_titles=(
            "latency over time (ms, by intended start)",
            "throughput over time (recipients/s)",
            "percentile spectrum (ms)",
            "recipients by outcome",
        ),
    )
    figure.add_trace(go.Scatter(x=t, y=[r["p99_ms"] for r in seconds], name="p99"), 1, 1)
    figure.add_trace(go.Scatter(x=t, y=[r["p50_ms"] for r in seconds], name="p50"), 1, 1)
    figure.add_trace(go.Scatter(x=t, y=[r["recipients"] for r in seconds], name="sent"), 1, 2)
    figure.add_trace(go.Scatter(x=t, y=[r["answered"] for r in seconds], name="answered"), 1, 2)
    if result.get("target_rate"):
        ramp = result.get("ramp") or [result["target_rate"]] * 2
        end = result.get("duration_s") or (t[-1] if t else 1)
        figure.add_trace(go.Scatter(x=[0, end], y=ramp, name="target", line={"dash": "dash"}), 1, 2)
    for key, name in (("histogram", "corrected"), ("histogram_uncorrected", "uncorrected")):
        xs, ys = _spectrum(result[key])
        figure.add_trace(go.Scatter(x=xs, y=ys, name=name), 2, 1)
    figure.update_xaxes(
        type="log",
        tickvals=[1, 2, 10, 100, 1000, 10000],
        ticktext=["0%", "50%", "90%", "99%", "99.9%", "99.99%"],
        row=2,
        col=1,
    )
    outcomes = result["outcomes"]
    figure.add_trace(go.Bar(x=list(outcomes), y=list(outcomes.values()), name="outcomes"), 2, 2)
    figure.update_layout(height=800, title_text=title)
    table = html.escape(summary(result))
    plots = figure.to_html(full_html=False, include_plotlyjs=True)
    return (
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title></head><body>"
        f"<h1>{html.escape(title)}</h1><pre id='summary'>{table}</pre>{plots}</body></html>\n"
    )
