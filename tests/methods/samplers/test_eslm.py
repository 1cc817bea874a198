import torch

from effbench.data import IGNORE
from effbench.methods.samplers.eslm import cvar_weights, method, reference
from effbench.plugs import CandidatePool
from effbench.train import _weighted_lm_loss


def test_weights_keep_the_tokens_at_or_above_the_quantile():
    loss = torch.tensor([[1.0, 5.0, 2.0, 4.0], [3.0, 0.5, 6.0, 9.0]])
    valid = torch.tensor([[True, True, True, True], [True, True, True, False]])  # 9.0 is not counted
    w = cvar_weights(loss, valid, alpha=0.5)
    # counted: 1, 5, 2, 4, 3, 0.5, 6; the median is 3: keep 5, 4, 3, 6 (4 of 7), weight 7/4
    kept = torch.tensor([[0, 1, 0, 1], [1, 0, 1, 0]], dtype=torch.bool)
    torch.testing.assert_close(w, kept.float() * 7 / 4)
    # the mean over counted tokens of w * loss is the mean of the kept tokens (the CVaR)
    assert (w * loss * valid).sum() / valid.sum() == (5 + 4 + 3 + 6) / 4


def test_examples_without_a_token_axis():
    w = cvar_weights(torch.tensor([0.1, 0.9, 0.5, 0.7]), None, alpha=0.6)
    # 0.6-quantile of (0.1, 0.5, 0.7, 0.9) is 0.58: keep 0.9 and 0.7
    torch.testing.assert_close(w, torch.tensor([0.0, 2.0, 0.0, 2.0]))


def test_training_loss_backpropagates_only_the_kept_tokens():
    torch.manual_seed(0)
    vocab, d = 11, 8
    embed = torch.nn.Embedding(vocab, d)
    model = lambda x: embed(x) @ embed.weight.T  # noqa: E731  (a bigram model: logits from the input token)
    x = torch.randint(0, vocab, (3, 6))
    y = torch.randint(0, vocab, (3, 6))
    y[0, 0] = IGNORE
    loss = _weighted_lm_loss(model, x, y, lambda loss, valid: cvar_weights(loss, valid, 0.6))
    token = torch.nn.functional.cross_entropy(model(x).flatten(0, 1), y.flatten(), ignore_index=IGNORE,
                                              reduction="none").view(y.shape)
    valid = y != IGNORE
    kept = (token >= torch.quantile(token[valid], 0.6)) & valid
    torch.testing.assert_close(loss, token[kept].mean())
    (grad,) = torch.autograd.grad(loss, embed.weight)
    (expected,) = torch.autograd.grad(token[kept].mean(), embed.weight)
    torch.testing.assert_close(grad, expected)


def test_selection_is_a_seeded_uniform_batch_with_loss_weights():
    pool = CandidatePool(torch.zeros(10, 3), torch.zeros(10, dtype=torch.long), torch.nn.Linear(3, 2))
    a, wa = reference(pool, 4, torch.Generator().manual_seed(1))
    b, _ = reference(pool, 4, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and len(set(a.tolist())) == 4
    assert pool.scored == 0  # no scoring pass
    torch.testing.assert_close(wa(torch.tensor([1.0, 2.0, 3.0, 4.0]), None),
                               cvar_weights(torch.tensor([1.0, 2.0, 3.0, 4.0]), None, method.extras["alpha"]))
