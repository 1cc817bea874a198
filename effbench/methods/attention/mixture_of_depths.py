"""Mixture-of-Depths: Raposo et al., "Mixture-of-Depths: Dynamically allocating compute in
transformer-based language models", arXiv:2404.02258.

Every other block (layers 1, 3, ..., the paper's best arrangement) is routed: a learned
linear router scores each token, r_i = w^T x_i, and only the top k = max(1, floor(capacity
* T)) tokens of each sequence (``capacity`` from the grid point, 12.5% in the paper's best
runs) go through the block; they attend only each other (causally, in position order),
and the rest pass through unchanged on the residual stream. A routed token gets
x_i + g(r_i) * (block(x)_i - x_i); the router learns only through this gate (top-k has no
gradient). The paper multiplies by r_i itself; here g = sigmoid (the same ranking), our
choice, so a fresh router neither switches the routed blocks off nor flips their sign. The
router weights are a submodule of the model, so they are among its parameters and the
optimizer trains them. Attention is dense (causal masked SDPA, as the ``dense`` pattern).

Caveat, causality: top-k over the sequence is not causal. Whether token i is routed
depends on the scores of later tokens, so a routed block's output at i carries a little
information about the future, and at sampling time the later tokens do not exist yet. The
paper trains with top-k and samples with a causal decision: an auxiliary binary loss on
the router (is this token in the top k?) or a small auxiliary MLP predictor on the
(stop-gradient) block input that learns the same. Neither is implemented here: training
and evaluation both use top-k over the whole (teacher-forced) sequence, as in the paper's
training, so eval numbers are those of non-causal routing and may be slightly optimistic
for autoregressive use.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from effbench.methods.attention._lm import LM_TASK, masked_sdpa
from effbench.methods.attention._masked import full_mask, need
from effbench.models import LMConfig
from effbench.registry import Method

ROUTE_EVERY = 2  # route layers 1, 3, ...: every other block, the first one full


class TopKRouter(nn.Module):
    """The model's ``router(layer, x)`` plug: (index (B, k) increasing, gate (B, k)) or None (a full block)."""

    def __init__(self, config: LMConfig, capacity: float, seed: int, every: int = ROUTE_EVERY) -> None:
        super().__init__()
        if not 0 < capacity <= 1:
            raise ValueError(f"capacity must be in (0, 1], got {capacity}")
        self.capacity = capacity
        gen = torch.Generator().manual_seed(50_000 + seed)  # apart from the model's own init stream
        self.scores = nn.ModuleDict()
        for layer in range(every - 1, config.layers, every):
            linear = nn.Linear(config.d_model, 1, bias=False)
            with torch.no_grad():
                linear.weight.copy_(torch.randn(linear.weight.shape, generator=gen) * config.d_model**-0.5)
            self.scores[str(layer)] = linear

    def k(self, t: int) -> int:
        return max(1, min(t, int(self.capacity * t)))

    def forward(self, layer: int, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        if str(layer) not in self.scores:
            return None
        scores = self.scores[str(layer)](x).squeeze(-1)  # (B, T)
        index = scores.topk(self.k(x.shape[1]), dim=-1).indices.sort(dim=-1).values  # position order: causal
        return index, torch.sigmoid(scores.gather(1, index))


def router(config: LMConfig, point: dict[str, Any], seed: int) -> TopKRouter:
    (capacity,) = need(point, "capacity")
    return TopKRouter(config, float(capacity), seed)


method = Method(
    task=LM_TASK,
    name="mixture_of_depths",
    paper="Mixture-of-Depths: Dynamically allocating compute in transformer-based language models",
    arxiv="2404.02258",
    summary="Every other block processes only the top capacity fraction of tokens by a learned router score; "
            "the rest skip it on the residual stream.",
    mask=full_mask,  # dense: the task intersects it with the causal mask
    router=router,
)
method.impl("reference", note="top-k routing (non-causal, no auxiliary predictor), dense masked SDPA")(masked_sdpa)
