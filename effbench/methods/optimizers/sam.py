"""SAM: Foret et al., "Sharpness-Aware Minimization for Efficiently Improving Generalization", arXiv:2010.01412.

Two gradient evaluations per step, around a base optimizer (SGD with momentum, as in the paper):

    e = rho g / (||g|| + 1e-12)        (||.|| over all parameters together)
    g' = grad L(w + e)                 (the closure: a second forward and backward at the perturbed point)
    w <- base_step(w, g')              (from the unperturbed w, restored exactly)

``step(closure)``: ``p.grad`` holds g on entry; the closure recomputes the loss and sets
``p.grad`` to g' at the perturbed weights. Rules that need a closure say so with
``needs_closure = True``; training loops and the step task honour it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from effbench.methods.optimizers._rule import Rule, update_rule
from effbench.methods.optimizers.sgd_momentum import ReferenceSGDMomentum

PAPER = {"paper": "Sharpness-Aware Minimization for Efficiently Improving Generalization", "arxiv": "2010.01412"}
SUMMARY = ("Two passes per step: ascend to the worst point within radius rho, take the base optimizer's step "
           "(SGD momentum) with the gradient found there.")
HYPER = {"lr": 1e-2, "rho": 0.05, "momentum": 0.9, "weight_decay": 1e-4}
PERTURB_EPS = 1e-12
# p, g read for the norm; p read, p and the saved copy written for the ascent; the copy read back into p;
# then the base SGD-momentum step (p, g, buf read; p, buf written).
method, convergence = update_rule("sam", summary=SUMMARY, hyper=HYPER, traffic=2 + 3 + 2 + 5, **PAPER)


class ReferenceSAM(Rule):
    """The definition: a saved copy of the weights, the ascent step, the closure, then the base step."""

    needs_closure = True

    def __init__(self, params: list[torch.Tensor], lr: float, rho: float, momentum: float,
                 weight_decay: float) -> None:
        super().__init__(params, lr)
        self.rho = rho
        self.base = ReferenceSGDMomentum(self.params, lr, momentum, weight_decay)
        self.base.param_groups = self.param_groups  # one lr, set by schedules on either object

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> None:
        if closure is None:
            raise ValueError("SAM needs a closure that recomputes the loss and gradients at the perturbed weights")
        norm = torch.sqrt(sum(p.grad.square().sum() for p in self.params))
        scale = self.rho / (norm + PERTURB_EPS)
        saved = []
        for p in self.params:
            saved.append(p.clone())
            p.add_(p.grad * scale)
        with torch.enable_grad():
            closure()
        for p, original in zip(self.params, saved, strict=True):
            p.copy_(original)
        self.base.step()


class ForeachSAM(Rule):
    """The same two passes with multi-tensor ops (norm, ascent, restore) around torch's foreach SGD step."""

    needs_closure = True

    def __init__(self, params: list[torch.Tensor], lr: float, rho: float, momentum: float,
                 weight_decay: float) -> None:
        super().__init__(params, lr)
        self.rho = rho
        self.base = torch.optim.SGD(self.params, lr=lr, momentum=momentum, weight_decay=weight_decay, foreach=True)
        self.param_groups = self.base.param_groups
        self.saved = [torch.empty_like(p) for p in self.params]  # reused: no allocation per step

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> None:
        if closure is None:
            raise ValueError("SAM needs a closure that recomputes the loss and gradients at the perturbed weights")
        grads = [p.grad for p in self.params]
        norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
        scale = (self.rho / (norm + PERTURB_EPS)).item()
        torch._foreach_copy_(self.saved, self.params)
        torch._foreach_add_(self.params, grads, alpha=scale)
        with torch.enable_grad():
            closure()
        torch._foreach_copy_(self.params, self.saved)
        self.base.step()


@method.impl("reference")
def reference(params: list[torch.Tensor], **hyper: float) -> ReferenceSAM:
    return ReferenceSAM(params, **hyper)


@method.impl("foreach")
def foreach(params: list[torch.Tensor], **hyper: float) -> ForeachSAM:
    return ForeachSAM(params, **hyper)


@method.impl("pytorch_optimizer", needs=("pytorch_optimizer",))
def pytorch_optimizer(params: list[torch.Tensor], lr: float, rho: float, momentum: float,
                      weight_decay: float) -> torch.optim.Optimizer:
    import pytorch_optimizer as po

    optimizer = po.SAM(params, torch.optim.SGD, rho=rho, lr=lr, momentum=momentum, weight_decay=weight_decay)
    optimizer.needs_closure = True
    return optimizer


