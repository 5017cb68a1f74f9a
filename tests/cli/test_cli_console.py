"""What the commands draw on a terminal, on a fixed-width (80 columns) console."""

from __future__ import annotations

import io

from rich.console import Console as RichConsole

from hyber_async.cli._console import Console


def terminal() -> RichConsole:
    """A recording 80-column terminal without colours."""
    return RichConsole(
        file=io.StringIO(), width=80, force_terminal=True, color_system=None, record=True
    )


def test_progress_shows_rows_rate_and_time_left_within_80_columns() -> None:
    """The bar counts rows (not bytes), says the rate and the time left, and is not cut."""
    screen = terminal()
    console = Console(terminal=screen)
    with console.progress("sending", 200_000) as bar:
        bar.update(123_456, "120,000 accepted, 45,000/s")
    text = screen.export_text()
    line = text[text.rindex("sending") :].rstrip("\n")  # the last frame drawn
    assert len(line) <= 80
    assert "123456/200000" in line
    assert "120,000 accepted, 45,000/s" in line
    assert "bytes" not in line
    assert line.endswith("-:--:--")  # the time left (not known yet at once)


def test_the_summary_table_has_no_empty_header_row() -> None:
    """Every line of the summary table drawn holds its title, a border or a row."""
    screen = terminal()
    Console(terminal=screen).summary([("rows read", 3), ("accepted", 2)], title="send batch")
    lines = screen.export_text().splitlines()
    inner = [line for line in lines if line.startswith("│")]
    cells = [[cell.strip() for cell in line.strip("│").split("│")] for line in inner]
    assert cells == [["rows read", "3"], ["accepted", "2"]]
    assert all(len(line) <= 80 for line in lines)
