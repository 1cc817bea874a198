"""Seeds make sampler workload runs repeatable: the same seed gives the same run, another seed another one."""

import pytest
import torch

from effbench.registry import Skipped, discover

REGISTRY = discover()
CASES = [(m.task, m.name) for m in REGISTRY.methods.values() if m.task in ("sampler/data_selection", "sampler/memory")]
# the auxiliary runs some methods train once (IL model, scorers, prior/conditional models), shortened here
SHORT = {"il_steps": 20, "score_steps": 5, "prior_steps": 20, "conditional_steps": 10}
TIMING = ("time_to_target_s", "time_per_step_ms")


@pytest.mark.parametrize("task_key, name", CASES, ids=["/".join(c) for c in CASES])
def test_same_seed_same_run_other_seed_other_run(task_key, name, monkeypatch):
    method = REGISTRY.methods[(task_key, name)]
    for key, value in SHORT.items():
        if key in method.extras:
            monkeypatch.setitem(method.extras, key, value)
    task, impl = REGISTRY.tasks[task_key], method.reference
    for point in task.grids["smoke"]:
        try:
            first = task.run(method, impl, point, 0, "cpu", torch.float32)
        except Skipped:
            continue
        again = task.run(method, impl, point, 0, "cpu", torch.float32)
        other = task.run(method, impl, point, 1, "cpu", torch.float32)
        same = {k: v for k, v in first.metrics.items() if k not in TIMING}
        assert same == {k: v for k, v in again.metrics.items() if k not in TIMING}
        assert [c.eval_loss for c in first.curve] == [c.eval_loss for c in again.curve]
        assert first.metrics["final_loss"] != other.metrics["final_loss"]
        return
    pytest.fail(f"{name} covers no smoke point")
