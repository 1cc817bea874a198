import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from effbench.cli import cli
from effbench.rows import FAMILIES
from tests.conftest import PLUGINS


def invoke(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_every_command_documents_an_example():
    for name in cli.commands:
        result = invoke(name, "--help")
        assert result.exit_code == 0, name
        assert "Example:" in result.output, f"`effbench {name} --help` has no Example"


def test_list_json_shape():
    result = invoke("list", "--json")
    entries = json.loads(result.output)
    assert {e["family"] for e in entries} == set(FAMILIES)
    for entry in entries:
        assert {"family", "task", "method", "impls", "paper", "kind"} <= set(entry)
        assert entry["kind"] == "schedule" or "reference" in entry["impls"]
    adamw = next(e for e in entries if e["method"] == "adamw")
    assert adamw["paper"] == "Decoupled Weight Decay Regularization" and adamw["arxiv"] == "1711.05101"
    only = json.loads(invoke("list", "--family", "attention", "--json").output)
    assert {e["family"] for e in only} == {"attention"}


def test_list_shows_the_optimizer_catalog_with_papers():
    entries = json.loads(invoke("list", "--family", "optimizer", "--json").output)
    rules = [e for e in entries if e["task"] == "optimizer/step"]
    schedules = [e for e in entries if e["kind"] == "schedule"]
    assert len(rules) >= 13 and all(e["paper"] for e in rules)
    assert {e["method"] for e in schedules} >= {"constant", "cosine", "linear_decay", "wsd", "refined"}
    assert all(e["arxiv"] for e in schedules if e["method"] != "constant")
    # every rule is also a convergence method, so it runs on the workloads
    assert {e["method"] for e in rules} <= {e["method"] for e in entries if e["kind"] == "workload"}


@pytest.mark.parametrize(
    "args, needle",
    [
        (["run", "--family", "losses"], "unknown family 'losses'; valid: attention, loss, optimizer, sampler"),
        (["run", "--method", "adamz"], "unknown method 'adamz'; valid:"),
        (["run", "--impl", "warp"], "unknown impl 'warp'; valid:"),
        (["run", "--grid", "huge"], "unknown grid 'huge'; valid: cpu, gpu, gpu-smoke, smoke"),
        (["run", "--task", "nope"], "unknown task 'nope'; valid:"),
        (["run", "--device", "tpu"], "unknown device 'tpu'"),
        (["run", "--plugin", "/no/such/plugin.py"], "plugin file not found"),
        (["list", "--family", "x"], "unknown family 'x'"),
        (["query", "SELECT 1", "--db", "/no/such/dir/x.duckdb"], "no database at"),
        (["ingest", "/no/such/shard.jsonl", "--db", "DBPATH"], "no such file or directory"),
        (["site", "--db", "/no/such/x.duckdb"], "no database at"),
        (["run", "--method", ",,", "--impl", " , "], "empty name filter ',,'"),
        (["run", "--seeds", "100000000"], "seed count '100000000'; valid: an integer from 1 to 1000"),
        (["run", "--memory-limit", "nan"], "unknown memory limit 'nan'"),
        (["compare", "a", "b", "--threshold", "nan"], "--threshold must be above 1"),
        (["ingest", "x" * 300, "--db", "DBPATH"], "File name too long"),
    ],
)
def test_bad_input_is_one_clear_line(args, needle, tmp_path):
    args = [str(tmp_path / "db.duckdb") if a == "DBPATH" else a for a in args]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code != 0
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert needle in lines[0]


def test_cli_as_a_process_prints_no_traceback():
    proc = subprocess.run([sys.executable, "-m", "effbench", "run", "--family", "nope"], capture_output=True,
                          text=True)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr and "unknown family 'nope'" in proc.stderr


def test_run_query_ingest_site_end_to_end(tmp_path):
    db = tmp_path / "results" / "effbench.duckdb"
    result = CliRunner().invoke(cli, ["run", "--task", "optimizer/step", "--method", "adamw", "--grid", "smoke",
                                      "--seeds", "1", "--db", str(db)])
    assert result.exit_code == 0, result.output
    assert "rows added" in result.output
    shards = list((tmp_path / "results" / "local" / "runs").glob("*.jsonl"))  # git-ignored
    assert len(shards) == 1
    rows = json.loads(invoke("query", "SELECT impl, metric, value, status, message FROM results "
                             "WHERE metric = 'time_ms'", "--db", str(db), "--json").output)
    assert {r["impl"] for r in rows} == {"reference", "torch_foreach", "torch_fused", "triton"}
    assert all(r["status"] == "ok" for r in rows)
    assert all(r["value"] > 0 for r in rows if r["impl"] != "triton")
    triton = next(r for r in rows if r["impl"] == "triton")  # tests run Triton in its CPU interpreter
    assert triton["value"] is None and "interpreter" in triton["message"]
    csv_out = invoke("query", "SELECT count(*) AS n FROM runs", "--db", str(db), "--csv").output
    assert csv_out.splitlines() == ["n", "1"]
    again = invoke("ingest", str(shards[0]), "--db", str(db))
    assert "nothing new" in again.output
    site = invoke("site", "--db", str(db), "--out", str(tmp_path / "site"))
    assert site.exit_code == 0 and (tmp_path / "site" / "optimizer.html").is_file()


def test_plugin_run_records_error_wrong_ok(tmp_path):
    """The spine's acceptance case: one run with a raising, a NaN and a correct plugin method goes to the end."""
    db = tmp_path / "db.duckdb"
    result = CliRunner().invoke(cli, ["run", "--plugin", str(PLUGINS / "three_statuses.py"), "--task",
                                      "linear_cross_entropy", "--method", "plugin_raises,plugin_nan,plugin_correct",
                                      "--grid", "smoke", "--seeds", "1", "--all-points", "--db", str(db)])
    assert result.exit_code == 0, result.output
    rows = json.loads(invoke("query", "SELECT DISTINCT method, status FROM results WHERE method LIKE 'plugin_%' "
                             "AND status != 'skipped'", "--db", str(db), "--json").output)
    statuses = {r["method"]: r["status"] for r in rows}
    # plugin_nan's only implementation is its reference: a NaN truth is a broken reference (an error), never a pass
    assert len(rows) == 3 and statuses == {"plugin_raises": "error", "plugin_nan": "error", "plugin_correct": "ok"}
    nan = json.loads(invoke("query", "SELECT DISTINCT message FROM results WHERE method = 'plugin_nan' AND "
                            "status = 'error'", "--db", str(db), "--json").output)
    assert nan and all(m["message"].startswith("broken reference: the float64 truth of 'out'") for m in nan)
    skipped = json.loads(invoke("query", "SELECT DISTINCT message FROM results WHERE status = 'skipped'",
                                "--db", str(db), "--json").output)
    assert skipped == [{"message": "this implementation takes no z_loss, label_smoothing option"}]
    messages = json.loads(invoke("query", "SELECT DISTINCT message FROM results WHERE method = 'plugin_raises' "
                                 "AND status = 'error'", "--db", str(db), "--json").output)
    assert messages and all("RuntimeError: this plugin method always fails" in m["message"] for m in messages)


def test_zoo_lists_every_dataset_and_model():
    from effbench.data import DATASETS
    from effbench.workloads import MODELS

    zoo = json.loads(invoke("zoo", "--json").output)
    assert {d["name"] for d in zoo["datasets"]} == set(DATASETS)
    assert {m["name"] for m in zoo["models"]} == set(MODELS)
    assert all(len(d["content_hash"]) == 16 for d in zoo["datasets"])
