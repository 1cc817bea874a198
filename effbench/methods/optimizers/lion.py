"""Lion: Chen et al., "Symbolic Discovery of Optimization Algorithms", arXiv:2302.06675.

    c <- b1 m + (1 - b1) g;   p <- p (1 - lr wd) - lr sign(c);   m <- b2 m + (1 - b2) g

One state tensor (Adam keeps two) and an update of the same magnitude in every coordinate.
"""

from __future__ import annotations

import torch

from effbench.methods.optimizers._rule import Rule, update_rule

PAPER = {"paper": "Symbolic Discovery of Optimization Algorithms", "arxiv": "2302.06675"}
SUMMARY = "Sign of an interpolation of momentum and gradient; one state tensor, decoupled weight decay."
HYPER = {"lr": 1e-4, "betas": (0.9, 0.99), "weight_decay": 0.01}
method, convergence = update_rule("lion", summary=SUMMARY, hyper=HYPER, traffic=5, **PAPER)


class ReferenceLion(Rule):
    """The definition, one parameter at a time."""

    def __init__(self, params: list[torch.Tensor], lr: float, betas: tuple[float, float], weight_decay: float) -> None:
        super().__init__(params, lr)
        (self.beta1, self.beta2), self.weight_decay = betas, weight_decay
        self.m = [torch.zeros_like(p) for p in self.params]

    @torch.no_grad()
    def step(self) -> None:
        for p, m in zip(self.params, self.m, strict=True):
            g = p.grad
            c = self.beta1 * m + (1 - self.beta1) * g
            p.mul_(1 - self.lr * self.weight_decay).sub_(self.lr * torch.sign(c))
            m.mul_(self.beta2).add_(g, alpha=1 - self.beta2)


class ForeachLion(ReferenceLion):
    """The same rule with multi-tensor ops: a handful of kernel launches for all tensors."""

    @torch.no_grad()
    def step(self) -> None:
        grads = [p.grad for p in self.params]
        c = torch._foreach_mul(self.m, self.beta1)
        torch._foreach_add_(c, grads, alpha=1 - self.beta1)
        torch._foreach_mul_(self.params, 1 - self.lr * self.weight_decay)
        torch._foreach_add_(self.params, torch._foreach_sign(c), alpha=-self.lr)
        torch._foreach_mul_(self.m, self.beta2)
        torch._foreach_add_(self.m, grads, alpha=1 - self.beta2)


class TritonLion(ReferenceLion):
    """The same state, updated by one fused Triton kernel per tensor."""

    @torch.no_grad()
    def step(self) -> None:
        from effbench.kernels.optimizer_step import lion_step

        lion_step(self.params, self.m, self.lr, self.beta1, self.beta2, self.weight_decay)


@method.impl("reference")
def reference(params: list[torch.Tensor], **hyper: float) -> ReferenceLion:
    return ReferenceLion(params, **hyper)


@method.impl("foreach")
def foreach(params: list[torch.Tensor], **hyper: float) -> ForeachLion:
    return ForeachLion(params, **hyper)


@method.impl("pytorch_optimizer", needs=("pytorch_optimizer",))
def pytorch_optimizer(params: list[torch.Tensor], **hyper: float) -> torch.optim.Optimizer:
    import pytorch_optimizer as po

    return po.Lion(params, weight_decouple=True, **hyper)




@method.impl("triton", needs=("triton",))
def triton(params: list[torch.Tensor], **hyper: float) -> TritonLion:
    return TritonLion(params, **hyper)
