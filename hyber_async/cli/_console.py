"""What the commands show: progress bars on a terminal, plain lines elsewhere, JSON on request.

``rich`` (the ``cli`` extra) draws the bars and tables; without it, or when stdout is not a
terminal, the same information is printed as plain text, and ``--json`` prints only JSON.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Sequence
from typing import Any

import orjson

__all__ = ["Bar", "Console"]

Row = tuple[str, int | float | str]


class Bar:
    """One progress bar; ``update(done, text)`` moves it (a no-op when nothing is drawn)."""

    def __init__(self, progress: Any = None, task: Any = None) -> None:
        self._progress = progress
        self._task = task

    def update(self, done: int, text: str = "") -> None:
        """Show ``done`` of the total, with a short ``text`` beside it."""
        if self._progress is not None:
            self._progress.update(self._task, completed=done, info=text)


class Console:
    """The output of one command run."""

    def __init__(self, *, json_output: bool = False, terminal: Any = None) -> None:
        """Print JSON only with ``json_output``; draw on the ``rich`` console ``terminal``
        (default: stdout when it is a terminal)."""
        self.json_output = json_output
        self.interactive = not json_output and (terminal is not None or sys.stdout.isatty())
        self._rich: Any = terminal
        if self.interactive and terminal is None:
            try:
                import rich.console
            except ImportError:  # the cli extra is not installed: plain output
                self.interactive = False
            else:
                self._rich = rich.console.Console()

    def note(self, text: str) -> None:
        """A line of information (not in JSON mode)."""
        if not self.json_output:
            print(text, flush=True)

    @contextlib.contextmanager
    def progress(self, label: str, total: int | None) -> Iterator[Bar]:
        """A progress bar of ``total`` rows (``None``: not known) while the block runs, on a
        terminal only: rows done of the total, what ``update`` says beside them (short), and
        the time left; it fits 80 columns."""
        if not self.interactive:
            yield Bar()
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        columns = (
            TextColumn("{task.description}"),
            BarColumn(bar_width=12),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=self._rich, transient=False) as progress:
            yield Bar(progress, progress.add_task(label, total=total, info=""))

    def summary(self, rows: Sequence[Row], title: str = "summary") -> None:
        """A two-column table (or one JSON object with ``--json``)."""
        if self.json_output:
            print(orjson.dumps(dict(rows), option=orjson.OPT_INDENT_2).decode(), flush=True)
            return
        if self._rich is not None:
            from rich.table import Table

            table = Table(title=title, show_header=False)
            table.add_column()
            table.add_column(justify="right")
            for name, value in rows:
                table.add_row(name, _format(value))
            self._rich.print(table)
            return
        width = max(len(name) for name, _ in rows)
        for name, value in rows:
            print(f"{name:<{width}}  {_format(value):>14}")


def _format(value: int | float | str) -> str:
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.2f}"
    return value
