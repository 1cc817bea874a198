import pytest
import torch

from effbench.methods.optimizers.sgd_momentum import reference, torch_foreach
from tests.methods.optimizers.trajectory import assert_same_trajectory

HYPER = {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.0}


def test_two_steps_by_hand():
    p = torch.ones(2, dtype=torch.float64)
    opt = reference([p], **HYPER)
    p.grad = torch.full((2,), 0.5, dtype=torch.float64)
    opt.step()  # buf = 0.5
    assert p.tolist() == pytest.approx([0.95, 0.95])
    p.grad = torch.full((2,), 1.0, dtype=torch.float64)
    opt.step()  # buf = 0.9 * 0.5 + 1 = 1.45
    assert p.tolist() == pytest.approx([0.95 - 0.145, 0.95 - 0.145])


def test_matches_torch_sgd_over_20_steps_fp32():
    hyper = {"lr": 0.01, "momentum": 0.9, "weight_decay": 1e-4}
    assert_same_trajectory(lambda ps: reference(ps, **hyper), lambda ps: torch_foreach(ps, **hyper),
                           [(33, 7), (5,)], 0)
