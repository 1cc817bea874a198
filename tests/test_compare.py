"""`effbench compare`: a planted 2x slowdown is flagged (exit 1); two runs of the same code stay quiet; the
smoke grid's numbers are not judged unless asked (they are checks, not timings)."""

import itertools
import json

from click.testing import CliRunner

from effbench.analysis import changes, resolve_runs
from effbench.cli import cli
from tests.conftest import PLUGINS


def _run(db, monkeypatch, slowdown, grid="cpu"):
    monkeypatch.setenv("EFFBENCH_TEST_SLOWDOWN", str(slowdown))  # workers inherit the environment
    result = CliRunner().invoke(cli, ["run", "--plugin", str(PLUGINS / "tunable_speed.py"), "--task",
                                      "loss/tunable_speed", "--grid", grid, "--seeds", "1", "--all-points",
                                      "--db", str(db)])
    assert result.exit_code == 0, result.output
    rows = json.loads(CliRunner().invoke(cli, ["query", "SELECT run_id FROM runs ORDER BY started_at DESC, "
                                               "run_id DESC LIMIT 1", "--db", str(db), "--json"]).output)
    return rows[0]["run_id"]


def test_planted_slowdown_is_a_regression_and_identical_runs_are_quiet(tmp_path, monkeypatch):
    db = tmp_path / "db.duckdb"
    same = [_run(db, monkeypatch, 1) for _ in range(3)]
    slow = _run(db, monkeypatch, 1.3)

    # three runs of the same code, every pair in both orders, time and memory: quiet (memory has a noise floor)
    for base, head in itertools.permutations(same, 2):
        frame = changes(db, base, head)
        assert set(frame["metric"]) == {"time_ms", "peak_mem_bytes"}
        assert set(frame["verdict"]) == {"same"}, frame.filter(frame["verdict"] != "same").to_dicts()
    quiet = CliRunner().invoke(cli, ["compare", same[0], same[1], "--db", str(db)])
    assert quiet.exit_code == 0 and "0 regression(s)" in quiet.output, quiet.output

    flagged = CliRunner().invoke(cli, ["compare", same[0], slow, "--db", str(db), "--metric", "time_ms"])
    assert flagged.exit_code == 1, flagged.output
    frame = changes(db, same[0], slow, ("time_ms",))
    sleepy = frame.filter(frame["impl"] == "sleepy")
    assert sleepy.height == 2 and set(sleepy["verdict"]) == {"regression"}  # both points
    assert all(1.2 < r < 1.4 for r in sleepy["ratio"])
    assert all(p < 0.01 for p in sleepy["p_value"])  # Mann-Whitney on the raw samples (5 or more a side)
    # the reference beside it did not change: not flagged
    assert set(frame.filter(frame["impl"] == "reference")["verdict"]) == {"same"}
    # and the other direction is an improvement, exit 0
    back = CliRunner().invoke(cli, ["compare", slow, same[0], "--db", str(db), "--metric", "time_ms", "--json"])
    assert back.exit_code == 0
    assert {r["verdict"] for r in json.loads(back.output) if r["impl"] == "sleepy"} == {"improvement"}


def test_memory_changes_within_the_noise_floor_are_not_changes(tmp_path):
    """1.31x of 3.1 MB is 1 MB of RSS jitter (seen between identical runs); 1.31x of 100 MB is a regression."""
    from effbench.rows import Result, Run
    from effbench.store import Store

    db = tmp_path / "db.duckdb"
    records = []
    for run_id, started, factor in (("base", "2026-12-01T00:00:00+00:00", 1.0), ("head", "2026-12-02T00:00:00+00:00",
                                                                                   1.31)):
        records.append(Run(run_id, started, None, None, "m", "cpu", None, None, 2, "3", None, None, None, "0", "cpu",
                           "effbench", "effbench run"))
        for impl, mib in (("small", 3.1), ("large", 100.0)):
            records.append(Result(run_id, "loss", "loss/x", "m", impl, "N=1", "{}", "float32", "cpu", 0,
                                  "peak_mem_bytes", mib * factor * (1 << 20), "bytes", "ok", "", "", ""))
    with Store(db) as store:
        store.insert(records)
    verdicts = {r["impl"]: r["verdict"] for r in changes(db, "base", "head").iter_rows(named=True)}
    assert verdicts == {"small": "same", "large": "regression"}


def test_smoke_timings_are_not_judged(tmp_path, monkeypatch):
    db = tmp_path / "db.duckdb"
    base = _run(db, monkeypatch, 1, grid="smoke")
    slow = _run(db, monkeypatch, 2, grid="smoke")
    untimed = CliRunner().invoke(cli, ["compare", base, slow, "--db", str(db), "--metric", "time_ms"])
    assert untimed.exit_code == 0, untimed.output
    assert "0 regression(s)" in untimed.output and "not for comparison" in untimed.output
    assert set(changes(db, base, slow, ("time_ms",))["verdict"]) == {"untimed"}
    judged = changes(db, base, slow, ("time_ms",), judge_untimed=True)
    assert "untimed" not in set(judged["verdict"])  # judged when asked


def test_a_status_that_turns_bad_is_a_regression_even_on_the_smoke_grid(tmp_path, monkeypatch):
    db = tmp_path / "db.duckdb"
    base = _run(db, monkeypatch, 1, grid="smoke")
    monkeypatch.setenv("EFFBENCH_TEST_WRONG", "1")
    broken = _run(db, monkeypatch, 1, grid="smoke")
    result = CliRunner().invoke(cli, ["compare", base, broken, "--db", str(db), "--metric", "time_ms", "--json"])
    assert result.exit_code == 1, result.output
    rows = [r for r in json.loads(result.output) if r["impl"] == "sleepy" and r["head_status"] == "wrong"]
    assert rows and {r["verdict"] for r in rows} == {"regression"}
    assert {r["verdict"] for r in json.loads(result.output) if r["impl"] == "reference"} == {"untimed"}


def test_runs_are_named_by_id_or_commit_and_bad_names_are_one_line(tmp_path, monkeypatch):
    db = tmp_path / "db.duckdb"
    run_id = _run(db, monkeypatch, 1, grid="smoke")
    commit = json.loads(CliRunner().invoke(cli, ["query", "SELECT git_commit FROM runs", "--db", str(db),
                                                 "--json"]).output)[0]["git_commit"]
    assert resolve_runs(db, run_id) == [run_id]
    if commit:
        assert run_id in resolve_runs(db, commit[:10])
    result = CliRunner().invoke(cli, ["compare", run_id, "nope", "--db", str(db)])
    assert result.exit_code != 0 and "no run or commit 'nope'" in result.output
    assert "Traceback" not in result.output
    bad = CliRunner().invoke(cli, ["compare", run_id, run_id, "--db", str(db), "--threshold", "0.5"])
    assert bad.exit_code != 0 and "--threshold must be above 1" in bad.output
