"""Issue #17: verdicts that survive an adversarial plugin. Each planted fault (tests/plugins/adversarial.py)
gets one exact status and message, and a correct implementation is `ok` whatever ran before it."""

import itertools

import pytest
from click.testing import CliRunner

from effbench.cli import cli
from effbench.registry import discover
from effbench.rows import Result
from effbench.run.case import _TruthCache, execute
from effbench.run.plan import Case, make_config
from effbench.run.session import run_cases
from tests.conftest import PLUGINS

ADVERSARIAL = PLUGINS / "adversarial.py"
REGISTRY = discover([ADVERSARIAL])
CONFIG = make_config("smoke", "cpu")
LCE, ATTENTION, STEP = "loss/linear_cross_entropy", "attention/masked_attention", "optimizer/step"


def case(task, method, impl, seed=0):
    return Case(task, method, impl, REGISTRY.tasks[task].grids["smoke"][0], "float32", "cpu", seed)


@pytest.mark.parametrize("task, method, impl, status, message", [
    (LCE, "adversarial", "scales_x_first", "error",
     "mutated input 'x' while computing its outputs: an implementation must not change its inputs"),
    (LCE, "adversarial", "scales_x_after", "error",
     "mutated input 'x' while computing its outputs: an implementation must not change its inputs"),
    (LCE, "adversarial", "relabels_y", "error",
     "mutated input 'y' while computing its outputs: an implementation must not change its inputs"),
    (ATTENTION, "adversarial_causal", "densifies_mask", "error",
     "mutated input 'mask' while computing its outputs: an implementation must not change its inputs"),
    (LCE, "adversarial", "float64", "wrong",
     "output 'out' is torch.float64, the reference's is torch.float32 for the same inputs"),
    (LCE, "broken_reference", "reference", "error",
     "broken reference: the float64 truth of 'dw' has non-finite values (a reference must be finite where it is "
     "checked)"),
    (LCE, "broken_reference", "dw_five_times", "error",
     "broken reference: the float64 truth of 'dw' has non-finite values (a reference must be finite where it is "
     "checked)"),
])
def test_planted_fault_gets_its_exact_status_and_message(task, method, impl, status, message):
    result = execute(REGISTRY, case(task, method, impl), CONFIG)
    assert (result.status, result.message) == (status, message)


def test_a_result_memoised_by_address_is_wrong_once_timed():
    memo = REGISTRY.methods[(LCE, "adversarial")].impls["memoises"].fn.__globals__["_MEMO"]
    memo.clear()  # addresses are reused: an entry of another test could be hit at once
    timed = execute(REGISTRY, case(LCE, "adversarial", "memoises"), CONFIG)
    assert timed.status == "wrong"
    assert timed.message.startswith("rel_error ")
    assert timed.message.endswith("on new values written into the tensors the timed calls reused (is a result kept "
                                  "from an earlier call?)")
    # the check itself passes: a later seed (not timed) reuses nothing
    memo.clear()
    assert execute(REGISTRY, case(LCE, "adversarial", "memoises", seed=1), CONFIG).status == "ok"


def test_an_optimizer_that_goes_wrong_after_seven_steps_is_wrong():
    result = execute(REGISTRY, case(STEP, "adversarial_adamw", "counter_stops"), CONFIG)
    assert result.status == "wrong" and "in 'horizon_update" in result.message
    assert "above its tolerance" in result.message
    assert all(result.metrics[f"rel_error_update{i}"] <= 1e-6 for i in range(3))  # exact over the grid's K steps
    assert execute(REGISTRY, case(STEP, "adversarial_adamw", "reference"), CONFIG).status == "ok"


def test_wrong_rows_keep_every_output_s_error_and_threshold():
    result = execute(REGISTRY, case(LCE, "adversarial", "correct"), CONFIG)
    assert result.status == "ok"
    per_output = {m for m in result.metrics if m.startswith("rel_error_")}
    assert per_output == {"rel_error_out", "rel_error_dx", "rel_error_dw"}
    assert result.notes["rel_error_dw"].startswith("tolerance ")


MUTATORS = ["scales_x_first", "scales_x_after", "relabels_y"]


@pytest.mark.parametrize("order", [*itertools.permutations([*MUTATORS, "correct"], 4)][::5])
def test_a_correct_impl_is_ok_in_any_order_in_one_worker(order):
    cache = _TruthCache()  # one worker's cache, shared by the cases it runs
    statuses = {impl: execute(REGISTRY, case(LCE, "adversarial", impl, seed), CONFIG, cache).status
                for seed in (0, 1) for impl in order}
    assert statuses == {"correct": "ok", **dict.fromkeys(MUTATORS, "error")}


def test_a_timed_out_neighbour_changes_no_verdict(tmp_path):
    config = make_config("smoke", "cpu", timeout_s=5)
    impls = ["scales_x_first", "hangs", "scales_x_after", "correct", "relabels_y", "reference"]
    cases = [case(LCE, "adversarial", impl) for impl in impls]
    seen = []
    run_cases(REGISTRY, cases, config, tmp_path, on_case=lambda c, r: seen.append((c.impl, r.status)))
    assert seen == [("scales_x_first", "error"), ("hangs", "timeout"), ("scales_x_after", "error"), ("correct", "ok"),
                    ("relabels_y", "error"), ("reference", "ok")]


@pytest.mark.parametrize("impls, expected", [("correct", {"correct": "ok"}),
                                              ("scales_x_first", {"scales_x_first": "error"})])
def test_impl_filters_change_no_verdict(tmp_path, impls, expected):
    db = tmp_path / "db.duckdb"
    result = CliRunner().invoke(cli, ["run", "--plugin", str(ADVERSARIAL), "--method", "adversarial", "--impl", impls,
                                      "--grid", "smoke", "--db", str(db)])
    assert result.exit_code == 0, result.output
    import json

    rows = json.loads(CliRunner().invoke(cli, ["query", "SELECT DISTINCT impl, status FROM results", "--db", str(db),
                                               "--json"]).output)
    assert {r["impl"]: r["status"] for r in rows} == expected


def test_an_input_the_task_lets_implementations_update_is_not_a_mutation():
    import types

    import torch

    from effbench.checks import snapshot
    from effbench.run.case import _mutation

    inputs = {"params": [torch.zeros(2)], "x": torch.zeros(2)}
    pristine = snapshot(inputs)
    inputs["params"][0].add_(1)
    assert _mutation(types.SimpleNamespace(in_place=("params",)), inputs, pristine, "while timed") is None
    inputs["x"].add_(1)
    bad = _mutation(types.SimpleNamespace(in_place=("params",)), inputs, pristine, "while timed")
    assert (bad.status, bad.message) == ("error", "mutated input 'x' while timed: an implementation must not change "
                                                  "its inputs")


def test_the_autotuned_config_is_recorded_with_the_time():
    """An autotuned kernel's choice goes with the time it gave (the time_ms row's message); an impl that
    autotunes nothing records none, even right after one that did."""
    from effbench.run.ledger import result_rows
    from effbench.run.provenance import new_run

    registry = discover([PLUGINS / "autotuned.py"])
    tuned_case = Case(LCE, "autotuned", "tuned", registry.tasks[LCE].grids["smoke"][0], "float32", "cpu", 0)
    result = execute(registry, tuned_case, CONFIG)
    assert result.status == "ok", result.message
    expected = "autotuned kernel configs: _stand_in_kernel: BLOCK_N=64 BLOCK_V=128 num_warps=8 num_stages=3"
    assert result.notes["time_ms"] == expected
    rows = {r.metric: r for r in result_rows(registry, new_run(CONFIG, "test"), tuned_case, result)
            if isinstance(r, Result)}
    assert rows["time_ms"].message == expected and rows["time_ms"].status == "ok"
    plain = execute(registry, Case(LCE, "autotuned", "reference", tuned_case.point, "float32", "cpu", 0), CONFIG)
    assert plain.status == "ok" and "time_ms" not in plain.notes


def test_a_tuned_kernel_whose_trials_were_not_reset_is_wrong():
    """Planted: autotuning ran a trial into the gradient buffers and the real launch added into them again (a
    kernel without reset_to_zero). The loss is right, every gradient doubled: `wrong`, naming both gradients,
    with the config it ran still recorded beside the time."""
    registry = discover([PLUGINS / "autotuned.py"])
    point = registry.tasks[LCE].grids["smoke"][0]
    result = execute(registry, Case(LCE, "autotuned", "trials_not_reset", point, "float32", "cpu", 0), CONFIG)
    assert result.status == "wrong"
    assert result.message.startswith("rel_error 1.000e+00 in 'dx' above its tolerance")
    assert "(and 1 more: rel_error 1.000e+00 in 'dw' above its tolerance" in result.message
    assert result.notes["time_ms"].startswith("autotuned kernel configs: _stand_in_kernel:")
