"""attention/lm: masks reach the model, routing is exact, runs repeat, and dense / sliding-window LMs learn."""

import math

import pytest
import torch

from effbench.methods.attention import dense, mixture_of_depths, sliding_window
from effbench.methods.attention._lm import lm_method
from effbench.models import LM_SIZES, TransformerLM
from effbench.plugs import Budget, Plugs, adamw
from effbench.registry import Method, Skipped, UsageError, discover
from effbench.run.case import execute
from effbench.run.plan import Case, make_config
from effbench.tasks import attention_lm
from effbench.tasks.attention_lm import PatternAttention, causal_mask, lm_data, task
from effbench.train import train

SMOKE = task.grids["smoke"][0]


def kernel_pattern(name: str, **extras) -> Method:
    return Method("attention/masked_attention", name, summary=f"test pattern {name}", **extras)


def lm_of(module) -> Method:
    """The pattern file's own ``lm`` once it has one, else one built here (never registered twice)."""
    return getattr(module, "lm", None) or lm_method(module.method)


def nano(method: Method, point: dict, vocab: int = 20, seed: int = 0) -> TransformerLM:
    return TransformerLM(LM_SIZES["nano"], vocab, seed, attention=PatternAttention(method.reference.fn, method, point))


# --------------------------------------------------------------------------- lm_method


def test_lm_method_keeps_the_pattern_and_its_provenance():
    lm = lm_method(sliding_window.method)
    assert (lm.task, lm.name) == ("attention/lm", "sliding_window")
    assert (lm.paper, lm.arxiv, lm.summary) == (sliding_window.method.paper, sliding_window.method.arxiv,
                                                sliding_window.method.summary)
    assert lm.extras["mask"] is sliding_window.method.extras["mask"]
    assert lm.source_file == sliding_window.method.source_file
    assert set(lm.impls) == {"reference"}


def test_lm_method_refuses_what_is_not_a_mask_pattern():
    with pytest.raises(UsageError, match="no LM form"):
        lm_method(kernel_pattern("biased", mask=lambda n, p, d: None, bias_rank=True))
    with pytest.raises(UsageError, match="mask"):
        lm_method(kernel_pattern("maskless"))
    with pytest.raises(UsageError, match="masked_attention"):
        lm_method(mixture_of_depths.method)


# --------------------------------------------------------------------------- masks inside the model


def test_lm_mask_is_the_pattern_and_causal():
    full = PatternAttention(None, lm_of(dense), {})
    assert torch.equal(full.mask(6, "cpu"), causal_mask(6, "cpu"))  # dense's full mask: causal in a decoder
    window = PatternAttention(None, lm_of(sliding_window), {"window": 3})
    assert torch.equal(window.mask(6, "cpu"), sliding_window.method.extras["mask"](6, {"window": 3}, "cpu"))
    assert window.mask(6, "cpu") is window.mask(6, "cpu")  # built once per length


def test_a_pattern_that_leaves_a_query_no_key_is_refused():
    strict = lm_method(kernel_pattern("strict", mask=lambda n, p, d: torch.ones(n, n, dtype=torch.bool).tril(-1)))
    with pytest.raises(ValueError, match="without a causal key"):
        PatternAttention(strict.reference.fn, strict, {}).mask(5, "cpu")


def test_a_point_without_the_pattern_parameters_is_skipped():
    with pytest.raises(Skipped, match="window"):
        attention_lm.run(lm_of(sliding_window), lm_of(sliding_window).reference,
                         {k: v for k, v in SMOKE.items() if k != "window"}, 0, "cpu", torch.float32)


def test_a_diagonal_mask_makes_every_output_independent_of_other_tokens():
    diagonal = lm_method(kernel_pattern("diagonal", mask=lambda n, p, d: torch.eye(n, dtype=torch.bool, device=d)))
    tokens = torch.randint(0, 20, (2, 12), generator=torch.Generator().manual_seed(0))
    changed = tokens.clone()
    changed[:, 5] = (changed[:, 5] + 1) % 20
    for method, later_moves in ((diagonal, False), (lm_of(dense), True)):
        model = nano(method, {})
        with torch.no_grad():
            before, after = model(tokens), model(changed)
        torch.testing.assert_close(before[:, :5], after[:, :5], rtol=0, atol=0)  # causal either way
        assert not torch.allclose(before[:, 5], after[:, 5])
        if later_moves:  # dense: the change reaches every later position (the test has teeth)
            assert not torch.allclose(before[:, 6:], after[:, 6:])
        else:
            torch.testing.assert_close(before[:, 6:], after[:, 6:], rtol=0, atol=0)


def test_a_window_hides_what_lies_beyond_its_reach():
    """Two layers of a window of 3 see 2 * (3 - 1) = 4 tokens back: position 9 sees 5.., not 4."""
    model = nano(lm_of(sliding_window), {"window": 3})
    tokens = torch.randint(0, 20, (1, 12), generator=torch.Generator().manual_seed(1))
    far, near = tokens.clone(), tokens.clone()
    far[0, 4], near[0, 5] = (far[0, 4] + 1) % 20, (near[0, 5] + 1) % 20
    with torch.no_grad():
        base = model(tokens)[0, 9]
        torch.testing.assert_close(model(far)[0, 9], base, rtol=0, atol=0)
        assert not torch.allclose(model(near)[0, 9], base)


def test_a_dynamic_mask_is_chosen_per_call_from_q_and_k_and_kept_causal():
    calls = []

    def everything(q, k, point):
        calls.append((tuple(q.shape), q.requires_grad))
        return torch.ones(q.shape[0], q.shape[1], q.shape[2], q.shape[2], dtype=torch.bool)

    lm = lm_method(kernel_pattern("dynamic", dynamic_mask=everything))
    model = nano(lm, {})
    tokens = torch.randint(0, 20, (3, 7), generator=torch.Generator().manual_seed(2))
    changed = tokens.clone()
    changed[:, 4] = (changed[:, 4] + 1) % 20
    with torch.no_grad():
        torch.testing.assert_close(model(tokens)[:, :4], model(changed)[:, :4], rtol=0, atol=0)
    assert calls[:2] == [((3, 2, 7, 32), False)] * 2  # once per layer, on detached q


# --------------------------------------------------------------------------- Mixture-of-Depths


def mod_model(layers: str = "nano", capacity: float = 0.25, seed: int = 0, vocab: int = 20) -> TransformerLM:
    config = LM_SIZES[layers]
    router = mixture_of_depths.router(config, {"capacity": capacity}, seed)
    attention = PatternAttention(mixture_of_depths.method.reference.fn, mixture_of_depths.method, {})
    return TransformerLM(config, vocab, seed, attention=attention, router=router)


def test_mod_routes_every_other_block():
    assert list(mod_model("nano").router.scores) == ["1"]
    assert list(mod_model("tiny").router.scores) == ["1", "3"]
    assert mod_model().router(0, torch.zeros(2, 8, 64)) is None


def test_mod_routes_exactly_k_tokens_per_sequence_in_position_order():
    router = mod_model(capacity=0.125).router
    x = torch.randn(4, 40, 64, generator=torch.Generator().manual_seed(3))
    index, gate = router(1, x)
    assert index.shape == gate.shape == (4, 5)  # round(0.125 * 40)
    assert (index.diff(dim=-1) > 0).all()  # distinct and increasing
    scores = router.scores["1"](x).squeeze(-1)
    chosen = torch.zeros(4, 40, dtype=torch.bool).scatter_(1, index, True)
    assert (scores[chosen].view(4, 5).min(-1).values >= scores.masked_fill(chosen, -math.inf).max(-1).values).all()
    torch.testing.assert_close(gate, torch.sigmoid(scores.gather(1, index)))
    assert router.k(3) == 1  # at least one token


def test_mod_passes_unrouted_tokens_through_unchanged():
    model = mod_model(capacity=0.25)
    seen = {}
    model.blocks[0].register_forward_hook(lambda mod, args, out: seen.update(before=out))
    model.blocks[1].register_forward_pre_hook(lambda mod, args: seen.update(routed=args[0].shape))
    model.norm.register_forward_pre_hook(lambda mod, args: seen.update(after=args[0]))
    tokens = torch.randint(0, 20, (3, 16), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        model(tokens)
        index, _ = model.router(1, seen["before"])
    assert seen["routed"] == (3, 4, 64)  # the block saw only the k routed tokens
    chosen = torch.zeros(3, 16, dtype=torch.bool).scatter_(1, index, True)
    torch.testing.assert_close(seen["after"][~chosen], seen["before"][~chosen], rtol=0, atol=0)
    assert not torch.allclose(seen["after"][chosen], seen["before"][chosen])


def test_mod_router_is_trained_as_part_of_the_model():
    data = lm_data(SMOKE)
    model = mod_model(vocab=data.n_classes)
    router_params = list(model.router.parameters())
    assert router_params and all(any(p is q for q in model.parameters()) for p in router_params)
    start = [p.detach().clone() for p in router_params]
    train(model, data, Plugs(optimizer=adamw), Budget(3, 8, 3), 1e-2, None, 0)
    assert all(not torch.equal(p, s) for p, s in zip(router_params, start, strict=True))


def test_mod_router_is_seeded():
    a, b, c = (mod_model(seed=s).router.scores["1"].weight for s in (0, 0, 1))
    assert torch.equal(a, b) and not torch.equal(a, c)


# --------------------------------------------------------------------------- the task


def test_grid_points_fit_the_model_and_blind_a_short_window():
    for grid, points in task.grids.items():
        for point in points:
            n = lm_data(point).x_train.shape[1]
            assert n <= LM_SIZES[point["model"][3:]].context, (grid, point)
            reach = LM_SIZES[point["model"][3:]].layers * (point["window"] - 1)
            if point["data"] == "copying" and grid != "smoke":
                assert point["length"] > reach, (grid, point)  # every answer is out of the window's reach
            if point["data"] == "key_value_lookup":
                assert point["pairs"] > 2 * reach, (grid, point)  # most of the store is out of every query's reach


def test_seeds_make_runs_repeatable():
    method = lm_of(sliding_window)

    def curve(seed):
        outcome = attention_lm.run(method, method.reference, SMOKE, seed, "cpu", torch.float32)
        return [(c.step, c.train_loss, c.eval_loss, c.eval_metric) for c in outcome.curve], outcome

    first, outcome = curve(0)
    assert curve(0)[0] == first
    assert curve(1)[0] != first
    assert outcome.metrics["attended_fraction"] < 1
    assert outcome.metrics["time_per_step_ms"] > 0


@pytest.fixture(scope="module")
def lm_registry():
    registry = discover()
    for module in (dense, sliding_window):
        if ("attention/lm", module.method.name) not in registry.methods:
            registry.add(lm_method(module.method), "test")
    return registry


@pytest.mark.parametrize("name", ["dense", "sliding_window", "mixture_of_depths"])
def test_smoke_training_improves_on_the_initial_loss(lm_registry, name):
    result = execute(lm_registry, Case("attention/lm", name, "reference", SMOKE, "float32", "cpu", 0),
                     make_config("smoke", "cpu", seeds=1))
    assert result.status == "ok", result.message
    eval_losses = [point[3] for point in result.curve]
    assert eval_losses[-1] < eval_losses[0] - 0.1, eval_losses
    assert math.isfinite(result.metrics["time_per_step_ms"])


def test_every_mask_pattern_has_an_lm_form_on_every_grid_point(registry):
    """What ``lm = lm_method(method)`` will give each pattern file: a mask for every point's length."""
    patterns = [m for m in registry.methods_of("attention/masked_attention") if not m.extras.get("bias_rank")]
    assert {"dense", "sliding_window"} <= {m.name for m in patterns}
    for kernel in patterns:
        lm = lm_method(kernel)
        for point in (p for points in task.grids.values() for p in points):
            n = lm_data(point).x_train.shape[1]
            attention = PatternAttention(lm.reference.fn, lm, point)
            if attention.static is not None:
                mask = attention.mask(n, "cpu")
            else:
                q = torch.randn(2, 2, n, 8, generator=torch.Generator().manual_seed(5))
                mask = attention.dynamic(q, q, point) & causal_mask(n, "cpu")
            assert mask.any(-1).all() and not mask.triu(1).any(), (kernel.name, point)
