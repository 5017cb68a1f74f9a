"""Argument types shared by the command-line programs (``hyber-async emulator`` and
``hyber-async loadtest``), so that both refuse a bad number with the same words."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

__all__ = ["positive_number"]


def positive_number(what: str = "a number") -> Callable[[str], float]:
    """An argparse type for a finite number > 0, named ``what`` in its error."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not (value > 0 and math.isfinite(value)):
            raise argparse.ArgumentTypeError(f"must be {what} > 0, got {text!r}")
        return value

    return parse
