"""The contract every method meets: each implementation matches its reference on fresh random
inputs, several seeds, outputs and gradients (or is recorded unavailable/skipped with a reason)."""

import math

import pytest

from effbench.registry import discover
from effbench.run.case import execute
from effbench.run.plan import Case, make_config

REGISTRY = discover()
CONFIG = make_config("smoke", "cpu", seeds=3)
KERNEL = [
    (m.task, m.name, impl)
    for m in REGISTRY.methods.values()
    if REGISTRY.tasks[m.task].kind == "kernel"
    for impl in m.impls
]
WORKLOAD = [
    (m.task, m.name, impl)
    for m in REGISTRY.methods.values()
    if REGISTRY.tasks[m.task].kind == "workload"
    for impl in m.impls
]


def slow_to_check(method: str, impl: str, task: str) -> bool:
    """Attention's Triton kernel runs in the CPU interpreter here (a forward and backward take ~10 s a case);
    FlexAttention and torch.compile compile anew for every shape (2-20 s each, C++ builds on a cold cache). Each
    is checked at one point, two seeds; the kernel's and the pattern's own tests check more masks and shapes."""
    needs_triton = "triton" in REGISTRY.methods[(task, method)].impls[impl].needs
    return (task.startswith("attention/") and (needs_triton or impl == "flex")) or "compile" in impl


@pytest.mark.parametrize("task, method, impl", KERNEL, ids=["/".join(k) for k in KERNEL])
def test_kernel_impl_matches_reference(task, method, impl):
    # interpreted or compiled kernels: the first smoke point the method covers, two seeds (the kernel's and the
    # pattern's own tests cover more masks and shapes); everything else: every smoke point, three seeds
    slow = slow_to_check(method, impl, task)
    checked = 0
    for point in REGISTRY.tasks[task].grids["smoke"]:
        if slow and checked:
            break
        for seed in (11, 12) if slow else (11, 12, 13):  # seeds apart from the benchmark's own
            result = execute(REGISTRY, Case(task, method, impl, point, "float32", "cpu", seed), CONFIG)
            if result.status in ("unavailable", "skipped"):
                assert result.message, "a reason is required"
                continue
            assert result.status == "ok", f"{point} seed {seed}: {result.status}: {result.message}"
            assert result.metrics["rel_error"] <= 2 * result.metrics["naive_rel_error"] + 1e-5
            checked += 1


# the auxiliary runs some selection methods train once (IL model, scorers, prior/conditional models), shortened
# here: what is checked is that the method trains through the harness, not how well
SHORT = {"il_steps": 20, "score_steps": 5, "prior_steps": 20, "conditional_steps": 10}


@pytest.mark.parametrize("task, method, impl", WORKLOAD, ids=["/".join(k) for k in WORKLOAD])
def test_workload_method_trains(task, method, impl, monkeypatch):
    extras = REGISTRY.methods[(task, method)].extras
    for key, value in SHORT.items():
        if extras.get(key, 0) > value:  # only ever shorter (GraNd scores at init: 0 steps stays 0)
            monkeypatch.setitem(extras, key, value)
    # the first smoke point the method covers (DSIR needs token data; Data Diet class labels)
    for point in REGISTRY.tasks[task].grids["smoke"]:
        result = execute(REGISTRY, Case(task, method, impl, point, "float32", "cpu", 0), CONFIG)
        if result.status != "skipped":
            break
        assert result.message, "a reason is required"
    assert result.status == "ok", result.message
    assert math.isfinite(result.metrics["final_metric"]) and math.isfinite(result.metrics["final_loss"])
    assert result.curve and result.curve[0][0] == 0 and result.curve[-1][0] == point["steps"]
