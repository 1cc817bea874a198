"""Polars views over the store for notebooks, scripts and the site (no SQL needed).

Example::

    from effbench.analysis import open_results, kernel_summary
    frame = open_results("results/effbench.duckdb")   # every result row with its run's provenance
    kernel_summary(frame)                              # one row per case: time, memory, worst error

``views`` reads and summarises, ``changes`` compares runs (the CI gate and the history), ``significance``
judges workload methods against their baseline across seeds, ``grids`` reads one grid at a time; this package
re-exports their public names.
"""

from effbench.analysis.changes import (
    COMPARED,
    MIN_SAMPLES,
    SPREAD,
    changes,
    history_changes,
    resolve_runs,
    time_history,
    timed_grid,
)
from effbench.analysis.grids import GRID_PREFERENCE, UNRECORDED_GRID, grid_rank, grid_slices
from effbench.analysis.significance import NOT_RUN, RESOLUTION, significance, verdict_table
from effbench.analysis.views import (
    CASE,
    HARDWARE_SQL,
    KERNEL_COLUMNS,
    MEMORY_FLOOR_BYTES,
    MEMORY_METRICS,
    HardwareMismatch,
    case_status,
    curves,
    kernel_builds,
    kernel_summary,
    methods,
    open_results,
    performance_profiles,
    point_size,
    runs,
    speedups,
    task_info,
    workload_summary,
)

__all__ = [
    "CASE", "COMPARED", "GRID_PREFERENCE", "HARDWARE_SQL", "KERNEL_COLUMNS", "MEMORY_FLOOR_BYTES", "MEMORY_METRICS",
    "MIN_SAMPLES", "NOT_RUN", "RESOLUTION", "SPREAD", "UNRECORDED_GRID", "HardwareMismatch", "case_status", "changes",
    "curves", "grid_rank", "grid_slices", "history_changes", "kernel_builds", "kernel_summary", "methods",
    "open_results", "performance_profiles", "point_size", "resolve_runs", "runs", "significance", "speedups",
    "task_info", "time_history", "timed_grid", "verdict_table", "workload_summary",
]
