"""The roofline of a kernel case: declared work, device peaks (spec sheet or measured), and the fraction."""

import math

import pytest

from effbench import roofline
from effbench.registry import discover
from effbench.run.case import execute
from effbench.run.plan import Case, make_config


@pytest.mark.parametrize("name, dtype, bandwidth, flops", [
    ("NVIDIA H100 80GB HBM3", "bfloat16", 3.35e12, 989e12),  # SXM
    ("NVIDIA H100 PCIe", "bfloat16", 2.0e12, 756e12),
    ("NVIDIA H200", "float32", 4.8e12, 67e12),
    ("NVIDIA A100-SXM4-80GB", "bfloat16", 2.039e12, 312e12),
    ("NVIDIA A100-SXM4-40GB", "float16", 1.555e12, 312e12),
])
def test_spec_peaks_by_gpu_model(name, dtype, bandwidth, flops):
    peaks = roofline.spec_peaks(name, dtype)
    assert (peaks.bandwidth, peaks.flops) == (bandwidth, flops) and "spec sheet" in peaks.source


def test_an_unknown_gpu_has_no_spec_peaks():
    assert roofline.spec_peaks("NVIDIA GeForce RTX 4090", "bfloat16") is None


def test_fraction_is_the_time_bound_over_the_time():
    peaks = roofline.Peaks(bandwidth=1e11, flops=1e14, source="test")
    # 1 GB at 100 GB/s and 1 TFLOP at 100 TFLOP/s: both bounds 10 ms
    assert roofline.roofline(1e9, 1e12, 10.0, peaks) == pytest.approx(
        {"work_gb_per_s": 100.0, "work_tflop_s": 100.0, "roofline_fraction": 1.0, "peak_gb_per_s": 100.0,
         "peak_tflop_s": 100.0})
    # memory-bound at 40 ms: a quarter of the roofline
    assert roofline.roofline(1e9, 1e6, 40.0, peaks)["roofline_fraction"] == pytest.approx(0.25)


def test_kernel_cases_record_their_roofline_and_its_peaks():
    """A kernel case's roofline comes with how it was computed; a rule that declares no traffic (Muon) has none."""
    registry = discover()
    config = make_config("smoke", "cpu")
    step = registry.tasks["optimizer/step"]
    fused = execute(registry, Case("optimizer/step", "adamw", "torch_fused", step.grids["smoke"][0], "float32",
                                   "cpu", 0), config)
    assert fused.status == "ok" and 0 < fused.metrics["roofline_fraction"] and math.isfinite(
        fused.metrics["roofline_fraction"])
    assert fused.metrics["work_tflop_s"] == 0.0 and fused.metrics["work_gb_per_s"] > 0
    assert "measured on this cpu" in fused.measure_methods["roofline_fraction"]
    muon = execute(registry, Case("optimizer/step", "muon", "reference", step.grids["smoke"][0], "float32", "cpu", 0),
                   config)
    assert muon.status == "ok" and "roofline_fraction" not in muon.metrics
    lce = registry.tasks["loss/linear_cross_entropy"]
    point = lce.grids["smoke"][0]
    ref = execute(registry, Case("loss/linear_cross_entropy", "linear_cross_entropy", "reference", point, "float32",
                                 "cpu", 0), config)
    flops = 6 * point["N"] * point["V"] * point["D"]
    assert ref.metrics["work_tflop_s"] == pytest.approx(flops / (ref.metrics["time_ms"] * 1e-3) / 1e12)
