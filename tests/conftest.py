import os
from pathlib import Path

import pytest

# Triton kernels, when tested, run in the CPU interpreter (fp32, small shapes only).
os.environ.setdefault("TRITON_INTERPRET", "1")

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = Path(__file__).parent / "plugins"


@pytest.fixture(scope="session")
def registry():
    from effbench.registry import discover

    return discover()


@pytest.fixture(scope="session")
def faulty_registry():
    from effbench.registry import discover

    return discover([PLUGINS / "faulty.py"])


@pytest.fixture(scope="session")
def smoke_db(tmp_path_factory):
    """A DB seeded by a real smoke run (one seed, all four families), through worker processes."""
    from effbench.registry import discover
    from effbench.runner import make_config, plan, run_cases
    from effbench.store import Store

    tmp = tmp_path_factory.mktemp("smoke")
    registry = discover()
    config = make_config("smoke", "cpu", seeds=1)
    summary = run_cases(registry, plan(registry, config), config, tmp / "runs")
    db = tmp / "effbench.duckdb"
    with Store(db) as store:
        store.ingest_shard(summary.shard)
    return db, summary
