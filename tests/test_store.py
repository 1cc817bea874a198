import dataclasses
import json

import duckdb
import pytest

from effbench.asv_results import class_name, suite_task
from effbench.rows import SCHEMA_VERSION, CurvePoint, MethodInfo, Result, Run, Sample, to_json_line
from effbench.store import TABLES, Store, StoreError

RUN = Run(
    run_id="r1", started_at="2026-11-23T00:00:00+00:00", git_commit="abc", git_branch="main", machine="m",
    device="cpu", gpu_name=None, cpu_name="cpu", num_threads=2, python_version="3.11", torch_version="2.13",
    triton_version=None, cuda_version=None, effbench_version="0.1.0", grid="smoke", source="effbench", command="x",
)


def result(metric="time_ms", value=1.5, seed=0, status="ok", message=""):
    return Result(
        run_id="r1", family="loss", task="loss/linear_cross_entropy", method="m", impl="reference",
        point_key="N=1", point='{"N":1}', dtype="float32", device="cpu", seed=seed, metric=metric, value=value,
        unit="ms", status=status, message=message, measure_method="perf_counter", code_hash="h",
    )


def write_shard(path, records):
    path.write_text("".join(to_json_line(r) + "\n" for r in records))
    return path


def test_schema_columns_match_rows(tmp_path):
    with Store(tmp_path / "db.duckdb") as store:
        for table, cls in TABLES.items():
            columns = [r[0] for r in store._all(f"DESCRIBE {table}")]
            assert columns == [f.name for f in dataclasses.fields(cls)], table
        assert store.schema_version() == SCHEMA_VERSION


def test_ingest_twice_adds_nothing(tmp_path):
    shard = write_shard(tmp_path / "r1.jsonl", [
        RUN, result(), result("rel_error", 1e-7), result("time_ms", None, seed=1, status="error", message="boom"),
        Sample("r1", "loss/linear_cross_entropy", "m", "reference", "N=1", "float32", "cpu", 0, "time_ms", 0, 1.5),
        CurvePoint("r1", "loss/linear_cross_entropy", "m", "reference", "N=1", "float32", "cpu", 0, 10, 0.1, 1.0,
                   0.9, 0.5),
        MethodInfo("loss", "loss/linear_cross_entropy", "m", "reference", None, None, "s"),
    ])
    with Store(tmp_path / "db.duckdb") as store:
        first = store.ingest_shard(shard)
        assert first.added == {"runs": 1, "results": 3, "samples": 1, "curves": 1, "methods": 1}
        second = store.ingest_shard(shard)
        assert second.total == 0
        failed = store.query("SELECT value, status, message FROM results WHERE seed = 1")
        assert failed.to_dicts() == [{"value": None, "status": "error", "message": "boom"}]
        assert store.query("SELECT count(*) AS n FROM latest")["n"][0] == 3


def test_truncated_last_line_is_skipped_with_warning(tmp_path):
    shard = write_shard(tmp_path / "r1.jsonl", [RUN, result()])
    with open(shard, "a") as f:
        f.write(to_json_line(result("rel_error"))[:40])  # the writer was killed mid-line
    with Store(tmp_path / "db.duckdb") as store:
        report = store.ingest_shard(shard)
    assert report.added["results"] == 1
    assert "truncated" in report.warnings[0]


def test_malformed_line_changes_nothing(tmp_path):
    shard = tmp_path / "bad.jsonl"
    shard.write_text(to_json_line(RUN) + "\n{not json\n" + to_json_line(result()) + "\n")
    with Store(tmp_path / "db.duckdb") as store:
        with pytest.raises(StoreError, match="bad.jsonl:2: malformed shard line"):
            store.ingest_shard(shard)
        assert store.query("SELECT count(*) AS n FROM runs")["n"][0] == 0
    wrong_fields = tmp_path / "fields.jsonl"
    data = json.loads(to_json_line(result()))
    data.pop("unit")
    wrong_fields.write_text(to_json_line(RUN) + "\n" + json.dumps(data) + "\n\n")
    with Store(tmp_path / "db.duckdb") as store, pytest.raises(StoreError, match="missing \\['unit'\\]"):
        store.ingest_shard(wrong_fields)
    no_run = write_shard(tmp_path / "norun.jsonl", [result()])
    with Store(tmp_path / "db.duckdb") as store, pytest.raises(StoreError, match="no run record"):
        store.ingest_shard(no_run)


def test_not_a_duckdb_file(tmp_path):
    bogus = tmp_path / "bogus.duckdb"
    bogus.write_text("hello, I am not a database\n" * 100)
    with pytest.raises(StoreError, match="cannot be opened as a DuckDB database"):
        Store(bogus)


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "new.duckdb"
    Store(path).close()
    con = duckdb.connect(str(path))
    con.execute("UPDATE meta SET value = '999' WHERE key = 'schema_version'")
    con.close()
    with pytest.raises(StoreError, match="schema version 999, newer"):
        Store(path)
    with pytest.raises(StoreError, match="schema version 999"):
        Store(path, read_only=True)


def test_read_only_needs_an_existing_effbench_db(tmp_path):
    with pytest.raises(StoreError, match="no database"):
        Store(tmp_path / "absent.duckdb", read_only=True)
    other = tmp_path / "other.duckdb"
    con = duckdb.connect(str(other))
    con.execute("CREATE TABLE t (x INTEGER)")
    con.close()
    with pytest.raises(StoreError, match="not an effbench database"):
        Store(other, read_only=True)


def test_query_errors_are_one_line(tmp_path):
    with Store(tmp_path / "db.duckdb") as store:
        with pytest.raises(StoreError, match="query failed"):
            store.query("SELECT * FROM no_such_table")
        assert store.query("SELECT ? AS v", ["it's bound"])["v"][0] == "it's bound"


def fake_asv_results(root, values, commit="c0ffee00"):
    """A results directory in asv 0.6's format (result_columns, params as reprs, product order)."""
    (root / "vm").mkdir(parents=True)
    (root / "benchmarks.json").write_text(json.dumps({
        "optimizer.Step.track_time_ms": {"unit": "ms", "param_names": ["case", "point", "dtype", "device", "grid"]},
        "version": 2,
    }))
    (root / "vm" / "machine.json").write_text(json.dumps({"machine": "vm"}))
    params = [["'adamw:reference'", "'adamw:torch_fused'"], ["'d_model=64'"], ["'float32'"], ["'cpu'"], ["'smoke'"]]
    (root / "vm" / f"{commit}-existing.json").write_text(json.dumps({
        "commit_hash": commit, "env_name": "existing", "date": 1795395233000,
        "params": {"machine": "vm", "cpu": "AMD", "torch": "2.13"}, "python": "3.11",
        "result_columns": ["result", "params", "version", "started_at", "duration"],
        "results": {"optimizer.Step.track_time_ms": [values, params, "v1", 0, 1.0]},
        "version": 2,
    }))
    return root


def test_asv_ingest_is_idempotent(tmp_path):
    root = fake_asv_results(tmp_path / "asv", [0.5, None])
    with Store(tmp_path / "db.duckdb") as store:
        reports = store.ingest(root)
        assert sum(r.total for r in reports) == 3  # one run, two results
        assert sum(r.total for r in store.ingest(root)) == 0
        rows = store.query("SELECT method, impl, task, value, status, device FROM results ORDER BY impl").to_dicts()
        assert rows == [
            {"method": "adamw", "impl": "reference", "task": "optimizer/step", "value": 0.5, "status": "ok",
             "device": "cpu"},
            {"method": "adamw", "impl": "torch_fused", "task": "optimizer/step", "value": None, "status": "error",
             "device": "cpu"},
        ]
        run = store.query("SELECT source, git_commit, grid, torch_version FROM runs").to_dicts()[0]
        assert run == {"source": "asv", "git_commit": "c0ffee00", "grid": "smoke", "torch_version": "2.13"}


def test_asv_skips_add_no_rows(tmp_path):
    """A combination asv skipped (another shard's case) must not shadow the shard that ran it."""
    with Store(tmp_path / "db.duckdb") as store:
        store.ingest(fake_asv_results(tmp_path / "asv", [0.5, float("nan")]))
        rows = store.query("SELECT impl, status FROM results").to_dicts()
    assert rows == [{"impl": "reference", "status": "ok"}]


@pytest.mark.parametrize("commit", ["c0ffee00", "another"])
def test_asv_summary_yields_to_the_suites_shard(tmp_path, commit):
    """An asv suite's shard (source asv) of the commit asv ran holds the task in full: ingest of the
    results directory keeps the shard's rows and leaves asv's summary of that task out; a shard of
    another commit details nothing, so both stay."""
    from effbench.rows import TaskInfo

    root = fake_asv_results(tmp_path / "asv", [0.5, None])
    run = dataclasses.replace(RUN, source="asv", git_commit=commit, command="asv suite optimizer/step")
    detail = dataclasses.replace(result(), task="optimizer/step", family="optimizer", method="adamw")
    (root / "effbench").mkdir()
    write_shard(root / "effbench" / "r1.jsonl", [
        run, TaskInfo("optimizer", "optimizer/step", "kernel", "adamw", "reference", "[]", ""), detail,
        dataclasses.replace(detail, metric="state_bytes", unit="B"),
    ])
    with Store(tmp_path / "db.duckdb") as store:
        store.ingest(root)
        runs = store.query("SELECT run_id FROM runs ORDER BY run_id")["run_id"].to_list()
        rows = store.query("SELECT run_id, metric FROM results ORDER BY run_id, metric").rows()
    if commit == "c0ffee00":
        assert runs == ["r1"] and rows == [("r1", "state_bytes"), ("r1", "time_ms")]
    else:
        assert len(runs) == 2 and len(rows) == 4


def test_malformed_asv_file(tmp_path):
    root = fake_asv_results(tmp_path / "asv", [0.5])  # one value for two combinations
    with Store(tmp_path / "db.duckdb") as store:
        with pytest.raises(StoreError, match="1 values for 2 parameter combinations"):
            store.ingest(root)
        assert store.query("SELECT count(*) AS n FROM runs")["n"][0] == 0
    broken = tmp_path / "asv" / "vm" / "c0ffee00-existing.json"
    broken.write_text('{"commit_hash": "x", "resu')
    with Store(tmp_path / "db.duckdb") as store, pytest.raises(StoreError, match="not a readable asv result"):
        store.ingest(broken)


def test_suite_task_inverts_class_names(registry):
    for key in registry.tasks:  # every task's suite name reads back as its key
        assert suite_task(key.split("/")[0], class_name(key)) == key


def test_field_types_are_checked(tmp_path):
    data = json.loads(to_json_line(result()))
    data["value"] = "fast"
    shard = tmp_path / "types.jsonl"
    shard.write_text(to_json_line(RUN) + "\n" + json.dumps(data) + "\n")
    with Store(tmp_path / "db.duckdb") as store, pytest.raises(StoreError, match="Result.value should be float"):
        store.ingest_shard(shard)
