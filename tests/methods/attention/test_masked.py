"""The helpers every pattern shares: the chunked reference, the per-mask cache, the task's derived metrics."""

import gc

import pytest
import torch

from effbench.methods.attention import _masked
from effbench.methods.attention._masked import per_mask, reference_attention
from effbench.methods.attention.causal import method as causal
from effbench.methods.attention.topk_blocks import method as topk_blocks
from effbench.tasks.masked_attention import derived, make_inputs


def _grads(fn, *tensors):
    leaves = [t.detach().requires_grad_(True) if t is not None and t.is_floating_point() else t for t in tensors]
    out = fn(*leaves)
    grads = torch.autograd.grad(out, [t for t in leaves if t is not None and t.requires_grad], torch.ones_like(out))
    return out, grads


def test_chunked_reference_is_the_same_computation(monkeypatch):
    b, h, n, d = 2, 3, 16, 8
    q, k, v = (torch.randn(b, h, n, d, dtype=torch.float64) for _ in range(3))
    u, w = (torch.randn(b, h, n, 2, dtype=torch.float64) for _ in range(2))
    static = torch.rand(n, n) < 0.5
    static.fill_diagonal_(True)
    dynamic = torch.rand(b, h, n, n) < 0.5
    dynamic |= torch.eye(n, dtype=torch.bool)
    for mask in (static, dynamic):
        whole = _grads(reference_attention, q, k, v, mask, u, w)
        monkeypatch.setattr(_masked, "_SCORES_PER_CHUNK", 2 * n * n)  # two heads per chunk, three chunks
        chunked = _grads(reference_attention, q, k, v, mask, u, w)
        monkeypatch.undo()
        torch.testing.assert_close(chunked[0], whole[0])
        for got, want in zip(chunked[1], whole[1], strict=True):
            torch.testing.assert_close(got, want)


def test_per_mask_builds_once_per_tensor_and_forgets_freed_ones():
    calls = []
    mask = torch.ones(4, 4, dtype=torch.bool)
    for _ in range(3):
        assert per_mask("test", mask, lambda: calls.append(1) or len(calls)) == 1
    twin = mask.clone()  # equal contents, another tensor: built anew
    assert per_mask("test", twin, lambda: calls.append(1) or len(calls)) == 2
    keys = {("test", id(mask)), ("test", id(twin))}
    assert keys <= set(_masked._PREPARED)
    del mask, twin
    gc.collect()
    assert not keys & set(_masked._PREPARED)


def test_derived_density_and_flop_rates():
    point = {"B": 2, "H": 3, "N": 8, "d": 4}
    inputs = make_inputs(point, torch.float32, "cpu", 0, causal)
    metrics = derived(causal.reference.fn, inputs, point, causal, time_ms=2.0)
    pairs = 2 * 3 * 36  # N (N + 1) / 2 per head
    assert metrics["mask_density"] == pairs / (2 * 3 * 64)
    assert metrics["tflop_s_dense"] == pytest.approx(3.5 * 4 * (2 * 3 * 64) * 4 / 2e-3 / 1e12)
    assert metrics["tflop_s_attended"] == pytest.approx(3.5 * 4 * pairs * 4 / 2e-3 / 1e12)
    # the forward alone is timed here, and its rate counts the forward's FLOPs only
    assert metrics["time_fwd_ms"] > 0
    assert metrics["tflop_s_fwd_attended"] == pytest.approx(4 * pairs * 4 / (metrics["time_fwd_ms"] * 1e-3) / 1e12)


def test_derived_counts_a_data_dependent_mask_per_head():
    point = {"B": 2, "H": 2, "N": 32, "d": 4, "block": 8, "topk": 1}
    inputs = make_inputs(point, torch.float32, "cpu", 0, topk_blocks)
    metrics = derived(topk_blocks.reference.fn, inputs, point, topk_blocks, time_ms=1.0)
    assert metrics["mask_density"] == inputs["mask"].float().mean().item()


def test_derived_metrics_have_units_that_carry_the_convention():
    from effbench.tasks.masked_attention import task

    point = {"B": 1, "H": 1, "N": 4, "d": 4}
    names = derived(causal.reference.fn, make_inputs(point, torch.float32, "cpu", 0, causal), point, causal, 1.0)
    assert all(name in task.metric_table for name in names)
    assert "3.5 x 4" in task.metric("tflop_s_dense").unit and "pairs" in task.metric("tflop_s_attended").unit
    assert task.metric("tflop_s_dense").better == "higher" and task.metric("time_fwd_ms").better == "lower"


def test_flex_on_the_cpu_is_checked_and_measured_forward_only():
    """torch refuses FlexAttention's CPU backward: the case is ok on its output, fwd+bwd metrics NULL."""
    from effbench.methods.attention.sliding_window import method as sliding_window
    from effbench.registry import Registry
    from effbench.run.case import execute
    from effbench.run.plan import Case, make_config
    from effbench.tasks.masked_attention import task

    registry = Registry()
    registry.add(task, "test")
    registry.add(sliding_window, "test")
    point = {"B": 1, "H": 2, "N": 64, "d": 16, "window": 16}
    config = make_config("smoke", "cpu")
    result = execute(registry, Case(task.key, "sliding_window", "flex", point, "float32", "cpu", 0), config)
    assert result.status == "ok", result.message
    assert result.message.startswith("forward only") and "backward" in result.message
    assert result.metrics["rel_error"] < 1e-5 and "out=" in result.notes["rel_error"]
    assert "dq=" not in result.notes["rel_error"]  # compared on the output alone
    assert result.metrics["time_ms"] is None and result.metrics["peak_mem_bytes"] is None
    assert result.metrics["time_fwd_ms"] > 0 and result.metrics["peak_mem_fwd_bytes"] >= 0
    assert "tflop_s_dense" not in result.metrics  # no fwd+bwd time to divide by
    # the reference of the same case has both
    full = execute(registry, Case(task.key, "sliding_window", "reference", point, "float32", "cpu", 0), config)
    assert full.status == "ok" and full.metrics["time_ms"] > 0 and full.metrics["time_fwd_ms"] > 0


def test_a_refused_cpu_backward_leaves_flex_compiled():
    """The refusal is found with eager flex: a raise inside dynamo's trace would make every later
    call of the compiled function silently run eager (and materialise the scores)."""
    from torch._dynamo.utils import counters

    from effbench.methods.attention.sliding_window import method as sliding_window
    from effbench.registry import BackwardUnavailable

    flex = sliding_window.impls["flex"].fn
    point = {"window": 8}
    q, k, v = (torch.randn(1, 1, 48, 16) for _ in range(3))
    mask = sliding_window.extras["mask"](48, point, "cpu")
    with pytest.raises(BackwardUnavailable, match="backward"):
        flex(q.detach().requires_grad_(), k, v, mask, point=point)
    graphs = counters["stats"]["unique_graphs"]
    with torch.no_grad():
        out = flex(q, k, v, mask, point=point)
    assert counters["stats"]["unique_graphs"] > graphs  # compiled by dynamo, not eager
    torch.testing.assert_close(out, reference_attention(q, k, v, mask), rtol=1e-5, atol=1e-5)
