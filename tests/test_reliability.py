"""Issue #9's promises: nothing lost after kill -9 (resume), concurrent writers, refused corruption,
merge across machines, and bad or hostile input that changes nothing stored."""

import ast
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from effbench.cli import cli
from effbench.rows import SCHEMA_VERSION, SHARD_FORMAT
from effbench.run.plan import Case, make_config
from effbench.run.session import run_cases
from effbench.run.shards import read_shard
from effbench.store import Store
from tests.conftest import PLUGINS, ROOT

FAULTY = str(PLUGINS / "faulty.py")
POINT = {"N": 16, "D": 8, "V": 37, "ignore_frac": 0.0}
TABLES = ("runs", "results", "samples", "curves", "methods", "cases")


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def counts(db: Path) -> dict[str, int]:
    with Store(db, read_only=True) as store:
        return {t: store.query(f"SELECT count(*) AS n FROM {t}")["n"][0] for t in TABLES}


def effbench(*args: object) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "effbench", *map(str, args)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module")
def shard(faulty_registry, tmp_path_factory):
    """A real format-2 shard of four quick cases, run in process."""
    config = make_config("smoke", "cpu", seeds=2)
    cases = [Case("loss/linear_cross_entropy", "planted_faults", impl, POINT, "float32", "cpu", seed)
             for seed in range(2) for impl in ("reference", "correct")]
    summary = run_cases(faulty_registry, cases, config, tmp_path_factory.mktemp("runs"), in_process=True)
    return summary.shard


# ----------------------------------------------------------------------------- resume


def wait_for(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def case_dones(path: Path) -> int:
    return path.read_text().count('"type":"case_done"') if path.exists() else 0


def test_run_killed_with_sigkill_and_resumed_has_every_case_exactly_once(tmp_path):
    db, runs = tmp_path / "db.duckdb", tmp_path / "local" / "runs"  # the default shard dir beside the DB
    command = ("run", "--plugin", FAULTY, "--method", "planted_faults", "--impl", "reference,sleepy", "--grid",
               "smoke", "--seeds", "3", "--all-points", "--db", db)
    proc = effbench(*command)
    wait_for(lambda: any(case_dones(p) >= 3 for p in runs.glob("*.jsonl")), 180, "three finished cases")
    os.kill(proc.pid, signal.SIGKILL)  # no chance to clean up; the kernel kills its worker (PR_SET_PDEATHSIG)
    proc.communicate(timeout=60)
    (shard,) = runs.glob("*.jsonl")
    killed = read_shard(shard)
    assert not killed.complete and 3 <= len(killed.done)
    # as if the kill had come mid-case: rows of a case with no CaseDone, and a line cut short
    first_row = next(line for line in shard.read_text().splitlines() if '"type":"result"' in line)
    with open(shard, "a") as file:
        file.write(first_row.replace('"seed":0', '"seed":2').replace('"impl":"reference"', '"impl":"sleepy"') + "\n")
        file.write(first_row[: len(first_row) // 2])
    assert not db.exists() or counts(db)["results"] == 0  # a killed run never reached its ingest

    again = effbench(*command, "--resume")
    out, err = again.communicate(timeout=600)
    assert again.returncode == 0, err
    assert f"resuming run {killed.run.run_id}: {len(killed.done)} of" in err and "Traceback" not in err
    done = read_shard(shard)  # the cut tail is gone and the shard verifies end to end
    assert done.complete and not done.warnings and list(runs.glob("*.jsonl")) == [shard]
    with Store(db, read_only=True) as store:
        per_case = store.query("SELECT impl, point_key, seed, metric, count(*) AS n FROM results "
                               "GROUP BY ALL")
        runs_in_db = store.query("SELECT run_id FROM runs")["run_id"].to_list()
    assert runs_in_db == [killed.run.run_id]
    cases = per_case.select("impl", "point_key", "seed").unique()
    assert cases.height == len(done.done) == done.header.cases  # every planned case ...
    assert per_case["n"].max() == 1  # ... exactly once
    rerun = effbench(*command, "--resume")
    _, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0 and "nothing to resume" in err
    assert counts(db)["results"] == per_case.height


# ----------------------------------------------------------------------------- concurrent writers


def test_four_concurrent_runs_land_every_row(tmp_path):
    db = tmp_path / "db.duckdb"
    Store(db).close()
    holder = duckdb.connect(str(db))  # another process's write lock, until the four runs are waiting
    logs = [tmp_path / f"run{i}.log" for i in range(4)]
    command = [sys.executable, "-m", "effbench", "run", "--plugin", FAULTY, "--method", "planted_faults",
               "--impl", "reference,correct", "--grid", "smoke", "--seeds", "1", "--db", str(db)]
    procs = [subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=open(log, "w"))  # noqa: SIM115
             for log in logs]
    try:
        wait_for(lambda: all("waiting for" in log.read_text() for log in logs), 180, "four waiting runs")
        assert all(p.poll() is None for p in procs)
    finally:
        holder.close()
    codes = [p.wait(timeout=600) for p in procs]
    assert codes == [0] * 4, [log.read_text() for log in logs]
    shards = sorted((tmp_path / "local" / "runs").glob("*.jsonl"))
    assert len(shards) == 4
    expected = sum(len([r for r in read_shard(s).records if type(r).__name__ == "Result"]) for s in shards)
    with Store(db, read_only=True) as store:
        per_run = store.query("SELECT run_id, count(*) AS n FROM results GROUP BY run_id")
        keys = store.query("SELECT count(*) AS n FROM (SELECT DISTINCT run_id, task, method, impl, point_key, "
                           "dtype, device, seed, metric FROM results)")["n"][0]
    assert per_run.height == 4 and per_run["n"].sum() == expected == keys


# ----------------------------------------------------------------------------- corruption


def corrupt_variants(text: str) -> dict[str, str]:
    lines = text.splitlines(keepends=True)
    result_at = next(i for i, line in enumerate(lines) if '"type":"result"' in line)
    done_at = next(i for i, line in enumerate(lines) if '"type":"case_done"' in line)
    value_at = next(i for i, line in enumerate(lines) if re.search(r'"value":[1-8]', line))
    altered = re.sub(r'"value":([1-8])', lambda m: f'"value":{int(m[1]) + 1}', lines[value_at], count=1)
    header = json.loads(lines[0])
    return {
        "a number altered": "".join(lines[:value_at] + [altered] + lines[value_at + 1:]),
        "a row deleted": "".join(lines[:result_at] + lines[result_at + 1:]),
        "garbage inside": "".join(lines[:result_at] + ["{not json\n"] + lines[result_at:]),
        "a case repeated": "".join(lines[:done_at + 1] + lines[result_at:done_at + 1] + lines[done_at + 1:]),
        "newer format": json.dumps({**header, "format": SHARD_FORMAT + 1}) + "\n" + "".join(lines[1:]),
        "binary noise": text[: len(text) // 2] + "\x00\xff garbage \n" + text[len(text) // 2:],
        "no run record": "".join(line for line in lines if '"type":"run"' not in line),
    }


@pytest.mark.parametrize("kind", ["a number altered", "a row deleted", "garbage inside", "a case repeated",
                                  "newer format", "binary noise", "no run record"])
def test_corrupted_shard_is_refused_without_touching_the_db(shard, tmp_path, kind):
    db = tmp_path / "db.duckdb"
    invoke("ingest", shard, "--db", db)
    before = counts(db)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(corrupt_variants(shard.read_text())[kind], encoding="utf-8", errors="surrogateescape")
    for command in (("ingest", bad), ("merge", shard, bad)):
        result = CliRunner().invoke(cli, [*map(str, command), "--db", str(db)])
        assert result.exit_code == 1, (kind, result.output)
        assert result.output.startswith("Error: ") and "Traceback" not in result.output
        assert str(bad) in result.output and len(result.output.splitlines()) == 1
    assert counts(db) == before


def test_a_shard_cut_mid_case_keeps_only_finished_cases(shard, tmp_path):
    text = shard.read_text()
    cut = text[: text.rindex('"type":"case_done"') - 40]  # inside the last case's commit record
    partial = tmp_path / "partial.jsonl"
    partial.write_text(cut)
    with Store(tmp_path / "db.duckdb") as store:
        (report,) = store.ingest(partial)
        cases = store.query("SELECT DISTINCT impl, seed FROM results").height
    assert cases == len(read_shard(shard).done) - 1
    assert any("truncated last line" in w for w in report.warnings)
    assert any("unfinished case" in w for w in report.warnings)
    assert any("did not finish" in w and "--resume" in w for w in report.warnings)


def test_format_1_shards_still_ingest(tmp_path):
    committed = sorted((ROOT / "results" / "runs").glob("*.jsonl"))
    assert committed, "the repository ships result shards"
    legacy = next(p for p in committed if '"type":"shard"' not in p.read_text(encoding="utf-8")[:200])
    with Store(tmp_path / "db.duckdb") as store:
        (report,) = store.ingest(legacy)
    lines = legacy.read_text().count('"type":"result"')
    assert report.added["results"] == lines


# ----------------------------------------------------------------------------- merge


def test_merge_combines_dbs_and_shards_idempotently(shard, faulty_registry, tmp_path):
    config = make_config("smoke", "cpu", seeds=1)
    other = run_cases(faulty_registry, [Case("loss/linear_cross_entropy", "planted_faults", "off", POINT,
                                             "float32", "cpu", 0)], config, tmp_path / "runs", in_process=True)
    machine_a, machine_b, direct = tmp_path / "a.duckdb", tmp_path / "b.duckdb", tmp_path / "direct.duckdb"
    invoke("ingest", shard, "--db", machine_a)
    invoke("ingest", other.shard, "--db", machine_b)
    invoke("ingest", shard, other.shard, "--db", direct)
    merged = tmp_path / "merged.duckdb"
    first = invoke("merge", machine_a, machine_b, "--db", merged)
    assert first.exit_code == 0 and "merged 2 source(s)" in first.output
    assert counts(merged) == counts(direct)
    again = invoke("merge", machine_a, machine_b, tmp_path / "runs", "--db", merged)
    assert again.exit_code == 0 and "nothing new" in again.output
    assert counts(merged) == counts(direct)
    with Store(merged, read_only=True) as a, Store(direct, read_only=True) as b:
        query = "SELECT * EXCLUDE (started_at) FROM latest ORDER BY ALL"
        assert a.query(query).equals(b.query(query))


def test_merge_refuses_bad_databases_and_changes_nothing(shard, tmp_path):
    merged = tmp_path / "merged.duckdb"
    invoke("ingest", shard, "--db", merged)
    before = counts(merged)
    not_duckdb = tmp_path / "not.duckdb"
    not_duckdb.write_bytes(b"SQLite format 3\x00" + os.urandom(2048))
    newer = tmp_path / "newer.duckdb"
    with Store(newer) as store:
        store.con.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", [str(SCHEMA_VERSION + 1)])
    foreign = tmp_path / "foreign.duckdb"
    duckdb.connect(str(foreign)).close()
    for source, needle in ((not_duckdb, "cannot be opened as a DuckDB database"), (newer, "newer than this"),
                           (foreign, "not an effbench database"), (merged, "destination DB itself"),
                           (tmp_path / "missing.duckdb", "no such file")):
        result = CliRunner().invoke(cli, ["merge", str(shard), str(source), "--db", str(merged)])
        assert result.exit_code == 1 and needle in result.output, result.output
        assert len(result.output.splitlines()) == 1
    assert counts(merged) == before


# ----------------------------------------------------------------------------- hostile input


def test_command_line_filters_reach_sql_only_as_parameters(shard, tmp_path):
    db = tmp_path / "db.duckdb"
    invoke("ingest", shard, "--db", db)
    before = counts(db)
    hostile = "x' OR '1'='1"
    result = CliRunner().invoke(cli, ["compare", hostile, "'; DROP TABLE results; --", "--db", str(db)])
    assert result.exit_code == 1 and f"no run or commit {hostile!r}" in result.output
    result = CliRunner().invoke(cli, ["run", "--method", "adamw' OR 1=1 --", "--db", str(db)])
    assert result.exit_code == 1 and "unknown method" in result.output
    assert counts(db) == before


def test_query_is_read_only(shard, tmp_path):
    db = tmp_path / "db.duckdb"
    invoke("ingest", shard, "--db", db)
    before = counts(db)
    result = CliRunner().invoke(cli, ["query", "DELETE FROM results", "--db", str(db)])
    assert result.exit_code == 1 and "read-only" in result.output.lower()
    assert counts(db) == before


def test_no_pickle_or_eval_of_stored_data():
    """Stored data is JSON, Parquet and DuckDB only: nothing in effbench can run code found in it."""
    unsafe_modules = {"pickle", "cPickle", "dill", "marshal", "shelve", "joblib"}
    for path in (ROOT / "effbench").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = {a.name.split(".")[0] for a in node.names}
                names.add((getattr(node, "module", None) or "").split(".")[0])
                assert not names & unsafe_modules, f"{path}:{node.lineno}"
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name | ast.Attribute):
                name = ast.unparse(node.func)
                assert name not in ("eval", "exec", "torch.load", "yaml.load", "yaml.unsafe_load"), (path, node.lineno)


def test_plugins_load_only_from_named_paths(tmp_path):
    marker = tmp_path / "imported"
    planted = f"open({str(marker)!r}, 'w').close()\n"
    (tmp_path / "effbench_plugin.py").write_text(planted)
    (tmp_path / "plugin.py").write_text(planted)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "effbench", "list", "--json"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and not marker.exists()
    failing = tmp_path / "failing.py"
    failing.write_text("raise RuntimeError('broken plugin')\n")
    result = CliRunner().invoke(cli, ["list", "--plugin", str(failing)])
    assert result.exit_code == 1 and "failed to import: RuntimeError: broken plugin" in result.output


def test_a_shard_has_one_writer(shard, tmp_path):
    from effbench.run.shards import Shard, ShardBusy

    contents = read_shard(shard)
    copy = tmp_path / shard.name
    copy.write_bytes(shard.read_bytes())
    first = Shard(copy, contents.header, resume_at=contents.good_bytes)
    try:
        with pytest.raises(ShardBusy, match="being written by another effbench process"):
            Shard(copy, contents.header, resume_at=contents.good_bytes)
    finally:
        first.close()
    Shard(copy, contents.header, resume_at=contents.good_bytes).close()  # free again once the first closes
    assert copy.read_bytes() == shard.read_bytes()  # resuming at the trusted end keeps every byte


@pytest.mark.parametrize("grids, needle", [
    ("{'smoke': [{'N': 4}], 'cpu': []}", "must name exactly the grids"),
    ("{'smoke': {'N': 4}, 'cpu': [], 'gpu': []}", "must be a list of points"),
    ("{'smoke': [[4, 8]], 'cpu': [], 'gpu': []}", "not a dict of named values"),
    ("{'smoke': [{'N': [4]}], 'cpu': [], 'gpu': []}", "must be numbers, strings or booleans"),
    ("{'smoke': [{'N': 4}, {'N': 4}], 'cpu': [], 'gpu': []}", "repeats the point N=4"),
])
def test_a_plugin_task_with_malformed_grid_points_is_one_line(tmp_path, grids, needle):
    plugin = tmp_path / "bad_task.py"
    plugin.write_text(
        "import dataclasses\n"
        "from effbench.tasks.linear_cross_entropy import task as base\n"
        f"task = dataclasses.replace(base, name='malformed', grids={grids})\n"
    )
    result = CliRunner().invoke(cli, ["list", "--plugin", str(plugin)])
    assert result.exit_code == 1 and needle in result.output, result.output
    assert len(result.output.splitlines()) == 1 and "Traceback" not in result.output
