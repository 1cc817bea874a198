from effbench.data import DATASETS
from effbench.registry import discover
from effbench.tasks.memory import probe
from effbench.workloads import build_model

REGISTRY = discover()
POINT = {"data": "stdlib_windows", "model": "lm_tiny", "steps": 4, "batch": 4, "lr": 0.003, "eval_every": 4}


def _probe(name):
    return probe(REGISTRY.methods[("sampler/memory", name)].impls["reference"], POINT, 0, "cpu")


def test_probe_counts_what_each_method_holds():
    full, lisa, wta = _probe("full_training"), _probe("lisa"), _probe("wta_crs")
    weights = 4 * sum(p.numel() for p in build_model("lm_tiny", DATASETS["stdlib_windows"](), 0).parameters())
    # full AdamW: a gradient per weight, two moments per weight (+ a 4-byte step count per tensor)
    assert full["grad_bytes"] == weights
    assert 2 * weights <= full["state_bytes"] < 2 * weights + 4096
    assert full["grad_rel_error"] == 0.0 and lisa["grad_rel_error"] == 0.0  # both take exact gradients
    # LISA: 2 of 5 blocks and the embedding hold gradients and state; frozen blocks save fewer activations
    assert lisa["grad_bytes"] < 0.6 * full["grad_bytes"] and lisa["state_bytes"] < 0.6 * full["state_bytes"]
    assert lisa["saved_activation_bytes"] < full["saved_activation_bytes"]
    # WTA-CRS: the same gradients and state, fewer saved activations, a gradient estimate
    assert wta["grad_bytes"] == full["grad_bytes"]
    assert wta["saved_activation_bytes"] < full["saved_activation_bytes"]
    assert 0.0 < wta["grad_rel_error"] < 2.0
    assert lisa["train_state_bytes"] < full["train_state_bytes"]
    assert wta["train_state_bytes"] < full["train_state_bytes"]
