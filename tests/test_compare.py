"""`effbench compare`: a planted 2x slowdown is flagged (exit 1); two runs of the same code stay quiet; the
smoke grid's numbers are not judged unless asked (they are checks, not timings)."""

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
    base = _run(db, monkeypatch, 1)
    same = _run(db, monkeypatch, 1)
    slow = _run(db, monkeypatch, 2)

    quiet = CliRunner().invoke(cli, ["compare", base, same, "--db", str(db), "--metric", "time_ms"])
    assert quiet.exit_code == 0, quiet.output
    assert "0 regression(s)" in quiet.output

    flagged = CliRunner().invoke(cli, ["compare", base, slow, "--db", str(db), "--metric", "time_ms"])
    assert flagged.exit_code == 1, flagged.output
    frame = changes(db, base, slow, ("time_ms",))
    sleepy = frame.filter(frame["impl"] == "sleepy")
    assert sleepy.height == 2 and set(sleepy["verdict"]) == {"regression"}  # both points
    assert all(1.7 < r < 2.3 for r in sleepy["ratio"])
    assert all(p < 0.01 for p in sleepy["p_value"])  # Mann-Whitney on the raw samples (5 or more a side)
    # the reference beside it did not change: not flagged
    assert set(frame.filter(frame["impl"] == "reference")["verdict"]) == {"same"}
    # and the other direction is an improvement, exit 0
    back = CliRunner().invoke(cli, ["compare", slow, base, "--db", str(db), "--metric", "time_ms", "--json"])
    assert back.exit_code == 0
    assert {r["verdict"] for r in json.loads(back.output) if r["impl"] == "sleepy"} == {"improvement"}


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
