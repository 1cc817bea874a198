"""Issue #22: ``effbench run --executor ray``, on a real local Ray cluster (2 CPUs; nothing of Ray mocked).

The same cases and statuses as the local executor, a planted crash and hang recorded as locally, a killed Ray
worker retried then recorded ``error``, kill -9 of the driver then ``--resume`` losing and duplicating
nothing, rows naming their node and ``compare`` keeping nodes apart, one line without Ray installed.
"""

from __future__ import annotations

import io
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from effbench.analysis import HardwareMismatch, changes
from effbench.cli import cli
from effbench.progress import RunProgress
from effbench.rows import Result, Run
from effbench.run import session
from effbench.run.plan import Case, make_config, plan
from effbench.run.provenance import _cpu_name
from effbench.run.session import run_cases
from effbench.run.shards import read_shard
from effbench.store import Store, StoreError
from tests.conftest import PLUGINS, ROOT

FAULTY = str(PLUGINS / "faulty.py")
RAY_FAULTS = str(PLUGINS / "ray_faults.py")
POINT = {"N": 16, "D": 8, "V": 37, "ignore_frac": 0.0}
POINT2 = {"N": 24, "D": 8, "V": 37, "ignore_frac": 0.0}  # another group of the same method
MARKERS = "EFFBENCH_TEST_RAY_MARKERS"


def _ray():
    return pytest.importorskip("ray", reason="Ray is not installed (pip install 'effbench[ray]')")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """One local Ray cluster of 2 CPUs for this module's in-process runs. Its processes inherit this
    environment (PYTHONPATH for a checkout, the planted plugin's marker directory)."""
    ray = _ray()
    markers = tmp_path_factory.mktemp("ray-markers")
    before = os.environ.get(MARKERS)
    os.environ[MARKERS] = str(markers)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield markers
    finally:
        ray.shutdown()
        if before is None:
            os.environ.pop(MARKERS, None)
        else:
            os.environ[MARKERS] = before


def executor(**kwargs):
    from effbench.run.ray_executor import RayExecutor

    return RayExecutor(**kwargs)


def outcomes(shard: Path) -> set[tuple]:
    """(task, method, impl, point_key, dtype, device, seed, metric, status) of every result row of a shard."""
    rows = [r for r in read_shard(shard).records if isinstance(r, Result)]
    return {(r.task, r.method, r.impl, r.point_key, r.dtype, r.device, r.seed, r.metric, r.status) for r in rows}


def results(shard: Path) -> list[Result]:
    return [r for r in read_shard(shard).records if isinstance(r, Result)]


# ----------------------------------------------------------------------------- same cases, same statuses


def test_smoke_subset_on_ray_has_the_local_cases_statuses_and_names_its_node(registry, cluster, tmp_path):
    """A kernel task (first covered point: later points dropped) and a workload task (tuning jobs, a
    baseline): the Ray run's shard holds the same cases, metrics and statuses as the local run's."""
    config = make_config("smoke", "cpu")
    cases = [*plan(registry, config, task="loss/contrastive"),
             *plan(registry, config, task="optimizer/convergence", method="adamw,lion")]
    local = session.run(registry, config, cases, tmp_path / "local")
    bars: list[RunProgress] = []

    def progress(total, done_before):
        bars.append(RunProgress(total, done_before, stream=io.StringIO(), force_plain=True, per_node=True))
        return bars[-1]

    ray_run = session.run(registry, config, cases, tmp_path / "ray", executor=executor(), progress=progress)
    assert local.summary.counts == ray_run.summary.counts and local.summary.dropped == ray_run.summary.dropped > 0
    assert outcomes(local.shard) == outcomes(ray_run.shard) and outcomes(local.shard)
    contents = read_shard(ray_run.shard)
    assert contents.complete and contents.tuning  # the tuning jobs reached the driver's shard
    host, cpu = platform.node(), _cpu_name()
    for shard in (local.shard, ray_run.shard):  # every row names its node, locally too
        assert {(r.node, r.node_hardware) for r in results(shard)} == {(host, cpu)}
    (bar,) = bars  # progress: cases done of the total, and by node
    assert bar.done == bar.total == ray_run.summary.ran and bar.nodes == {host: ray_run.summary.ran}
    assert f"by node: {host} {ray_run.summary.ran}" in bar.summary_line()


def test_planted_crash_and_hang_are_recorded_as_locally(faulty_registry, cluster, tmp_path):
    config = make_config("smoke", "cpu", seeds=1, timeout_s=4, all_points=True)
    cases = [Case("loss/linear_cross_entropy", "planted_faults", impl, point, "float32", "cpu", 0)
             for point, impls in ((POINT, ("correct", "crashes", "raises")), (POINT2, ("hangs", "correct")))
             for impl in impls]
    seen: dict[str, dict[tuple, tuple[str, str]]] = {}
    for name, runner in (("local", None), ("ray", executor())):
        got = seen.setdefault(name, {})
        run_cases(faulty_registry, cases, config, tmp_path / name, executor=runner,
                  on_case=lambda c, r, got=got: got.__setitem__((c.impl, c.point_key), (r.status, r.message)))
    assert {k: s for k, (s, _) in seen["ray"].items()} == {k: s for k, (s, _) in seen["local"].items()}
    ray_messages = {impl: message for (impl, _), (_, message) in seen["ray"].items()}
    assert seen["ray"][("crashes", "D=8,N=16,V=37,ignore_frac=0.0")][0] == "error"
    assert "SIGABRT" in ray_messages["crashes"]  # the worker's crash, as locally (tests/test_runner.py)
    assert seen["ray"][("hangs", "D=8,N=24,V=37,ignore_frac=0.0")][0] == "timeout"
    assert "no result within 4 s" in ray_messages["hangs"]
    assert "ValueError: planted failure" in ray_messages["raises"]
    assert {s for (impl, _), (s, _) in seen["ray"].items() if impl == "correct"} == {"ok"}


# ----------------------------------------------------------------------------- the cluster failing


def test_a_killed_ray_worker_is_retried_then_its_unfinished_cases_are_errors(cluster, tmp_path):
    """The policy: a group whose Ray worker dies is resubmitted with its unfinished cases, twice; a kill
    that stops happening is survived, one that goes on leaves the group's unfinished cases ``error``."""
    from effbench.registry import discover

    registry = discover([RAY_FAULTS])
    config = make_config("smoke", "cpu", seeds=2, all_points=True)

    def case(impl, point, seed):
        return Case("loss/linear_cross_entropy", "ray_faults", impl, point, "float32", "cpu", seed)

    once = [case("reference", POINT, 0), case("kills_ray_worker_once", POINT, 0), case("reference", POINT, 1)]
    always = [case("reference", POINT2, 0), case("kills_ray_worker", POINT2, 0), case("reference", POINT2, 1)]
    said: list[str] = []
    got: dict[str, tuple[str, str]] = {}
    summary = run_cases(registry, once + always, config, tmp_path, executor=executor(say=said.append),
                        on_case=lambda c, r: got.__setitem__(c.label(), (r.status, r.message)))
    assert [got[c.label()][0] for c in once] == ["ok", "ok", "ok"]  # the retry finished the group
    assert [got[c.label()][0] for c in always] == ["ok", "error", "error"]  # the first finished before the kill
    killer, after = got[always[1].label()][1], got[always[2].label()][1]
    assert "after 3 attempts (2 retries) (the case in flight)" in killer and "WorkerCrashedError" in killer
    assert "lost on the Ray cluster" in after and "in flight" not in after
    assert sum("retrying" in line for line in said) == 1 + 2, said
    contents = read_shard(summary.shard)
    assert contents.complete and len(contents.done) == 6  # every case exactly once
    assert (cluster / "killed-once").exists()


# ----------------------------------------------------------------------------- kill -9 and --resume


def case_dones(path: Path) -> int:
    return path.read_text().count('"type":"case_done"') if path.exists() else 0


def descendants(pid: int) -> dict[int, str]:
    """Every living process under ``pid``: its command line."""
    parents, commands = {}, {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            commands[int(stat.parent.name)] = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, IndexError, ValueError):
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, todo = {}, [pid]
    while todo:
        parent = todo.pop()
        for child, its_parent in parents.items():
            if its_parent == parent and child not in found:
                found[child] = commands.get(child, "")
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_driver_killed_with_sigkill_then_resumed_on_ray_loses_and_duplicates_nothing(faulty_registry, tmp_path):
    _ray()
    db, runs = tmp_path / "db.duckdb", tmp_path / "local" / "runs"
    command = [sys.executable, "-m", "effbench", "run", "--plugin", FAULTY, "--method", "planted_faults", "--impl",
               "reference,sleepy", "--grid", "smoke", "--seeds", "3", "--all-points", "--db", str(db),
               "--executor", "ray"]
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 180
    while not any(case_dones(p) >= 3 for p in runs.glob("*.jsonl")):
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "timed out waiting for three finished cases"
        time.sleep(0.1)
    tree = descendants(proc.pid)  # its local Ray cluster, Ray's workers and effbench's
    os.kill(proc.pid, signal.SIGKILL)  # the driver: no chance to clean up
    proc.communicate(timeout=60)
    workers = [pid for pid, command in tree.items() if "effbench.run.worker" in command]
    deadline = time.monotonic() + 30
    while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [pid for pid in workers if alive(pid)], "an effbench worker outlived the killed driver's Ray task"
    for pid in tree:  # Ray's node agents outlive a killed driver's local cluster (`ray stop` ends them)
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
    (shard,) = runs.glob("*.jsonl")
    killed = read_shard(shard)
    assert not killed.complete and 3 <= len(killed.done) < killed.header.cases

    again = subprocess.run([*command, "--resume"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"resuming run {killed.run.run_id}: {len(killed.done)} of" in again.stderr
    assert "Traceback" not in again.stderr
    done = read_shard(shard)
    assert done.complete and not done.warnings and list(runs.glob("*.jsonl")) == [shard]
    assert len(done.done) == done.header.cases  # every planned case ...
    for key, record in killed.done.items():  # ... the ones finished before the kill not run again
        assert done.done[key] == record
    with Store(db, read_only=True) as store:
        per_case = store.query("SELECT impl, point_key, seed, metric, count(*) AS n FROM results GROUP BY ALL")
    assert per_case["n"].max() == 1  # ... exactly once
    # as many rows as a clean run of the same plan
    config = make_config("smoke", "cpu", seeds=3, all_points=True)
    cases = plan(faulty_registry, config, method="planted_faults", impl="reference,sleepy")
    clean = run_cases(faulty_registry, cases, config, tmp_path / "clean", in_process=True)
    assert len(results(shard)) == len(results(clean.shard)) == per_case.height
    assert outcomes(shard) == outcomes(clean.shard)


# ----------------------------------------------------------------------------- without Ray, bad options


def test_executor_ray_without_ray_installed_is_one_line(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    result = CliRunner().invoke(cli, ["run", "--grid", "smoke", "--executor", "ray", "--db", str(tmp_path / "d.db")])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "pip install 'effbench[ray]'" in lines[0], lines
    assert not (tmp_path / "d.db").exists()


def test_ray_address_needs_the_ray_executor(tmp_path):
    result = CliRunner().invoke(cli, ["run", "--ray-address", "auto", "--db", str(tmp_path / "d.db")])
    assert result.exit_code == 2 and "--ray-address needs --executor ray" in result.output


def test_a_cuda_run_on_a_new_local_cluster_without_a_gpu_stops_at_once(tmp_path):
    _ray()
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine's local cluster has a GPU")
    command = [sys.executable, "-m", "effbench", "run", "--grid", "smoke", "--device", "cuda", "--task",
               "loss/contrastive", "--executor", "ray", "--db", str(tmp_path / "db.duckdb")]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"})
    assert done.returncode == 1 and "local Ray cluster has no GPU for a cuda run" in done.stderr, done.stderr[-2000:]
    assert "Traceback" not in done.stderr


def test_bad_executor_settings_are_usage_errors():
    from effbench.errors import UsageError

    for bad in ({"max_retries": -1}, {"cpus_per_group": 0}, {"max_in_flight": 0}):
        with pytest.raises(UsageError):
            executor(**bad)


def test_only_the_ray_executor_imports_ray():
    """Ray stays optional: no other module imports it."""
    import ast

    for path in (ROOT / "effbench").rglob("*.py"):
        tree = ast.parse(path.read_text())
        names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        if any(n == "ray" or n.startswith("ray.") for n in names):
            assert path.name == "ray_executor.py", path


# ----------------------------------------------------------------------------- nodes kept apart


def _run_row(run_id: str, started: str, gpu_name: str | None) -> Run:
    return Run(run_id, started, None, None, "driver", "cuda", gpu_name, "some cpu", 2, "3", None, None, None, "0",
               "gpu", "effbench", "effbench run")


def _time(run_id: str, impl: str, ms: float, node: str | None, hardware: str | None) -> Result:
    return Result(run_id, "loss", "loss/x", "m", impl, "N=1", "{}", "float32", "cuda", 0, "time_ms", ms, "ms", "ok",
                  "", "", "", node=node, node_hardware=hardware)


def test_compare_keeps_nodes_apart_and_reads_older_rows_by_their_run(tmp_path):
    db = tmp_path / "db.duckdb"
    with Store(db) as store:
        store.insert([
            # an older local run on an H100: its rows name no node, its run names the GPU
            _run_row("local", "2026-12-01T00:00:00+00:00", "NVIDIA H100"),
            _time("local", "a", 1.0, None, None), _time("local", "b", 1.0, None, None),
            # a Ray run from a driver without a GPU: each row names its node
            _run_row("ray", "2026-12-02T00:00:00+00:00", None),
            _time("ray", "a", 2.0, "node-1", "NVIDIA H100"), _time("ray", "b", 1.0, "node-2", "NVIDIA H100"),
            # a Ray run whose second case ran on another GPU model
            _run_row("mixed", "2026-12-03T00:00:00+00:00", None),
            _time("mixed", "a", 1.0, "node-1", "NVIDIA H100"), _time("mixed", "b", 3.0, "node-3", "NVIDIA A100"),
        ])
        latest = store.query("SELECT impl, hardware FROM latest WHERE run_id = 'mixed' ORDER BY impl")
    assert latest["hardware"].to_list() == ["NVIDIA H100", "NVIDIA A100"]
    same = changes(db, "local", "ray", ("time_ms",))  # the same GPU model: compared, case by case
    assert dict(zip(same["impl"], same["ratio"], strict=True)) == {"a": 2.0, "b": 1.0}
    with pytest.raises(HardwareMismatch, match="NVIDIA A100"):  # an A100's number is never divided by an H100's
        changes(db, "ray", "mixed", ("time_ms",))
    apart = changes(db, "ray", "mixed", ("time_ms",), across_hardware=True)
    assert set(apart["impl"]) == {"a", "b"}


def test_a_schema_3_db_gains_the_node_columns_when_opened_for_writing(tmp_path):
    db = tmp_path / "db.duckdb"
    Store(db).close()
    with duckdb.connect(str(db)) as con:  # as effbench before schema 4 left it
        con.execute("DROP VIEW latest")
        con.execute("ALTER TABLE results DROP COLUMN node")
        con.execute("ALTER TABLE results DROP COLUMN node_hardware")
        con.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
    with pytest.raises(StoreError, match="older than"):
        Store(db, read_only=True)
    Store(db).close()
    with Store(db, read_only=True) as store:
        columns = set(store.query("SELECT column_name FROM information_schema.columns WHERE table_name = 'results'")
                      ["column_name"])
        assert {"node", "node_hardware"} <= columns
        assert store.query("SELECT * FROM latest").is_empty()
