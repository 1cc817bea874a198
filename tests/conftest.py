import os
from pathlib import Path

import pytest

# Triton kernels, when tested, run in the CPU interpreter (fp32, small shapes only).
os.environ.setdefault("TRITON_INTERPRET", "1")
# Under pytest-xdist each worker gets one thread (set before torch is imported; the effbench workers that
# tests start inherit it): two workers of two threads each on two cores spin against each other.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")

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
    """A DB seeded by a real smoke run (every method once, all four families), through worker processes.

    Made once per test session, also under pytest-xdist: the first worker to get here runs it, the others
    wait on a lock and read its shard (the temp dir's parent is shared by the workers of one session)."""
    import fcntl

    from effbench.rows import read_shard
    from effbench.store import Store

    shared = tmp_path_factory.getbasetemp().parent / "smoke-run"
    shared.mkdir(exist_ok=True)
    with open(shared / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        shards = sorted((shared / "runs").glob("*.jsonl"))
        if not shards or not read_shard(shards[0]).complete:
            from effbench.registry import discover
            from effbench.runner import make_config, plan, run_cases

            registry = discover()
            config = make_config("smoke", "cpu")
            run_cases(registry, plan(registry, config), config, shared / "runs")
            shards = sorted((shared / "runs").glob("*.jsonl"))
    db = tmp_path_factory.mktemp("smoke") / "effbench.duckdb"
    with Store(db) as store:
        store.ingest_shard(shards[0])
    return db, read_shard(shards[0])
