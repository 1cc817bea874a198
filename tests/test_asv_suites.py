import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from effbench.asv_results import class_name
from tests.conftest import ROOT


def suites_in(module: str) -> dict[str, type]:
    text = (ROOT / "benchmarks" / f"{module}.py").read_text()
    return {line.split("=")[0].strip(): line for line in text.splitlines() if "make_suite(" in line}


def test_every_task_has_a_suite(registry):
    for key, task in registry.tasks.items():
        suites = suites_in(task.family)
        name = class_name(key)
        assert name in suites and f'make_suite("{key}")' in suites[name], f"benchmarks/{task.family}.py lacks {name}"


def test_suite_params_cover_every_impl(registry):
    from effbench.asv_suites import make_suite

    for key in registry.tasks:
        suite = make_suite(key)
        cases, points, dtypes, devices, grids = suite.params
        expected = {f"{m.name}:{i}" for m in registry.methods_of(key) for i in m.impls}
        assert set(cases) == expected
        assert grids == ["smoke"] and devices in (["cpu"], ["cuda"])
        assert suite.__name__ == class_name(key)
        assert all(hasattr(suite, f"track_{m}") for m in ("peak_mem_bytes",))


@pytest.mark.slow
def test_asv_run_then_ingest(tmp_path, registry):
    """`asv run --python=same --quick` on one shard of one suite (one of adamw's combinations asked for; the suite's
    setup_cache runs its whole shard), then `effbench ingest` of asv's results directory, twice: the suite's
    effbench shard is ingested in full (source asv) and asv's summary of the same task left out, so the DB
    holds the rows `effbench run --task optimizer/step --shard i/8` gives: same cases, seeds, metrics and
    statuses."""
    from effbench.asv_suites import suite_cases
    from effbench.run.plan import make_config

    config = make_config("smoke", "cpu")
    whole = suite_cases(registry, "optimizer/step", config, None)
    # the shard of 8 that holds adamw's fused impl (a fixed hash of each case's group): here adamw's impls only
    shards = {i: {f"{c.method}:{c.impl}" for c in suite_cases(registry, "optimizer/step", config, (i, 8))}
              for i in range(1, 9)}
    index = next(i for i, cases in shards.items() if "adamw:torch_fused" in cases)
    mine = shards[index]
    assert mine < {f"{c.method}:{c.impl}" for c in whole}
    if shutil.which("git") is None:
        pytest.skip("git is needed by asv")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    if head.returncode != 0:
        pytest.skip("asv needs a commit")
    config = tmp_path / "asv.conf.json"
    config.write_text(json.dumps({
        "version": 1, "project": "effbench", "repo": str(ROOT), "branches": ["HEAD"],
        "environment_type": "existing", "benchmark_dir": str(ROOT / "benchmarks"),
        "results_dir": str(tmp_path / "results"), "html_dir": str(tmp_path / "html"),
        "env_dir": str(tmp_path / "env"),
    }))
    env = dict(os.environ, HOME=str(tmp_path), EFFBENCH_GRID="smoke", EFFBENCH_SHARD=f"{index}/8")
    # the default, the asv.conf.json above benchmarks/, would be the repository's results/asv
    env["EFFBENCH_ASV_SHARDS"] = str(tmp_path / "results" / "effbench")
    bin_dir = Path(sys.executable).parent
    asv = [str(bin_dir / "asv"), "--config", str(config)]
    subprocess.run([*asv, "machine", "--yes", "--machine", "effbench-test"], env=env, check=True,
                   capture_output=True, cwd=tmp_path)
    run = subprocess.run(
        [*asv, "run", "--python=same", "--quick", "--set-commit-hash", head.stdout.strip(),
         # asv matches parameterised benchmarks as "name(params...)": one combination (asv starts a process per
         # combination; the suite's setup_cache still runs the whole shard once, and its shard is what is checked)
         "--machine", "effbench-test", "--bench",
         r"optimizer\.Step\.track_time_ms\('adamw:torch_fused'"],
        env=env, capture_output=True, text=True, cwd=tmp_path, timeout=600,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    written = list((tmp_path / "results" / "effbench").glob("*.jsonl"))
    assert len(written) == 1, written  # the suite's shard, beside asv's results
    db = tmp_path / "db.duckdb"
    effbench = [sys.executable, "-m", "effbench"]
    first = subprocess.run([*effbench, "ingest", str(tmp_path / "results"), "--db", str(db)],
                           capture_output=True, text=True, check=True)
    assert first.stdout.count("runs +1") == 1 and "runs +2" not in first.stdout, first.stdout
    second = subprocess.run([*effbench, "ingest", str(tmp_path / "results"), "--db", str(db)],
                            capture_output=True, text=True, check=True)
    assert "nothing new" in second.stdout

    def rows(database: Path) -> tuple[list[dict], set[str]]:
        found = json.loads(subprocess.run(
            [*effbench, "query", "SELECT r.method, r.impl, r.point_key, r.dtype, r.device, r.seed, r.metric, "
             "r.status, r.value IS NULL AS missing, u.source, u.command FROM results r JOIN runs u USING (run_id)",
             "--db", str(database), "--json"], capture_output=True, text=True, check=True).stdout)
        return found, {r["source"] for r in found}

    from_asv, sources = rows(db)
    assert sources == {"asv"}
    assert {r["command"] for r in from_asv} == {"asv suite optimizer/step"}
    assert {f"{r['method']}:{r['impl']}" for r in from_asv} == mine  # every case of the shard, not only adamw's
    assert any(r["metric"] == "state_bytes" for r in from_asv)  # a metric asv does not track
    direct_db = tmp_path / "direct.duckdb"
    subprocess.run([*effbench, "run", "--grid", "smoke", "--device", "cpu", "--task", "optimizer/step",
                    "--shard", f"{index}/8", "--db", str(direct_db)], capture_output=True, text=True, check=True,
                   cwd=tmp_path)
    direct, sources = rows(direct_db)
    assert sources == {"effbench"}

    def key(r: dict) -> tuple:
        return tuple(r[k] for k in ("method", "impl", "point_key", "dtype", "device", "seed", "metric", "status",
                                    "missing"))

    assert sorted(map(key, from_asv)) == sorted(map(key, direct))
