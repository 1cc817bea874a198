"""`effbench report`: findings tables from the DB, kept in documents between markers and checked against the data.
The committed runs and docs/findings.md: every generated block there must still be what the DB gives."""

import subprocess
import sys

import pytest

from effbench.report import Report, ReportError
from tests.conftest import ROOT

FINDINGS = ROOT / "docs" / "findings.md"


@pytest.fixture(scope="module")
def committed_db(tmp_path_factory):
    db = tmp_path_factory.mktemp("committed") / "committed.duckdb"
    subprocess.run([sys.executable, "-m", "effbench", "ingest", str(ROOT / "results" / "runs"), "--db", str(db)],
                   check=True, capture_output=True)
    return db


def report(*args):
    return subprocess.run([sys.executable, "-m", "effbench", "report", *map(str, args)], capture_output=True,
                          text=True)


def test_findings_match_the_committed_runs(committed_db):
    done = report("--db", committed_db, "--check", FINDINGS)
    assert done.returncode == 0, done.stderr
    assert "7 blocks match" in done.stdout


def test_readme_blocks_match_the_committed_runs(committed_db):
    done = report("--db", committed_db, "--check", ROOT / "README.md")
    assert done.returncode == 0, done.stderr
    assert "1 blocks match" in done.stdout


def test_a_drifted_number_fails_the_check_with_its_difference(committed_db, tmp_path):
    text = FINDINGS.read_text()
    drifted = tmp_path / "findings.md"
    assert "| 1.84 s | 1500 MiB |" in text  # the linear-CE reference at its largest cpu point
    drifted.write_text(text.replace("| 1.84 s | 1500 MiB |", "| 1.20 s | 1500 MiB |", 1))
    done = report("--db", committed_db, "--check", drifted)
    assert done.returncode == 1
    assert "block 'kernel loss/linear_cross_entropy' differs" in done.stderr
    assert "-| linear_cross_entropy | reference | float32 | 1.20 s" in done.stderr
    assert "+| linear_cross_entropy | reference | float32 | 1.84 s" in done.stderr
    fixed = report("--db", committed_db, "--write", drifted)  # --write puts the DB's numbers back
    assert fixed.returncode == 0 and drifted.read_text() == text


def test_blocks_and_their_errors(committed_db):
    reporter = Report(committed_db)
    table = reporter.render("workload optimizer/convergence")
    assert table.startswith("Runs `") and "| adamw (baseline) |" in table and "ρ(1)" in table
    with pytest.raises(ReportError, match="unknown block kind 'plot'"):
        reporter.render("plot optimizer/convergence")
    with pytest.raises(ReportError, match="no results of task 'loss/nothing'"):
        reporter.render("kernel loss/nothing")
    text = "a\n<!-- effbench report: workload loss/memorization -->\nstale\n<!-- effbench report: end -->\nb\n"
    assert [spec for spec, _ in reporter.blocks(text)] == ["workload loss/memorization"]
    updated = reporter.update(text)
    assert updated.startswith("a\n<!-- effbench report: workload loss/memorization -->\nRuns `")
    assert updated.endswith("<!-- effbench report: end -->\nb\n") and reporter.check(updated) == []
    assert [m.spec for m in reporter.check(text)] == ["workload loss/memorization"]


def test_kernel_block_takes_the_largest_point_by_declared_sizes(committed_db):
    """The committed linear-CE run has a goldfish point (goldfish_k = 4, N = 2048): by every integer of the point
    it would be the largest; by the task's declared sizes (N, D, V) the largest is N = 4096."""
    sizes = {"loss/linear_cross_entropy": ["N", "D", "V"]}
    assert Report(committed_db, sizes).render("kernel loss/linear_cross_entropy").startswith(
        "At `D=256,N=4096,V=32000,ignore_frac=0.1`")
    # the shards predate tasks.sizes: the ingest filled it from the registry, so the DB alone knows it too
    assert Report(committed_db).render("kernel loss/linear_cross_entropy").startswith(
        "At `D=256,N=4096,V=32000,ignore_frac=0.1`")


def test_report_prints_a_block_per_task_and_refuses_unknown_ones(committed_db):
    done = report("--db", committed_db, "memorization")
    assert done.returncode == 0 and done.stdout.startswith("workload loss/memorization\n\nRuns `")
    bad = report("--db", committed_db, "nothing")
    assert bad.returncode == 1 and "no results of task 'nothing' in the DB" in bad.stderr


def test_a_newer_smoke_run_changes_no_workload_block(committed_db, tmp_path):
    """A smoke check run after the committed cpu runs, on the same machine and cases, with other numbers: the
    workload and matrix blocks still read the cpu grid alone (the newest run per case would be the smoke one)."""
    import shutil

    from effbench.rows import Result, Run
    from effbench.store import Store

    task = "loss/memorization"
    before = {kind: Report(committed_db).render(f"{kind} {task}") for kind in ("workload", "matrix")}
    db = tmp_path / "with-smoke.duckdb"
    shutil.copyfile(committed_db, db)
    with Store(db) as store:
        rows = store.query(f"SELECT * FROM results WHERE task = '{task}'")
        for n, run_id in enumerate(sorted(set(rows["run_id"]))):  # a smoke twin of each run, on its machine
            run = store.query(f"SELECT * FROM runs WHERE run_id = '{run_id}'").row(0, named=True)
            twin = f"newer-smoke-{n}"
            store.insert([Run(**{**{k: run[k] for k in Run.__dataclass_fields__}, "run_id": twin, "grid": "smoke",
                                 "started_at": f"2030-01-0{n + 1}T00:00:00+00:00", "ended_at": None})])
            store.insert([Result(**{**{k: r[k] for k in Result.__dataclass_fields__}, "run_id": twin,
                                    "value": None if r["value"] is None else r["value"] * 0.5})
                          for r in rows.filter(rows["run_id"] == run_id).iter_rows(named=True)])
    after = Report(db)
    assert {kind: after.render(f"{kind} {task}") for kind in ("workload", "matrix")} == before
    assert before["workload"].startswith("Runs `") and "(grid cpu);" in before["workload"].splitlines()[0]
    assert "newer-smoke" not in before["workload"]
