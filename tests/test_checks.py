"""effbench.checks on known answers: the error measure, every output judged on its own, snapshots, mutation."""

import math

import pytest
import torch

from effbench.checks import Truth, judge, make_truth, mutated, refill, relative_error, restore, snapshot


def truth(outputs, naive, dtypes=None):
    return Truth({k: torch.as_tensor(v, dtype=torch.float64) for k, v in outputs.items()}, naive,
                 dtypes or {k: torch.float32 for k in outputs}, {k: tuple(torch.as_tensor(v).shape)
                                                                 for k, v in outputs.items()})


def test_relative_error_known_answers():
    assert relative_error(torch.tensor([3.0, 4.0]) * 1.01, torch.tensor([3.0, 4.0])) == pytest.approx(0.01)
    assert relative_error(torch.tensor([0.0, 3.0, 4.0]), torch.zeros(3)) == pytest.approx(5.0)  # ||ref|| = 0
    assert relative_error(torch.tensor([0.0, math.nan]), torch.zeros(2)) == math.inf
    assert relative_error(torch.tensor([0.0, math.inf]), torch.zeros(2)) == math.inf


def test_each_output_is_judged_against_its_own_naive_error():
    """bf16-like: the loss's naive error is tiny, dx's large. A loss 0.5% off fails on its own threshold even
    though dx's threshold would admit it."""
    ref = truth({"out": [2.0], "dx": [1.0, 1.0]}, naive={"out": 2e-6, "dx": 2e-3})
    ok = judge({"out": torch.tensor([2.0]), "dx": torch.tensor([1.001, 1.0])}, ref, slack=0.0)
    assert ok.status == "ok" and ok.thresholds == {"out": 4e-6, "dx": 4e-3}
    off = judge({"out": torch.tensor([2.01]), "dx": torch.tensor([1.0, 1.0])}, ref, slack=0.0)
    assert off.status == "wrong"
    assert off.message == ("rel_error 5.000e-03 in 'out' above its tolerance 4.000e-06 (2 x naive 2.00e-06 + "
                           "slack 0e+00)")


def test_dtype_shape_names_and_nan_are_wrong():
    ref = truth({"out": [1.0, 2.0]}, naive={"out": 1e-7})
    as64 = judge({"out": torch.tensor([1.0, 2.0], dtype=torch.float64)}, ref, slack=1e-5)
    assert as64.status == "wrong" and as64.message == ("output 'out' is torch.float64, the reference's is "
                                                       "torch.float32 for the same inputs")
    shape = judge({"out": torch.tensor([1.0, 2.0, 3.0])}, ref, slack=1e-5)
    assert shape.status == "wrong" and "has shape (3,), the reference's (2,)" in shape.message
    names = judge({"loss": torch.tensor([1.0, 2.0])}, ref, slack=1e-5)
    assert names.status == "wrong" and "outputs ['loss'] differ from the reference's ['out']" in names.message
    nan = judge({"out": torch.tensor([1.0, math.nan])}, ref, slack=1e-5)
    assert nan.status == "wrong" and nan.message == "non-finite values in output 'out'" and nan.worst == math.inf


def test_a_nan_error_is_never_dropped_from_the_worst():
    ref = truth({"a": [1.0], "b": [1.0]}, naive={"a": 1e-7, "b": 1e-7})
    verdict = judge({"a": torch.tensor([1.0]), "b": torch.tensor([math.nan])}, ref, slack=1e-5)
    assert verdict.worst == math.inf  # whatever the order of the outputs


def test_a_non_finite_truth_is_broken():
    broken = make_truth(lambda inputs: {"out": inputs["x"].sum(), "dx": inputs["x"] / 0}, {"x": torch.ones(3)},
                        "cpu")
    assert broken.broken == ["dx"]


def test_make_truth_runs_on_copies_in_float64_and_in_the_case_dtype():
    seen = []

    def run(inputs):
        seen.append((inputs["x"].dtype, inputs["y"].dtype))
        inputs["x"].mul_(2)  # even a reference that scribbles cannot reach the snapshot
        return {"out": inputs["x"].float().sum().to(inputs["x"].dtype)}

    pristine = snapshot({"x": torch.tensor([1.0, 2.0]), "y": torch.tensor([1, 2])})
    made = make_truth(run, pristine, "cpu")
    assert seen == [(torch.float64, torch.int64), (torch.float32, torch.int64)]
    assert made.outputs["out"].item() == 6.0 and made.dtypes == {"out": torch.float32}
    assert torch.equal(pristine["x"], torch.tensor([1.0, 2.0]))


def test_snapshot_and_mutation_see_every_dtype_and_nesting():
    inputs = {"x": torch.randn(3), "mask": torch.ones(2, 2, dtype=torch.bool), "y": torch.tensor([1, 2]),
              "params": [torch.zeros(2), torch.zeros(3)], "hyper": {"lr": 0.1}, "n": 4}
    pristine = snapshot(inputs)
    assert mutated(inputs, pristine) == []
    inputs["mask"].fill_(False)
    inputs["params"][1].add_(1)
    inputs["y"][0] = 7
    assert mutated(inputs, pristine) == ["mask", "y", "params[1]"]
    copy64 = restore(pristine, "cpu", torch.float64)
    assert copy64["x"].dtype == torch.float64 and copy64["mask"].dtype == torch.bool
    assert copy64["y"].dtype == torch.int64
    assert copy64["mask"].data_ptr() != pristine["mask"].data_ptr()


def test_refill_writes_new_values_into_the_same_storage():
    inputs = {"x": torch.zeros(3), "params": [torch.zeros(2)], "grads": "old"}
    address = inputs["x"].data_ptr(), inputs["params"][0].data_ptr()
    refill(inputs, {"x": torch.ones(3), "params": [torch.full((2,), 2.0)], "grads": "new"})
    assert (inputs["x"].data_ptr(), inputs["params"][0].data_ptr()) == address
    assert inputs["x"].tolist() == [1.0] * 3 and inputs["params"][0].tolist() == [2.0, 2.0]
    assert inputs["grads"] == "new"


def test_do_bench_is_called_until_there_are_enough_samples():
    from effbench.measure import TimingConfig, _do_bench_samples

    calls = []

    def one_sample_bench(fn, warmup, rep, return_mode):  # what do_bench gives for a call longer than rep / 5
        calls.append(warmup)
        return [50.0]

    samples = _do_bench_samples(one_sample_bench, lambda: None, TimingConfig())
    assert len(samples) == 10 and calls == [25] + [0] * 9
