"""Implementations shared by every mask pattern (not a method: patterns import these).

A static pattern is written once, as a *mask_mod* in FlexAttention's convention:
``mod(b, h, q_idx, kv_idx) -> bool tensor`` (True = the query may attend the key), made by a
factory ``factory(n, point, device)`` from the grid point's parameters. Evaluated on index
grids (``mask_from_mod``) it gives the boolean (N, N) mask that ``reference_attention`` and
``sdpa_attention`` receive; ``flex_impl`` hands the very same mod to FlexAttention.

``reference_attention`` is the definition: fp32 (or wider) scores, an optional low-rank bias
u w^T added to them, the mask applied as -inf, softmax, then the weighted sum of values.

Peers (``xformers``, ``flash_attn``) run on CUDA only; ``XFORMERS`` and ``FLASH_ATTN`` are the
registration keywords that record them unavailable elsewhere. Whatever an implementation
derives from the mask (a FlexAttention BlockMask, an xFormers bias tensor) is built on its
first call and kept while the mask tensor lives (``per_mask``): the accuracy call builds it,
the timed calls reuse it, as a model builds a mask once per batch and shares it across layers.
"""

from __future__ import annotations

import functools
import weakref
import zlib
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from effbench.registry import BackwardUnavailable, Skipped
from effbench.tasks import need  # noqa: F401 - the patterns import it from here with the rest

MaskMod = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
ModFactory = Callable[[int, dict, Any], MaskMod]

XFORMERS: dict[str, Any] = {"needs": ("xformers",), "devices": ("cuda",)}
TRITON: dict[str, Any] = {"needs": ("triton",)}
FLASH_ATTN: dict[str, Any] = {"needs": ("flash_attn",), "devices": ("cuda",), "dtypes": ("bfloat16", "float16")}

# Score elements per reference chunk: 2^28 float64 scores are 2 GiB, so the float64 truth of a
# 32k-token, 16-head point fits in GPU memory (one head at a time, recomputed in the backward).
_SCORES_PER_CHUNK = 1 << 28


# --------------------------------------------------------------------------- pattern parameters


def point_generator(point: dict[str, Any], salt: str) -> torch.Generator:
    """A CPU generator seeded by the point itself (stable across processes: no salted ``hash``)."""
    from effbench.rows import point_key

    return torch.Generator().manual_seed(zlib.crc32(f"{salt}:{point_key(point)}".encode()))


def grid_mask(mod: MaskMod, n: int, device: Any) -> torch.Tensor:
    """``mod`` evaluated on every (query, key) pair of one head: an (N, N) bool mask."""
    i = torch.arange(n, device=device)
    zero = torch.zeros((), dtype=torch.long, device=device)
    return mod(zero, zero, i[:, None], i[None, :]).expand(n, n).clone()


def mask_from_mod(factory: ModFactory) -> Callable[[int, dict, Any], torch.Tensor]:
    """The task's ``mask(n, point, device)`` builder of a pattern given by its mod factory."""

    def mask(n: int, point: dict[str, Any], device: Any) -> torch.Tensor:
        return grid_mask(factory(n, point, device), n, device)

    mask.factory = factory  # type: ignore[attr-defined]
    return mask


def full_mask(n: int, point: dict, device: str) -> torch.Tensor:
    return torch.ones(n, n, dtype=torch.bool, device=device)


def causal_mod(n: int, point: dict[str, Any], device: Any) -> MaskMod:
    return lambda b, h, q_idx, kv_idx: kv_idx <= q_idx


# --------------------------------------------------------------------------- reference and SDPA


def _attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor,
            u: torch.Tensor | None, w: torch.Tensor | None) -> torch.Tensor:
    compute = torch.promote_types(q.dtype, torch.float32)
    scale = q.shape[-1] ** -0.5
    scores = (q.to(compute) @ k.to(compute).transpose(-2, -1)) * scale  # (..., N, N)
    if u is not None:
        scores = scores + u.to(compute) @ w.to(compute).transpose(-2, -1)
    scores = scores.masked_fill(~mask, float("-inf"))
    return (torch.softmax(scores, dim=-1) @ v.to(compute)).to(q.dtype)


def reference_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor,
                        u: torch.Tensor | None = None, w: torch.Tensor | None = None) -> torch.Tensor:
    """softmax(q k^T / sqrt(d) + u w^T, masked) v with materialised scores.

    ``mask`` is (N, N) or (B, H, N, N); ``u``, ``w`` (B, H, N, r) are an optional low-rank bias.
    Long sequences are computed a few heads at a time under activation checkpointing, so
    memory stays bounded by one chunk's scores; the arithmetic is the same.
    """
    b, h, n, _ = q.shape
    m = k.shape[-2]
    per_chunk = max(1, _SCORES_PER_CHUNK // (n * m))
    if b * h <= per_chunk:
        return _attend(q, k, v, mask, u, w)

    def flat(x: torch.Tensor | None) -> torch.Tensor | None:
        return None if x is None else x.reshape(b * h, *x.shape[2:])

    qs, ks, vs, us, ws = (flat(x) for x in (q, k, v, u, w))
    ms = mask if mask.dim() == 2 else mask.expand(b, h, n, m).reshape(b * h, n, m)
    outs = []
    for start in range(0, b * h, per_chunk):
        rows = slice(start, start + per_chunk)
        chunk_mask = ms if ms.dim() == 2 else ms[rows]
        outs.append(checkpoint(_attend, qs[rows], ks[rows], vs[rows], chunk_mask,
                               None if us is None else us[rows], None if ws is None else ws[rows],
                               use_reentrant=False))
    return torch.cat(outs).reshape(b, h, n, v.shape[-1])


def sdpa_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def triton_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor, *,
                     point: dict[str, Any]) -> torch.Tensor:
    """Our block-sparse flash attention (``kernels/block_sparse_attention.py``) over the mask's block layout.

    Tiles are the point's ``block`` where it sets one the kernel can tile by (a power of two >= 16),
    so block-aligned patterns (BigBird, top-k) skip exactly the blocks they drop; elsewhere the
    kernel's default. The layout is built on the
    first call and reused while the mask lives.
    """
    from effbench.kernels.block_sparse_attention import block_sparse_attention

    block = point.get("block")
    if block is not None and (block < 16 or block & (block - 1)):
        block = None  # the kernel tiles in powers of two >= 16: its default tile then
    return block_sparse_attention(q, k, v, mask, block=block)


# --------------------------------------------------------------------------- per-mask preparation

_PREPARED: dict[tuple[str, int], tuple[int, Any]] = {}


def per_mask(tag: str, mask: torch.Tensor, build: Callable[[], Any]) -> Any:
    """``build()`` once per mask tensor (and ``tag``), dropped when the mask is freed.

    Keyed by the tensor's identity, not its address: a later mask at the same address (the
    next case, another seed's data-dependent mask) must never get this one's structure.
    ``build`` must not keep ``mask`` itself alive (hold a view instead), or it is never freed.
    """
    key = (tag, id(mask))
    hit = _PREPARED.get(key)
    if hit is not None and hit[0] == mask._version:
        return hit[1]
    if hit is None:
        weakref.finalize(mask, _PREPARED.pop, key, None)
    value = build()
    _PREPARED[key] = (mask._version, value)
    return value


# --------------------------------------------------------------------------- FlexAttention


@functools.cache
def _compiled_flex() -> Callable[..., torch.Tensor]:
    from torch.nn.attention.flex_attention import flex_attention

    # One worker process runs every (pattern, shape, dtype) case, each a recompile of the same
    # function: past dynamo's default limit of 8 it would silently fall back to eager flex.
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 256)
    return torch.compile(flex_attention, dynamic=False)


def flex_attention_call(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, **kwargs: Any) -> torch.Tensor:
    """Compiled ``flex_attention``; torch's refusal of a CPU backward becomes ``BackwardUnavailable``.

    On the CPU with inputs that require grad, torch raises NotImplementedError. The call that
    finds out is the *eager* function, never the compiled one: an exception while dynamo
    traces makes it give up on the frame, and every later call (the forward-only ones too)
    would silently run eager flex, ~30x slower and materialising scores. The task then
    checks and times the forward alone, with torch's own reason recorded for the backward.
    """
    needs_grad = torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v))
    if q.device.type == "cpu" and needs_grad:
        from torch.nn.attention.flex_attention import flex_attention

        try:
            flex_attention(q, k, v, **kwargs)
        except NotImplementedError as exc:
            reason = f"FlexAttention in torch {torch.__version__} has no CPU backward: {exc}"
            raise BackwardUnavailable(reason) from None
    return _compiled_flex()(q, k, v, **kwargs)


def _block_mask(mod: MaskMod, batch: int | None, heads: int | None, n: int, device: torch.device) -> Any:
    from torch.nn.attention.flex_attention import create_block_mask

    # compiled mask creation on CUDA: the eager one materialises N x N integer temporaries
    return create_block_mask(mod, batch, heads, n, n, device=device, _compile=device.type == "cuda")


def flex_impl(factory: ModFactory) -> Callable[..., torch.Tensor]:
    """The ``flex`` implementation of a static pattern: its own mod as a BlockMask."""

    def flex(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor, *,
             point: dict[str, Any]) -> torch.Tensor:
        n = q.shape[-2]
        block_mask = per_mask("flex", mask, lambda: _block_mask(factory(n, point, q.device), None, None, n, q.device))
        return flex_attention_call(q, k, v, block_mask=block_mask)

    flex.__doc__ = f"FlexAttention with the BlockMask of ``{factory.__name__}`` (the mask's own definition)."
    return flex


def flex_lookup(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """FlexAttention whose mod reads a given bool mask, (N, N) or (B, H, N, N) (data-dependent masks)."""
    b, h, n, _ = q.shape

    def build() -> Any:
        table = mask.view(mask.shape)  # a view: the BlockMask must not keep the mask object alive
        if table.dim() == 2:
            return _block_mask(lambda b_, h_, qi, ki: table[qi, ki], None, None, n, q.device)
        return _block_mask(lambda b_, h_, qi, ki: table[b_, h_, qi, ki], b, h, n, q.device)

    return flex_attention_call(q, k, v, block_mask=per_mask("flex", mask, build))


# --------------------------------------------------------------------------- peers


def xformers_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attn_bias: Any = None,
                       scale: float | None = None) -> torch.Tensor:
    """xformers.ops.memory_efficient_attention on (B, H, N, d) tensors (it takes [B, M, H, K])."""
    from xformers.ops import memory_efficient_attention

    out = memory_efficient_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                     attn_bias=attn_bias, scale=scale)
    return out.transpose(1, 2)


def xformers_masked(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Any bool mask as xFormers' dense additive bias (0 / -inf), expanded to [B, H, N, N]."""
    b, h, n, _ = q.shape

    def build() -> torch.Tensor:
        bias = torch.zeros(mask.shape, dtype=q.dtype, device=q.device).masked_fill_(~mask, float("-inf"))
        return bias.expand(b, h, n, n)  # xFormers does not broadcast a bias tensor itself

    return xformers_attention(q, k, v, per_mask(f"xformers:{q.dtype}", mask, build))


def flash_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, **kwargs: Any) -> torch.Tensor:
    """flash_attn.flash_attn_func on (B, H, N, d) tensors (it takes (batch, seqlen, nheads, headdim))."""
    from flash_attn import flash_attn_func

    return flash_attn_func(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), **kwargs).transpose(1, 2)


def flash_unfit(pattern: str) -> Callable[..., torch.Tensor]:
    """A ``flash_attn`` implementation for a pattern it cannot express: skipped, with the reason."""

    def flash(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        raise Skipped(f"flash_attn masks only causally, by a sliding window or by packed sequences; "
                      f"it has no {pattern} mask")

    return flash
