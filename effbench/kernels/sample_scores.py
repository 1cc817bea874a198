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
from effbench.kernels._tune import autotune

_TARGET_PROGRAMS = 512  # enough (row block, column range) programs to fill an H100-class GPU a few times
# Autotune spaces of the scores kernel (the first entry: the interpreter's choice and the default of explicit
# blocks): logit tiles computed in registers (last_layer_scores), or read (scores_from_logits). A column range
# is a whole number of the space's widest BLOCK_C, so every config tiles it.
# `effbench kernels` on sm_90, fp32 and bf16: none of these spills; 128-row or 64 x 256 tiles spill in fp32
# (IEEE fp32 products: 24-6416 B), and 64 x 64 at 4 warps 16 B.
FUSED_CONFIGS = [
    triton.Config({"BLOCK_N": 64, "BLOCK_C": 128, "BLOCK_H": 64}, num_warps=8),
    triton.Config({"BLOCK_N": 64, "BLOCK_C": 64, "BLOCK_H": 64}, num_warps=8),
    triton.Config({"BLOCK_N": 32, "BLOCK_C": 256, "BLOCK_H": 64}, num_warps=8),
    triton.Config({"BLOCK_N": 64, "BLOCK_C": 128, "BLOCK_H": 32}, num_warps=8),
]
FROM_ROWS_CONFIGS = [
    triton.Config({"BLOCK_N": 4, "BLOCK_C": 1024, "BLOCK_H": 16}, num_warps=4),
    triton.Config({"BLOCK_N": 8, "BLOCK_C": 1024, "BLOCK_H": 16}, num_warps=8),
    triton.Config({"BLOCK_N": 4, "BLOCK_C": 2048, "BLOCK_H": 16}, num_warps=8),
    triton.Config({"BLOCK_N": 16, "BLOCK_C": 512, "BLOCK_H": 16}, num_warps=4),
]
BLOCK_T = 256  # token positions per ngram_counts program (the smallest of its autotune space)
NGRAM_CONFIGS = [
    triton.Config({"BLOCK_T": BLOCK_T}, num_warps=4),
    triton.Config({"BLOCK_T": 512}, num_warps=4),
    triton.Config({"BLOCK_T": 1024}, num_warps=8),
]
# sampler/scoring's gpu grid: fp32 and bf16; C (32000, 128256) >= every BLOCK_C; n-gram rows of T >= BLOCK_T
# tokens; every size a multiple of 16. tests/test_kernelcheck.py checks the grid.
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


# One autotuner per mode (their spaces differ), over the same kernel; outputs are written whole by every config.
_fused_scores = autotune(FUSED_CONFIGS, key=["N", "C", "H"])(_scores_kernel)
_scores_of_logits = autotune(FROM_ROWS_CONFIGS, key=["N", "C"])(_scores_kernel)


def _launch(h: torch.Tensor, w: torch.Tensor, b: torch.Tensor, y: torch.Tensor, logits: torch.Tensor | None,
            blocks: dict[str, int | None], splits: int | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``blocks`` (block_n, block_c, block_h, num_warps; None each): any given launch the plain kernel at them
    (the rest from the mode's first config); none given, the autotuned kernel."""
    assert h.ndim == 2 and w.ndim == 2 and h.shape[1] == w.shape[1]
    assert b.shape == (w.shape[0],) and y.shape == (h.shape[0],)
    require_device(h, w, b)
    n, hidden = h.shape
    c = w.shape[0]
    h, w, b, y = h.contiguous(), w.contiguous(), b.contiguous(), y.contiguous()
    tuner = _scores_of_logits if logits is not None else _fused_scores
    configs = FROM_ROWS_CONFIGS if logits is not None else FUSED_CONFIGS
    explicit = any(v is not None for v in blocks.values())
    if explicit:
        first = configs[0]
        constexprs: dict[str, int] = {
            "BLOCK_N": blocks["block_n"] or first.kwargs["BLOCK_N"],
            "BLOCK_C": _block_c(c, blocks["block_c"] or first.kwargs["BLOCK_C"]),
            "BLOCK_H": blocks["block_h"] or first.kwargs["BLOCK_H"],
            "num_warps": blocks["num_warps"] or first.num_warps,
        }
        block_n, unit = constexprs["BLOCK_N"], constexprs["BLOCK_C"]
    else:
        constexprs = {}
        block_n = min(cfg.kwargs["BLOCK_N"] for cfg in configs)
        unit = max(cfg.kwargs["BLOCK_C"] for cfg in configs)
    col_tiles = triton.cdiv(c, unit)
    n_splits = _splits(triton.cdiv(n, block_n), col_tiles, splits)
    cols_per_split = triton.cdiv(col_tiles, n_splits) * unit
    n_splits = triton.cdiv(c, cols_per_split)  # no empty range
    m, s1, s2, zy = (torch.empty(n_splits, n, dtype=torch.float32, device=h.device) for _ in range(4))
    (tuner.fn if explicit else tuner)[lambda meta: (triton.cdiv(n, meta["BLOCK_N"]), n_splits)](
        h, w, b, logits if logits is not None else h, y, m, s1, s2, zy,
        n, c, hidden, h.stride(0), w.stride(0), logits.stride(0) if logits is not None else 0, cols_per_split,
        FROM_LOGITS=logits is not None, **constexprs,
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
                      block_n: int | None = None, block_c: int | None = None, block_h: int | None = None,
                      splits: int | None = None, num_warps: int | None = None,
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss, el2n, grad_norm), fp32 (N,) each, for h (N, H), w (C, H), b (C,), y (N,); no logits in memory.
    Blocks autotuned (FUSED_CONFIGS) unless given."""
    blocks = {"block_n": block_n, "block_c": block_c, "block_h": block_h, "num_warps": num_warps}
    return _launch(h, w, b, y, None, blocks, splits)


def scores_from_logits(h: torch.Tensor, w: torch.Tensor, b: torch.Tensor, y: torch.Tensor,
                       block_n: int | None = None, block_c: int | None = None,
                       splits: int | None = None, num_warps: int | None = None,
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The same scores from logits materialised by one matmul (N x C in the input dtype), one fold pass.
    Blocks autotuned (FROM_ROWS_CONFIGS) unless given."""
    logits = torch.addmm(b, h, w.T)
    blocks = {"block_n": block_n, "block_c": block_c, "block_h": None, "num_warps": num_warps}
    return _launch(h, w, b, y, logits, blocks, splits)


@autotune(NGRAM_CONFIGS, key=["T", "buckets"], reset_to_zero=["counts_ptr"])  # atomics add into the counts
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


def ngram_counts(tokens: torch.Tensor, buckets: int, vocab: int, mix: int, block_t: int | None = None) -> torch.Tensor:
    """(N, buckets) fp32 counts of each row's hashed unigrams and bigrams, by atomic adds (exact below 2^24).
    BLOCK_T autotuned (NGRAM_CONFIGS) unless ``block_t`` is given or rows are shorter than BLOCK_T."""
    assert tokens.ndim == 2 and not tokens.is_floating_point()
    require_device(tokens)
    n, t = tokens.shape
    tokens = tokens.contiguous()
    counts = torch.zeros(n, buckets, dtype=torch.float32, device=tokens.device)
    args = (tokens, counts, t, tokens.stride(0), buckets, vocab, mix)
    if block_t is None and t >= BLOCK_T:
        _ngram_counts_kernel[lambda meta: (n, triton.cdiv(t, meta["BLOCK_T"]))](*args)
    else:
        block_t = min(block_t or BLOCK_T, triton.next_power_of_2(max(t, 1)))
        _ngram_counts_kernel.fn[(n, triton.cdiv(t, block_t))](*args, BLOCK_T=block_t)
    return counts


def compile_specs() -> list[CompileSpec]:
    """The scores kernel with logit tiles in registers and from materialised logits, at every gpu-grid dtype and
    autotune config, and the n-gram histogram (int64 tokens, fp32 counts: no case dtype; the hash multiplier
    passes 2^31)."""
    stats = {"y_ptr": "i64", "m_ptr": "fp32", "s1_ptr": "fp32", "s2_ptr": "fp32", "zy_ptr": "fp32"}
    sizes = ("N", "C", "H", "stride_h", "stride_w", "stride_logits", "cols_per_split")
    specs = [
        CompileSpec(tuner, dtype, {"FROM_LOGITS": from_logits}, pointers=stats, divisible=sizes)
        for dtype in GPU_DTYPES
        for from_logits, tuner in ((False, _fused_scores), (True, _scores_of_logits))
    ]
    specs.append(CompileSpec(_ngram_counts_kernel, None, {},
                             pointers={"tokens_ptr": "i64", "counts_ptr": "fp32"}, int64=("mix",),
                             divisible=("T", "stride_tokens", "buckets", "vocab")))
    return specs
