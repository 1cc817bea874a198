"""FlashBias: Wu et al., "FlashBias: Fast Computation of Attention with Bias", arXiv:2505.12044.

Attention with an additive bias of low rank r given by factors u, w of shape (B, H, N, r):

    out = softmax(q k^T / sqrt(d) + u w^T) v

Computed densely, the bias is an N x N tensor read by the kernel (it breaks flash
attention's fused pipeline). FlashBias folds it into r extra columns of q and k:
[q, sqrt(d) u] [k, w]^T / sqrt(d) = q k^T / sqrt(d) + u w^T exactly, so any fused kernel
that takes a separate value head dim runs it with nothing N x N. The gradients du, dw are
checked with dq, dk, dv. No mask (the method's mask is full): the bias is the point.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from effbench.methods.attention._masked import (
    FLASH_ATTN,
    TRITON,
    XFORMERS,
    flash_attention,
    flex_attention_call,
    full_mask,
    reference_attention,
    triton_attention,
    xformers_attention,
)
from effbench.registry import Method, Unavailable

method = Method(
    task="attention/masked_attention",
    name="flashbias",
    paper="FlashBias: Fast Computation of Attention with Bias",
    arxiv="2505.12044",
    summary="Low-rank bias u w^T folded into r extra q/k columns, against the same bias added densely.",
    mask=full_mask,
    bias_rank=True,  # the task draws factors u, w of rank point["bias_rank"]
)
method.impl("reference")(reference_attention)


def extended(q: torch.Tensor, k: torch.Tensor, u: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """[q, sqrt(d) u] and [k, w]: under the 1/sqrt(d) scale their product adds exactly u w^T."""
    return torch.cat([q, u * q.shape[-1] ** 0.5], dim=-1), torch.cat([k, w], dim=-1)


@method.impl("sdpa")
def sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor, u: torch.Tensor,
         w: torch.Tensor) -> torch.Tensor:
    """The dense way: u w^T materialised (B, H, N, N) and passed as a float attn_mask."""
    return F.scaled_dot_product_attention(q, k, v, attn_mask=u @ w.transpose(-2, -1))


KERNEL_HEAD_DIMS = (16, 32, 64, 128)  # what our block-sparse kernel compiles for


@method.impl("triton", **TRITON)
def triton(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor, u: torch.Tensor, w: torch.Tensor,
           *, point: dict) -> torch.Tensor:
    """FlashBias on our block-sparse flash kernel (every tile full, nothing N x N).

    The kernel takes one head dim D for q, k and v and scales by 1/sqrt(D): [q, sqrt(d) u] and [k, w]
    are zero-padded to the next D it compiles for and q is multiplied by sqrt(D / d), so the scores
    are exactly q k^T / sqrt(d) + u w^T; v is zero-padded to D and the output cut back to d. The
    padding is wasted work, (D - d - r) / D of the q k^T products.
    """
    d = q.shape[-1]
    qx, kx = extended(q, k, u, w)
    sizes = [size for size in KERNEL_HEAD_DIMS if size >= qx.shape[-1]]
    if not sizes:
        raise Unavailable(f"d + r = {qx.shape[-1]} exceeds the kernel's head dims {KERNEL_HEAD_DIMS}")
    size = sizes[0]
    qx = F.pad(qx, (0, size - qx.shape[-1])) * (size / d) ** 0.5
    kx = F.pad(kx, (0, size - kx.shape[-1]))
    return triton_attention(qx, kx, F.pad(v, (0, size - d)), mask, point=point)[..., :d]


@method.impl("flashbias")
def flashbias(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor, u: torch.Tensor,
              w: torch.Tensor) -> torch.Tensor:
    """FlashBias's SDPA form: no N x N tensor; the scale stays 1/sqrt(d) of the original head dim."""
    qx, kx = extended(q, k, u, w)
    return F.scaled_dot_product_attention(qx, kx, v, scale=q.shape[-1] ** -0.5)


@method.impl("flex")
def flex(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor, u: torch.Tensor,
         w: torch.Tensor) -> torch.Tensor:
    """The extended q, k in FlexAttention (its value head dim may differ from the q/k one)."""
    qx, kx = extended(q, k, u, w)
    return flex_attention_call(qx, kx, v, scale=q.shape[-1] ** -0.5)


@method.impl("xformers", **XFORMERS)
def xformers(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor, u: torch.Tensor,
             w: torch.Tensor) -> torch.Tensor:
    """memory_efficient_attention takes a value head dim Kv apart from K: the extended q, k as they are."""
    qx, kx = extended(q, k, u, w)
    return xformers_attention(qx, kx, v, scale=q.shape[-1] ** -0.5)


@method.impl("flash_attn", **FLASH_ATTN)
def flash_attn(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor, u: torch.Tensor,
               w: torch.Tensor) -> torch.Tensor:
    """flash_attn_func wants one head dim for q, k and v: v padded with r zero columns, then cut."""
    qx, kx = extended(q, k, u, w)
    d = q.shape[-1]
    out = flash_attention(qx, kx, F.pad(v, (0, u.shape[-1])), softmax_scale=d**-0.5)
    return out[..., :d]
