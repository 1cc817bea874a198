"""Metric declarations: one place per fact, read by the rows, the store, asv and the significance tests."""

import json

import pytest

from effbench.metrics import KERNEL, WORKLOAD, Metric, from_json, resolve, to_json
from effbench.registry import UsageError, discover

PLUGIN = """
from effbench import Method
from effbench.metrics import Metric
from effbench.tasks import KernelTask
from effbench.tasks import linear_cross_entropy as lce

POINT = dict(N=16, D=8, V=32, ignore_frac=0.0)
task = KernelTask(
    family="loss", name="declared_metrics", description="Test double.",
    grids={"smoke": [POINT], "cpu": [POINT], "gpu": [POINT]},
    dtypes={"smoke": ("float32",), "cpu": ("float32",), "gpu": ("float32",)},
    make_inputs=lce.make_inputs, outputs=lce.outputs, tolerance=lce.task.tolerance,
    metrics=("time_ms", "rel_error", "EXTRA"), declares=(DECLARES),
)
method = Method(task="loss/declared_metrics", name="m", summary="Test double.")
method.impl("reference")(lambda *a, **k: None)
"""


def test_a_declaration_names_its_direction_and_refuses_nonsense():
    time = KERNEL["time_ms"]
    assert time.label() == "time_ms [ms, lower is better]" and time.scope == "seed0"
    assert WORKLOAD["final_metric"].higher_is_better and not WORKLOAD["final_loss"].higher_is_better
    assert KERNEL["peak_gb_per_s"].direction == ""  # a ceiling describes the device; it is not a score
    with pytest.raises(ValueError, match="better must be"):
        Metric("x", "ms", "smaller")
    with pytest.raises(ValueError, match="scope must be"):
        Metric("x", "ms", "lower", "per-run")


def test_per_output_errors_and_significance_rows_follow_from_their_metric():
    declared = dict(WORKLOAD)
    assert resolve("rel_error_dx", KERNEL).better == "lower"
    assert resolve("delta_final_metric", declared).better == "higher"  # a positive delta is an improvement
    assert resolve("delta_steps_to_target", declared).unit == "steps"
    assert resolve("p_value_final_metric", declared).better is None
    assert resolve("significant_final_loss", declared).unit == "bool"
    assert resolve("delta_no_such_metric", declared) is None and resolve("gb_per_s_typo", KERNEL) is None


def test_declarations_survive_the_store_round_trip(registry):
    task = registry.task("optimizer/step")
    table = from_json(to_json(task.metric_table))
    assert table == task.metric_table
    assert table["bandwidth_fraction"].better == "higher" and table["state_bytes"].unit == "bytes"
    # a file written before the column existed gets the shared declarations
    assert from_json(None)["final_metric"].higher_is_better


def test_every_task_declares_what_it_compares(registry):
    for key, task in registry.tasks.items():
        for name in getattr(task, "compare", ()):
            assert task.metric(name).better in ("lower", "higher"), (key, name)
    memorization = registry.task("loss/memorization")
    assert memorization.metric("extraction_rate").better == "lower"  # less memorised is the goal


@pytest.mark.parametrize(
    ("extra", "declares", "error"),
    [
        ("made_up_metric", "", "metrics \\['made_up_metric'\\] are not declared"),
        ("made_up_metric", 'Metric("made_up_metric", "ms", "lower"),', None),
    ],
)
def test_the_registry_refuses_a_task_with_an_undeclared_metric(tmp_path, extra, declares, error):
    plugin = tmp_path / "declared.py"
    plugin.write_text(PLUGIN.replace("EXTRA", extra).replace("DECLARES", declares))
    if error:
        with pytest.raises(UsageError, match=error):
            discover([plugin])
    else:
        task = discover([plugin]).task("loss/declared_metrics")
        assert task.metric("made_up_metric").label() == "made_up_metric [ms, lower is better]"


def test_every_stored_row_has_its_tasks_declared_unit(smoke_db):
    """What a smoke run wrote: each row's unit is its task's declaration of the metric, stored beside it."""
    from effbench.store import Store

    db, _ = smoke_db
    with Store(db, read_only=True) as store:
        tables = {t: from_json(m) for t, m in store.query("SELECT task, metrics FROM tasks").iter_rows()}
        rows = store.query("SELECT DISTINCT task, metric, unit FROM results").iter_rows()
        compared = {t: json.loads(c) for t, c in store.query("SELECT task, compare FROM tasks").iter_rows()}
    seen = 0
    for task, metric, unit in rows:
        declared = resolve(metric, tables[task])
        assert declared is not None, (task, metric)
        assert unit == declared.unit, (task, metric, unit)
        seen += 1
    assert seen > 20
    for task, pairs in compared.items():
        for metric, higher in pairs:  # the significance tests' direction is the declaration's
            assert higher == tables[task][metric].higher_is_better, (task, metric)


def test_ingest_declares_the_tasks_of_shards_older_than_declarations(tmp_path):
    """A committed shard from before the column: ingest fills each task's declarations from the installed tasks."""
    from pathlib import Path

    from click.testing import CliRunner

    from effbench.cli import cli
    from effbench.store import Store

    shard = min(Path("results/runs").glob("*.jsonl"), key=lambda p: p.stat().st_size)
    infos = [line for line in shard.read_text().splitlines() if '"type":"task"' in line]
    assert infos and not any('"metrics"' in line for line in infos)
    db = tmp_path / "old.duckdb"
    result = CliRunner().invoke(cli, ["ingest", str(shard), "--db", str(db)])
    assert result.exit_code == 0, result.output
    with Store(db, read_only=True) as store:
        tables = store.query("SELECT task, metrics FROM tasks").iter_rows()
        for task, text in tables:
            assert text is not None, task
            assert from_json(text)["peak_mem_bytes"].better == "lower"
