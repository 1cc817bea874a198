import torch
import torch.nn.functional as F

from effbench.data import digits
from effbench.methods.samplers.grand import method, per_example_grad_norms, reference
from effbench.models import MLP
from effbench.plugs import CandidatePool


def test_grad_norms_match_one_backward_per_example():
    torch.manual_seed(0)
    model = MLP(5, 7, 3, 0)
    x, y = torch.randn(6, 5), torch.randint(0, 3, (6,))
    expected = []
    for xi, yi in zip(x, y, strict=True):
        grads = torch.autograd.grad(F.cross_entropy(model(xi[None]), yi[None]), list(model.parameters()))
        expected.append(torch.sqrt(sum(g.double().pow(2).sum() for g in grads)))
    torch.testing.assert_close(per_example_grad_norms(model, x, y), torch.stack(expected))


def test_logistic_regression_norm_in_closed_form():
    """For z = W x + b: dL/dW = r x^T, dL/db = r with r = softmax(z) - onehot, so ||g|| = ||r|| sqrt(1 + ||x||^2)."""
    model = torch.nn.Linear(4, 3)
    x, y = torch.randn(5, 4), torch.tensor([0, 1, 2, 0, 1])
    r = torch.softmax(model(x).double(), -1) - F.one_hot(y, 3).double()
    expected = r.norm(dim=-1) * torch.sqrt(1 + x.double().pow(2).sum(-1))
    torch.testing.assert_close(per_example_grad_norms(model, x, y), expected)


def test_scores_at_init_prune_half_and_never_touch_the_model():
    data = digits()
    model = MLP(data.n_features, 16, data.n_classes, 0)
    before = [p.clone() for p in model.parameters()]
    memory = {}
    idx = torch.arange(256)
    pool = CandidatePool(data.x_train[idx], data.y_train[idx], model, indices=idx, data=data, memory=memory)
    chosen, _ = reference(pool, 32, torch.Generator().manual_seed(0))
    n = data.x_train.shape[0]
    assert memory["kept"][idx[chosen]].all() and int(memory["kept"].sum()) == -int(-0.5 * n // 1)
    assert pool.scored == method.extras["score_runs"] * n
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))

