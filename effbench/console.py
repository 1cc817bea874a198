"""Output for people and for logs: rich on a terminal, complete plain text anywhere else.

rich lays tables out for a terminal: written to a pipe or a file it assumes 80 columns and
cuts or wraps cells, so a redirected ``effbench query`` would lose data. Here a table goes to a
terminal as a rich table, and elsewhere as plain aligned text with every cell whole; every
string is shown as text, never read as rich markup. No torch, no store: ``query`` and ``site``
start fast.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any, TextIO


def is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or replaced stream
        return False


def cell(value: Any) -> str:
    """A value as one line of text (None as empty)."""
    if value is None:
        return ""
    return " ".join(str(value).splitlines()) if "\n" in str(value) or "\r" in str(value) else str(value)


def plain_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Columns padded to their widest cell, two spaces apart, nothing cut; the last column unpadded."""
    text = [[cell(c) for c in columns]] + [[cell(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in text) for i in range(len(columns))]
    lines = []
    for r in text:
        padded = [v.ljust(w) for v, w in zip(r[:-1], widths[:-1], strict=True)] + [r[-1]]
        lines.append("  ".join(padded).rstrip())
    return "\n".join(lines)


def print_table(columns: Sequence[str], rows: Sequence[Sequence[Any]], stream: TextIO | None = None,
                title: str | None = None) -> None:
    """A rich table on a terminal; complete plain text (``plain_table``) to a pipe or a file."""
    stream = stream or sys.stdout
    if not is_terminal(stream):
        if title:
            stream.write(title + "\n")
        stream.write(plain_table(columns, rows) + "\n")
        stream.flush()
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(title=Text(title) if title else None)
    for c in columns:
        table.add_column(Text(cell(c)))
    for row in rows:
        table.add_row(*[Text(cell(v)) for v in row])
    Console(file=stream).print(table)


def duration(seconds: float | None) -> str:
    """``3725`` -> ``1h 02m``; ``75`` -> ``1m 15s``; ``4.2`` -> ``4s``; None -> ``unknown``."""
    if seconds is None:
        return "unknown"
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f}s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours:02d}h"
