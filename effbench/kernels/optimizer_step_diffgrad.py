"""Fused diffGrad step (the ``triton`` implementation of optimizer/step diffgrad).

One launch per parameter tensor reads p, g, m, v, g_prev once, updates in fp32 registers
and writes p, m, v, g_prev back: 9 tensor passes, the rule's minimum. State stays in the
parameter's dtype.
"""

from __future__ import annotations

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


@elementwise_autotune("p_ptr", "m_ptr", "v_ptr", "gp_ptr")
@triton.jit
def _diffgrad_step_kernel(p_ptr, g_ptr, m_ptr, v_ptr, gp_ptr, n, beta1, beta2, eps, weight_decay, step_size,
                          BLOCK: tl.constexpr):
    offs, mask = block_slice(n, BLOCK)
    p = load_f32(p_ptr, offs, mask)
    g = load_f32(g_ptr, offs, mask)
    m = load_f32(m_ptr, offs, mask)
    v = load_f32(v_ptr, offs, mask)
    g_prev = load_f32(gp_ptr, offs, mask)
    g = g + weight_decay * p  # coupled L2, as the authors' code
    m, v = adam_moments(m, v, g, beta1, beta2)
    xi = tl.sigmoid(tl.abs(g_prev - g))
    p = p - step_size * xi * m / (tl.sqrt(v) + eps)  # step_size = lr sqrt(1 - b2^t) / (1 - b1^t)
    store_as(p_ptr, offs, p, mask)
    store_as(m_ptr, offs, m, mask)
    store_as(v_ptr, offs, v, mask)
    store_as(gp_ptr, offs, g, mask)


def diffgrad_step(params: list[torch.Tensor], m: list[torch.Tensor], v: list[torch.Tensor],
                  g_prev: list[torch.Tensor], step: int, lr: float, beta1: float, beta2: float, eps: float,
                  weight_decay: float) -> None:
    """One diffGrad (v2) step over every tensor, in place; ``step`` counts from 1."""
    step_size = lr * (1 - beta2**step) ** 0.5 / (1 - beta1**step)
    for p, m_i, v_i, gp_i in zip(params, m, v, g_prev, strict=True):
        require_device(p)
        n = p.numel()
        _diffgrad_step_kernel[tiles(n)](
            _flat(p.data), _flat(p.grad), _flat(m_i), _flat(v_i), _flat(gp_i), n, beta1, beta2, eps, weight_decay,
            step_size,
        )


def compile_specs() -> list[CompileSpec]:
    return [CompileSpec(_diffgrad_step_kernel, dtype, {"BLOCK": BLOCK}, divisible=("n",),
                        floats=("beta1", "beta2", "eps", "weight_decay", "step_size")) for dtype in GPU_DTYPES]
