
import numpy as np
import pytest
import torch

from effbench.measure import TimingConfig, cpu_peak_memory, quantile, time_cpu


def test_quantile_matches_numpy():
    values = [5.0, 1.0, 4.0, 2.0, 3.0, 10.0]
    for q in (0.0, 0.2, 0.5, 0.8, 1.0):
        assert quantile(values, q) == pytest.approx(np.quantile(values, q))


def test_cpu_memory_sees_an_allocation():
    size = 64 * 1024 * 1024

    def allocate():
        buf = torch.ones(size // 4)  # touched pages: resident
        return buf.sum()

    memory = cpu_peak_memory(allocate)
    assert memory.delta_bytes >= 0.9 * size
    assert memory.abs_bytes > memory.delta_bytes
    assert "rss" in memory.method or "maxrss" in memory.method


def test_cpu_memory_small_for_no_allocation():
    memory = cpu_peak_memory(lambda: None)
    assert memory.delta_bytes < 4 * 1024 * 1024


def test_time_cpu_collects_samples():
    timing = time_cpu(lambda: sum(range(1000)), TimingConfig(warmup_s=0.0, min_reps=7, max_reps=20, budget_s=0.01))
    assert 7 <= len(timing.samples_ms) <= 20
    assert min(timing.samples_ms) <= timing.p20_ms <= timing.median_ms <= timing.p80_ms <= max(timing.samples_ms)
    assert timing.method.startswith("perf_counter")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_time_and_memory():
    from effbench.measure import cuda_peak_memory, time_cuda

    x = torch.randn(2048, 2048, device="cuda")
    timing = time_cuda(lambda: x @ x, TimingConfig())
    assert timing.median_ms > 0
    memory = cuda_peak_memory(lambda: x @ x)
    assert memory.delta_bytes >= 2048 * 2048 * 4
