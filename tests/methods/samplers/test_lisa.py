import torch

from effbench.data import DATASETS
from effbench.methods.samplers.lisa import LayerwiseSampledAdamW
from effbench.plugs import per_example_loss
from effbench.workloads import build_model

DATA = DATASETS["stdlib_windows"]()


def _trainable_blocks(model) -> list[int]:
    return [i for i, b in enumerate(model.blocks) if all(p.requires_grad for p in b.parameters())]


def test_only_sampled_blocks_and_the_embedding_train_and_hold_state():
    model = build_model("lm_tiny", DATA, 0)  # 5 blocks
    opt = LayerwiseSampledAdamW(model, 1e-3, layers=2, interval=3, weight_decay=0.0, seed=0)
    assert len(opt.active) == 2 and _trainable_blocks(model) == opt.active
    assert model.embed.weight.requires_grad and model.position.weight.requires_grad
    frozen = [i for i in range(5) if i not in opt.active]
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    loss = per_example_loss(model, "lm", DATA.x_train[:4], DATA.y_train[:4]).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    for i in frozen:  # no gradient, no state, weights unchanged
        for p in model.blocks[i].parameters():
            assert p.grad is None and p not in opt.state
    for n, p in model.named_parameters():
        moved = not torch.equal(before[n], p.detach())
        in_frozen = any(n.startswith(f"blocks.{i}.") for i in frozen)
        assert moved != in_frozen, n  # everything trainable moved, nothing frozen did
    held = sum(p.numel() for p in opt.state)
    assert held == sum(p.numel() for p in model.parameters() if p.requires_grad)


def test_blocks_are_resampled_every_interval_with_fresh_moments_and_repeat_with_the_seed():
    def active_sets(seed):
        model = build_model("lm_tiny", DATA, 0)
        opt = LayerwiseSampledAdamW(model, 1e-3, layers=2, interval=2, weight_decay=0.0, seed=seed)
        sets = []
        for _ in range(8):
            sets.append(tuple(opt.active))
            loss = per_example_loss(model, "lm", DATA.x_train[:2], DATA.y_train[:2]).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            if opt.steps % 2 == 0:
                assert len(opt.state) == 0  # rebuilt: moments restart
        return sets

    a = active_sets(3)
    assert a == active_sets(3)
    assert all(a[i] == a[i + 1] for i in range(0, 8, 2))  # fixed within an interval
    assert len(set(a)) > 1  # 10 possible pairs, 4 draws: a repeat of all four is ~1e-3 likely


def test_the_schedule_reaches_the_inner_optimizer():
    model = build_model("lm_nano", DATA, 0)
    opt = LayerwiseSampledAdamW(model, 1e-3, layers=1, interval=5, weight_decay=0.0, seed=0)
    opt.param_groups[0]["lr"] = 0.25
    loss = per_example_loss(model, "lm", DATA.x_train[:2], DATA.y_train[:2]).mean()
    loss.backward()
    opt.step()
    assert all(g["lr"] == 0.25 for g in opt.inner.param_groups)
