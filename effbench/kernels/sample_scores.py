"""The kernels of ``sampler/scoring``: classifier-head scores in one pass, and hashed n-gram counts.

``ngram_counts`` (method ``hashed_ngrams``) is a histogram: one program per (row, block of
positions) hashes each unigram and bigram as DSIR does and adds 1 to its bucket of the row
with a fp32 atomic (exact for counts below 2^24).

Classifier-head scores (method ``last_layer_scores``):

For logits z = W h + b of one row, target y and m = max_v z_v, a program folds tiles of
columns into four running statistics, rescaled whenever the running max grows:

    s1 = sum_{v != y} exp(z_v - m),   s2 = sum_{v != y} exp(2 (z_v - m)),   z_y,   m.

With e_y = exp(z_y - m) and S = s1 + e_y, the scores follow without a second pass:

    loss  = -log p_y = log1p(s1 / e_y)   (= m + log S - z_y, the form used once e_y < e^-20)
    ||p - onehot(y)||^2 = sum_{v != y} p_v^2 + (1 - p_y)^2 = (s2 + s1^2) / S^2

(the form sum_v p_v^2 - 2 p_y + 1 = s2'/S^2 - 2 p_y + 1, with s2' over all columns, is the
same number but cancels when p_y is near 1; keeping the target out of s1 and s2 makes every
term positive). grad_norm = ||p - onehot(y)|| sqrt(||h||^2 + 1).

``last_layer_scores`` computes each (BLOCK_N, BLOCK_C) logit tile in registers from h and W
(a K-loop over H with ``tl.dot``, fp32 accumulation, IEEE fp32 products for fp32 inputs), so
the N x C logits never reach global memory; ``scores_from_logits`` runs the same fold over
logits materialised by a matmul. The columns are split into ``splits`` contiguous ranges,
one program per (row block, range), so that short N still fills the GPU; each writes its
partial statistics, merged afterwards over the ranges (an O(N x splits) step).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from effbench.kernels._common import require_device
from effbench.kernels._spec import CompileSpec

_TARGET_PROGRAMS = 512  # enough (row block, column range) programs to fill an H100-class GPU a few times
# the launchers' defaults: logit tiles computed in registers (last_layer_scores), or read (scores_from_logits)
FUSED = {"block_n": 64, "block_c": 128, "block_h": 64, "num_warps": 8}
FROM_ROWS = {"block_n": 4, "block_c": 1024, "block_h": 16, "num_warps": 4}
BLOCK_T = 256  # token positions per ngram_counts program
# sampler/scoring's gpu grid: fp32 and bf16; C (32000, 128256) >= every block_c, so block_c stays in full;
# n-gram rows of T >= BLOCK_T tokens; every size a multiple of 16. tests/test_kernelcheck.py checks the grid.
GPU_DTYPES = ("float32", "bfloat16")


@triton.jit
def _scores_kernel(
    h_ptr, w_ptr, b_ptr, logits_ptr, y_ptr, m_ptr, s1_ptr, s2_ptr, zy_ptr,
    N, C, H, stride_h, stride_w, stride_logits, cols_per_split,
    FROM_LOGITS: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_H: tl.constexpr,
):
    split = tl.program_id(1)
    rows = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    row_mask = rows < N
    rows64 = rows.to(tl.int64)
    targets = tl.load(y_ptr + rows, mask=row_mask, other=-1)
    m = tl.zeros([BLOCK_N], dtype=tl.float32) - float("inf")
    s1 = tl.zeros([BLOCK_N], dtype=tl.float32)
    s2 = tl.zeros([BLOCK_N], dtype=tl.float32)
    zy = tl.zeros([BLOCK_N], dtype=tl.float32)
    c_begin = split * cols_per_split
    c_end = tl.minimum(c_begin + cols_per_split, C)
    for c0 in range(c_begin, c_end, BLOCK_C):
        cols = c0 + tl.arange(0, BLOCK_C)
        col_mask = cols < c_end
        if FROM_LOGITS:
            z = tl.load(logits_ptr + rows64[:, None] * stride_logits + cols[None, :],
                        mask=row_mask[:, None] & col_mask[None, :], other=0.0).to(tl.float32)
        else:
            z = tl.zeros([BLOCK_N, BLOCK_C], dtype=tl.float32)
            for k0 in range(0, H, BLOCK_H):
                ks = k0 + tl.arange(0, BLOCK_H)
                in_k = ks < H
                h_tile = tl.load(h_ptr + rows64[:, None] * stride_h + ks[None, :],
                                 mask=row_mask[:, None] & in_k[None, :], other=0.0)
                w_tile = tl.load(w_ptr + cols.to(tl.int64)[:, None] * stride_w + ks[None, :],
                                 mask=col_mask[:, None] & in_k[None, :], other=0.0)
                z = tl.dot(h_tile, tl.trans(w_tile), z, input_precision="ieee")
            z += tl.load(b_ptr + cols, mask=col_mask, other=0.0).to(tl.float32)[None, :]
        is_target = cols[None, :] == targets[:, None]
        zy += tl.sum(tl.where(is_target, z, 0.0), axis=1)
        z = tl.where(col_mask[None, :], z, -float("inf"))
        new_m = tl.maximum(m, tl.max(z, axis=1))  # finite: every tile has a column in range
        scale = tl.exp(m - new_m)
        e = tl.where(is_target, 0.0, tl.exp(z - new_m[:, None]))
        s1 = s1 * scale + tl.sum(e, axis=1)
        s2 = s2 * (scale * scale) + tl.sum(e * e, axis=1)
        m = new_m
    out = split * N + rows
    tl.store(m_ptr + out, m, mask=row_mask)
    tl.store(s1_ptr + out, s1, mask=row_mask)
    tl.store(s2_ptr + out, s2, mask=row_mask)
    tl.store(zy_ptr + out, zy, mask=row_mask)


def _splits(n_row_blocks: int, col_tiles: int, splits: int | None) -> int:
    if splits is None:
        splits = triton.cdiv(_TARGET_PROGRAMS, n_row_blocks)
    return max(1, min(splits, col_tiles))


def _block_c(c: int, block_c: int) -> int:
    """Columns per tile: ``block_c``, or the next power of two >= max(C, 16) when C is smaller."""
    return min(block_c, max(16, triton.next_power_of_2(c)))


def _launch(h: torch.Tensor, w: torch.Tensor, b: torch.Tensor, y: torch.Tensor, logits: torch.Tensor | None,
            block_n: int, block_c: int, block_h: int, splits: int | None, num_warps: int,
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    assert h.ndim == 2 and w.ndim == 2 and h.shape[1] == w.shape[1]
    assert b.shape == (w.shape[0],) and y.shape == (h.shape[0],)
    require_device(h, w, b)
    n, hidden = h.shape
    c = w.shape[0]
    h, w, b, y = h.contiguous(), w.contiguous(), b.contiguous(), y.contiguous()
    block_c = _block_c(c, block_c)
    n_row_blocks = triton.cdiv(n, block_n)
    col_tiles = triton.cdiv(c, block_c)
    n_splits = _splits(n_row_blocks, col_tiles, splits)
    cols_per_split = triton.cdiv(col_tiles, n_splits) * block_c
    n_splits = triton.cdiv(c, cols_per_split)  # no empty range
    m, s1, s2, zy = (torch.empty(n_splits, n, dtype=torch.float32, device=h.device) for _ in range(4))
    _scores_kernel[(n_row_blocks, n_splits)](
        h, w, b, logits if logits is not None else h, y, m, s1, s2, zy,
        n, c, hidden, h.stride(0), w.stride(0), logits.stride(0) if logits is not None else 0, cols_per_split,
        FROM_LOGITS=logits is not None, BLOCK_N=block_n, BLOCK_C=block_c, BLOCK_H=block_h, num_warps=num_warps,
    )
    # merge the column ranges' statistics
    m_all = m.max(0).values
    rescale = torch.exp(m - m_all)
    s1 = (s1 * rescale).sum(0)
    s2 = (s2 * rescale.square()).sum(0)
    zy = zy.sum(0)  # only the range holding the target adds a non-zero
    e_y = torch.exp(zy - m_all)
    total = s1 + e_y
    # -log p_y = log1p(s1 / e_y): no cancellation when p_y is near 1; the plain form once e_y is tiny
    confident = zy - m_all > -20.0
    loss = torch.where(confident, torch.log1p(s1 / torch.where(confident, e_y, 1.0)), m_all - zy + torch.log(total))
    el2n = torch.sqrt(s2 + s1.square()) / total
    grad_norm = el2n * torch.sqrt(h.float().square().sum(-1) + 1)
    return loss, el2n, grad_norm


def last_layer_scores(h: torch.Tensor, w: torch.Tensor, b: torch.Tensor, y: torch.Tensor,
                      block_n: int = FUSED["block_n"], block_c: int = FUSED["block_c"], block_h: int = FUSED["block_h"],
                      splits: int | None = None, num_warps: int = FUSED["num_warps"],
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss, el2n, grad_norm), fp32 (N,) each, for h (N, H), w (C, H), b (C,), y (N,); no logits in memory."""
    return _launch(h, w, b, y, None, block_n, block_c, block_h, splits, num_warps)


def scores_from_logits(h: torch.Tensor, w: torch.Tensor, b: torch.Tensor, y: torch.Tensor,
                       block_n: int = FROM_ROWS["block_n"], block_c: int = FROM_ROWS["block_c"],
                       splits: int | None = None, num_warps: int = FROM_ROWS["num_warps"],
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The same scores from logits materialised by one matmul (N x C in the input dtype), one fold pass."""
    logits = torch.addmm(b, h, w.T)
    return _launch(h, w, b, y, logits, block_n, block_c, FROM_ROWS["block_h"], splits, num_warps)


@triton.jit
def _ngram_counts_kernel(tokens_ptr, counts_ptr, T, stride_tokens, buckets, vocab, mix, BLOCK_T: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    pos = tl.program_id(1) * BLOCK_T + tl.arange(0, BLOCK_T)
    has_unigram = pos < T
    has_bigram = pos + 1 < T
    row_tokens = tokens_ptr + row * stride_tokens
    tok = tl.load(row_tokens + pos, mask=has_unigram, other=0).to(tl.int64)
    nxt = tl.load(row_tokens + pos + 1, mask=has_bigram, other=0).to(tl.int64)
    row_counts = counts_ptr + row * buckets
    # DSIR's hash: (id * mix) mod 2^32 mod buckets; bigram ids start after the vocab's unigram ids
    unigram = (tok * mix) % 4294967296 % buckets
    bigram = ((vocab + tok * vocab + nxt) * mix) % 4294967296 % buckets
    tl.atomic_add(row_counts + unigram, tl.full([BLOCK_T], 1.0, tl.float32), mask=has_unigram)
    tl.atomic_add(row_counts + bigram, tl.full([BLOCK_T], 1.0, tl.float32), mask=has_bigram)


def ngram_counts(tokens: torch.Tensor, buckets: int, vocab: int, mix: int, block_t: int = BLOCK_T) -> torch.Tensor:
    """(N, buckets) fp32 counts of each row's hashed unigrams and bigrams, by atomic adds (exact below 2^24)."""
    assert tokens.ndim == 2 and not tokens.is_floating_point()
    require_device(tokens)
    n, t = tokens.shape
    tokens = tokens.contiguous()
    counts = torch.zeros(n, buckets, dtype=torch.float32, device=tokens.device)
    block_t = min(block_t, triton.next_power_of_2(max(t, 1)))
    _ngram_counts_kernel[(n, triton.cdiv(t, block_t))](
        tokens, counts, t, tokens.stride(0), buckets, vocab, mix, BLOCK_T=block_t,
    )
    return counts


def compile_specs() -> list[CompileSpec]:
    """The scores kernel with logit tiles in registers and from materialised logits, at every gpu-grid dtype,
    and the n-gram histogram (int64 tokens, fp32 counts: no case dtype; the hash multiplier passes 2^31)."""
    stats = {"y_ptr": "i64", "m_ptr": "fp32", "s1_ptr": "fp32", "s2_ptr": "fp32", "zy_ptr": "fp32"}
    sizes = ("N", "C", "H", "stride_h", "stride_w", "stride_logits", "cols_per_split")
    specs = [
        CompileSpec(_scores_kernel, dtype,
                    {"FROM_LOGITS": from_logits, "BLOCK_N": blocks["block_n"], "BLOCK_C": blocks["block_c"],
                     "BLOCK_H": blocks["block_h"]},
                    pointers=stats, divisible=sizes, num_warps=blocks["num_warps"])
        for dtype in GPU_DTYPES
        for from_logits, blocks in ((False, FUSED), (True, FROM_ROWS))
    ]
    specs.append(CompileSpec(_ngram_counts_kernel, None, {"BLOCK_T": BLOCK_T},
                             pointers={"tokens_ptr": "i64", "counts_ptr": "fp32"}, int64=("mix",),
                             divisible=("T", "stride_tokens", "buckets", "vocab")))
    return specs
