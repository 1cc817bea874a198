"""Checks shared by the mask-pattern tests: the implementations this machine runs, against the reference."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

from effbench.registry import Method, Unavailable
from effbench.tasks.masked_attention import attend, make_inputs, outputs

# FlexAttention runs only its forward on the CPU, and only in fp32 / fp16 / bf16; the Triton kernel runs
# in the CPU interpreter, in fp32 only.
FORWARD_ONLY = {"flex"}
FP32_ONLY = {"flex", "triton"}


def runnable(method: Method) -> list[str]:
    """Names of the implementations that run on this CPU in fp32 (peers need CUDA)."""
    return [name for name, impl in method.impls.items() if impl.why_not("cpu", "float32") is None]


def loop_mask(n: int, allowed: Callable[[int, int], bool]) -> torch.Tensor:
    """A dense (N, N) mask written out pair by pair."""
    return torch.tensor([[bool(allowed(i, j)) for j in range(n)] for i in range(n)])


def forward(method: Method, name: str, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor,
            point: dict[str, Any], factors: tuple[torch.Tensor, ...] = ()) -> torch.Tensor:
    """One implementation's output, without gradients (flex in fp32, cast back)."""
    fn = method.impls[name].fn
    with torch.no_grad():
        if name in FP32_ONLY and q.dtype == torch.float64:
            args = [t.float() for t in (q, k, v)]
            return attend(fn, *args, mask, point, tuple(t.float() for t in factors)).double()
        return attend(fn, q, k, v, mask, point, factors)


def assert_forwards_equal(method: Method, expected: torch.Tensor, q: torch.Tensor, k: torch.Tensor,
                          v: torch.Tensor, mask: torch.Tensor, point: dict[str, Any],
                          factors: tuple[torch.Tensor, ...] = ()) -> None:
    """The known answer: the reference and every eager implementation equal ``expected``. FlexAttention
    (compiled anew for every mask and shape) and the Triton kernel (the CPU interpreter) are checked against the
    reference instead, on the task's own inputs (``assert_impls_match_reference``, ``tests/test_all_methods``)."""
    for name in [n for n in runnable(method) if n not in FP32_ONLY]:
        out = forward(method, name, q, k, v, mask, point, factors)
        slack = {"atol": 1e-5, "rtol": 1e-4} if name in FP32_ONLY and q.dtype == torch.float64 else {}
        torch.testing.assert_close(out, expected, **slack, msg=lambda m, name=name: f"{name}: {m}")


def assert_impls_match_reference(method: Method, point: dict[str, Any], seeds: tuple[int, ...] = (0, 1, 2)) -> None:
    """fp32, the task's own inputs: outputs and gradients of every runnable impl equal the reference's
    (the forward only for flex, whose CPU backward torch refuses: that must say Unavailable)."""
    for i, seed in enumerate(seeds):
        inputs = make_inputs(point, torch.float32, "cpu", seed, method)
        truth = outputs(method.reference.fn, inputs, point)
        factors = (inputs["u"], inputs["w"]) if "u" in inputs else ()
        for name in runnable(method):
            if name == "reference" or (name == "triton" and i >= 2):  # the interpreter: two seeds (~3 s each)
                continue
            if name in FORWARD_ONLY:
                out = forward(method, name, inputs["q"], inputs["k"], inputs["v"], inputs["mask"], point, factors)
                torch.testing.assert_close(out, truth["out"], atol=1e-5, rtol=1e-4)
                with pytest.raises(Unavailable, match="backward"):
                    outputs(method.impls[name].fn, inputs, point)
                continue
            got = outputs(method.impls[name].fn, inputs, point)
            assert got.keys() == truth.keys()
            for key in truth:
                where = f"{name} {key} seed {seed}"
                torch.testing.assert_close(got[key], truth[key], atol=1e-5, rtol=1e-4,
                                           msg=lambda m, where=where: f"{where}: {m}")


def zero_query_answer(v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """q = 0 makes every score equal: each row is the plain mean of the values it may attend."""
    weights = mask.to(v.dtype)
    return (weights / weights.sum(-1, keepdim=True)) @ v
