import math

import pytest
import torch

from effbench.minimize import minimize
from effbench.plugs import Plugs
from effbench.tasks.convergence import FUNCTIONS, noisy_quadratic, rosenbrock


def test_rosenbrock_known_values():
    assert rosenbrock(torch.tensor([1.0, 1.0]), None).item() == 0.0
    assert rosenbrock(torch.tensor([-1.2, 1.0]), None).item() == pytest.approx(24.2)


def test_noisy_quadratic_is_exact_without_noise_and_unbiased_with_it():
    f = noisy_quadratic(3, noise=0.5)
    x = torch.ones(3)
    h = torch.logspace(-3, 0, 3)
    assert f(x, None).item() == pytest.approx(0.5 * h.sum().item())
    grads = []
    gen = torch.Generator().manual_seed(0)
    for _ in range(2000):
        xg = x.clone().requires_grad_()
        f(xg, gen).backward()
        grads.append(xg.grad)
    torch.testing.assert_close(torch.stack(grads).mean(0), h, atol=0.03, rtol=0)


def test_minimize_follows_the_gradient_descent_recursion():
    """f = x^2 / 2 with plain SGD at lr 0.5: x_t = 0.5^t, gap_t = 0.5 * 0.25^t."""
    plugs = Plugs(optimizer=lambda params, lr: torch.optim.SGD(params, lr=lr))
    outcome = minimize(lambda x, g: 0.5 * x.square().sum(), torch.ones(1), plugs, steps=4, eval_every=1, lr=0.5,
                       target=2.0, seed=0)
    gaps = [c.eval_loss for c in outcome.curve]
    assert gaps == pytest.approx([0.5 * 0.25**t for t in range(5)])
    assert outcome.curve[-1].eval_metric == pytest.approx(-math.log10(0.5 * 0.25**4))
    # -log10(gap) crosses 2 between step 2 (1.505) and step 3 (2.107), linearly interpolated
    m2, m3 = -math.log10(0.5 * 0.25**2), -math.log10(0.5 * 0.25**3)
    assert outcome.metrics["steps_to_target"] == pytest.approx(2 + (2 - m2) / (m3 - m2))


def test_every_function_starts_at_its_documented_point():
    for name, (objective, start) in FUNCTIONS.items():
        assert math.isfinite(objective(start(), None).item()), name
