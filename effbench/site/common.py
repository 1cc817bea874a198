"""What every page of the site shares: page names, figures, number formats, devices, grid points."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

import plotly.graph_objects as go
import polars as pl

from effbench.analysis import point_size

FAIL_STATUSES = ("wrong", "error", "oom", "timeout")


# 20 distinguishable colours (Tableau's 10, then their light partners): a figure of up to 20 traces never
# gives two of them one colour (the optimizer figures draw 14)
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#aec7e8", "#ff9896", "#98df8a", "#c5b0d5", "#ffbb78", "#9edae5", "#c49c94", "#f7b6d2",
           "#c7c7c7", "#dbdb8d")


SHOWN_ELSEWHERE = {"final_metric", "final_loss", "steps_to_target", "time_to_target_s"}


# the history rule (the same as `effbench compare`): beyond 1.10x and Mann-Whitney p < 0.01 where
# raw samples allow, the ratio alone otherwise
HISTORY_THRESHOLD = 1.10


@dataclass
class Figure:
    id: str
    title: str
    json: str  # safe to place inside <script type="application/json">


def slug(*parts: str) -> str:
    """A file-name-safe, collision-free name for user-provided strings."""
    text = "-".join(parts)
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", text)[:60].strip("._") or "x"
    return f"{safe}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"


def task_page(task: str) -> str:
    return f"task-{slug(task)}.html"


def method_page(task: str, method: str) -> str:
    return f"method-{slug(task, method)}.html"


def _figure(fig: go.Figure, fig_id: str, title: str, height: int = 420) -> Figure:
    fig.update_layout(template="plotly_white", margin={"l": 60, "r": 20, "t": 40, "b": 60}, height=height)
    text = fig.to_json().replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
    return Figure(fig_id, title, text)


def _fmt(value: Any, kind: str = "") -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        if value != value:  # NaN
            return "—"
        if kind == "bytes":
            for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
                if abs(value) < 1024 or unit == "TiB":
                    return f"{value:.1f} {unit}" if unit != "B" else f"{value:.0f} B"
                value /= 1024
        if kind == "ms":  # human units: 2.4 s, not 2.4e+03 ms
            return f"{value / 1000:.3g} s" if abs(value) >= 1000 else f"{value:.3g} ms"
        return f"{value:.3g}"
    return str(value)


def _device_label(device: str, gpu_name: str | None) -> str:
    return f"{device} ({gpu_name})" if gpu_name else device


def _shared_devices(frame: pl.DataFrame) -> set[str]:
    """Devices that ran on more than one hardware in ``frame``: their labels name the hardware."""
    if frame.is_empty() or "hardware" not in frame.columns:
        return set()
    counts = frame.group_by("device").agg(pl.col("hardware").n_unique())
    return {device for device, n in counts.iter_rows() if n > 1}


def _where(device: str, hardware: str | None, gpu_name: str | None, shared: set[str]) -> str:
    """``cpu`` or ``cuda (GPU)`` as ever; the hardware named where a device ran on several, so that two
    machines' numbers never read as one's."""
    return f"{device} ({hardware})" if device in shared else _device_label(device, gpu_name)


def _points(frame: pl.DataFrame) -> dict[str, dict[str, Any]]:
    """point_key -> the grid point it names (from the rows' canonical JSON; {} when unreadable)."""
    if frame.is_empty() or "point" not in frame.columns:
        return {}
    points = {}
    for r in frame.select("point_key", "point").unique().iter_rows(named=True):
        try:
            points[r["point_key"]] = json.loads(r["point"] or "{}")
        except ValueError:
            points[r["point_key"]] = {}
    return points


def point_labels(frame: pl.DataFrame) -> dict[str, str]:
    """point_key -> what sets the point apart from the task's others: only the parameters whose values differ
    ("data=digits, schedule=cosine"), the whole key when every point has the same values."""
    points = _points(frame)
    keys = sorted({k for p in points.values() for k in p})
    varying = [k for k in keys if len({json.dumps(p.get(k)) for p in points.values()}) > 1]
    return {pkey: (", ".join(f"{k}={p[k]}" for k in varying if k in p) or pkey) if varying else pkey
            for pkey, p in points.items()}


def _ordered_points(frame: pl.DataFrame) -> list[str]:
    """Point keys by problem size (the task's declared sizes where the rows carry them), then by key."""
    columns = ["point_key", "point", *(["sizes"] if "sizes" in frame.columns else [])]
    pairs = {r["point_key"]: point_size(r["point"], r.get("sizes")) for r in frame.select(columns).unique().iter_rows(
        named=True)}
    return sorted(pairs, key=lambda k: (pairs[k], k))


# --------------------------------------------------------------------------- views: one figure at a time

MAX_TRACES = 16  # a figure with more traces than this is split by method (a selector picks one)


def view(view_id: str, title: str, options: list[dict[str, Any]], choose: str = "show") -> dict[str, Any] | None:
    """A titled view of several options ({"label", "title", and "figure" or "table"}), one shown at a time by a
    ``<select>`` (the first at load); None without options."""
    if not options:
        return None
    return {"id": view_id, "title": title, "choose": choose, "options": options}


def byte_axis(values: list[float | None]) -> dict[str, Any]:
    """A log axis of bytes ticked at powers of four in binary units (64 KiB, 1 MiB, 4 MiB), never "1B"."""
    finite = [v for v in values if v is not None and v > 0]
    if not finite:
        return {"type": "log"}
    low, high = min(finite), max(finite)
    ticks, text = [], []
    for exponent in range(0, 60, 2):
        value = float(2 ** exponent)
        if low / 4 <= value <= high * 4:
            ticks.append(value)
            text.append(_fmt(value, "bytes").replace(".0 ", " "))
    return {"type": "log", "tickvals": ticks, "ticktext": text, "automargin": True}


def time_axis() -> dict[str, Any]:
    """A log axis of seconds in SI prefixes: "2ms", "500µs", "1.5s" (the values are seconds)."""
    return {"type": "log", "exponentformat": "SI", "ticksuffix": "s", "automargin": True}


@dataclass
class Context:
    """What every figure and table of one task page shares: the site's styles, the task's declared metrics, its
    points ordered by declared size and their short labels."""

    styles: Any  # effbench.site.colors.Styles
    declared: dict[str, Any]  # metric name -> effbench.metrics.Metric
    order: list[str]  # point keys, smallest problem first
    labels: dict[str, str]  # point key -> short label
    size: dict[str, float] | None = None  # point key -> declared problem size
    # devices that ran on several machines in any of the task's grids: their labels name the machine in every
    # grid's section, so that one machine reads the same everywhere on the page (and in its selector)
    named_hardware: frozenset[str] = frozenset()
    several_machines: bool = False  # the task ran on several hardware models (workload labels name each)

    def label(self, key: str) -> str:
        return self.labels.get(key, key)

    def ordered(self, keys: Any) -> list[str]:
        rank = {k: n for n, k in enumerate(self.order)}
        return sorted(set(keys), key=lambda k: (rank.get(k, len(rank)), k))


def facet_values(sections: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Every value of each facet ("machine", "dtype") that a view option of ``sections`` carries, sorted: the
    page-wide selectors' choices."""
    values: dict[str, set[str]] = {}
    for section in sections:
        for v in [section.get("leaderboard"), *section.get("views", [])]:
            for option in (v or {}).get("options", []):
                for facet, value in (option.get("facets") or {}).items():
                    values.setdefault(facet, set()).add(value)
    order = {"machine": 0, "dtype": 1}
    return {facet: sorted(values[facet]) for facet in sorted(values, key=lambda f: (order.get(f, 2), f))}
