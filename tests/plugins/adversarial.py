"""Planted faults against the harness itself (issue #17): implementations written against the public plugin
API that try to make a wrong answer look right, or a right one look wrong. Each must get one exact status."""

import math
import time

import torch
import torch.nn.functional as F

from effbench import Method
from effbench.methods.attention._masked import reference_attention
from effbench.methods.optimizers.adamw import ReferenceAdamW


def cross_entropy(x, w, y, ignore_index=-100):
    return F.cross_entropy((x @ w.T).to(torch.promote_types(x.dtype, torch.float32)), y, ignore_index=ignore_index)


# ----------------------------------------------------------------------------- linear cross-entropy

lce = Method(task="loss/linear_cross_entropy", name="adversarial", summary="Test double: planted harness faults.")
lce.impl("reference")(cross_entropy)


@lce.impl("correct")
def correct(x, w, y, ignore_index=-100):
    return F.cross_entropy(x @ w.T, y, ignore_index=ignore_index)


@lce.impl("scales_x_first")
def scales_x_first(x, w, y, ignore_index=-100):
    with torch.no_grad():
        x.mul_(1.5)  # the caller's tensor: a truth computed from it afterwards would agree with this answer
    return cross_entropy(x, w, y, ignore_index)


@lce.impl("scales_x_after")
def scales_x_after(x, w, y, ignore_index=-100):
    loss = cross_entropy(x.clone(), w, y, ignore_index)
    with torch.no_grad():
        x.mul_(1.5)
    return loss


@lce.impl("relabels_y")
def relabels_y(x, w, y, ignore_index=-100):
    y.fill_(0)  # an integer input: passed through by identity to a float64 truth that would share it
    return cross_entropy(x, w, y, ignore_index)


@lce.impl("float64")
def float64(x, w, y, ignore_index=-100):
    return F.cross_entropy(x.double() @ w.double().T, y, ignore_index=ignore_index)  # "more accurate" than fp32


@lce.impl("hangs")
def hangs(x, w, y, ignore_index=-100):
    time.sleep(3600)  # its timeout restarts the worker: what follows must be judged as if nothing ran before


_MEMO: dict[tuple[int, ...], torch.Tensor] = {}


@lce.impl("memoises")
def memoises(x, w, y, ignore_index=-100):
    """Remembers the loss by the inputs' addresses: every timed repetition reuses the same tensors."""
    key = (x.data_ptr(), w.data_ptr(), y.data_ptr())
    if key not in _MEMO:  # the first call, the one checked: right
        loss = cross_entropy(x, w, y, ignore_index)
        _MEMO[key] = loss.detach()
        return loss
    return _MEMO[key] + 0 * (x.sum() + w.sum())  # later calls: fast, stale, and zero gradients


# A reference with a NaN in one gradient only: every implementation of it is judged against a broken truth.
broken = Method(task="loss/linear_cross_entropy", name="broken_reference", summary="Test double: NaN in dw.")


@broken.impl("reference")
def nan_in_dw(x, w, y, ignore_index=-100):
    if w.requires_grad:
        w.register_hook(lambda g: g * math.nan)
    return cross_entropy(x, w, y, ignore_index)


@broken.impl("dw_five_times")
def dw_five_times(x, w, y, ignore_index=-100):
    if w.requires_grad:
        w.register_hook(lambda g: g * 5)
    return cross_entropy(x, w, y, ignore_index)


# ----------------------------------------------------------------------------- masked attention

attention = Method(task="attention/masked_attention", name="adversarial_causal",
                   summary="Test double: causal attention with planted faults.",
                   mask=lambda n, point, device: torch.ones(n, n, dtype=torch.bool, device=device).tril())
attention.impl("reference")(reference_attention)


@attention.impl("correct")
def attention_correct(q, k, v, mask):
    return reference_attention(q, k, v, mask)


@attention.impl("densifies_mask")
def densifies_mask(q, k, v, mask):
    mask.fill_(True)  # dense attention, while the truth would read the same (now dense) mask
    return reference_attention(q, k, v, mask)


# ----------------------------------------------------------------------------- optimizer step

adamw = Method(task="optimizer/step", name="adversarial_adamw", summary="Test double: AdamW with a late fault.",
               hyper={"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.01}, traffic=7)


@adamw.impl("reference")
def adamw_reference(params, **hyper):
    return ReferenceAdamW(params, **hyper)


class CounterStopsAtSix(ReferenceAdamW):
    """Exact for 6 steps; then its bias corrections freeze (a step counter that stops)."""

    @torch.no_grad()
    def step(self):
        frozen = min(self.t, 6)
        self.t = frozen
        super().step()


@adamw.impl("counter_stops")
def counter_stops(params, **hyper):
    return CounterStopsAtSix(params, **hyper)
