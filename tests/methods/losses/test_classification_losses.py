"""Known answers for every classification loss on hand-derivable cases."""

import math

import pytest
import torch

from effbench.methods.losses import ce_zloss, cross_entropy, focal, harmonic, label_smoothing, poly1, spherical_zloss

# One example, identity head, logits (2, 0, 0) with the target class 0: p_0 = e^2 / (e^2 + 2).
FEATURES = torch.tensor([[2.0, 0.0, 0.0]], dtype=torch.float64)
WEIGHT = torch.eye(3, dtype=torch.float64)
BIAS = torch.zeros(3, dtype=torch.float64)
Y = torch.tensor([0])
P0 = math.exp(2) / (math.exp(2) + 2)
CE = -math.log(P0)


def loss(module):
    return module.reference(FEATURES, WEIGHT, BIAS, Y).item()


def test_cross_entropy():
    assert loss(cross_entropy) == pytest.approx(CE)


def test_label_smoothing():
    log_p = [math.log(P0), math.log(1 / (math.exp(2) + 2)), math.log(1 / (math.exp(2) + 2))]
    assert loss(label_smoothing) == pytest.approx(0.9 * CE - 0.1 * sum(log_p) / 3)


def test_focal():
    assert loss(focal) == pytest.approx((1 - P0) ** 2 * CE)


def test_poly1():
    assert loss(poly1) == pytest.approx(CE + (1 - P0))


def test_ce_zloss():
    lse = math.log(math.exp(2) + 2)
    assert loss(ce_zloss) == pytest.approx(CE + 1e-4 * lse**2)


def test_spherical_zloss_value_and_invariance():
    # logits (2, 0, 0): mean 2/3, population std sqrt(8/9), z_0 = (4/3) / sqrt(8/9) = sqrt(2)
    z0 = math.sqrt(2)
    assert loss(spherical_zloss) == pytest.approx(math.log1p(math.exp(3.0 - z0)))
    shifted_scaled = spherical_zloss.reference(FEATURES * 5 + 1, WEIGHT, BIAS, Y).item()
    assert shifted_scaled == pytest.approx(math.log1p(math.exp(3.0 - z0)))


def test_harmonic_uses_distances_to_centres():
    # h = (2, 0, 0); centres e_0, e_1, e_2: d = (1, sqrt 5, sqrt 5); n = sqrt(3); p_c ~ d_c^-n
    n = math.sqrt(3)
    weights = [1.0, 5 ** (-n / 2), 5 ** (-n / 2)]
    assert loss(harmonic) == pytest.approx(-math.log(weights[0] / sum(weights)))
    probs = harmonic.probabilities(FEATURES, WEIGHT, BIAS)
    assert probs[0, 0].item() == pytest.approx(weights[0] / sum(weights))


def test_losses_are_per_example():
    features, y = torch.randn(5, 3), torch.randint(0, 3, (5,))
    for module in (cross_entropy, label_smoothing, focal, poly1, ce_zloss, spherical_zloss, harmonic):
        assert module.reference(features, torch.randn(3, 3), torch.zeros(3), y).shape == (5,)
