"""Issue #16: a run as a newcomer and a CI log see it. Signals end a run cleanly (no orphan worker, no
bogus row, a line saying how to resume, and --resume finishes it); output to a pipe is plain and complete;
--dry-run estimates from earlier runs or declared costs; smoke runs each method once."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from effbench.cli import cli
from effbench.run.shards import read_shard
from effbench.store import Store
from tests.conftest import PLUGINS, ROOT

FAULTY = str(PLUGINS / "faulty.py")
RUN = [sys.executable, "-m", "effbench", "run", "--plugin", FAULTY, "--method", "planted_faults", "--grid", "smoke"]


def wait_for(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def case_dones(runs: Path) -> int:
    return sum(p.read_text().count('"type":"case_done"') for p in runs.glob("*.jsonl")) if runs.exists() else 0


def children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has ended; only its exit status waits to be read


def statuses(db: Path) -> list[tuple[str, str]]:
    with Store(db, read_only=True) as store:
        frame = store.query("SELECT DISTINCT impl, status, point_key, seed FROM results ORDER BY impl")
    return [(r["impl"], r["status"]) for r in frame.iter_rows(named=True)]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_to_the_run_s_process_group_saves_finished_cases_and_resume_finishes_the_run(tmp_path, sig):
    """SIGINT (Ctrl-C) and SIGTERM (a CI cancel) to the process group: exit 128 + n, the worker gone, no row for
    the case in flight, the finished cases in the DB and the resume command printed; --resume finishes it."""
    db, runs = tmp_path / "db.duckdb", tmp_path / "local" / "runs"
    command = [*RUN, "--impl", "reference,correct,slow", "--db", str(db)]
    # its own process group, as a terminal or a CI runner gives it: the signal goes to the whole group
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    wait_for(lambda: case_dones(runs) >= 2, 180, "two finished cases")
    time.sleep(0.5)  # 'slow' (5 s) is in flight
    workers = children(proc.pid)
    assert workers, "the run has a worker process"
    os.killpg(proc.pid, sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig, err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"interrupted by {sig.name}; 2 finished cases saved to {db}; to finish the run: ")
    assert last.endswith("--resume")
    wait_for(lambda: not any(alive(w) for w in workers), 10, "the worker to end")
    assert statuses(db) == [("correct", "ok"), ("reference", "ok")]  # no row for the case cut short
    if sig == signal.SIGINT:
        return  # resuming does not depend on which signal stopped the run: SIGTERM's case resumes

    # the resumed 'slow' need not be slow (its timed calls would take 5 s each): the environment is no part of
    # the plan, so this is the same run
    quick = {**os.environ, "EFFBENCH_TEST_SLOW_S": "0.05"}
    again = subprocess.run([*command, "--resume"], cwd=ROOT, capture_output=True, text=True, timeout=300, env=quick)
    assert again.returncode == 0, again.stderr
    (shard,) = runs.glob("*.jsonl")
    done = read_shard(shard)
    assert "resuming run " + done.run.run_id in again.stderr
    assert done.complete and len(done.done) == 3
    assert statuses(db) == [("correct", "ok"), ("reference", "ok"), ("slow", "ok")]
    with Store(db, read_only=True) as store:
        assert store.query("SELECT count(*) AS n FROM runs")["n"][0] == 1
        per_metric = store.query("SELECT impl, metric, count(*) AS n FROM results GROUP BY ALL")
    assert per_metric["n"].max() == 1 and set(per_metric["impl"]) == {"reference", "correct", "slow"}


def test_interrupt_before_any_case_finished_says_so(tmp_path):
    db, runs = tmp_path / "db.duckdb", tmp_path / "local" / "runs"
    proc = subprocess.Popen([*RUN, "--impl", "slow", "--db", str(db)], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    wait_for(lambda: children(proc.pid) and runs.exists() and any(runs.glob("*.jsonl")), 120, "the worker")
    time.sleep(4)  # the worker is importing or running 'slow'
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM
    assert "no case had finished; nothing to save" in err and "rows" not in err.splitlines()[-1]


def test_the_worker_dies_with_a_parent_killed_by_sigkill(tmp_path):
    db, runs = tmp_path / "db.duckdb", tmp_path / "local" / "runs"
    proc = subprocess.Popen([*RUN, "--impl", "reference,slow", "--db", str(db)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: case_dones(runs) >= 1, 180, "a finished case")
    workers = children(proc.pid)
    assert workers
    proc.kill()
    proc.wait(timeout=30)
    wait_for(lambda: not any(alive(w) for w in workers), 10, "the orphaned worker to die")


def test_a_stray_sigint_to_the_worker_does_not_fail_its_case(tmp_path):
    db, runs = tmp_path / "db.duckdb", tmp_path / "local" / "runs"
    env = dict(os.environ, EFFBENCH_TEST_SLOW_S="1.5")
    proc = subprocess.Popen([*RUN, "--impl", "reference,slow", "--db", str(db)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: case_dones(runs) >= 1, 180, "a finished case")
    time.sleep(0.5)
    for worker in children(proc.pid):
        os.kill(worker, signal.SIGINT)  # a Ctrl-C that reached the worker alone
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert statuses(db) == [("reference", "ok"), ("slow", "ok")]


def test_piped_run_output_is_plain_lines_with_progress_and_a_summary_table(tmp_path):
    db = tmp_path / "db.duckdb"
    env = dict(os.environ, EFFBENCH_PROGRESS_INTERVAL_S="0.5", EFFBENCH_TEST_SLOW_S="1")
    proc = subprocess.run([*RUN, "--impl", "reference,off,slow,missing_peer", "--db", str(db)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    err = proc.stderr
    assert "[red]" not in err and "[/]" not in err and "\x1b[" not in err and "━" not in err
    lines = err.splitlines()
    assert lines[0].startswith("16 cases on grid smoke") and "estimated" in lines[0]  # 4 impls x 4 points
    wrong = [line for line in lines if line.startswith("wrong [")]
    assert len(wrong) == 1 and "planted_faults/off" in wrong[0] and "above its tolerance" in wrong[0]
    missing = [line for line in lines if line.startswith("unavailable [")]
    assert len(missing) == 1 and "surely_not_an_installed_package" in missing[0]
    progress = [line for line in lines if line.startswith("progress: ")]
    assert any("running loss/linear_cross_entropy planted_faults/slow" in line for line in progress)
    assert all("ETA" in line and "elapsed" in line for line in progress)
    header = next(i for i, line in enumerate(lines) if line.split()[:3] == ["task", "cases", "ok"])
    assert lines[header].split() == ["task", "cases", "ok", "wrong", "unavailable"]
    assert lines[header + 1].split() == ["loss/linear_cross_entropy", "4", "2", "1", "1"]
    assert lines[-1].startswith("run ") and "4 cases (ok 2, unavailable 1, wrong 1)" in lines[-1]
    with Store(db, read_only=True) as store:
        cases = store.query("SELECT status, wall_s FROM cases")
        ended = store.query("SELECT started_at, ended_at FROM runs").row(0)
    assert sorted(cases["status"]) == ["ok", "ok", "unavailable", "wrong"] and all(w >= 0 for w in cases["wall_s"])
    assert max(cases["wall_s"]) >= 2  # 'slow' sleeps 2 s
    assert ended[1] is not None and ended[1] >= ended[0]


def test_redirected_query_and_list_are_complete(tmp_path):
    db = tmp_path / "db.duckdb"
    Store(db).close()
    long = "x" * 300
    out = subprocess.run([sys.executable, "-m", "effbench", "query", f"SELECT '{long}' AS a, 'b [red]c[/]' AS b",
                          "--db", str(db)], cwd=ROOT, capture_output=True, text=True, timeout=60).stdout
    assert out.splitlines() == ["a" + " " * 301 + "b", f"{long}  b [red]c[/]"]
    listed = subprocess.run([sys.executable, "-m", "effbench", "list"], cwd=ROOT, capture_output=True, text=True,
                            timeout=120).stdout
    entries = json.loads(CliRunner().invoke(cli, ["list", "--json"]).output)
    assert all(f"(arXiv:{e['arxiv']})" in listed for e in entries if e["arxiv"])
    assert all(e["paper"] in listed for e in entries if e["paper"])
    assert "…" not in listed and "━" not in listed


def test_dry_run_estimates_from_declared_costs_then_from_earlier_runs(tmp_path):
    db = tmp_path / "db.duckdb"
    fresh = CliRunner().invoke(cli, ["run", "--grid", "cpu", "--dry-run", "--db", str(db)])
    assert fresh.exit_code == 0 and not db.exists()  # a dry run writes nothing
    lines = fresh.output.splitlines()
    assert lines[0].split() == ["task", "cases", "estimate", "from"]
    assert any(line.startswith("attention/lm") and "declared cost 150" in line for line in lines)
    assert lines[-1].startswith(
        "grid cpu on cpu, 3 seed(s) per kernel case, 5 per workload case: 3657 cases, estimated ") and "h" in lines[-1]

    command = ["run", "--plugin", FAULTY, "--method", "planted_faults", "--impl", "reference,correct", "--grid",
               "smoke", "--db", str(db)]
    assert CliRunner().invoke(cli, command).exit_code == 0
    again = CliRunner().invoke(cli, [*command, "--dry-run"])
    row = next(line for line in again.output.splitlines() if line.startswith("loss/linear_cross_entropy"))
    assert "2 (of 8 planned)" in row and "this case before 2" in row  # 2 impls x 4 smoke points


def test_smoke_runs_every_method_once_at_its_first_covered_point(registry, tmp_path):
    from effbench.run.plan import make_config, plan
    from effbench.run.session import run_cases

    config = make_config("smoke", "cpu")
    assert config.seeds == 1 and config.points == "first_covered" and not config.timed
    cases = plan(registry, config, task="sampler/data_selection", method="uniform,dsir,el2n")
    seen = []
    summary = run_cases(registry, cases, config, tmp_path, on_case=lambda c, r: seen.append((c, r.status)),
                        in_process=True)
    ran = {}
    for case, status in seen:
        ran.setdefault(case.method, []).append((case.point["data"], status))
    # every method runs once, not skipped; one that does not cover the first point is skipped there first
    assert all(points[-1][1] == "ok" and all(s == "skipped" for _, s in points[:-1]) for points in ran.values())
    assert ran == {"uniform": [("digits", "ok")], "el2n": [("digits", "ok")],
                   "dsir": [("digits", "skipped"), ("stdlib_mixed_pool", "ok")]}
    assert summary.ran + summary.dropped == len(cases) and summary.dropped > 0


def test_resume_picks_the_interrupted_run_with_the_most_finished_cases(faulty_registry, tmp_path):
    """A fresh run started (and stopped) after an interruption must not strand the earlier run's cases."""
    from effbench.run.plan import make_config, plan
    from effbench.run.provenance import plan_fingerprint
    from effbench.run.session import run_cases
    from effbench.run.shards import find_resumable

    config = make_config("smoke", "cpu")
    cases = plan(faulty_registry, config, method="planted_faults", impl="reference,correct,sleepy")

    def stop_after(n):
        seen = []

        def on_case(case, result):
            seen.append(case)
            if len(seen) == n:
                raise KeyboardInterrupt

        return on_case

    for finished in (2, 1):  # the earlier run got further than the later one
        with pytest.raises(KeyboardInterrupt):
            run_cases(faulty_registry, cases, config, tmp_path, in_process=True, on_case=stop_after(finished))
        time.sleep(1.1)  # run ids start with the second they started in
    path, contents = find_resumable(tmp_path, plan_fingerprint(config, cases, faulty_registry.plugins))
    assert len(contents.done) == 2 and not contents.complete
    assert path == min(tmp_path.glob("*.jsonl"))  # the older run


def test_gpu_smoke_is_the_headline_selection_and_plans_without_a_gpu(tmp_path):
    from effbench.registry import discover
    from effbench.run.plan import make_config, plan

    config = make_config("gpu-smoke", "cuda", dry_run=True)  # no GPU here: a plan needs none
    assert config.base_grid == "gpu" and config.timed and config.seeds == 1
    cases = plan(discover(), config)
    chosen = {(c.task, c.method, c.impl, c.point_key, c.dtype) for c in cases}
    assert len(cases) == len(chosen) == 25 and {c.device for c in cases} == {"cuda"}
    ce = {c.impl for c in cases if c.task == "loss/linear_cross_entropy"}
    assert ce == {"reference", "compile", "chunked", "triton_linear_ce", "liger", "cce", "cce_unfiltered"}
    assert {c.point_key for c in cases if c.task == "loss/linear_cross_entropy"} == {
        "D=2304,N=8192,V=256000,ignore_frac=0.0,softmax=trained"}  # Gemma-2's head, a trained LM's softmax
    assert {c.dtype for c in cases if c.task == "optimizer/step"} == {"float32", "bfloat16"}
    attention = [(c.impl, c.point) for c in cases if c.task == "attention/masked_attention"]
    assert {p["N"] for _, p in attention} == {4096, 16384} and {p["d"] for _, p in attention} == {128}
    assert {i for i, _ in attention} == {"reference", "sdpa", "flex", "triton", "flash_attn"}
    dry = CliRunner().invoke(cli, ["run", "--grid", "gpu-smoke", "--device", "cuda", "--dry-run", "--db",
                                   str(tmp_path / "db.duckdb")])
    assert dry.exit_code == 0, dry.output
    assert dry.output.splitlines()[-1].startswith("grid gpu-smoke on cuda, 1 seed(s): 25 cases, estimated ")
    if not torch.cuda.is_available():  # running it needs the device
        real = CliRunner().invoke(cli, ["run", "--grid", "gpu-smoke", "--device", "cuda", "--db",
                                        str(tmp_path / "db.duckdb")])
        assert real.exit_code != 0 and "unknown device 'cuda'" in real.output
