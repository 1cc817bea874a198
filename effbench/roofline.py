"""The roofline of a kernel case: how close its time comes to what the device's memory and arithmetic allow.

A kernel task declares the work one timed call must do at a point (``KernelTask.work``: the bytes that must
move between memory and the chip, and the floating-point operations), and the fraction is

    roofline_fraction = max(bytes / peak bandwidth, FLOPs / peak FLOP/s) / measured time

(1.0: as fast as the device allows; a problem small enough to stay in cache can pass 1, since the bandwidth
ceiling is main memory's). Peaks:

- CUDA: the vendor's spec sheet for the GPU model (``SPEC_PEAKS``: dense, no sparsity; FP32 without tensor
  cores, since effbench's fp32 matmuls run in IEEE fp32), matched on ``torch.cuda.get_device_name()``. A GPU
  not in the table gets measured peaks, as a CPU does.
- CPU (and unknown GPUs): measured in the worker, once per (device, dtype): the bandwidth of a 64 MiB copy
  (read + write) and the FLOP/s of a 1024 x 1024 matmul in the case's dtype, each timed as cases are. These
  are what this machine reaches with torch, not a spec: documented as such in each row's measure_method.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

# model name fragment -> HBM bandwidth (bytes/s) and dense peak FLOP/s per dtype. The first fragment that
# the device name contains wins: order from most to least specific.
SPEC_PEAKS: tuple[tuple[str, dict[str, float]], ...] = (
    ("H200", {"bandwidth": 4.8e12, "float32": 67e12, "bfloat16": 989e12, "float16": 989e12}),
    ("H100 PCIe", {"bandwidth": 2.0e12, "float32": 51e12, "bfloat16": 756e12, "float16": 756e12}),
    ("H100 NVL", {"bandwidth": 3.9e12, "float32": 60e12, "bfloat16": 835e12, "float16": 835e12}),
    ("H100", {"bandwidth": 3.35e12, "float32": 67e12, "bfloat16": 989e12, "float16": 989e12}),  # SXM
    ("A100-SXM4-40GB", {"bandwidth": 1.555e12, "float32": 19.5e12, "bfloat16": 312e12, "float16": 312e12}),
    ("A100 80GB PCIe", {"bandwidth": 1.935e12, "float32": 19.5e12, "bfloat16": 312e12, "float16": 312e12}),
    ("A100", {"bandwidth": 2.039e12, "float32": 19.5e12, "bfloat16": 312e12, "float16": 312e12}),  # SXM4 80GB
)
COPY_BYTES = 64 << 20
MATMUL_SIZE = 1024


@dataclass(frozen=True)
class Peaks:
    bandwidth: float  # bytes/s
    flops: float  # FLOP/s in the case's dtype
    source: str  # where the numbers come from, for the rows' measure_method


def spec_peaks(device_name: str, dtype: str) -> Peaks | None:
    """The spec sheet's peaks of a GPU model, or None when it is not in ``SPEC_PEAKS``."""
    for fragment, peaks in SPEC_PEAKS:
        if fragment in device_name and dtype in peaks:
            return Peaks(peaks["bandwidth"], peaks[dtype], f"spec sheet of {fragment} ({device_name})")
    return None


_MEASURED: dict[tuple[str, str], Peaks] = {}


def copy_bandwidth(nbytes: int, dtype: torch.dtype, device: str,
                   time_ms: Callable[[Callable[[], Any]], float]) -> float:
    """Bytes/s of one device-to-device copy of ``nbytes`` in ``dtype`` (bytes read + written / time): the
    bandwidth a memory-bound kernel can hope for (``time_ms(fn)`` times a call as the cases are timed)."""
    src = torch.empty(nbytes // torch.empty((), dtype=dtype).element_size(), dtype=dtype, device=device).normal_()
    dst = torch.empty_like(src)
    return 2 * nbytes / (time_ms(lambda: dst.copy_(src)) * 1e-3)


def measured_peaks(device: str, dtype: torch.dtype, time_ms: Callable[[Callable[[], Any]], float]) -> Peaks:
    """This machine's copy bandwidth and matmul FLOP/s on ``device`` in ``dtype`` (cached per worker);
    ``time_ms(fn)`` times a call as the case's own timing does."""
    key = (device, str(dtype))
    if key not in _MEASURED:
        bandwidth = copy_bandwidth(COPY_BYTES, torch.float32, device, time_ms)
        a = torch.randn(MATMUL_SIZE, MATMUL_SIZE, device=device).to(dtype)
        b = torch.randn(MATMUL_SIZE, MATMUL_SIZE, device=device).to(dtype)
        flops = 2 * MATMUL_SIZE**3 / (time_ms(lambda: a @ b) * 1e-3)
        _MEASURED[key] = Peaks(bandwidth, flops, f"measured on this {device}: a {COPY_BYTES >> 20} MiB copy, a "
                                                 f"{MATMUL_SIZE}^3 {str(dtype).removeprefix('torch.')} matmul")
    return _MEASURED[key]


def peaks(device: str, dtype: torch.dtype, time_ms: Callable[[Callable[[], Any]], float]) -> Peaks:
    """Spec peaks for a known GPU model, else measured ones."""
    if device == "cuda":
        known = spec_peaks(torch.cuda.get_device_name(), str(dtype).removeprefix("torch."))
        if known is not None:
            return known
    return measured_peaks(device, dtype, time_ms)


def roofline(moved_bytes: float, flops: float, time_ms: float, limits: Peaks) -> dict[str, float]:
    """Achieved GB/s and TFLOP/s of the declared work, and the fraction of the roofline's time bound."""
    seconds = time_ms * 1e-3
    bound = max(moved_bytes / limits.bandwidth, flops / limits.flops)
    return {
        "work_gb_per_s": moved_bytes / seconds / 1e9,
        "work_tflop_s": flops / seconds / 1e12,
        "roofline_fraction": bound / seconds,
        "peak_gb_per_s": limits.bandwidth / 1e9,  # the roof itself, so that the site can draw it
        "peak_tflop_s": limits.flops / 1e12,
    }
