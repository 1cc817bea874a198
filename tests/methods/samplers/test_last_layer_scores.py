import math

import pytest
import torch
import torch.nn.functional as F

from effbench.methods.samplers.last_layer_scores import closed_form, method, reference, triton_fused, triton_rows
from effbench.registry import Skipped
from effbench.tasks.scoring import task

FAST = {
    "closed_form": closed_form,
    # Triton's CPU interpreter (conftest sets TRITON_INTERPRET=1); small blocks and several column
    # ranges, so row, column and K edges and the merge of ranges are all exercised
    "triton": lambda *a: triton_fused(*a, block_n=16, block_c=16, block_h=16, splits=3),
    "triton_default_blocks": triton_fused,
    "triton_rows": lambda *a: triton_rows(*a, block_n=4, block_c=16, splits=2),
}


def _inputs(seed, n=37, hidden=19, classes=101, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    h = torch.randn(n, hidden, generator=gen, dtype=torch.float64)
    w = torch.randn(classes, hidden, generator=gen, dtype=torch.float64) / hidden**0.5
    b = 0.1 * torch.randn(classes, generator=gen, dtype=torch.float64)
    y = torch.randint(0, classes, (n,), generator=gen)
    return h.to(dtype), w.to(dtype), b.to(dtype), y


def test_known_answer_zero_head_gives_uniform_softmax():
    """W = 0, b = 0: p = 1/C, loss = log C, ||p - e_y||^2 = (C - 1)/C, grad_norm = el2n sqrt(||h||^2 + 1)."""
    n, hidden, classes = 6, 5, 7
    h = torch.randn(n, hidden, dtype=torch.float64)
    w = torch.zeros(classes, hidden, dtype=torch.float64)
    b = torch.zeros(classes, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 3, 6, 6])
    el2n = math.sqrt((classes - 1) / classes)
    for fn in (reference, closed_form):
        loss, got_el2n, grad_norm = fn(h, w, b, y)
        torch.testing.assert_close(loss, torch.full((n,), math.log(classes), dtype=torch.float64))
        torch.testing.assert_close(got_el2n, torch.full((n,), el2n, dtype=torch.float64))
        torch.testing.assert_close(grad_norm, el2n * torch.sqrt(h.square().sum(-1) + 1))


def test_known_answer_two_classes():
    """z = (1, 0) from the bias, y = 0: p = (s, 1 - s) with s = sigmoid(1); loss = log(1 + e^-1),
    el2n = sqrt(2) (1 - s); with h = 0 the gradient is the bias's alone: grad_norm = el2n."""
    h = torch.zeros(1, 3)
    w = torch.randn(2, 3)
    b = torch.tensor([1.0, 0.0])
    y = torch.tensor([0])
    s = 1 / (1 + math.exp(-1))
    for fn in (reference, closed_form, FAST["triton"]):
        loss, el2n, grad_norm = fn(h, w, b, y)
        assert loss.item() == pytest.approx(math.log(1 + math.exp(-1)), rel=1e-6)
        assert el2n.item() == pytest.approx(math.sqrt(2) * (1 - s), rel=1e-6)
        assert grad_norm.item() == pytest.approx(math.sqrt(2) * (1 - s), rel=1e-6)


def test_reference_grad_norm_is_autograd_per_example_gradient():
    """One example at a time: backward of F.cross_entropy w.r.t. (W, b), the Frobenius norm of both."""
    h, w, b, y = _inputs(4, n=5, hidden=6, classes=9, dtype=torch.float64)
    loss, el2n, grad_norm = reference(h, w, b, y, budget_elements=2 * w.numel())  # blocks of 2 rows
    for i in range(len(y)):
        wl, bl = w.clone().requires_grad_(), b.clone().requires_grad_()
        example_loss = F.cross_entropy((h[i : i + 1] @ wl.T + bl), y[i : i + 1])
        example_loss.backward()
        expected = torch.sqrt(wl.grad.square().sum() + bl.grad.square().sum())
        assert loss[i].item() == pytest.approx(example_loss.item(), rel=1e-12)
        assert grad_norm[i].item() == pytest.approx(expected.item(), rel=1e-12)
        # EL2N is the norm of the gradient w.r.t. the logits, which is the bias's gradient
        assert el2n[i].item() == pytest.approx(bl.grad.norm().item(), rel=1e-12)


def test_reference_blocks_do_not_change_the_answer():
    h, w, b, y = _inputs(5, dtype=torch.float64)
    one = reference(h, w, b, y, budget_elements=1)  # one row per block
    whole = reference(h, w, b, y, budget_elements=len(y) * w.numel())
    for a, c in zip(one, whole, strict=True):
        torch.testing.assert_close(a, c, rtol=1e-12, atol=0)


@pytest.mark.parametrize("impl", sorted(FAST))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fast_impls_match_reference_fp32(impl, seed):
    h, w, b, y = _inputs(seed)  # odd sizes: 37 rows, H 19, C 101
    truth = reference(h.double(), w.double(), b.double(), y)
    got = FAST[impl](h, w, b, y)
    for name, ref, out in zip(("loss", "el2n", "grad_norm"), truth, got, strict=True):
        assert out.shape == ref.shape and out.dtype == torch.float32, name
        error = ((out.double() - ref).norm() / ref.norm()).item()
        assert error <= 1e-4, (name, error)


@pytest.mark.parametrize("impl", ["triton", "triton_rows"])
def test_one_pass_scores_keep_precision_for_confident_rows(impl):
    """p_y = 1 - 5e-6: the fold keeps the target out of its sums, so neither -log p_y nor ||p - e_y||
    cancels in fp32 (the textbook forms lse - z_y and p_y - 1 lose a few digits here)."""
    n, hidden, classes = 20, 16, 50
    h = torch.zeros(n, hidden)
    w = torch.randn(classes, hidden)
    b = torch.zeros(classes)
    b[3] = 16.0
    y = torch.full((n,), 3)
    truth = reference(h.double(), w.double(), b.double(), y)
    got = FAST[impl](h, w, b, y)
    one_minus_py = (classes - 1) * math.exp(-16.0) / (1 + (classes - 1) * math.exp(-16.0))
    assert truth[0][0].item() == pytest.approx(-math.log1p(-one_minus_py), rel=1e-9)
    for name, ref, out in zip(("loss", "el2n", "grad_norm"), truth, got, strict=True):
        error = ((out.double() - ref).norm() / ref.norm()).item()
        assert error <= 1e-5, (name, error)


def test_task_inputs_have_unit_scale_logits_and_skip_other_kind():
    point = task.grids["smoke"][1]
    inputs = task.make_inputs(point, torch.float32, "cpu", 0, method)
    logits = inputs["h"] @ inputs["w"].T
    assert 0.8 < logits.std().item() < 1.2
    out = task.outputs(method.reference.fn, inputs, point)
    assert set(out) == {"loss", "el2n", "grad_norm"} and out["loss"].shape == (point["N"],)
    ngram_point = next(p for p in task.grids["smoke"] if p["inputs"] == "ngrams")
    with pytest.raises(Skipped, match="ngrams"):
        task.make_inputs(ngram_point, torch.float32, "cpu", 0, method)
