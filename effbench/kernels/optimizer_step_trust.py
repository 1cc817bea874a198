"""Fused trust-ratio steps (the ``triton`` implementations of optimizer/step lamb and lars).

Both rules scale each tensor's update by a ratio of norms that is only known after a full pass over
the tensor, so each tensor takes two launches:
  1. a reduction pass: every program writes its block's partial sums of squares to a (blocks, 2)
     buffer (one slot per program: deterministic, no atomics); torch sums the buffer and forms the
     trust ratio on the device, so nothing waits for the host;
  2. an element-wise pass that loads the ratio from device memory and applies the step.
LAMB's pass 1 also updates m, v; pass 2 recomputes u from the stored m, v rather than writing and
re-reading it (same traffic, no scratch tensor). Pass 1 rounds m, v to the state dtype before forming u,
so both passes see the same u. fp32 math in registers, state in the parameter dtype.
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
    block_slice,
    elementwise_autotune,
    load_f32,
    most_blocks,
    store_as,
    tiles,
)


@triton.jit
def _lamb_u(p, m, v, step1, bias2, eps, weight_decay):
    """u = m_hat / (sqrt(v_hat) + eps) + wd p, with step1 = 1 / (1 - b1^t)."""
    return m * step1 / (tl.sqrt(v / bias2) + eps) + weight_decay * p


@elementwise_autotune("m_ptr", "v_ptr", zeroed=("partial_ptr",))
@triton.jit
def _lamb_moments_kernel(p_ptr, g_ptr, m_ptr, v_ptr, partial_ptr, n, beta1, beta2, eps, weight_decay, step1, bias2,
                         BLOCK: tl.constexpr):
    block = tl.program_id(0)
    offs = block * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    p = load_f32(p_ptr, offs, mask)
    g = load_f32(g_ptr, offs, mask)
    m = load_f32(m_ptr, offs, mask)
    v = load_f32(v_ptr, offs, mask)
    m = (beta1 * m + (1.0 - beta1) * g).to(m_ptr.dtype.element_ty)
    v = (beta2 * v + (1.0 - beta2) * g * g).to(v_ptr.dtype.element_ty)
    tl.store(m_ptr + offs, m, mask=mask)
    tl.store(v_ptr + offs, v, mask=mask)
    u = tl.where(mask, _lamb_u(p, m.to(tl.float32), v.to(tl.float32), step1, bias2, eps, weight_decay), 0.0)
    tl.store(partial_ptr + block * 2, tl.sum(p * p, axis=0))
    tl.store(partial_ptr + block * 2 + 1, tl.sum(u * u, axis=0))


@elementwise_autotune("p_ptr")
@triton.jit
def _lamb_apply_kernel(p_ptr, m_ptr, v_ptr, trust_ptr, n, lr, eps, weight_decay, step1, bias2, BLOCK: tl.constexpr):
    offs, mask = block_slice(n, BLOCK)
    p = load_f32(p_ptr, offs, mask)
    m = load_f32(m_ptr, offs, mask)
    v = load_f32(v_ptr, offs, mask)
    trust = tl.load(trust_ptr)
    p = p - lr * trust * _lamb_u(p, m, v, step1, bias2, eps, weight_decay)
    store_as(p_ptr, offs, p, mask)


@elementwise_autotune(zeroed=("partial_ptr",))
@triton.jit
def _sumsq_kernel(x_ptr, y_ptr, partial_ptr, n, BLOCK: tl.constexpr):
    """Partial ||x||^2, ||y||^2 of one block."""
    block = tl.program_id(0)
    offs = block * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    x = load_f32(x_ptr, offs, mask)
    y = load_f32(y_ptr, offs, mask)
    tl.store(partial_ptr + block * 2, tl.sum(x * x, axis=0))
    tl.store(partial_ptr + block * 2 + 1, tl.sum(y * y, axis=0))


@elementwise_autotune("p_ptr", "buf_ptr")
@triton.jit
def _lars_apply_kernel(p_ptr, g_ptr, buf_ptr, trust_ptr, n, lr, momentum, weight_decay, SCALED: tl.constexpr,
                       BLOCK: tl.constexpr):
    offs, mask = block_slice(n, BLOCK)
    p = load_f32(p_ptr, offs, mask)
    g = load_f32(g_ptr, offs, mask)
    buf = load_f32(buf_ptr, offs, mask)
    if SCALED:  # matrices: decayed gradient times the trust ratio; vectors: the plain gradient
        g = (g + weight_decay * p) * tl.load(trust_ptr)
    buf = momentum * buf + g
    p = p - lr * buf
    store_as(p_ptr, offs, p, mask)
    store_as(buf_ptr, offs, buf, mask)


def _flat(t: torch.Tensor) -> torch.Tensor:
    assert t.is_contiguous(), "fused steps need contiguous tensors"
    return t.view(-1)


def _norms(partial: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    total = partial.sum(dim=0).sqrt()
    return total[0], total[1]


def lamb_step(params: list[torch.Tensor], m: list[torch.Tensor], v: list[torch.Tensor], step: int, lr: float,
              beta1: float, beta2: float, eps: float, weight_decay: float) -> None:
    """One LAMB step over every tensor, in place: trust = ||p|| / ||u|| (1 when either is 0)."""
    step1, bias2 = 1 / (1 - beta1**step), 1 - beta2**step
    for p, m_i, v_i in zip(params, m, v, strict=True):
        require_device(p)
        n = p.numel()
        partial = torch.zeros((most_blocks(n), 2), device=p.device, dtype=torch.float32)
        _lamb_moments_kernel[tiles(n)](
            _flat(p.data), _flat(p.grad), _flat(m_i), _flat(v_i), partial, n, beta1, beta2, eps, weight_decay, step1,
            bias2,
        )
        p_norm, u_norm = _norms(partial)
        trust = torch.where((p_norm > 0) & (u_norm > 0), p_norm / u_norm, 1.0).reshape(1)
        _lamb_apply_kernel[tiles(n)](
            _flat(p.data), _flat(m_i), _flat(v_i), trust, n, lr, eps, weight_decay, step1, bias2,
        )


def lars_step(params: list[torch.Tensor], buffers: list[torch.Tensor], lr: float, momentum: float,
              weight_decay: float, trust_coefficient: float) -> None:
    """One LARS step over every tensor, in place: matrices get eta ||p|| / (||g|| + wd ||p||) (1 when 0)."""
    for p, buf in zip(params, buffers, strict=True):
        require_device(p)
        n = p.numel()
        trust = None
        if p.ndim > 1:
            partial = torch.zeros((most_blocks(n), 2), device=p.device, dtype=torch.float32)
            _sumsq_kernel[tiles(n)](_flat(p.data), _flat(p.grad), partial, n)
            p_norm, g_norm = _norms(partial)
            denominator = g_norm + weight_decay * p_norm
            ok = (p_norm > 0) & (denominator > 0)
            trust = torch.where(ok, trust_coefficient * p_norm / denominator, 1.0).reshape(1)
        _lars_apply_kernel[tiles(n)](
            _flat(p.data), _flat(p.grad), _flat(buf), p.data if trust is None else trust, n, lr, momentum, weight_decay,
            SCALED=trust is not None,
        )


def compile_specs() -> list[CompileSpec]:
    """LAMB's two passes, LARS's norms and its step on matrices (SCALED, the trust ratio in fp32) and on
    vectors (the trust pointer is the parameter itself, never read), at every gpu-grid dtype."""
    specs = []
    for dtype in GPU_DTYPES:
        specs += [
            CompileSpec(_lamb_moments_kernel, dtype, {"BLOCK": BLOCK}, pointers={"partial_ptr": "fp32"},
                        floats=("beta1", "beta2", "eps", "weight_decay", "step1", "bias2"), divisible=("n",)),
            CompileSpec(_lamb_apply_kernel, dtype, {"BLOCK": BLOCK}, pointers={"trust_ptr": "fp32"},
                        floats=("lr", "eps", "weight_decay", "step1", "bias2"), divisible=("n",)),
            CompileSpec(_sumsq_kernel, dtype, {"BLOCK": BLOCK}, pointers={"partial_ptr": "fp32"}, divisible=("n",)),
        ]
        specs += [CompileSpec(_lars_apply_kernel, dtype, {"SCALED": scaled, "BLOCK": BLOCK},
                              pointers={"trust_ptr": "fp32"} if scaled else {},
                              floats=("lr", "momentum", "weight_decay"), divisible=("n",))
                  for scaled in (True, False)]
    return specs
