import json
from pathlib import Path

from effbench.registry import GRIDS
from effbench.rows import point_key
from effbench.tasks import DTYPES

FROZEN = Path(__file__).parent / "grid_keys.json"


def test_every_task_declares_every_grid(registry):
    for key, task in registry.tasks.items():
        assert set(task.grids) == set(GRIDS), key
        assert set(task.dtypes) == set(GRIDS), key
        for grid in GRIDS:
            assert task.grids[grid], (key, grid)
            assert all(d in DTYPES for d in task.dtypes[grid])
            keys = [point_key(p) for p in task.grids[grid]]
            assert len(keys) == len(set(keys)), f"{key}/{grid}: duplicate points"
        if task.kind == "kernel":
            for grid in GRIDS:
                assert all(d in task.tolerance for d in task.dtypes[grid]), key
        for name in (*task.metrics, *getattr(task, "compare", ())):
            declared = task.metric(name)
            assert declared.unit, (key, name)
        assert all(task.metric(m).better for m in getattr(task, "compare", ())), key


def test_grids_are_append_only(registry):
    """Results refer to point keys: a frozen key must never disappear. Append new keys to the JSON file."""
    frozen = json.loads(FROZEN.read_text())
    current = {
        f"{key}:{grid}": [point_key(p) for p in task.grids[grid]]
        for key, task in registry.tasks.items()
        for grid in GRIDS
    }
    for name, keys in frozen.items():
        assert name in current, f"grid {name} was removed"
        missing = [k for k in keys if k not in current[name]]
        assert not missing, f"{name}: points removed or changed: {missing}"
    unfrozen = {n: [k for k in ks if k not in frozen.get(n, [])] for n, ks in current.items()}
    assert not any(unfrozen.values()), f"new grid points: add them to {FROZEN.name}: {unfrozen}"
