"""Last-layer selection scores: per-example loss, EL2N and last-layer gradient norm.

Katharopoulos & Fleuret ("Not All Samples Are Created Equal: Deep Learning with Importance
Sampling", arXiv:1803.00942) sample examples in proportion to an upper bound of their
gradient norm computed from the last layer alone; Data Diet's EL2N (Paul, Ganguli &
Dziugaite, "Deep Learning on a Data Diet", arXiv:2107.07075) is the norm of the loss
gradient w.r.t. the logits. For hidden states h (N, H), a head W (C, H), b (C), logits
z_i = W h_i + b, p_i = softmax(z_i) and the residual r_i = p_i - onehot(y_i):

    loss_i = logsumexp(z_i) - z_{i,y_i},   el2n_i = ||r_i||_2,
    grad_norm_i = ||(r_i h_i^T, r_i)||_F = el2n_i sqrt(||h_i||^2 + 1).

Each implementation returns ``(loss, el2n, grad_norm)``, (N,) each, in at least fp32:

- ``reference``: the naive way, by the definition. Per-example gradients of F.cross_entropy
  w.r.t. (W, b) by ``torch.func`` (vmap of grad), materialised as a (rows, C, H) tensor plus
  (rows, C) for the bias, for row blocks of at most ``budget_elements`` gradient entries
  (all rows' gradients are materialised, one block at a time, so memory stays bounded),
  and their Frobenius norms taken; loss by ``F.cross_entropy(reduction="none")``, EL2N
  from the softmax residual.
- ``closed_form``: one logits matmul (N, C) and the residual's norm times sqrt(||h||^2 + 1);
  no per-example gradient is formed.
- ``triton``: a fused kernel (``effbench.kernels.sample_scores``) that computes logit tiles
  in registers (h W^T tile by tile, as Cut Cross-Entropy does) and folds them into one
  streaming pass of online max / sum-exp statistics; the N x C logits are never written.
- ``triton_rows``: the logits by one matmul (N x C in the input dtype), then the same
  one-pass fold as a row kernel over them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from effbench.registry import Method

method = Method(
    task="sampler/scoring",
    name="last_layer_scores",
    paper="Not All Samples Are Created Equal: Deep Learning with Importance Sampling",
    arxiv="1803.00942",
    summary="Per-example loss, EL2N (||softmax - onehot||) and last-layer gradient norm of a classifier head; "
    "implementations differ in whether they materialise per-example gradients or the logits.",
    inputs="head",
)

Scores = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    # softmax in at least fp32, as every production head does; float64 stays float64
    return torch.promote_types(dtype, torch.float32)


def _example_loss(w: torch.Tensor, b: torch.Tensor, h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    z = (w @ h + b).to(_compute_dtype(h.dtype))
    return F.cross_entropy(z[None], y[None])


_per_example_grads = torch.func.vmap(torch.func.grad(_example_loss, argnums=(0, 1)), in_dims=(None, None, 0, 0))


@method.impl("reference")
def reference(h: torch.Tensor, w: torch.Tensor, b: torch.Tensor, y: torch.Tensor,
              budget_elements: int | None = None) -> Scores:
    """Per-example gradients in row blocks of at most ``budget_elements`` entries (default 2^22 on the
    CPU, where small blocks stay in cache; 2^28 on a GPU, where few large blocks keep it busy)."""
    if budget_elements is None:
        budget_elements = 1 << 22 if h.device.type == "cpu" else 1 << 28
    dtype = _compute_dtype(h.dtype)
    logits = (h @ w.T + b).to(dtype)
    loss = F.cross_entropy(logits, y, reduction="none")
    residual = torch.softmax(logits, dim=-1) - F.one_hot(y, w.shape[0]).to(dtype)
    el2n = torch.linalg.vector_norm(residual, dim=-1)
    grad_norm = torch.empty_like(el2n)
    rows = max(1, budget_elements // w.numel())
    for start in range(0, h.shape[0], rows):
        block = slice(start, start + rows)
        grad_w, grad_b = _per_example_grads(w, b, h[block], y[block])  # (rows, C, H) and (rows, C)
        norm_w = torch.linalg.vector_norm(grad_w, dim=(1, 2), dtype=dtype)
        grad_norm[block] = torch.sqrt(norm_w.square() + torch.linalg.vector_norm(grad_b, dim=1, dtype=dtype).square())
    return loss, el2n, grad_norm


@method.impl("closed_form")
def closed_form(h: torch.Tensor, w: torch.Tensor, b: torch.Tensor, y: torch.Tensor) -> Scores:
    dtype = _compute_dtype(h.dtype)
    logits = torch.addmm(b, h, w.T).to(dtype)  # (N, C): the only C-wide tensor, besides its softmax
    lse = torch.logsumexp(logits, dim=-1)
    target = logits.gather(1, y[:, None]).squeeze(1)
    residual = torch.exp(logits - lse[:, None])
    residual.scatter_add_(1, y[:, None], torch.full_like(target[:, None], -1.0))
    el2n = torch.linalg.vector_norm(residual, dim=-1)
    h_sq = h.to(dtype).square().sum(-1)
    return lse - target, el2n, el2n * torch.sqrt(h_sq + 1)


@method.impl("triton", needs=("triton",))
def triton_fused(h: torch.Tensor, w: torch.Tensor, b: torch.Tensor, y: torch.Tensor, **blocks: int) -> Scores:
    from effbench.kernels.sample_scores import last_layer_scores

    return last_layer_scores(h, w, b, y, **blocks)


@method.impl("triton_rows", needs=("triton",))
def triton_rows(h: torch.Tensor, w: torch.Tensor, b: torch.Tensor, y: torch.Tensor, **blocks: int) -> Scores:
    from effbench.kernels.sample_scores import scores_from_logits

    return scores_from_logits(h, w, b, y, **blocks)
