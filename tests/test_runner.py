import math

import pytest

from effbench.registry import UsageError
from effbench.rows import FAMILIES, STATUSES, Result
from effbench.run.case import execute
from effbench.run.ledger import result_rows
from effbench.run.plan import Case, make_config, plan
from effbench.run.provenance import new_run
from effbench.run.session import run_cases
from effbench.run.shards import read_shard

POINT = {"N": 16, "D": 8, "V": 37, "ignore_frac": 0.0}


def case(impl, seed=0, method="planted_faults"):
    return Case("loss/linear_cross_entropy", method, impl, POINT, "float32", "cpu", seed)


@pytest.mark.parametrize(
    "impl, status, text",
    [
        ("correct", "ok", ""),
        ("raises", "error", "ValueError: planted failure"),
        ("nan", "wrong", "non-finite"),
        ("off", "wrong", "above its tolerance"),
        ("oom", "oom", "out of memory"),
        ("unavailable", "unavailable", "hardware"),
        # a task without forward_outputs records a backward-less impl unavailable whole
        ("no_backward", "unavailable", "backward cannot run"),
        ("missing_peer", "unavailable", "surely_not_an_installed_package"),
    ],
)
def test_in_process_statuses(faulty_registry, impl, status, text):
    result = execute(faulty_registry, case(impl), make_config("smoke", "cpu"))
    assert result.status == status, result.message
    assert text in result.message or text in result.notes.get("rel_error", "")


def test_ok_case_has_kernel_metrics(faulty_registry):
    result = execute(faulty_registry, case("correct"), make_config("smoke", "cpu"))
    assert 0 <= result.metrics["rel_error"] < 1e-5
    assert result.metrics["time_ms"] > 0
    assert len(result.samples["time_ms"]) >= 3
    later = execute(faulty_registry, case("correct", seed=1), make_config("smoke", "cpu"))
    assert "time_ms" not in later.metrics and "rel_error" in later.metrics  # speed once, accuracy per seed


def test_workers_isolate_every_kind_of_failure(faulty_registry, tmp_path):
    """The acceptance run: methods that raise, return NaN, hang past the timeout, allocate past the
    memory limit, kill their own process and abort end with exactly those statuses, while the
    correct cases beside them (before, between and after) stay ok."""
    config = make_config("smoke", "cpu", seeds=1, timeout_s=6, memory_limit_gib=4)
    impls = ("correct", "raises", "nan", "hangs", "correct", "allocates", "kills_itself", "crashes", "correct")
    cases = [case(i, seed=n) for n, i in enumerate(impls)]  # distinct seeds: every case is its own
    seen = []
    summary = run_cases(faulty_registry, cases, config, tmp_path, on_case=lambda c, r: seen.append((c.impl, r)))
    assert [(i, r.status) for i, r in seen] == [
        ("correct", "ok"), ("raises", "error"), ("nan", "wrong"), ("hangs", "timeout"), ("correct", "ok"),
        ("allocates", "oom"), ("kills_itself", "error"), ("crashes", "error"), ("correct", "ok"),
    ], [(i, r.message) for i, r in seen]
    messages = dict(seen)
    assert "ValueError: planted failure" in messages["raises"].message
    assert "6 s" in messages["hangs"].message
    assert "can't allocate memory" in messages["allocates"].message
    assert "SIGKILL (not by the OOM killer)" in messages["kills_itself"].message
    assert "SIGABRT" in messages["crashes"].message
    contents = read_shard(summary.shard)
    assert contents.complete and len(contents.done) == len(cases)
    assert summary.counts["ok"] == 3 and summary.counts["error"] == 3 and summary.counts["oom"] == 1


def test_failure_rows_have_null_values(faulty_registry):
    config = make_config("smoke", "cpu")
    run = new_run(config, "test")
    result = execute(faulty_registry, case("raises"), config)
    rows = [r for r in result_rows(faulty_registry, run, case("raises"), result) if isinstance(r, Result)]
    assert {r.metric for r in rows} == {"time_ms", "peak_mem_bytes", "rel_error"}
    assert all(r.value is None and r.status == "error" and "planted" in r.message for r in rows)
    later = result_rows(faulty_registry, run, case("raises", seed=1), result)
    assert {r.metric for r in later} == {"rel_error"}


def test_plan_orders_and_filters(registry):
    config = make_config("smoke", "cpu", seeds=2)
    cases = plan(registry, config)
    assert {c.family for c in cases} == set(FAMILIES)
    assert len(cases) == len(set((c.task, c.method, c.impl, c.point_key, c.dtype, c.seed) for c in cases))
    only = plan(registry, config, family="optimizer", impl="torch_fused")
    assert only and all(c.family == "optimizer" and c.impl == "torch_fused" for c in only)
    assert plan(registry, config, task="step") == plan(registry, config, task="optimizer/step")
    several = plan(registry, config, task="optimizer/step", method="adamw, lion", impl="reference")
    assert {c.method for c in several} == {"adamw", "lion"} and {c.impl for c in several} == {"reference"}


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        ({"family": "losses"}, "unknown family 'losses'; valid: attention, loss, optimizer, sampler"),
        ({"task": "nope"}, "unknown task 'nope'"),
        ({"method": "adam"}, "unknown method 'adam'; valid:"),
        ({"method": "adamw,adam"}, "unknown method 'adam'; valid:"),
        ({"impl": "cuda_magic"}, "unknown impl 'cuda_magic'; valid:"),
    ],
)
def test_plan_rejects_unknown_names(registry, kwargs, needle):
    with pytest.raises(UsageError, match=needle.replace("(", r"\(")):
        plan(registry, make_config("smoke", "cpu"), **kwargs)


def test_config_validation():
    with pytest.raises(UsageError, match="unknown grid .huge.; valid: cpu, gpu, gpu-smoke, smoke"):
        make_config("huge", "cpu")
    with pytest.raises(UsageError, match="device"):
        make_config("smoke", "tpu")
    assert make_config(None, "cpu").grid == "cpu"
    assert make_config("smoke", "cpu").seeds == 1


def test_statuses_are_the_documented_set():
    assert STATUSES == ("ok", "error", "oom", "timeout", "unavailable", "skipped", "wrong")
    assert not math.isnan(0.0)
