"""Fused EXAdam step (the ``triton`` implementation of optimizer/step exadam).

One launch per parameter tensor reads p, g, m, v once, computes the cross-moment
corrections in fp32 registers and writes p, m, v back: 7 tensor passes, as AdamW, though
EXAdam does more arithmetic per element. State stays in the parameter's dtype.
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from effbench.kernels._common import require_device
from effbench.kernels._spec import CompileSpec
from effbench.kernels.optimizer_step import (
    BLOCK,
    GPU_DTYPES,
    _flat,
    adam_moments,
    block_slice,
    elementwise_autotune,
    load_f32,
    store_as,
    tiles,
)


@elementwise_autotune("p_ptr", "m_ptr", "v_ptr")
@triton.jit
def _exadam_step_kernel(p_ptr, g_ptr, m_ptr, v_ptr, n, beta1, beta2, eps, decay, beta1_t, beta2_t, step_size,
                        bias2, BLOCK: tl.constexpr):
    offs, mask = block_slice(n, BLOCK)
    p = load_f32(p_ptr, offs, mask)
    g = load_f32(g_ptr, offs, mask)
    m = load_f32(m_ptr, offs, mask)
    v = load_f32(v_ptr, offs, mask)
    p = p * decay  # decoupled weight decay: 1 - lr * wd
    m, v = adam_moments(m, v, g, beta1, beta2)
    d1 = 1.0 + beta2_t * v / (v + eps)
    m2 = m * m
    d2 = 1.0 + beta1_t * m2 / (m2 + eps)
    # step_size = a_t / (1 - b1^t) carries the bias correction of m~ + g~
    p = p - step_size * (m + g) * d1 / (tl.sqrt(v * d2 / bias2) + eps)
    store_as(p_ptr, offs, p, mask)
    store_as(m_ptr, offs, m, mask)
    store_as(v_ptr, offs, v, mask)


def exadam_step(params: list[torch.Tensor], m: list[torch.Tensor], v: list[torch.Tensor], step: int, lr: float,
                beta1: float, beta2: float, eps: float, weight_decay: float) -> None:
    """One EXAdam step (commit 9ff84639's rule) over every tensor, in place; ``step`` counts from 1."""
    beta1_t, beta2_t = beta1**step, beta2**step
    alpha = lr * math.log(math.sqrt(2.0) * math.sqrt(step + 1))
    for p, m_i, v_i in zip(params, m, v, strict=True):
        require_device(p)
        n = p.numel()
        _exadam_step_kernel[tiles(n)](
            _flat(p.data), _flat(p.grad), _flat(m_i), _flat(v_i), n, beta1, beta2, eps, 1 - lr * weight_decay,
            beta1_t, beta2_t, alpha / (1 - beta1_t), 1 - beta2_t,
        )


def compile_specs() -> list[CompileSpec]:
    floats = ("beta1", "beta2", "eps", "decay", "beta1_t", "beta2_t", "step_size", "bias2")
    return [CompileSpec(_exadam_step_kernel, dtype, {"BLOCK": BLOCK}, divisible=("n",), floats=floats)
            for dtype in GPU_DTYPES]
