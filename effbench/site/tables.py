"""Tables as the site shows them: cells that sort by their value, point cells that carry their full key, and
a CSV file of every table beside its page.

A row is a dict column -> ``str`` or ``Cell``. A ``Cell`` shows ``text`` (a human unit: "2.40 s"), sorts by
``sort`` (the raw number, so that "2.40 s" sorts after "500 ms"), carries ``title`` as its tooltip and gives
``raw`` (or the sort value, or the text) to the CSV, so the CSV holds full point keys and unrounded numbers.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from typing import Any

from effbench.metrics import Metric


@dataclass(frozen=True)
class Cell:
    text: str
    sort: float | str | None = None
    title: str | None = None
    raw: Any = None

    def __str__(self) -> str:
        return self.text

    @property
    def csv(self) -> Any:
        for value in (self.raw, self.sort):
            if value is not None and not (isinstance(value, float) and not math.isfinite(value)):
                return value
        return _plain(self.text)


def header(metric: Metric | None, name: str, label: str | None = None, unit: str | None = None) -> str:
    """``label [unit, lower is better]`` from the metric's declaration (``name`` alone when none); ``unit``: the
    unit shown where values are converted for display (seconds on an axis of a metric stored in ms)."""
    shown = label or name
    if metric is None:
        return shown
    parts = [p for p in (unit or metric.unit, metric.direction) if p]
    return f"{shown} [{', '.join(parts)}]" if parts else shown


def ratio_header(label: str, of: Metric | None, unit: str = "×") -> str:
    """A ratio of the reference's value to this one's: higher is better when the metric is lower-is-better."""
    direction = {"lower": "higher is better", "higher": "lower is better"}.get(of.better if of else None, "")
    return f"{label} [{unit}{', ' + direction if direction else ''}]"


def to_csv(columns: list[str], rows: list[dict[str, Any]], extra: list[dict[str, Any]] | None = None) -> str:
    """The table as CSV (``\\n`` line ends): each column's raw value, then ``extra`` columns per row."""
    names = list(columns) + [k for k in (extra[0] if extra else {}) if k not in columns]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(names)
    for n, row in enumerate(rows):
        values = {**{c: row.get(c, "") for c in columns}, **(extra[n] if extra else {})}
        writer.writerow([v.csv if isinstance(v, Cell) else _plain(v) for v in (values.get(c, "") for c in names)])
    return out.getvalue()


def _plain(value: Any) -> Any:
    if isinstance(value, float):
        return "" if not math.isfinite(value) else repr(value)
    if isinstance(value, str) and value and not any(ch.isalnum() for ch in value):
        return ""  # "—" or "— ± —": a missing number is an empty CSV field
    return "" if value is None else value
