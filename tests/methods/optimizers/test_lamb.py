import math

import pytest
import torch

from effbench.methods.optimizers.lamb import foreach, pytorch_optimizer, reference, triton
from tests.methods.optimizers.trajectory import assert_same_trajectory

HYPER = {"lr": 1e-2, "betas": (0.9, 0.999), "eps": 1e-6, "weight_decay": 0.01}


def test_one_step_by_hand():
    """eps = 0: at step 1 m_hat = g, v_hat = g^2, so r = sign(g). p = (3, 4), g = (1, -2), wd = 0.5:
    u = (1, -1) + 0.5 (3, 4) = (2.5, 1), trust = ||p|| / ||u|| = 5 / sqrt(7.25), p1 = p - 0.1 trust u.
    A zero tensor has trust 1: z1 = -0.1 (sign(g) + 0.5 * 0)."""
    p, z = torch.tensor([3.0, 4.0], dtype=torch.float64), torch.zeros(2, dtype=torch.float64)
    p.grad, z.grad = torch.tensor([1.0, -2.0], dtype=torch.float64), torch.tensor([-4.0, 0.5], dtype=torch.float64)
    reference([p, z], lr=0.1, betas=(0.9, 0.999), eps=0.0, weight_decay=0.5).step()
    trust = 5 / math.sqrt(7.25)
    assert p.tolist() == pytest.approx([3 - 0.1 * trust * 2.5, 4 - 0.1 * trust * 1.0], abs=1e-12)
    assert z.tolist() == pytest.approx([0.1, -0.1], abs=1e-12)


def test_matches_pytorch_optimizer_over_20_steps_fp32():
    """Its Lamb, configured (see lamb.pytorch_optimizer); randn weights have ||p|| > 10, past its default clamp."""
    pytest.importorskip("pytorch_optimizer")
    assert_same_trajectory(lambda ps: reference(ps, **HYPER), lambda ps: pytorch_optimizer(ps, **HYPER),
                           [(29, 11), (13,), (3, 3, 3)], 3)


def test_foreach_matches_reference_over_20_steps_fp32():
    assert_same_trajectory(lambda ps: reference(ps, **HYPER), lambda ps: foreach(ps, **HYPER),
                           [(29, 11), (13,), (3, 3, 3)], 4)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_triton_matches_reference_over_20_steps_fp32(seed):
    """Through Triton's CPU interpreter (conftest sets TRITON_INTERPRET=1); (37, 41) spans two blocks."""
    assert_same_trajectory(lambda ps: reference(ps, **HYPER), lambda ps: triton(ps, **HYPER),
                           [(37, 5), (11,), (37, 41)], seed)
