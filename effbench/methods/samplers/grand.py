"""Data Diet, GraNd scores: Paul, Ganguli & Dziugaite, "Deep Learning on a Data Diet: Finding Important
Examples Early in Training", arXiv:2107.07075.

Each example's GraNd score is the norm of its loss gradient over *all* parameters,
``||grad_w loss(x, y)||_2``, averaged over ``score_runs`` copies of the model; the paper's
headline variant scores at initialisation (``score_steps = 0``). Per-example gradients come
from ``torch.func.vmap(grad)`` in chunks (the cost EL2N avoids). The ``keep`` fraction of
highest scores is kept and each step trains on up to k uniformly chosen kept candidates
(``_pruning``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, vmap

from effbench.methods.samplers._pruning import select_kept
from effbench.plugs import CandidatePool
from effbench.registry import Method

method = Method(
    task="sampler/data_selection",
    name="grand",
    paper="Deep Learning on a Data Diet: Finding Important Examples Early in Training",
    arxiv="2107.07075",
    summary="Prune to the examples of largest per-example gradient norm at initialisation (GraNd).",
    keep=0.5,
    score_runs=2,
    score_steps=0,
    score_batch=64,
    score_lr=0.05,
)


def per_example_grad_norms(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``||d CE(model(x_i), y_i) / d params||_2`` for every row i, float64."""
    params = {name: p.detach() for name, p in model.named_parameters()}

    def loss_of(p: dict, xi: torch.Tensor, yi: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(functional_call(model, p, (xi[None],)), yi[None])

    grads = vmap(grad(loss_of), in_dims=(None, 0, 0))(params, x, y)
    squares = sum(g.flatten(1).double().pow(2).sum(1) for g in grads.values())
    return squares.sqrt()


def score(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return per_example_grad_norms(model, x, y).cpu()


@method.impl("reference")
def reference(pool: CandidatePool, k: int, generator: torch.Generator) -> tuple[torch.Tensor, None]:
    return select_kept(pool, k, generator, score, method.extras)
