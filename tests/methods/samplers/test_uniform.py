import torch

from effbench.methods.samplers.uniform import reference
from effbench.plugs import CandidatePool


def test_picks_k_distinct_candidates_without_scoring():
    pool = CandidatePool(torch.randn(50, 3), torch.zeros(50, dtype=torch.long), torch.nn.Linear(3, 2))
    idx, weights = reference(pool, 20, torch.Generator().manual_seed(0))
    assert weights is None
    assert len(set(idx.tolist())) == 20 and 0 <= idx.min() and idx.max() < 50
    assert pool.scored == 0  # uniform never pays for a forward pass
