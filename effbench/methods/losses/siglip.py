"""SigLIP's pairwise sigmoid loss: Zhai et al., "Sigmoid Loss for Language Image Pre-Training",
arXiv:2303.15343.

l_ij = exp(t') a_i . t_j + beta, z_ij = +1 if i = j else -1; loss = -(1/b) sum_ij log sigmoid(z_ij l_ij).
Every pair is an independent binary problem, so no softmax normalisation couples the batch.
``reference`` materialises the b x b logits; ``chunked`` computes one block of rows at a
time and recomputes it in backward (activation checkpointing); ``triton`` tiles both
dimensions and never writes the logits (``kernels/sigmoid_pairwise.py``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from effbench.registry import Method

method = Method(
    task="loss/sigmoid_pairwise",
    name="siglip",
    paper="Sigmoid Loss for Language Image Pre-Training",
    arxiv="2303.15343",
    summary="Pairwise sigmoid loss with learnable temperature and bias; no batch-wide softmax.",
)


def _block_loss(a_rows: torch.Tensor, t: torch.Tensor, log_temp: torch.Tensor, bias: torch.Tensor,
                start: torch.Tensor) -> torch.Tensor:
    compute = torch.promote_types(a_rows.dtype, torch.float32)
    logits = log_temp.to(compute).exp() * (a_rows.to(compute) @ t.to(compute).T) + bias.to(compute)  # (rows, b)
    sign = -torch.ones_like(logits)
    idx = torch.arange(a_rows.shape[0], device=a_rows.device)
    sign[idx, idx + start] = 1.0
    return -F.logsigmoid(sign * logits).sum()


@method.impl("reference")
def reference(a: torch.Tensor, t: torch.Tensor, log_temp: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    start = torch.zeros((), dtype=torch.long)
    return (_block_loss(a, t, log_temp, bias, start) / a.shape[0]).to(a.dtype)


@method.impl("chunked")
def chunked(a: torch.Tensor, t: torch.Tensor, log_temp: torch.Tensor, bias: torch.Tensor,
            budget_elements: int = 1 << 22) -> torch.Tensor:
    """Row blocks of at most ``budget_elements`` logits, each recomputed in backward."""
    block = max(1, budget_elements // a.shape[0])
    total = sum(
        checkpoint(_block_loss, a[s : s + block], t, log_temp, bias, torch.tensor(s), use_reentrant=False)
        for s in range(0, a.shape[0], block)
    )
    return (total / a.shape[0]).to(a.dtype)


@method.impl("triton", needs=("triton",))
def triton(a: torch.Tensor, t: torch.Tensor, log_temp: torch.Tensor, bias: torch.Tensor, **blocks: int) -> torch.Tensor:
    from effbench.kernels.sigmoid_pairwise import sigmoid_pairwise_loss

    return sigmoid_pairwise_loss(a, t, log_temp, bias, **blocks)
