import math

import pytest
import torch

from effbench.methods.losses.linear_cross_entropy import chunked, reference, triton_ce, triton_linear_ce

FAST = {
    "chunked": lambda *a, **k: chunked(*a, budget_elements=3 * a[1].shape[0], **k),  # several row blocks
    "triton_ce": triton_ce,  # Triton's CPU interpreter (conftest sets TRITON_INTERPRET=1)
    "triton_linear_ce": lambda *a, **k: triton_linear_ce(*a, block_n=16, block_v=32, block_d=16, **k),
}


def test_known_answer_zero_weights_give_log_vocab():
    """With w = 0 all logits are 0: loss = log V (+ lambda (log V)^2), dx = 0, dw[v] = mean_i x_i (1/V - [y_i = v])."""
    n, d, v = 5, 3, 7
    x = torch.randn(n, d, dtype=torch.float64, requires_grad=True)
    w = torch.zeros(v, d, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0, 1, 2, 3, 6])
    for fn in (reference, chunked):
        loss = fn(x, w, y)
        dx, dw = torch.autograd.grad(loss, [x, w])
        assert loss.item() == pytest.approx(math.log(v), abs=1e-12)
        assert torch.count_nonzero(dx) == 0
        onehot = torch.nn.functional.one_hot(y, v).double()
        torch.testing.assert_close(dw, (1.0 / v - onehot).T @ x.detach() / n)
        assert fn(x, w, y, z_loss=0.01, label_smoothing=0.3).item() == pytest.approx(
            math.log(v) + 0.01 * math.log(v) ** 2, abs=1e-12)


def test_known_answer_two_classes_with_smoothing():
    """z = (1, 0), y = 0: loss = log(1 + e) - (1 - eps) * 1 - (eps / 2) * (1 + 0)."""
    x = torch.tensor([[1.0]], dtype=torch.float64)
    w = torch.tensor([[1.0], [0.0]], dtype=torch.float64)
    y = torch.tensor([0])
    for fn in (reference, chunked):
        assert fn(x, w, y).item() == pytest.approx(math.log(1 + math.e) - 1)
        assert fn(x, w, y, label_smoothing=0.2).item() == pytest.approx(math.log(1 + math.e) - 0.9)


@pytest.mark.parametrize("impl", sorted(FAST))
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("options", [{}, {"z_loss": 1e-3, "label_smoothing": 0.1}], ids=["plain", "zloss+smooth"])
def test_fast_impls_match_reference_fp32(impl, seed, options):
    gen = torch.Generator().manual_seed(seed)
    n, d, v = 37, 19, 101  # odd sizes: every kernel edge is exercised
    x = torch.randn(n, d, generator=gen)
    w = torch.randn(v, d, generator=gen) / d**0.5
    y = torch.randint(0, v, (n,), generator=gen)
    y[::5] = -100
    outs = []
    for fn in (reference, FAST[impl]):
        xl, wl = x.clone().requires_grad_(), w.clone().requires_grad_()
        loss = fn(xl, wl, y, **options)
        outs.append((loss, *torch.autograd.grad(loss, [xl, wl])))
    for ref, got in zip(*outs, strict=True):
        assert (got - ref).norm() / ref.norm() < 1e-4


def test_all_ignored_gives_nan_like_pytorch():
    x, w = torch.randn(4, 3), torch.randn(5, 3)
    y = torch.full((4,), -100)
    assert math.isnan(reference(x, w, y).item()) and math.isnan(chunked(x, w, y).item())


def test_chunked_scales_with_upstream_gradient():
    x = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    w = torch.randn(9, 4, dtype=torch.float64)
    y = torch.randint(0, 9, (6,))
    (g1,) = torch.autograd.grad(chunked(x, w, y), [x])
    (g3,) = torch.autograd.grad(3.0 * chunked(x, w, y), [x])
    torch.testing.assert_close(g3, 3.0 * g1)


def test_cut_cross_entropy_peers():
    """cut-cross-entropy: its torch.compile path runs on the CPU and matches the reference (loss and both
    gradients, odd sizes, ignored tokens, two seeds); its kernels, filtered or not, need CUDA; no z-loss."""
    pytest.importorskip("cut_cross_entropy")
    from effbench.methods.losses.linear_cross_entropy import cce_torch_compile, method
    from effbench.registry import Skipped

    assert method.impls["cce"].why_not("cpu", "float32")[0] == "unavailable"
    assert method.impls["cce_unfiltered"].why_not("cpu", "float32")[0] == "unavailable"
    assert method.impls["cce_torch_compile"].why_not("cpu", "float32") is None
    for seed in (0, 1):
        gen = torch.Generator().manual_seed(seed)
        x = torch.randn(37, 19, generator=gen)
        w = torch.randn(101, 19, generator=gen) / 19**0.5
        y = torch.randint(0, 101, (37,), generator=gen)
        y[::5] = -100
        outs = []
        for fn in (reference, cce_torch_compile):
            xl, wl = x.clone().requires_grad_(), w.clone().requires_grad_()
            loss = fn(xl, wl, y)
            outs.append((loss, *torch.autograd.grad(loss, [xl, wl])))
        for ref, got in zip(*outs, strict=True):
            assert (got - ref).norm() / ref.norm() < 1e-5
    with pytest.raises(Skipped, match="no z-loss"):
        cce_torch_compile(x, w, y, z_loss=1e-3)


@pytest.mark.parametrize("v", [1001, 32000])
def test_trained_softmax_inputs_have_the_stated_entropy_and_loss(v):
    """softmax="trained": the softmax's mean entropy is TRAINED_ENTROPY and targets are drawn from it (the loss
    is about the entropy); the default is nearly flat (entropy ~ log V) with a loss ~ log V."""
    from effbench.tasks.linear_cross_entropy import TRAINED_ENTROPY, make_inputs

    def stats(point):
        inputs = make_inputs(point, torch.float32, "cpu", 3, None)
        logp = torch.log_softmax(inputs["x"] @ inputs["w"].T, dim=-1)
        entropy = -(logp.exp() * logp).sum(-1).mean().item()
        return entropy, reference(inputs["x"], inputs["w"], inputs["y"]).item()

    entropy, loss = stats({"N": 256, "D": 64, "V": v, "ignore_frac": 0.0, "softmax": "trained"})
    assert abs(entropy - TRAINED_ENTROPY) < 0.25 and abs(loss - entropy) < 0.4
    flat_entropy, flat_loss = stats({"N": 256, "D": 64, "V": v, "ignore_frac": 0.0})
    assert flat_entropy > math.log(v) - 1 and abs(flat_loss - math.log(v)) < 1
    with pytest.raises(ValueError, match="unknown softmax"):
        make_inputs({"N": 4, "D": 4, "V": 8, "softmax": "peaked"}, torch.float32, "cpu", 0, None)


@pytest.mark.parametrize("seed", [0, 1])
def test_triton_linear_ce_vocabulary_splits_and_autotuned_blocks(seed):
    """The forward split over V (3 splits of 256 columns, the last partial) combined by log-sum-exp, and the
    autotuned path (no blocks: the interpreter keeps the first config), both against the reference."""
    from effbench.kernels import _tune

    gen = torch.Generator().manual_seed(seed)
    n, d, v = 21, 16, 600
    x = torch.randn(n, d, generator=gen)
    w = torch.randn(v, d, generator=gen) / d**0.5
    y = torch.randint(0, v, (n,), generator=gen)
    y[3] = -100
    runs = {
        "reference": lambda xl, wl: reference(xl, wl, y, label_smoothing=0.1),
        "split": lambda xl, wl: triton_linear_ce(xl, wl, y, label_smoothing=0.1, splits=3, block_n=16, block_v=32,
                                                 block_d=16),
        "autotuned": lambda xl, wl: triton_linear_ce(xl, wl, y, label_smoothing=0.1),
    }
    outs = {}
    for name, fn in runs.items():
        _tune.forget()
        xl, wl = x.clone().requires_grad_(), w.clone().requires_grad_()
        loss = fn(xl, wl)
        outs[name] = (loss, *torch.autograd.grad(loss, [xl, wl]))
        if name == "autotuned":
            assert _tune.chosen() == {
                "_linear_ce_bwd_kernel": "BLOCK_D=64 BLOCK_N=64 BLOCK_V=64 num_warps=4 num_stages=3",
                "_linear_ce_fwd_kernel": "BLOCK_D=64 BLOCK_N=64 BLOCK_V=64 num_warps=4 num_stages=3",
            }
        elif name == "split":
            assert _tune.chosen() == {}  # blocks given: the plain kernels ran, nothing autotuned
    for name in ("split", "autotuned"):
        for ref, got in zip(outs["reference"], outs[name], strict=True):
            assert (got - ref).norm() / ref.norm() < 1e-4, name


def test_triton_linear_ce_refuses_partial_blocks():
    x, w, y = torch.randn(4, 16), torch.randn(8, 16), torch.zeros(4, dtype=torch.long)
    with pytest.raises(ValueError, match="give all of"):
        triton_linear_ce(x, w, y, block_n=16)


def test_triton_ce_autotuned_path_on_a_vocabulary_of_several_steps():
    """V >= 1024 takes the autotuned kernel (the interpreter keeps its first config: two 1024-column steps here,
    the second partial), which overwrites the logits with their gradient: loss and gradients still match."""
    from effbench.kernels import _tune

    gen = torch.Generator().manual_seed(3)
    n, d, v = 6, 16, 1100
    x = torch.randn(n, d, generator=gen)
    w = torch.randn(v, d, generator=gen) / d**0.5
    y = torch.randint(0, v, (n,), generator=gen)
    y[1] = -100
    outs = []
    for fn in (reference, triton_ce):
        _tune.forget()
        xl, wl = x.clone().requires_grad_(), w.clone().requires_grad_()
        loss = fn(xl, wl, y, z_loss=1e-3)
        outs.append((loss, *torch.autograd.grad(loss, [xl, wl])))
    assert _tune.chosen() == {"_cross_entropy_fwd_bwd_kernel": "BLOCK_V=1024 num_warps=4 num_stages=3"}
    for ref, got in zip(*outs, strict=True):
        assert (got - ref).norm() / ref.norm() < 1e-4
