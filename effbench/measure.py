"""Time and peak memory of a zero-argument callable (numerical checks: ``effbench.checks``).

No I/O and no registry here: numbers in, numbers (with the name of the method that
produced them) out.

- GPU time: ``triton.testing.do_bench`` (CUDA events, L2 flushed before every
  repetition, warm-up by time) returning all samples; without triton, our own loop of
  CUDA events with the same L2 flush.
- CPU time: ``time.perf_counter`` around each call after a timed warm-up.
- GPU memory: ``torch.cuda`` peak allocated during one call, absolute and above the
  allocation before the call.
- CPU memory: the process's resident-set high-water mark (VmHWM) during one call, reset
  just before it through ``/proc/self/clear_refs``, minus the resident set before the
  call. Free heap memory is first handed back to the OS with glibc's ``malloc_trim(0)``:
  otherwise buffers freed by the warm-up stay resident, get reused, and hide the call's
  peak. Allocations smaller than a page that reuse resident memory are not seen.
"""

from __future__ import annotations

import ctypes
import gc
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class TimingConfig:
    """How long to warm up and measure. ``budget_s`` bounds the measured repetitions."""

    warmup_s: float = 0.1
    min_reps: int = 5  # CPU samples, whatever a call's length (a noise model needs several)
    max_reps: int = 100
    budget_s: float = 1.0
    gpu_warmup_ms: int = 25
    gpu_rep_ms: int = 100
    gpu_min_samples: int = 10  # GPU samples, whatever a call's length: do_bench is called again until there are


@dataclass(frozen=True)
class Timing:
    samples_ms: list[float]
    median_ms: float
    p20_ms: float
    p80_ms: float
    method: str


@dataclass(frozen=True)
class Memory:
    delta_bytes: int  # peak during the call minus what was held before it
    abs_bytes: int  # absolute peak during the call
    method: str


def quantile(values: list[float], q: float) -> float:
    """Linear-interpolated quantile (numpy's default), q in [0, 1]."""
    if not values:
        raise ValueError("quantile of no values")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def summarize(samples_ms: list[float], method: str) -> Timing:
    return Timing(
        samples_ms=list(samples_ms),
        median_ms=statistics.median(samples_ms),
        p20_ms=quantile(samples_ms, 0.2),
        p80_ms=quantile(samples_ms, 0.8),
        method=method,
    )


def time_cpu(fn: Callable[[], Any], config: TimingConfig) -> Timing:
    """Median wall time of ``fn`` on the CPU, after a warm-up of at least one call."""
    start = time.perf_counter()
    fn()
    while time.perf_counter() - start < config.warmup_s:
        fn()
    samples: list[float] = []
    begin = time.perf_counter()
    while len(samples) < config.max_reps and (
        len(samples) < config.min_reps or time.perf_counter() - begin < config.budget_s
    ):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1e3)
    return summarize(samples, f"perf_counter(threads={torch.get_num_threads()})")


def _time_cuda_events(fn: Callable[[], Any], config: TimingConfig) -> list[float]:
    # Same discipline as do_bench: flush L2 by writing a buffer larger than it before
    # every repetition, and time only the call with events on the current stream.
    flush = torch.empty(256 * 1024 * 1024 // 4, dtype=torch.int32, device="cuda")
    fn()
    torch.cuda.synchronize()
    begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    begin.record()
    for _ in range(5):
        flush.zero_()
        fn()
    end.record()
    torch.cuda.synchronize()
    estimate = max(begin.elapsed_time(end) / 5, 1e-3)
    n_warmup = max(1, int(config.gpu_warmup_ms / estimate))
    n_rep = max(config.gpu_min_samples, min(1000, int(config.gpu_rep_ms / estimate)))
    for _ in range(n_warmup):
        fn()
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(n_rep)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(n_rep)]
    for i in range(n_rep):
        flush.zero_()
        starts[i].record()
        fn()
        ends[i].record()
    torch.cuda.synchronize()
    return [s.elapsed_time(e) for s, e in zip(starts, ends, strict=True)]


def _do_bench_samples(do_bench: Callable[..., Any], fn: Callable[[], Any], config: TimingConfig) -> list[float]:
    """do_bench's samples, calling it again until there are ``gpu_min_samples``: for a call longer than about a
    tenth of ``gpu_rep_ms`` one do_bench gives one or two, too few for a noise model (p20 = p80)."""
    samples: list[float] = []
    warmup = config.gpu_warmup_ms
    while len(samples) < config.gpu_min_samples:
        samples += [float(s) for s in do_bench(fn, warmup=warmup, rep=config.gpu_rep_ms, return_mode="all")]
        warmup = 0  # warmed up by the first call
    return samples


def time_cuda(fn: Callable[[], Any], config: TimingConfig) -> Timing:
    """GPU time from CUDA events with the L2 flushed between repetitions."""
    try:
        from triton.testing import do_bench
    except ImportError:
        do_bench = None
    if do_bench is not None:
        try:
            return summarize(_do_bench_samples(do_bench, fn, config), "triton.do_bench(cuda_events,l2_flush)")
        except TypeError:  # an older triton without return_mode="all"
            pass
    return summarize(_time_cuda_events(fn, config), "cuda_events(l2_flush)")


def time_call(fn: Callable[[], Any], device: str, config: TimingConfig) -> Timing:
    if device == "cuda":
        return time_cuda(fn, config)
    return time_cpu(fn, config)


def _proc_status_kb(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(f"{field} not in /proc/self/status")


def _reset_rss_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # "5" resets the peak RSS (VmHWM) to the current RSS (Linux >= 4.0)
        return True
    except OSError:
        return False


def _release_free_heap() -> bool:
    """glibc ``malloc_trim(0)``: return free heap pages of every arena to the OS."""
    try:
        libc = ctypes.CDLL(None)
        return bool(libc.malloc_trim(0)) or True
    except (OSError, AttributeError):  # not glibc
        return False


def cpu_peak_memory(fn: Callable[[], Any]) -> Memory:
    """Peak resident memory of one call of ``fn`` on the CPU (Linux)."""
    gc.collect()
    trimmed = _release_free_heap()
    if _reset_rss_peak():
        before = _proc_status_kb("VmRSS")
        result = fn()
        peak = _proc_status_kb("VmHWM")
        del result
        label = "rss_hwm_delta(malloc_trim,clear_refs)" if trimmed else "rss_hwm_delta(clear_refs,no_trim)"
        return Memory((peak - before) * 1024, peak * 1024, label)
    # Without clear_refs the high-water mark cannot be reset: the delta is a lower bound.
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = fn()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    del result
    return Memory((peak - before) * 1024, peak * 1024, "ru_maxrss_delta(lower_bound)")


def cuda_peak_memory(fn: Callable[[], Any]) -> Memory:
    """Peak CUDA memory allocated during one call of ``fn``, absolute and above the prior allocation."""
    gc.collect()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    result = fn()
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated()
    del result
    return Memory(peak - before, peak, "torch.cuda.max_memory_allocated")


def peak_memory(fn: Callable[[], Any], device: str) -> Memory:
    if device == "cuda":
        return cuda_peak_memory(fn)
    return cpu_peak_memory(fn)
