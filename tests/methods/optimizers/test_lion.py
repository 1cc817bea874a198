import pytest
import torch

from effbench.methods.optimizers.lion import foreach, pytorch_optimizer, reference, triton
from tests.methods.optimizers.trajectory import assert_same_trajectory

HYPER = {"lr": 0.1, "betas": (0.9, 0.99), "weight_decay": 0.01}


def test_one_step_by_hand():
    """m = 0, g = (0.5, -2, 0): c = 0.1 g, so p <- p (1 - lr wd) - lr sign(g); m = 0.01 g."""
    p = torch.ones(3, dtype=torch.float64)
    p.grad = torch.tensor([0.5, -2.0, 0.0], dtype=torch.float64)
    opt = reference([p], **HYPER)
    opt.step()
    decayed = 1 - 0.1 * 0.01
    assert p.tolist() == pytest.approx([decayed - 0.1, decayed + 0.1, decayed])
    assert opt.m[0].tolist() == pytest.approx([0.005, -0.02, 0.0])


@pytest.mark.parametrize("other", [foreach, pytorch_optimizer, triton], ids=["foreach", "pytorch_optimizer", "triton"])
def test_matches_over_20_steps_fp32(other):
    if other is pytorch_optimizer:
        pytest.importorskip("pytorch_optimizer")
    hyper = {"lr": 1e-3, "betas": (0.9, 0.99), "weight_decay": 0.01}
    assert_same_trajectory(lambda ps: reference(ps, **hyper), lambda ps: other(ps, **hyper), [(31, 9), (17,)], 1)
