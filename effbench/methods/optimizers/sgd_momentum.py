"""SGD with momentum (heavy ball): Sutskever et al., "On the importance of initialization and momentum
in deep learning" (ICML 2013), in PyTorch's form:

    g <- g + wd p;   buf <- mu buf + g   (buf = g on the first step);   p <- p - lr buf
"""

from __future__ import annotations

import torch

from effbench.methods.optimizers._rule import Rule, update_rule

PAPER = {"paper": "On the importance of initialization and momentum in deep learning"}
SUMMARY = "The classic baseline: a running sum of gradients with decay mu, L2 weight decay added to the gradient."
HYPER = {"lr": 1e-2, "momentum": 0.9, "weight_decay": 1e-4}
method, convergence = update_rule("sgd_momentum", summary=SUMMARY, hyper=HYPER, traffic=5, **PAPER)


class ReferenceSGDMomentum(Rule):
    """The definition, one parameter at a time."""

    def __init__(self, params: list[torch.Tensor], lr: float, momentum: float, weight_decay: float) -> None:
        super().__init__(params, lr)
        self.momentum, self.weight_decay = momentum, weight_decay
        self.buffers: list[torch.Tensor | None] = [None] * len(self.params)

    @torch.no_grad()
    def step(self) -> None:
        for i, p in enumerate(self.params):
            g = p.grad + self.weight_decay * p
            buf = self.buffers[i]
            self.buffers[i] = g.clone() if buf is None else buf.mul_(self.momentum).add_(g)
            p.sub_(self.lr * self.buffers[i])


@method.impl("reference")
def reference(params: list[torch.Tensor], **hyper: float) -> ReferenceSGDMomentum:
    return ReferenceSGDMomentum(params, **hyper)


@method.impl("torch_foreach")
def torch_foreach(params: list[torch.Tensor], **hyper: float) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, foreach=True, **hyper)


@method.impl("torch_fused")
def torch_fused(params: list[torch.Tensor], **hyper: float) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, fused=True, **hyper)


