import math

import pytest
import torch

from effbench.methods.optimizers.adamw import reference as adamw
from effbench.methods.optimizers.gradient_noise import foreach, noise_std, reference
from tests.methods.optimizers.trajectory import assert_same_trajectory

ADAM = {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.01}


def test_noise_schedule_known_values():
    """sigma_t^2 = eta / (1 + t)^gamma: eta at t = 0, eta / 2^0.55 at t = 1."""
    assert noise_std(0.3, 0.55, 0) == pytest.approx(math.sqrt(0.3))
    assert noise_std(0.3, 0.55, 1) == pytest.approx(math.sqrt(0.3 / 2**0.55))
    assert noise_std(1.0, 0.55, 99) == pytest.approx(100**-0.275)


def test_without_noise_it_is_the_base_adamw():
    assert_same_trajectory(lambda ps: reference(ps, **ADAM, eta=0.0, gamma=0.55, noise_seed=0),
                           lambda ps: adamw(ps, **ADAM), [(9, 4), (5,)], 0, tol=1e-7)


def test_injected_noise_has_the_annealed_variance():
    """The gradient the base rule sees is g + sigma_t xi: its spread over many coordinates is sigma_t."""
    p = torch.zeros(200_000)
    opt = reference([p], **ADAM, eta=0.3, gamma=0.55, noise_seed=5)
    seen = []
    opt.base.step = lambda: seen.append(p.grad.clone())  # intercept what the base would use
    for _ in range(3):
        p.grad = torch.full_like(p, 2.0)
        opt.step()
    for t, g in enumerate(seen):
        assert g.mean().item() == pytest.approx(2.0, abs=0.01)
        assert g.std().item() == pytest.approx(noise_std(0.3, 0.55, t), rel=0.01)


def test_same_seed_same_noise_different_seed_different_noise():
    make = lambda seed: (lambda ps: reference(ps, **ADAM, eta=0.3, gamma=0.55, noise_seed=seed))
    assert_same_trajectory(make(3), make(3), [(6, 6)], 0, tol=1e-12)
    with pytest.raises(AssertionError):
        assert_same_trajectory(make(3), make(4), [(6, 6)], 0, tol=1e-3)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_foreach_matches_reference_over_20_steps_fp32(seed):
    hyper = {**ADAM, "eta": 0.01, "gamma": 0.55, "noise_seed": seed}
    assert_same_trajectory(lambda ps: reference(ps, **hyper), lambda ps: foreach(ps, **hyper),
                           [(31, 9), (17,)], seed)
