"""attention/masked_attention: softmax(q k^T / sqrt(d) [+ u w^T] + mask) v for one mask pattern per method.

Inputs q, k, v of shape (B, H, N, d) and a cotangent for the output. The pattern's boolean
mask, True where a query may attend a key, is built in ``make_inputs``, outside the timed
region, by whichever the method declares:

- ``extras["mask"](n, point, device)`` -> (N, N): a static pattern of the point's parameters;
- ``extras["dynamic_mask"](q, k, point)`` -> (B, H, N, N): a data-dependent pattern (top-k
  blocks), chosen from the case's own q and k. Its selection cost is *not* in time_ms; the
  float64 truth gets the very same mask (it is an input, like q).

A method that declares ``extras["bias_rank"]`` gets low-rank bias factors u, w of shape
(B, H, N, r), r = ``point["bias_rank"]``, each N(0, 1/sqrt(r)) so u w^T has unit scale.

Implementations are called ``fn(q, k, v, mask)`` or, with bias factors,
``fn(q, k, v, mask, u, w)``; one that declares a keyword-only ``point`` parameter also gets
the grid point (the peers read a window or document lengths from it). Checked outputs: the
attention output and dq, dk, dv (and du, dw). The contract is forward + backward: an
implementation that cannot differentiate here raises ``BackwardUnavailable`` (FlexAttention
on the CPU, where torch refuses inputs that require grad): its case is then checked on the
output alone and measured forward-only (time_fwd_ms, peak_mem_fwd_bytes), with time_ms and
peak_mem_bytes NULL and torch's reason as the message.

Grid points carry every pattern's parameters; a pattern whose parameters a point lacks is
skipped there (the first points carry ``window`` only). Parameters: ``window`` (sliding
window, Longformer, dilated), ``n_global`` (Longformer, BigBird), ``dilation``, ``block``
(BigBird, top-k), ``n_random_blocks`` (BigBird), ``n_docs`` (document masking), ``prefix``
(prefix LM), ``topk`` (top-k blocks), ``bias_rank`` (FlashBias).

Derived metrics (seed 0): the forward alone under no_grad, timed like the case
(``time_fwd_ms``, ``peak_mem_fwd_bytes``, ``tflop_s_fwd_attended``); ``mask_density`` =
allowed (query, key) pairs / (B H N^2); from time_ms of forward + backward,
``tflop_s_dense`` = 3.5 * 4 B H N^2 d / time and ``tflop_s_attended`` = 3.5 * 4 * pairs * d / time, pairs
counted over all B H heads. 4 N^2 d is the forward's two matmuls (FlashAttention's
convention); its backward is 2.5x the forward, so forward + backward is 3.5x. The bias
columns of FlashBias are not counted.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import torch

from effbench.metrics import Metric
from effbench.tasks import KernelTask, grad_outputs, leaf, need

FWD_BWD_FLOPS = 3.5  # forward + backward FLOPs / forward FLOPs (FlashAttention's benchmark convention)


def make_inputs(point: dict[str, Any], dtype: torch.dtype, device: str, seed: int, method: Any) -> dict[str, Any]:
    gen = torch.Generator().manual_seed(seed)
    shape = (point["B"], point["H"], point["N"], point["d"])
    q, k, v, grad_out = (torch.randn(shape, generator=gen).to(device, dtype) for _ in range(4))
    inputs = {"q": q, "k": k, "v": v, "grad_out": grad_out}
    if method.extras.get("bias_rank"):
        (rank,) = need(point, "bias_rank")
        factor_shape = (*shape[:3], rank)
        # drawn after q, k, v, grad_out: those stay the same as without a bias
        inputs["u"], inputs["w"] = (
            (torch.randn(factor_shape, generator=gen) * rank**-0.25).to(device, dtype) for _ in range(2)
        )
    if "dynamic_mask" in method.extras:
        inputs["mask"] = method.extras["dynamic_mask"](q, k, point)
    else:
        inputs["mask"] = method.extras["mask"](point["N"], point, device)
    return inputs


@functools.cache
def _takes_point(fn: Callable[..., Any]) -> bool:
    try:
        return "point" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def attend(fn: Callable[..., torch.Tensor], q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor,
           point: dict[str, Any], factors: tuple[torch.Tensor, ...] = ()) -> torch.Tensor:
    """One call of an implementation under this task's calling convention."""
    kwargs = {"point": point} if _takes_point(fn) else {}
    return fn(q, k, v, mask, *factors, **kwargs)


def outputs(fn: Callable[..., torch.Tensor], inputs: dict[str, Any], point: dict[str, Any]) -> dict[str, torch.Tensor]:
    names = ["q", "k", "v"] + (["u", "w"] if "u" in inputs else [])
    leaves = {name: leaf(inputs[name]) for name in names}
    factors = tuple(leaves[name] for name in names[3:])
    out = attend(fn, leaves["q"], leaves["k"], leaves["v"], inputs["mask"], point, factors)
    return grad_outputs(out, leaves, grad_out=inputs["grad_out"])


def forward_outputs(fn: Callable[..., torch.Tensor], inputs: dict[str, Any],
                    point: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The attention output alone, without autograd (FlexAttention's CPU forward)."""
    factors = tuple(inputs[name] for name in ("u", "w") if name in inputs)
    with torch.no_grad():
        return {"out": attend(fn, inputs["q"], inputs["k"], inputs["v"], inputs["mask"], point, factors)}


def derived(fn: Callable[..., Any], inputs: dict[str, Any], point: dict[str, Any], method: Any,
            time_ms: float | None, timing: Any = None) -> dict[str, float]:
    """Mask density, the forward alone (time, peak memory, attended TFLOP/s), and, from ``time_ms``
    (forward + backward; None for a forward-only case), TFLOP/s dense-equivalent and attended."""
    from effbench.measure import TimingConfig, peak_memory, time_call

    b, h, n, d = inputs["q"].shape
    mask = inputs["mask"]
    pairs = int(mask.sum()) * (b * h if mask.dim() == 2 else 1)

    def forward() -> dict[str, torch.Tensor]:
        return forward_outputs(fn, inputs, point)

    device = inputs["q"].device.type
    forward_ms = time_call(forward, device, timing or TimingConfig()).median_ms
    metrics = {
        "mask_density": pairs / (b * h * n * n),
        "time_fwd_ms": forward_ms,
        "peak_mem_fwd_bytes": float(peak_memory(forward, device).delta_bytes),
        "tflop_s_fwd_attended": 4 * pairs * d / (forward_ms * 1e-3) / 1e12,
    }
    if time_ms is not None:
        seconds = time_ms * 1e-3
        metrics["tflop_s_dense"] = FWD_BWD_FLOPS * 4 * b * h * n * n * d / seconds / 1e12
        metrics["tflop_s_attended"] = FWD_BWD_FLOPS * 4 * pairs * d / seconds / 1e12
    return metrics


# Grids are append-only: add points, never change or remove one (results refer to their keys).

def work(inputs: dict[str, Any], point: dict[str, Any], method: Any) -> tuple[float, float]:
    """The least a forward + backward must do: read q, k, v, the output's gradient (and the mask), write o and
    the three gradients: 8 B H N d elements; FLOPs over the attended pairs only, FlashAttention's convention
    (forward 4 d per pair, backward 2.5x that), so a sparse pattern is judged on the work it must do."""
    q = inputs["q"]
    b, h, n, d = q.shape
    mask = inputs["mask"]
    pairs = int(mask.sum()) * (b * h if mask.dim() == 2 else 1)
    return 8.0 * q.numel() * q.element_size() + mask.numel() * mask.element_size(), FWD_BWD_FLOPS * 4 * pairs * d

task = KernelTask(
    family="attention",
    name="masked_attention",
    description=("Attention with a mask pattern (static, data-dependent, or a low-rank bias), forward and backward. "
                 "Baselines: SDPA with a boolean mask runs its dense memory-efficient or math path (it computes "
                 "every pair, masked or not); the windowed flash baselines are flash-attn's window_size (FA2, "
                 "CUDA) and FlexAttention, which skip the blocks a sliding window excludes."),
    grids={
        "smoke": [
            {"B": 1, "H": 2, "N": 96, "d": 16, "window": 32},
            {"B": 2, "H": 2, "N": 200, "d": 32, "window": 48},
            # the smaller of the points that define every pattern first: a smoke run stops at it
            {"B": 2, "H": 2, "N": 128, "d": 32,
             "window": 24, "n_global": 4, "dilation": 3, "block": 16, "n_random_blocks": 1,
             "n_docs": 4, "prefix": 32, "topk": 3, "bias_rank": 8},
            {"B": 1, "H": 2, "N": 256, "d": 16,
             "window": 32, "n_global": 8, "dilation": 2, "block": 32, "n_random_blocks": 2,
             "n_docs": 3, "prefix": 64, "topk": 2, "bias_rank": 4},
        ],
        "cpu": [
            {"B": 1, "H": 4, "N": 512, "d": 64, "window": 128},
            {"B": 1, "H": 4, "N": 1024, "d": 64, "window": 128},
            {"B": 1, "H": 4, "N": 2048, "d": 64, "window": 256},
            {"B": 1, "H": 4, "N": 512, "d": 64,
             "window": 128, "n_global": 16, "dilation": 2, "block": 64, "n_random_blocks": 2,
             "n_docs": 4, "prefix": 128, "topk": 2, "bias_rank": 8},
            {"B": 1, "H": 4, "N": 1024, "d": 64,
             "window": 128, "n_global": 32, "dilation": 4, "block": 64, "n_random_blocks": 3,
             "n_docs": 6, "prefix": 256, "topk": 4, "bias_rank": 8},
            {"B": 1, "H": 4, "N": 2048, "d": 64,
             "window": 256, "n_global": 64, "dilation": 4, "block": 128, "n_random_blocks": 3,
             "n_docs": 8, "prefix": 512, "topk": 4, "bias_rank": 16},
        ],
        "gpu": [
            {"B": 1, "H": 16, "N": 1024, "d": 64, "window": 256},
            {"B": 1, "H": 16, "N": 4096, "d": 128, "window": 512},
            {"B": 1, "H": 16, "N": 16384, "d": 128, "window": 1024},
            {"B": 1, "H": 16, "N": 1024, "d": 64,
             "window": 256, "n_global": 64, "dilation": 2, "block": 128, "n_random_blocks": 2,
             "n_docs": 4, "prefix": 256, "topk": 2, "bias_rank": 16},
            {"B": 1, "H": 16, "N": 4096, "d": 128,
             "window": 512, "n_global": 128, "dilation": 4, "block": 128, "n_random_blocks": 3,
             "n_docs": 8, "prefix": 1024, "topk": 4, "bias_rank": 16},
            {"B": 1, "H": 16, "N": 8192, "d": 64,
             "window": 1024, "n_global": 128, "dilation": 4, "block": 128, "n_random_blocks": 3,
             "n_docs": 8, "prefix": 2048, "topk": 8, "bias_rank": 16},
            {"B": 1, "H": 16, "N": 16384, "d": 128,
             "window": 1024, "n_global": 256, "dilation": 8, "block": 128, "n_random_blocks": 3,
             "n_docs": 16, "prefix": 4096, "topk": 8, "bias_rank": 16},
            {"B": 1, "H": 16, "N": 32768, "d": 128,
             "window": 2048, "n_global": 256, "dilation": 8, "block": 128, "n_random_blocks": 3,
             "n_docs": 16, "prefix": 8192, "topk": 16, "bias_rank": 16},
        ],
    },
    dtypes={"smoke": ("float32",), "cpu": ("float32",), "gpu": ("bfloat16",)},
    # seconds per case on the 2-core development CPU, measured 2026-12-06: smoke, a smoke run of each method
    # once; cpu: run 20261206T142135Z-98a1cf57, 537 s for 1098 cases; gpu: not measured yet
    # gpu: a guess, not a measurement (no GPU has run this grid): the float64 truth at N = 16384 dominates
    cost_s={"smoke": 0.15, "cpu": 0.5, "gpu": 20.0},
    sizes=("B", "H", "N", "N", "d"),
    work=work,
    make_inputs=make_inputs,
    outputs=outputs,
    derived=derived,
    declares=(
        Metric("mask_density", "fraction", None, "seed0", "attended (query, key) pairs / N^2"),
        # the FLOP convention travels in the unit: forward 4 N^2 d per head, backward 2.5x that (FlashAttention's)
        Metric("tflop_s_dense", "TFLOP/s (3.5 x 4 B H N^2 d per fwd+bwd)", "higher", "seed0"),
        Metric("tflop_s_attended", "TFLOP/s (3.5 x 4 d x attended pairs per fwd+bwd)", "higher", "seed0"),
        Metric("time_fwd_ms", "ms", "lower", "seed0", "forward alone, no autograd"),
        Metric("tflop_s_fwd_attended", "TFLOP/s (4 d x attended pairs per forward)", "higher", "seed0"),
        Metric("peak_mem_fwd_bytes", "bytes", "lower", "seed0", "peak memory of the forward alone"),
    ),
    forward_outputs=forward_outputs,
    tolerance={"float32": 1e-5, "bfloat16": 2e-2, "float16": 2e-3, "float64": 1e-12},
)
