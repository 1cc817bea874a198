import torch

from effbench.data import digits_label_noise
from effbench.methods.samplers.rho_loss import method, reference, top_reducible
from effbench.models import MLP
from effbench.plugs import CandidatePool


def test_top_reducible_picks_by_loss_minus_irreducible():
    losses = torch.tensor([3.0, 2.0, 5.0, 1.0])
    irreducible = torch.tensor([2.9, 0.1, 4.5, 0.0])  # reducible: 0.1, 1.9, 0.5, 1.0
    assert top_reducible(losses, irreducible, 2).tolist() == [1, 3]
    # a high-loss but unlearnable example (noise) loses to a learnable one
    assert 0 not in top_reducible(losses, irreducible, 3).tolist()


def test_irreducible_model_is_trained_once_and_its_losses_rank_noisy_labels_high(monkeypatch):
    monkeypatch.setitem(method.extras, "il_steps", 150)
    data = digits_label_noise(0.3)
    model = MLP(data.n_features, 32, data.n_classes, 0)
    memory = {}
    idx = torch.arange(128)
    pool = CandidatePool(data.x_train[idx], data.y_train[idx], model, indices=idx, data=data, memory=memory)
    chosen, weights = reference(pool, 32, torch.Generator())
    assert weights is None and len(set(chosen.tolist())) == 32
    irreducible = memory["irreducible"]
    assert irreducible.shape == (data.x_train.shape[0],)
    assert pool.scored == data.x_train.shape[0] + 128
    # the IL model fits clean labels far better than flipped ones
    clean = digits_label_noise(0.0).y_train
    flipped = data.y_train != clean
    assert irreducible[flipped].mean() > 2 * irreducible[~flipped].mean()
    # later steps reuse it: no second IL training
    again = CandidatePool(data.x_train[idx], data.y_train[idx], model, indices=idx, data=data, memory=memory)
    reference(again, 32, torch.Generator())
    assert again.scored == 128 and memory["irreducible"] is irreducible
