"""The optimizer/step task itself: shapes, gradients, the closure protocol, state and bandwidth metrics."""

import pytest
import torch

from effbench.methods.optimizers import adamw, lion, sam
from effbench.tasks import optimizer_step as task

POINT = {"d_model": 16, "layers": 1, "vocab": 32, "steps": 2}


def test_transformer_shapes_count_a_gpt_layer():
    """d = 16, vocab 32: embedding 512 + per layer (2 norms 32, qkv 768, proj 256, mlp 2 x 1024) + final norm 16."""
    shapes = task.transformer_shapes(16, 1, 32)
    assert sum(torch.Size(s).numel() for s in shapes) == 512 + 32 + 768 + 256 + 2048 + 16


def test_seeded_grads_are_repeatable_and_streams_differ():
    like = torch.zeros(5, 3)
    grads = task.SeededGrads(seed=3, case_dtype=torch.float32)
    torch.testing.assert_close(grads.get(1, 2, like), grads.get(1, 2, like), rtol=0, atol=0)
    assert not torch.equal(grads.get(1, 2, like), grads.get(2, 2, like))
    second = task.SeededGrads(seed=3, case_dtype=torch.float32, stream=1)
    assert not torch.equal(grads.get(1, 2, like), second.get(1, 2, like))


def test_state_bytes_of_adam_and_one_buffer_rules():
    inputs = task.make_inputs(POINT, torch.float32, "cpu", 0, adamw.method)
    n_bytes = sum(p.numel() * 4 for p in inputs["params"])
    for factory, expected in ((adamw.reference, 2 * n_bytes), (adamw.torch_fused, 2 * n_bytes)):
        optimizer, _, _ = task._prepared(factory, inputs)
        # torch keeps a scalar step tensor per parameter as well
        assert expected <= task.state_bytes(optimizer) <= expected + 8 * len(inputs["params"])
    inputs = task.make_inputs(POINT, torch.float32, "cpu", 0, lion.method)
    optimizer, _, _ = task._prepared(lion.reference, inputs)
    assert task.state_bytes(optimizer) == n_bytes


def test_closure_rules_get_the_second_gradient_stream():
    """SAM's base step must use the closure's gradients: the update differs from plain SGD-momentum on g."""
    inputs = task.make_inputs(POINT, torch.float32, "cpu", 0, sam.method)
    hyper = inputs["hyper"]
    with_sam = task.outputs(sam.reference, inputs, POINT)
    plain = task.outputs(lambda ps, **h: sam.ReferenceSGDMomentum(ps, h["lr"], h["momentum"], h["weight_decay"]),
                         inputs, POINT)
    assert hyper["rho"] > 0
    assert any(not torch.allclose(with_sam[k], plain[k]) for k in with_sam)
    call = task.timed(sam.reference, inputs, POINT)
    call()  # the timed step runs with its closure, without error


def test_bandwidth_metrics_are_consistent():
    inputs = task.make_inputs(POINT, torch.float32, "cpu", 0, adamw.method)
    metrics = task.derived(adamw.reference, inputs, POINT, adamw.method, time_ms=2.0)
    n_bytes = sum(p.numel() * 4 for p in inputs["params"])
    assert task.work(inputs, POINT, adamw.method) == (7 * n_bytes, 0.0)  # AdamW reads 4 and writes 3 tensors
    assert metrics["copy_gb_per_s"] > 0
    achieved = 7 * n_bytes / 2e-3 / 1e9
    assert metrics["bandwidth_fraction"] == pytest.approx(achieved / metrics["copy_gb_per_s"])
