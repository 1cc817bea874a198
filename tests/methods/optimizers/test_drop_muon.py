import torch

from effbench.methods.optimizers import muon
from effbench.methods.optimizers.drop_muon import compiled, reference
from tests.methods.optimizers.trajectory import assert_same_trajectory

SHAPES = [(12, 8), (8,), (24, 8), (8, 32), (8,)]  # model order: a "layer" is one tensor
HYPER = {"lr": 0.02, "weight_decay": 0.1}


def _params(seed: int) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=gen) for s in SHAPES]


def _state(opt) -> list[torch.Tensor]:
    """Every tensor of a tensor's state (momentum, or AdamW moments and its step count)."""
    out = []
    for buf, adamw in zip(opt.buffers, opt.adamw, strict=True):
        out.append(buf.clone() if adamw is None else torch.stack([adamw.m[0], adamw.v[0]]).clone())
        out.append(torch.tensor(0 if adamw is None else adamw.t))
    return out


def test_frozen_unchanged_active_take_a_muon_step():
    """Drop-Muon's tensor i moves exactly as a one-tensor Muon stepped on the steps where i >= start, and on
    the others keeps weights and state bit for bit (Muon's rule couples no two tensors, so this is all of it)."""
    params, gen = _params(0), torch.Generator().manual_seed(100)
    shadows = [p.clone() for p in params]
    drop = reference(params, seed=7, **HYPER)
    singles = [muon.reference([q], **HYPER) for q in shadows]
    starts = []
    for _ in range(12):
        for p, q in zip(params, shadows, strict=True):
            p.grad = torch.randn(p.shape, generator=gen)
            q.grad = p.grad.clone()
        before, state = [p.clone() for p in params], _state(drop)
        drop.step()
        starts.append(drop.start)
        after = _state(drop)
        for i, (p, q) in enumerate(zip(params, shadows, strict=True)):
            if i < drop.start:
                assert torch.equal(p, before[i])
                assert torch.equal(after[2 * i], state[2 * i]) and torch.equal(after[2 * i + 1], state[2 * i + 1])
            else:
                singles[i].step()
                assert not torch.equal(p, before[i])
            assert torch.equal(p, q)
    assert min(starts) == 0 and max(starts) > 0  # both regimes were exercised


def test_same_seed_same_trajectory():
    runs = []
    for _ in range(2):
        params, gen = _params(1), torch.Generator().manual_seed(5)
        opt, starts = reference(params, seed=3, **HYPER), []
        for _ in range(10):
            for p in params:
                p.grad = torch.randn(p.shape, generator=gen)
            opt.step()
            starts.append(opt.start)
        runs.append((starts, params))
    assert runs[0][0] == runs[1][0]
    assert all(torch.equal(p, q) for p, q in zip(runs[0][1], runs[1][1], strict=True))
    other = reference(_params(1), seed=4, **HYPER)  # the seed does reach the sampler
    assert [int(torch.randint(len(SHAPES), (), generator=other.generator)) for _ in range(10)] != runs[0][0]


def test_start_is_uniform_over_layers():
    opt = reference(_params(2), seed=0, **HYPER)
    draws = torch.stack([torch.randint(len(SHAPES), (), generator=opt.generator) for _ in range(5000)])
    counts = torch.bincount(draws, minlength=len(SHAPES))
    assert ((counts > 900) & (counts < 1100)).all(), counts  # 1000 +- 3.2 sigma


def test_compile_matches_reference_over_20_steps_fp32():
    """Same seed in both constructors, so the same start indices; seed 3 updates every tensor at least once."""
    assert_same_trajectory(lambda ps: reference(ps, seed=3, **HYPER), lambda ps: compiled(ps, seed=3, **HYPER),
                           SHAPES, 4)
