"""Fused element-wise optimizer steps (the ``triton`` implementations of optimizer/step).

One kernel launch per parameter tensor reads p, g and the state once, updates in fp32
registers, and writes p and the state back: the minimum traffic of the rule (AdamW:
7 tensor passes, 28 bytes per fp32 parameter). State is kept in the parameter's dtype,
as torch.optim does.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from effbench.kernels._common import require_device
from effbench.kernels._spec import CompileSpec
from effbench.kernels._tune import autotune

BLOCK = 1024  # the interpreter's tile (the first config below)
# Element-wise steps are bandwidth-bound: the autotuner picks the tile per tensor size among a few whose
# programs move 4-16 KiB of each tensor. Every trial restores the tensors a step updates in place, so the
# tuning call still takes exactly one step.
ELEMENTWISE_CONFIGS = [
    triton.Config({"BLOCK": BLOCK}, num_warps=4),
    triton.Config({"BLOCK": 2048}, num_warps=8),
    triton.Config({"BLOCK": 4096}, num_warps=8),
]


def elementwise_autotune(*updated: str, zeroed: tuple[str, ...] = ()):
    """Autotune an element-wise step kernel on ``n``, restoring ``updated`` (its in-place pointers) after trials
    and zeroing ``zeroed`` (per-block partial sums, sized by ``most_blocks``) before each."""
    return autotune(ELEMENTWISE_CONFIGS, key=["n"], restore_value=list(updated), reset_to_zero=list(zeroed) or None)


# The shared element-wise prologue and epilogue of every step kernel: each program's slice of the n elements,
# loads widened to fp32 (the update is computed in fp32 registers), stores narrowed to each tensor's own dtype.
@triton.jit
def block_slice(n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    return offs, offs < n


@triton.jit
def load_f32(ptr, offs, mask):
    return tl.load(ptr + offs, mask=mask, other=0.0).to(tl.float32)


@triton.jit
def store_as(ptr, offs, value, mask):
    tl.store(ptr + offs, value.to(ptr.dtype.element_ty), mask=mask)


@triton.jit
def adam_moments(m, v, g, beta1, beta2):
    """Adam's exponential moving averages of g and g^2."""
    return beta1 * m + (1.0 - beta1) * g, beta2 * v + (1.0 - beta2) * g * g


def most_blocks(n: int) -> int:
    """Blocks of the smallest tile: slots enough in a per-block buffer for any config (the rest stay 0)."""
    return max(triton.cdiv(n, c.kwargs["BLOCK"]) for c in ELEMENTWISE_CONFIGS)


def tiles(n: int):
    """The launch grid of an element-wise kernel of ``n`` elements, at whatever BLOCK it launches with."""
    return lambda meta: (triton.cdiv(n, meta["BLOCK"]),)


# the dtypes of optimizer/step's gpu grid; its parameter sizes are all multiples of 16 (transformer_shapes)
GPU_DTYPES = ("float32", "bfloat16")


@elementwise_autotune("p_ptr", "m_ptr", "v_ptr")
@triton.jit
def _adamw_step_kernel(p_ptr, g_ptr, m_ptr, v_ptr, n, lr, beta1, beta2, eps, decay, step_size, bias2,
                       BLOCK: tl.constexpr):
    offs, mask = block_slice(n, BLOCK)
    p = load_f32(p_ptr, offs, mask)
    g = load_f32(g_ptr, offs, mask)
    m = load_f32(m_ptr, offs, mask)
    v = load_f32(v_ptr, offs, mask)
    p = p * decay  # decoupled weight decay: 1 - lr * wd
    m, v = adam_moments(m, v, g, beta1, beta2)
    p = p - step_size * m / (tl.sqrt(v / bias2) + eps)  # step_size = lr / (1 - beta1^t)
    store_as(p_ptr, offs, p, mask)
    store_as(m_ptr, offs, m, mask)
    store_as(v_ptr, offs, v, mask)


@elementwise_autotune("p_ptr", "m_ptr")
@triton.jit
def _lion_step_kernel(p_ptr, g_ptr, m_ptr, n, lr, beta1, beta2, decay, BLOCK: tl.constexpr):
    offs, mask = block_slice(n, BLOCK)
    p = load_f32(p_ptr, offs, mask)
    g = load_f32(g_ptr, offs, mask)
    m = load_f32(m_ptr, offs, mask)
    c = beta1 * m + (1.0 - beta1) * g
    sign = tl.where(c > 0, 1.0, tl.where(c < 0, -1.0, 0.0))
    p = p * decay - lr * sign
    m = beta2 * m + (1.0 - beta2) * g
    store_as(p_ptr, offs, p, mask)
    store_as(m_ptr, offs, m, mask)


def _flat(t: torch.Tensor) -> torch.Tensor:
    assert t.is_contiguous(), "fused steps need contiguous tensors"
    return t.view(-1)


def adamw_step(params: list[torch.Tensor], m: list[torch.Tensor], v: list[torch.Tensor], step: int, lr: float,
               beta1: float, beta2: float, eps: float, weight_decay: float) -> None:
    """One AdamW step over every tensor, in place."""
    bias1, bias2 = 1 - beta1**step, 1 - beta2**step
    for p, m_i, v_i in zip(params, m, v, strict=True):
        require_device(p)
        n = p.numel()
        _adamw_step_kernel[tiles(n)](
            _flat(p.data), _flat(p.grad), _flat(m_i), _flat(v_i), n, lr, beta1, beta2, eps, 1 - lr * weight_decay,
            lr / bias1, bias2,
        )


def lion_step(params: list[torch.Tensor], m: list[torch.Tensor], lr: float, beta1: float, beta2: float,
              weight_decay: float) -> None:
    """One Lion step over every tensor, in place."""
    for p, m_i in zip(params, m, strict=True):
        require_device(p)
        n = p.numel()
        _lion_step_kernel[tiles(n)](
            _flat(p.data), _flat(p.grad), _flat(m_i), n, lr, beta1, beta2, 1 - lr * weight_decay,
        )


def compile_specs() -> list[CompileSpec]:
    """AdamW and Lion at every gpu-grid dtype (state in the parameter's dtype), each autotune config."""
    return [
        spec
        for dtype in GPU_DTYPES
        for spec in (
            CompileSpec(_adamw_step_kernel, dtype, {"BLOCK": BLOCK}, divisible=("n",),
                        floats=("lr", "beta1", "beta2", "eps", "decay", "step_size", "bias2")),
            CompileSpec(_lion_step_kernel, dtype, {"BLOCK": BLOCK}, divisible=("n",),
                        floats=("lr", "beta1", "beta2", "decay")),
        )
    ]
