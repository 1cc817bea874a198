"""The family kits: one call makes a pattern's or an update rule's methods, recorded as the caller's own."""

import pytest
import torch

from effbench.methods.attention._masked import causal_mod, flex_lookup, full_mask
from effbench.methods.attention._pattern import masked_pattern
from effbench.methods.optimizers._rule import update_rule
from effbench.registry import Skipped, UsageError


def test_a_pattern_gets_every_shared_impl_and_its_lm_form():
    method, lm = masked_pattern("kit_causal", summary="test", mod=causal_mod, flash_attn="no causal window")
    assert list(method.impls) == ["reference", "triton", "sdpa", "flex", "xformers", "flash_attn"]
    assert (method.task, lm.task) == ("attention/masked_attention", "attention/lm")
    assert method.source_file == lm.source_file == __file__  # provenance: the pattern's file, not the kit's
    assert method.extras["mask"](4, {}, "cpu").equal(torch.ones(4, 4, dtype=torch.bool).tril())
    assert method.impls["xformers"].devices == ("cuda",) and method.impls["triton"].needs == ("triton",)
    with pytest.raises(Skipped, match="no no causal window mask"):  # a case of its own, skipped with the reason
        method.impls["flash_attn"].fn(*[torch.zeros(1, 1, 4, 8)] * 3, torch.ones(4, 4, dtype=torch.bool))


def test_a_pattern_is_defined_exactly_once():
    with pytest.raises(UsageError, match="exactly one of"):
        masked_pattern("both", summary="", mod=causal_mod, dynamic_mask=lambda q, k, point: None, flash_attn="x")
    with pytest.raises(UsageError, match="needs its own flex"):
        masked_pattern("bare", summary="", mask=full_mask, flash_attn="x")
    dynamic, _ = masked_pattern("kit_dynamic", summary="", dynamic_mask=lambda q, k, point: None, flash_attn="x")
    assert dynamic.impls["flex"].fn is flex_lookup and "mask" not in dynamic.extras


def test_an_update_rule_trains_with_its_own_reference():
    calls = []

    class Plain(torch.optim.SGD):
        def __init__(self, params, lr, momentum):
            calls.append((lr, momentum))
            super().__init__(params, lr=lr, momentum=momentum)

    step, convergence = update_rule("kit_sgd", summary="test", hyper={"lr": 0.1, "momentum": 0.5}, traffic=5)
    step.impl("reference")(lambda params, **hyper: Plain(params, **hyper))
    assert step.extras["traffic"] == 5 and "traffic" not in convergence.extras
    assert step.source_file == convergence.source_file == __file__
    made = convergence.reference.fn([torch.nn.Parameter(torch.zeros(2))], 0.3)  # the tuned lr wins
    assert isinstance(made, Plain) and calls == [(0.3, 0.5)]
