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


# --------------------------------------------------------------------------- the smoke run the site tests read

SMOKE_USERS = ("test_sitegen.py", "test_site_browser.py")
SMOKE_DIR_ENV = "EFFBENCH_TEST_SMOKE_DIR"
# One or two methods of every task (every kind of page, every family, a baseline for each workload): the
# whole smoke grid is `make bench GRID=smoke`'s to run; the site tests need its shape, not its size.
SMOKE_METHODS = ("linear_cross_entropy,infonce,siglip,cross_entropy,label_smoothing,standard,goldfish,adamw,"
                 "sgd_momentum,uniform,dsir,full_training,lisa,hashed_ngrams,last_layer_scores,dense,sliding_window,"
                 "flashbias")


def _selects_smoke_users(config: pytest.Config) -> bool:
    """Whether the session's paths include a test module that reads the smoke run."""
    args = [a.split("::")[0] for a in config.args] or [str(ROOT / p) for p in config.getini("testpaths")]
    for arg in args:
        path = Path(arg) if Path(arg).is_absolute() else Path(config.invocation_params.dir) / arg
        if path.is_dir() and any(path.rglob(name) for name in SMOKE_USERS) or path.name in SMOKE_USERS:
            return True
    return False


def pytest_configure(config: pytest.Config) -> None:
    """Start the smoke run that the site tests read at once, in the background (~100 s of CPU that would
    otherwise hold a test worker idle while it waits): once per session, in the controller under xdist
    (its workers inherit the directory through the environment)."""
    if os.environ.get("PYTEST_XDIST_WORKER") or os.environ.get(SMOKE_DIR_ENV) or not _selects_smoke_users(config):
        return
    import subprocess
    import sys
    import tempfile

    shared = Path(tempfile.mkdtemp(prefix="effbench-test-smoke-"))
    command = [sys.executable, "-m", "effbench", "run", "--grid", "smoke", "--device", "cpu", "--method",
               SMOKE_METHODS, "--db", str(shared / "effbench.duckdb")]
    script = f'{" ".join(map(repr, command))} > {str(shared / "log")!r} 2>&1; echo $? > {str(shared / "rc")!r}'
    env = dict(os.environ, OMP_NUM_THREADS="1")  # beside the test workers, one thread
    env.pop("TRITON_INTERPRET", None)  # as a user's smoke run: Triton unavailable on the CPU, not interpreted
    config._effbench_smoke = subprocess.Popen(["sh", "-c", script], cwd=ROOT, env=env, start_new_session=True)
    os.environ[SMOKE_DIR_ENV] = str(shared)


def pytest_unconfigure(config: pytest.Config) -> None:
    proc = getattr(config, "_effbench_smoke", None)
    if proc is not None:
        import shutil
        import signal

        if proc.poll() is None:  # a session that ended before the site tests needed it
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=60)
        shutil.rmtree(os.environ.pop(SMOKE_DIR_ENV), ignore_errors=True)


@pytest.fixture(scope="session")
def smoke_db(tmp_path_factory):
    """A DB seeded by a real smoke run (`effbench run --grid smoke` of one or two methods per task, every task and
    family, through worker processes), and the run's verified shard.

    The run starts with the session, in the background (``pytest_configure``); a session that did not start
    it (one test picked by node id) runs it here."""
    import time

    from effbench.run.shards import read_shard
    from effbench.store import Store

    shared = os.environ.get(SMOKE_DIR_ENV)
    if shared is None:
        from effbench.registry import discover
        from effbench.run.plan import make_config, plan
        from effbench.run.session import run_cases

        registry = discover()
        config = make_config("smoke", "cpu")
        cases = plan(registry, config, method=SMOKE_METHODS)
        shard = run_cases(registry, cases, config, tmp_path_factory.mktemp("runs")).shard
    else:
        shared = Path(shared)
        deadline = time.monotonic() + 900
        while not (shared / "rc").exists() or not (shared / "rc").read_text().strip():
            assert time.monotonic() < deadline, "the smoke run did not finish in 15 minutes"
            time.sleep(0.5)
        log = (shared / "log").read_text()
        assert (shared / "rc").read_text().strip() == "0", f"the smoke run failed: {log[-3000:]}"
        (shard,) = (shared / "local" / "runs").glob("*.jsonl")
    db = tmp_path_factory.mktemp("smoke") / "effbench.duckdb"
    with Store(db) as store:
        store.ingest_shard(shard)
    return db, read_shard(shard)
