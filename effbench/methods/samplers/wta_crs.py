"""WTA-CRS, winner-take-all column-row sampling: Liu et al., "Winner-Take-All Column Row Sampling for
Memory Efficient Adaptation of Language Model", arXiv:2305.15265.

A linear layer's weight gradient is a sum over token rows, ``dW = sum_i dY_i^T X_i``. WTA-CRS keeps
only ``k = ratio * rows`` rows of X for backward (the activation memory it saves) and estimates
dW without bias from them. Row i has probability ``p_i ~ ||X_i||`` (the paper's ``||X_i|| ||dY_i||``
needs dY, unknown in the forward pass; its code caches the last ||dY_i|| per training example
and falls back to ||X_i|| without one; we always use the fallback, with no per-example cache).
The winners, the ``c`` most probable rows, are kept exactly, with ``c`` minimising
``(1 - P_c) / (k - c)`` (``P_c``: their total probability); the remaining ``s = k - c`` rows are
drawn with replacement from the leftover probabilities and scaled by ``(1 - P_c) / (s p_j)``,
which keeps the estimate unbiased. The input gradient dX = dY W is exact.

Applied to every linear layer of every transformer block (attention qkv and output, MLP up and
down); the authors' default samples only the attention projections. Budget ratio 0.3 (their
code's default). Sampling is seeded per run; evaluation (no autograd) is exact.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from effbench.registry import Method

method = Method(
    task="sampler/memory",
    name="wta_crs",
    paper="Winner-Take-All Column Row Sampling for Memory Efficient Adaptation of Language Model",
    arxiv="2305.15265",
    summary="Keep a sampled subset of token rows for each linear layer's weight gradient (unbiased).",
    ratio=0.3,
    weight_decay=0.01,
)


def winner_take_all_rows(norms: torch.Tensor, k: int,
                         generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(row indices, scales) of a WTA-CRS sample of ``k`` rows with probability ~ ``norms``.

    Unbiased: ``sum_j scale_j v_{idx_j}`` has expectation ``sum_i v_i`` for any row values v.
    """
    n = norms.numel()
    norms = norms.detach().double().cpu()
    if k >= n:
        return torch.arange(n), torch.ones(n, dtype=torch.float64)
    total = norms.sum()
    p = norms / total if total > 0 else torch.full((n,), 1.0 / n, dtype=torch.float64)
    order = torch.argsort(p, descending=True, stable=True)
    before = torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumsum(p[order], 0)[: k - 1]])  # P_c, c < k
    c = int(torch.argmin((1 - before).clamp_min(0) / (k - torch.arange(k, dtype=torch.float64))))
    winners, rest = order[:c], order[c:]
    leftover = float((1 - before[c]).clamp_min(0))
    if leftover <= 1e-12 or p[rest].sum() <= 0:  # the winners carry everything
        return winners, torch.ones(c, dtype=torch.float64)
    s = k - c
    draws = rest[torch.multinomial(p[rest], s, replacement=True, generator=generator)]
    scales = torch.cat([torch.ones(c, dtype=torch.float64), leftover / (s * p[draws])])
    return torch.cat([winners, draws]), scales


class _SampledLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, ratio, generator):  # noqa: ANN001, ANN205  (autograd's signature)
        rows = x.reshape(-1, x.shape[-1])
        k = max(1, int(ratio * rows.shape[0]))
        idx, scales = winner_take_all_rows(torch.linalg.vector_norm(rows, dim=1), k, generator)
        idx = idx.to(x.device)
        kept = rows[idx] * scales.to(x.device, x.dtype)[:, None]  # (k, in): all that backward keeps of x
        ctx.save_for_backward(kept, idx, weight)
        ctx.x_shape = x.shape
        return F.linear(x, weight)

    @staticmethod
    def backward(ctx, grad_out):  # noqa: ANN001, ANN205
        kept, idx, weight = ctx.saved_tensors
        g = grad_out.reshape(-1, grad_out.shape[-1])
        grad_x = (g @ weight).view(ctx.x_shape) if ctx.needs_input_grad[0] else None
        grad_w = g[idx].T @ kept if ctx.needs_input_grad[1] else None
        return grad_x, grad_w, None, None


class SampledLinear(torch.nn.Module):
    """A bias-free linear layer whose weight gradient is WTA-CRS's estimate (exact when ``sampling`` is off)."""

    def __init__(self, linear: torch.nn.Linear, ratio: float, generator: torch.Generator) -> None:
        super().__init__()
        if linear.bias is not None:
            raise ValueError("SampledLinear takes bias-free layers (the zoo's transformer blocks)")
        self.weight = linear.weight
        self.ratio, self.generator, self.sampling = ratio, generator, True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.sampling and torch.is_grad_enabled() and self.weight.requires_grad):
            return F.linear(x, self.weight)
        return _SampledLinear.apply(x, self.weight, self.ratio, self.generator)


def sample_block_linears(model: torch.nn.Module, ratio: float, seed: int) -> list[SampledLinear]:
    """Swap every linear layer of ``model.blocks`` for a SampledLinear sharing its weight (in place)."""
    generator = torch.Generator().manual_seed(50_000 + seed)
    swapped = []
    for block in model.blocks:
        for name, child in list(block.named_children()):
            if isinstance(child, torch.nn.Linear):
                layer = SampledLinear(child, ratio, generator)
                setattr(block, name, layer)
                swapped.append(layer)
    return swapped


@method.impl("reference")
def reference(model: torch.nn.Module, lr: float, seed: int) -> torch.optim.Optimizer:
    sample_block_linears(model, method.extras["ratio"], seed)
    return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=method.extras["weight_decay"])
