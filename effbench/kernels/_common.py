"""What every kernel launcher checks before it runs."""

from __future__ import annotations

import os

import torch

from effbench.registry import Unavailable


def interpreting() -> bool:
    """True when Triton runs kernels in its CPU interpreter (correctness only: never timed)."""
    return os.environ.get("TRITON_INTERPRET") == "1"


def require_device(*tensors: torch.Tensor) -> None:
    """Triton needs CUDA tensors, or CPU tensors under the interpreter; fp32 only there."""
    for t in tensors:
        if t.is_cuda:
            continue
        if not interpreting():
            raise Unavailable("Triton kernels need a CUDA GPU (TRITON_INTERPRET=1 runs them on the CPU, "
                              "for correctness checks only)")
        if t.is_floating_point() and t.dtype != torch.float32:
            raise Unavailable(f"the Triton CPU interpreter computes {t.dtype} wrongly; fp32 only there")
