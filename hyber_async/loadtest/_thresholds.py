"""Pass/fail thresholds on a result, as k6 has them: ``p99<500ms``, ``rejected<0.1%``.

A threshold is ``METRIC OP VALUE``, ``OP`` one of ``<``, ``<=``, ``>``, ``>=``:

- latency (corrected): ``p50``, ``p90``, ``p99``, ``p999``, ``max``, ``mean``, with ``us``,
  ``ms`` (the default) or ``s``;
- share of recipients: ``accepted``, ``rejected``, ``not_sent``, ``unknown``, in ``%`` or as
  a fraction (``0.001``);
- ``errors``: the share of requests that failed (after retries), in ``%`` or as a fraction;
- ``rate``: the achieved rate in recipients per second, or in ``%`` of the target.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from typing import Any, Final

import attrs

from .._errors import InvalidValueError

__all__ = ["Threshold", "check_thresholds", "parse_threshold"]

_SYNTAX: Final = re.compile(
    r"^\s*([a-z_0-9]+)\s*(<=|>=|<|>)\s*([0-9]*\.?[0-9]+)\s*(%|us|ms|s)?\s*$"
)
_OPS: Final[dict[str, Callable[[float, float], bool]]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_LATENCY: Final = ("p50", "p90", "p99", "p999", "max", "mean")
_SHARES: Final = ("accepted", "rejected", "not_sent", "unknown", "errors")
_TIME_UNITS: Final = {"us": 1e-3, "ms": 1.0, "s": 1e3, None: 1.0}


@attrs.frozen
class Threshold:
    """One parsed threshold: ``metric``, ``op`` and ``limit`` in the metric's unit (ms, a
    fraction, or recipients per second; ``of_target`` for a rate given in %)."""

    text: str
    metric: str
    op: str
    limit: float
    of_target: bool = False

    def value(self, result: Mapping[str, Any]) -> float:
        """The metric's value in ``result``, in the threshold's unit."""
        if self.metric in _LATENCY:
            return float(result["latency_ms"][self.metric])
        if self.metric == "rate":
            achieved = float(result["achieved_rate"])
            if not self.of_target:
                return achieved
            target = result.get("target_rate") or 0
            return achieved / target if target else 0.0
        if self.metric == "errors":
            failed = sum(result["errors"].values())
            return failed / result["request_count"] if result["request_count"] else 0.0
        total = sum(result["outcomes"].values())
        return result["outcomes"][self.metric] / total if total else 0.0

    def missed(self, result: Mapping[str, Any]) -> str | None:
        """``None`` if ``result`` meets the threshold, else a line saying by how much not."""
        value = self.value(result)
        if _OPS[self.op](value, self.limit):
            return None
        if self.metric in _LATENCY:
            shown = f"{value:g} ms"
        elif self.metric == "rate" and not self.of_target:
            shown = f"{value:g} recipients/s"
        else:
            shown = f"{value * 100:.4g}%"
        return f"threshold {self.text!r} missed: {self.metric} was {shown}"


def parse_threshold(text: str) -> Threshold:
    """A ``Threshold`` from its text; ``ValueError`` saying what is wrong."""
    match = _SYNTAX.match(text)
    if match is None:
        raise InvalidValueError(
            f"threshold {text!r}: use METRIC<VALUE, e.g. p99<500ms, rejected<0.1%"
        )
    metric, op, number, unit = match.groups()
    limit = float(number)
    if metric in _LATENCY:
        if unit == "%":
            raise InvalidValueError(f"threshold {text!r}: a latency takes us, ms or s, not %")
        return Threshold(text, metric, op, limit * _TIME_UNITS[unit])
    if metric in _SHARES:
        if unit not in (None, "%"):
            raise InvalidValueError(f"threshold {text!r}: {metric} is a share: use % or a fraction")
        return Threshold(text, metric, op, limit / 100 if unit == "%" else limit)
    if metric == "rate":
        if unit not in (None, "%"):
            raise InvalidValueError(f"threshold {text!r}: rate is recipients/s or % of the target")
        return Threshold(text, metric, op, limit / 100 if unit == "%" else limit, unit == "%")
    known = ", ".join((*_LATENCY, *_SHARES, "rate"))
    raise InvalidValueError(f"threshold {text!r}: unknown metric {metric!r} (known: {known})")


def check_thresholds(thresholds: list[Threshold], result: Mapping[str, Any]) -> list[str]:
    """A line for each threshold ``result`` misses (none: all met)."""
    return [line for t in thresholds if (line := t.missed(result)) is not None]
