"""Kernels that cannot run on a GPU, for tests/test_kernelcheck.py: the compiler refuses one, the next needs
more shared memory than sm_80 and sm_90 give a block, the last spills past the budget its spec declares.
Compiled for real; never launched."""

import triton
import triton.language as tl

from effbench.kernels._spec import CompileSpec


@triton.jit
def _narrow_dot_kernel(x_ptr, y_ptr, out_ptr, K: tl.constexpr):
    """tl.dot needs K >= 16 on NVIDIA GPUs: K = 8 is refused at compile time, as it would be on a GPU."""
    m = tl.arange(0, 16)
    k = tl.arange(0, K)
    x = tl.load(x_ptr + m[:, None] * K + k[None, :])
    y = tl.load(y_ptr + k[:, None] * 16 + m[None, :])
    tl.store(out_ptr + m[:, None] * 16 + m[None, :], tl.dot(x, y))


@triton.jit
def _deep_pipeline_kernel(a_ptr, b_ptr, c_ptr, K, BLOCK: tl.constexpr):
    """A (BLOCK x K) @ (K x BLOCK) loop whose loads Triton pipelines through shared memory, num_stages buffers of
    two BLOCK x BLOCK fp16 tiles each: at BLOCK 128 and 6 stages, 6 x 64 KiB per block, over every arch's limit."""
    r = tl.arange(0, BLOCK)
    acc = tl.zeros([BLOCK, BLOCK], dtype=tl.float32)
    for k0 in range(0, K, BLOCK):
        a = tl.load(a_ptr + r[:, None] * K + (k0 + r)[None, :])
        b = tl.load(b_ptr + (k0 + r)[:, None] * BLOCK + r[None, :])
        acc += tl.dot(a, b)
    tl.store(c_ptr + r[:, None] * BLOCK + r[None, :], acc)


@triton.jit
def _spilling_kernel(x_ptr, out_ptr, BLOCK: tl.constexpr):
    """A BLOCK x BLOCK fp32 tile held by one warp (512 values a thread at 128), kept live across a reduction:
    more than a thread's 255 registers, so ptxas spills."""
    r = tl.arange(0, BLOCK)
    x = tl.load(x_ptr + r[:, None] * BLOCK + r[None, :])
    y = tl.exp(x) * tl.sum(x, axis=0)[None, :]
    tl.store(out_ptr + r[:, None] * BLOCK + r[None, :], y + tl.sum(y, axis=1)[:, None] * x)


def compile_specs() -> list[CompileSpec]:
    return [
        CompileSpec(_narrow_dot_kernel, "float16", {"K": 8}, pointers={"out_ptr": "fp32"}),
        CompileSpec(_deep_pipeline_kernel, "float16", {"BLOCK": 128}, pointers={"c_ptr": "fp32"}, divisible=("K",),
                    num_warps=8, num_stages=6),
        CompileSpec(_spilling_kernel, "float32", {"BLOCK": 128}, num_warps=1, spill_budget={"sm_80": 0, "sm_90": 0}),
    ]
