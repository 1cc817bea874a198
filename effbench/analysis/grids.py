"""Grids as results are read: one grid's numbers at a time, the timed grids first.

A grid's points, repetitions and warm-up differ from another's (smoke times are checks, not timings), so its
numbers are never merged with another grid's: the site shows one grid per page section, and the findings
report reads each task's preferred grid.
"""

from __future__ import annotations

import polars as pl

from effbench.analysis.changes import timed_grid

UNRECORDED_GRID = "unrecorded"  # runs that named no grid (old asv runs)
GRID_PREFERENCE = ("gpu", "cpu", "gpu-smoke", "smoke")  # the first grid shown: timings before checks


def grid_rank(grid: str | None) -> tuple:
    """The order grids are shown in: timed grids first (gpu, then cpu), then checks (smoke), then runs that
    recorded no grid (``None``)."""
    if grid is None:
        return (3, 0, "")
    known = GRID_PREFERENCE.index(grid) if grid in GRID_PREFERENCE else len(GRID_PREFERENCE)
    return (0 if timed_grid(grid) else 1, known, grid)


def grid_slices(frame: pl.DataFrame) -> list[tuple[str, pl.DataFrame]]:
    """(grid, its rows) per grid of ``frame`` in ``grid_rank`` order; rows of runs that recorded no grid under
    ``UNRECORDED_GRID``."""
    if frame.is_empty():
        return []
    if "grid" not in frame.columns:
        return [(UNRECORDED_GRID, frame)]
    grids = {grid or None for grid in frame["grid"].unique().to_list()}  # "" recorded no grid either
    unrecorded = pl.col("grid").is_null() | (pl.col("grid") == "")
    return [(grid or UNRECORDED_GRID, frame.filter(unrecorded if grid is None else pl.col("grid") == grid))
            for grid in sorted(grids, key=grid_rank)]
