import torch

from effbench.methods.samplers.importance_sampling import reference, sampling_distribution
from effbench.plugs import CandidatePool


class FixedLogits(torch.nn.Module):
    def __init__(self, logits):
        super().__init__()
        self.logits = logits

    def forward(self, x):
        return self.logits[x[:, 0].long()]


def test_bound_is_the_softmax_residual_norm():
    logits = torch.tensor([[0.0, 0.0], [10.0, -10.0], [2.0, 0.0]])
    y = torch.tensor([0, 0, 1])
    pool = CandidatePool(torch.arange(3.0)[:, None], y, FixedLogits(logits))
    p = torch.softmax(logits, -1)
    expected = torch.stack([
        torch.tensor([p[0, 0] - 1, p[0, 1]]).norm(),  # sqrt(0.5^2 + 0.5^2)
        torch.tensor([p[1, 0] - 1, p[1, 1]]).norm(),  # ~0: confidently right
        torch.tensor([p[2, 0], p[2, 1] - 1]).norm(),
    ])
    torch.testing.assert_close(pool.grad_norm_bound(), expected)
    assert abs(pool.grad_norm_bound()[0].item() - 0.5**0.5) < 1e-6
    assert pool.scored == 3  # one forward pass shared with losses()
    pool.losses()
    assert pool.scored == 3


def test_weights_make_the_weighted_mean_unbiased():
    bound = torch.tensor([1.0, 2.0, 3.0, 4.0])
    probs = sampling_distribution(bound)
    torch.testing.assert_close(probs, (bound / 10).double())
    losses = torch.tensor([0.3, 1.0, 2.0, 5.0], dtype=torch.float64)
    # E_p[w l] with w = 1 / (B p) equals the uniform mean exactly
    assert torch.isclose((probs * losses / (4 * probs)).sum(), losses.mean())


def test_sampling_follows_the_bound_and_weights_are_inverse_probability():
    logits = torch.tensor([[5.0, -5.0], [0.0, 0.0]])
    x = torch.tensor([0.0] * 50 + [1.0] * 50)[:, None]
    pool = CandidatePool(x, torch.ones(100, dtype=torch.long), FixedLogits(logits))  # row 0: confidently wrong
    idx, w = reference(pool, 4000, torch.Generator().manual_seed(0))
    bound = pool.grad_norm_bound()
    share_wrong = (idx < 50).double().mean().item()
    expected = (bound[:50].sum() / bound.sum()).item()
    assert abs(share_wrong - expected) < 0.03
    probs = bound.double() / bound.sum()
    torch.testing.assert_close(w, (1 / (100 * probs[idx])).float())


def test_all_zero_bounds_fall_back_to_uniform():
    assert torch.equal(sampling_distribution(torch.zeros(4)), torch.full((4,), 0.25, dtype=torch.float64))


def test_token_data_is_skipped_with_a_reason():
    import pytest

    from effbench.registry import Skipped

    pool = CandidatePool(torch.zeros(4, 3, dtype=torch.long), torch.zeros(4, 3, dtype=torch.long),
                         torch.nn.Identity(), kind="lm")
    with pytest.raises(Skipped, match="'lm'"):
        reference(pool, 2, torch.Generator())
