"""Linear cross-entropy without N x V logits in global memory (``triton_linear_ce``).

In the manner of Cut Cross-Entropy (Wijmans et al., arXiv:2411.09009):

- forward: program (r, s) takes row block r (BLOCK_N rows) and vocabulary split s (a range of
  ``chunk`` columns), walks it in BLOCK_V columns, computes each (BLOCK_N, BLOCK_V) logit tile in
  registers (a K-loop over D with ``tl.dot``, fp32 accumulation) and folds it into an online
  log-sum-exp, the target logit and the logit sum; it writes those three numbers per row for its
  split, and torch combines the splits (a log-sum-exp and two sums over S rows). Splitting V gives
  enough programs to fill the GPU (N = 8192 at BLOCK_N = 128 is only 64 row blocks, fewer than an
  H100's 132 SMs); row blocks vary fastest in launch order, so the programs running at once share
  one split's slice of w in L2.
- backward: program (r, c) recomputes its logit tile, turns it into the loss gradient

      g = softmax (1 + 2 lambda lse) - (1 - eps) onehot(y) - eps / V,  scaled per row

  and adds g @ w_tile into dx and g^T @ x_tile into dw with relaxed fp32 atomics (``red``: fire and
  forget, no ordering; the sums need none, and acquire-release ``atom`` would wait on each). Program
  ids go GROUP_N row blocks at a time across all column blocks, so x's rows of a group and w's
  columns stay in L2 while they are reused.

Loss per row: lse - (1 - eps) z_y - (eps / V) sum_v z_v + lambda lse^2 (z-loss lambda,
label smoothing eps), averaged over non-ignored rows.

Cost model (N rows, V vocabulary, D hidden; BN x BV tiles), what a GPU run should find:
- FLOPs: forward 2 N V D; backward 6 N V D (logits recomputed, then dx and dw), all on tensor
  cores in the input dtype with fp32 accumulation: 8 N V D in all, as CCE (without its filter).
- HBM: x and w read once per split (forward) or per tile row/column group (backward, through L2);
  memory O(N D + V D) fp32 for dx and dw, O(S N) for the forward's splits: no N x V buffer.
- Atomics: N D ceil(V / BV) + V D ceil(N / BN) fp32 reductions into L2. At the Gemma-2 point
  (N = 8192, D = 2304, V = 256000, BN = BV = 128) that is 7.5e10, ~300 GB of reduction traffic
  against ~9e15 backward FLOPs: the reductions, not the matmuls, bound the backward unless L2
  absorbs them at several TB/s. Larger tiles (autotuned below) divide them; CCE's lock-protected
  tile adds and its gradient filter are how it cuts them.
"""

from __future__ import annotations

from typing import Any

import torch
import triton
import triton.language as tl

from effbench.kernels._common import require_device
from effbench.kernels._spec import CompileSpec
from effbench.kernels._tiles import TILE_CONFIGS, _accumulate_tile_grads, _logit_tile, tile_launch
from effbench.kernels._tune import autotune

# Autotune spaces (the first entry is the interpreter's and the default blocks' choice). Every BLOCK_V divides
# SPLIT_MULTIPLE, so a split's columns are whole tiles of any of them. `effbench kernels`: no spills on sm_90 at
# any of them; on sm_80 (no wgmma: the accumulators stay in registers) the backward's larger tiles spill
# 64-344 B, and the autotuner, timing each, picks a config that spills only if it is still the fastest.
FORWARD_CONFIGS = [
    triton.Config({"BLOCK_N": 64, "BLOCK_V": 64, "BLOCK_D": 64}, num_warps=4, num_stages=3),
    triton.Config({"BLOCK_N": 128, "BLOCK_V": 128, "BLOCK_D": 64}, num_warps=8, num_stages=3),
    triton.Config({"BLOCK_N": 128, "BLOCK_V": 64, "BLOCK_D": 64}, num_warps=8, num_stages=4),
    triton.Config({"BLOCK_N": 64, "BLOCK_V": 128, "BLOCK_D": 64}, num_warps=4, num_stages=4),
]
BACKWARD_CONFIGS = TILE_CONFIGS
SPLIT_MULTIPLE = 256


@autotune(FORWARD_CONFIGS, key=["N", "V", "D"])
@triton.jit
def _linear_ce_fwd_kernel(
    x_ptr, w_ptr, targets_ptr, lse_ptr, target_logit_ptr, logit_sum_ptr,
    N, V, D, stride_x, stride_w, chunk,
    BLOCK_N: tl.constexpr, BLOCK_V: tl.constexpr, BLOCK_D: tl.constexpr,
):
    rows = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    split = tl.program_id(1)
    row_mask = rows < N
    targets = tl.load(targets_ptr + rows, mask=row_mask, other=-1)
    running_max = tl.zeros([BLOCK_N], dtype=tl.float32) - float("inf")
    running_sum = tl.zeros([BLOCK_N], dtype=tl.float32)
    target_logit = tl.zeros([BLOCK_N], dtype=tl.float32)
    logit_sum = tl.zeros([BLOCK_N], dtype=tl.float32)
    first = split * chunk
    for v0 in range(first, tl.minimum(first + chunk, V), BLOCK_V):
        cols = v0 + tl.arange(0, BLOCK_V)
        col_mask = cols < V
        z = _logit_tile(x_ptr, w_ptr, rows, cols, row_mask, col_mask, D, stride_x, stride_w,
                        BLOCK_N, BLOCK_V, BLOCK_D)  # (BLOCK_N, BLOCK_V), never leaves registers
        z_in = tl.where(col_mask[None, :], z, -float("inf"))
        new_max = tl.maximum(running_max, tl.max(z_in, axis=1))
        running_sum = running_sum * tl.exp(running_max - new_max) + tl.sum(tl.exp(z_in - new_max[:, None]), axis=1)
        running_max = new_max
        logit_sum += tl.sum(tl.where(col_mask[None, :], z, 0.0), axis=1)
        target_logit += tl.sum(tl.where(cols[None, :] == targets[:, None], z, 0.0), axis=1)
    out = split.to(tl.int64) * N + rows
    tl.store(lse_ptr + out, running_max + tl.log(running_sum), mask=row_mask)
    tl.store(target_logit_ptr + out, target_logit, mask=row_mask)
    tl.store(logit_sum_ptr + out, logit_sum, mask=row_mask)


@autotune(BACKWARD_CONFIGS, key=["N", "V", "D"], reset_to_zero=["dx_ptr", "dw_ptr"])  # tuning runs add into them
@triton.jit
def _linear_ce_bwd_kernel(
    x_ptr, w_ptr, targets_ptr, lse_ptr, row_scale_ptr, dx_ptr, dw_ptr,
    N, V, D, stride_x, stride_w, z_loss, smoothing,
    BLOCK_N: tl.constexpr, BLOCK_V: tl.constexpr, BLOCK_D: tl.constexpr,
    GROUP_N: tl.constexpr = 8,  # row blocks per launch group
):
    row_blocks = tl.cdiv(N, BLOCK_N)
    col_blocks = tl.cdiv(V, BLOCK_V)
    pid = tl.program_id(0)
    group = pid // (GROUP_N * col_blocks)
    first_row_block = group * GROUP_N
    group_rows = tl.minimum(row_blocks - first_row_block, GROUP_N)
    within = pid % (GROUP_N * col_blocks)
    rows = (first_row_block + within % group_rows) * BLOCK_N + tl.arange(0, BLOCK_N)
    cols = (within // group_rows) * BLOCK_V + tl.arange(0, BLOCK_V)
    row_mask = rows < N
    col_mask = cols < V
    z = _logit_tile(x_ptr, w_ptr, rows, cols, row_mask, col_mask, D, stride_x, stride_w,
                    BLOCK_N, BLOCK_V, BLOCK_D)
    lse = tl.load(lse_ptr + rows, mask=row_mask, other=0.0)
    scale = tl.load(row_scale_ptr + rows, mask=row_mask, other=0.0)  # upstream grad * valid / n_valid
    targets = tl.load(targets_ptr + rows, mask=row_mask, other=-1)
    grad = tl.exp(z - lse[:, None]) * (1.0 + 2.0 * z_loss * lse[:, None]) - smoothing / V
    grad = tl.where(cols[None, :] == targets[:, None], grad - (1.0 - smoothing), grad)
    grad = tl.where(row_mask[:, None] & col_mask[None, :], grad * scale[:, None], 0.0)
    _accumulate_tile_grads(grad, x_ptr, w_ptr, dx_ptr, dw_ptr, rows, cols, row_mask, col_mask, D,
                           stride_x, stride_w, BLOCK_D)


def default_splits(n: int, v: int, device: torch.device) -> int:
    """Vocabulary splits of the forward: about four programs per SM at 128-row blocks, at least one whole
    SPLIT_MULTIPLE of columns per split; one split off CUDA (the interpreter gains nothing from more)."""
    if device.type != "cuda":
        return 1
    programs = 4 * torch.cuda.get_device_properties(device).multi_processor_count
    return max(1, min(triton.cdiv(programs, triton.cdiv(n, 128)), triton.cdiv(v, SPLIT_MULTIPLE)))


def linear_cross_entropy_forward(
    x: torch.Tensor, w: torch.Tensor, y: torch.Tensor, blocks: dict[str, int] | None = None,
    splits: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(lse, target logit, logit sum), each (N,) fp32. ``blocks`` None: autotuned; ``splits`` None: by
    ``default_splits``."""
    assert x.ndim == 2 and w.ndim == 2 and x.shape[1] == w.shape[1] and y.shape == (x.shape[0],)
    require_device(x, w)
    n, d = x.shape
    v = w.shape[0]
    splits = splits or default_splits(n, v, x.device)
    chunk = triton.cdiv(triton.cdiv(v, splits), SPLIT_MULTIPLE) * SPLIT_MULTIPLE
    splits = triton.cdiv(v, chunk)  # no empty split
    parts = [torch.empty(splits, n, dtype=torch.float32, device=x.device) for _ in range(3)]
    kernel, constexprs = tile_launch(_linear_ce_fwd_kernel, blocks)
    kernel[lambda meta: (triton.cdiv(n, meta["BLOCK_N"]), splits)](
        x, w, y, *parts, n, v, d, x.stride(0), w.stride(0), chunk, **constexprs,
    )
    lse, target_logit, logit_sum = parts
    if splits == 1:
        return lse[0], target_logit[0], logit_sum[0]
    return torch.logsumexp(lse, dim=0), target_logit.sum(0), logit_sum.sum(0)


def linear_cross_entropy_backward(
    x: torch.Tensor, w: torch.Tensor, y: torch.Tensor, lse: torch.Tensor, row_scale: torch.Tensor,
    z_loss: float, label_smoothing: float, blocks: dict[str, int] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    n, d = x.shape
    v = w.shape[0]
    dx = torch.zeros(n, d, dtype=torch.float32, device=x.device)
    dw = torch.zeros(v, d, dtype=torch.float32, device=x.device)
    kernel, constexprs = tile_launch(_linear_ce_bwd_kernel, blocks)
    kernel[lambda meta: (triton.cdiv(n, meta["BLOCK_N"]) * triton.cdiv(v, meta["BLOCK_V"]),)](
        x, w, y, lse, row_scale, dx, dw, n, v, d, x.stride(0), w.stride(0), float(z_loss), float(label_smoothing),
        **constexprs,
    )
    return dx.to(x.dtype), dw.to(w.dtype)


def row_logsumexp(x: torch.Tensor, w: torch.Tensor, blocks: dict[str, int] | None = None) -> torch.Tensor:
    """logsumexp_j (x_i . w_j) for every row i, (N,) fp32, without the N x M matrix (no targets)."""
    no_targets = torch.full((x.shape[0],), -1, dtype=torch.long, device=x.device)
    return linear_cross_entropy_forward(x.contiguous(), w.contiguous(), no_targets, blocks)[0]


class LinearCrossEntropyFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, w: torch.Tensor, y: torch.Tensor, ignore_index: int, z_loss: float,
                label_smoothing: float, blocks: dict[str, int] | None, splits: int | None) -> torch.Tensor:
        x, w, y = x.contiguous(), w.contiguous(), y.contiguous()
        lse, target_logit, logit_sum = linear_cross_entropy_forward(x, w, y, blocks, splits)
        valid = y != ignore_index
        n_valid = valid.sum()
        rows = lse - (1 - label_smoothing) * target_logit - label_smoothing / w.shape[0] * logit_sum
        rows = rows + z_loss * lse * lse
        loss = torch.where(valid, rows, 0).sum() / n_valid
        ctx.save_for_backward(x, w, y, lse, valid, n_valid)
        ctx.options = (z_loss, label_smoothing, blocks)
        return loss.to(x.dtype)

    @staticmethod
    def backward(ctx: Any, grad_loss: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, w, y, lse, valid, n_valid = ctx.saved_tensors
        z_loss, label_smoothing, blocks = ctx.options
        row_scale = valid.to(torch.float32) * (grad_loss.to(torch.float32) / n_valid)
        dx, dw = linear_cross_entropy_backward(x, w, y, lse, row_scale, z_loss, label_smoothing, blocks)
        return dx, dw, None, None, None, None, None, None


def linear_cross_entropy(
    x: torch.Tensor, w: torch.Tensor, y: torch.Tensor, ignore_index: int = -100, z_loss: float = 0.0,
    label_smoothing: float = 0.0, splits: int | None = None, **blocks: int,
) -> torch.Tensor:
    """Mean cross-entropy of x @ w.T against y. Blocks are autotuned unless ``blocks`` names them (block_n,
    block_v, block_d: all three, both passes); ``splits``: the forward's vocabulary splits (None: by the GPU)."""
    return LinearCrossEntropyFunction.apply(x, w, y, ignore_index, z_loss, label_smoothing, blocks or None, splits)


def compile_specs() -> list[CompileSpec]:
    """The gpu grid's launches: bf16, each pass at every one of its autotune configs (``effbench kernels``
    expands them; loss/contrastive runs the forward at the first through row_logsumexp), every N, V, D,
    stride and chunk a multiple of 16."""
    sizes = ("N", "V", "D", "stride_x", "stride_w")
    return [
        CompileSpec(_linear_ce_fwd_kernel, "bfloat16", {}, divisible=(*sizes, "chunk"),
                    pointers={"targets_ptr": "i64", "lse_ptr": "fp32", "target_logit_ptr": "fp32",
                              "logit_sum_ptr": "fp32"}),
        CompileSpec(_linear_ce_bwd_kernel, "bfloat16", {}, divisible=sizes, floats=("z_loss", "smoothing"),
                    pointers={"targets_ptr": "i64", "lse_ptr": "fp32", "row_scale_ptr": "fp32", "dx_ptr": "fp32",
                              "dw_ptr": "fp32"}),
    ]
