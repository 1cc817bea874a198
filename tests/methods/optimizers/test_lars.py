import pytest
import torch

from effbench.methods.optimizers.lars import pytorch_optimizer, reference
from tests.methods.optimizers.trajectory import assert_same_trajectory


def test_one_step_by_hand():
    """p = 3 x ones(2, 2) (||p|| = 6), g = ones (||g|| = 2), wd = 0: trust = 0.5 * 6 / 2 = 1.5,
    buf = 1.5 g, p <- p - 0.1 * 1.5. A vector parameter gets no trust ratio."""
    p, v = torch.full((2, 2), 3.0, dtype=torch.float64), torch.ones(3, dtype=torch.float64)
    p.grad, v.grad = torch.ones(2, 2, dtype=torch.float64), torch.full((3,), 2.0, dtype=torch.float64)
    opt = reference([p, v], lr=0.1, momentum=0.9, weight_decay=0.0, trust_coefficient=0.5)
    opt.step()
    assert p.flatten().tolist() == pytest.approx([3.0 - 0.15] * 4)
    assert v.tolist() == pytest.approx([1.0 - 0.2] * 3)


def test_matches_pytorch_optimizer_over_20_steps_fp32():
    pytest.importorskip("pytorch_optimizer")
    hyper = {"lr": 0.1, "momentum": 0.9, "weight_decay": 1e-4, "trust_coefficient": 1e-3}
    assert_same_trajectory(lambda ps: reference(ps, **hyper), lambda ps: pytorch_optimizer(ps, **hyper),
                           [(29, 11), (13,)], 3)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_triton_matches_reference_over_20_steps_fp32(seed):
    """Through Triton's CPU interpreter (conftest sets TRITON_INTERPRET=1); (37, 41) spans two blocks."""
    from effbench.methods.optimizers.lars import triton

    hyper = {"lr": 0.1, "momentum": 0.9, "weight_decay": 1e-4, "trust_coefficient": 1e-3}
    assert_same_trajectory(lambda ps: reference(ps, **hyper), lambda ps: triton(ps, **hyper),
                           [(37, 5), (11,), (37, 41)], seed)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_foreach_matches_reference_over_20_steps_fp32(seed):
    from effbench.methods.optimizers.lars import foreach

    hyper = {"lr": 0.1, "momentum": 0.9, "weight_decay": 1e-4, "trust_coefficient": 1e-3}
    assert_same_trajectory(lambda ps: reference(ps, **hyper), lambda ps: foreach(ps, **hyper),
                           [(29, 11), (13,), (4, 3, 2)], seed)
