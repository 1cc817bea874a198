"""LARS: You, Gitman & Ginsburg, "Large Batch Training of Convolutional Networks", arXiv:1708.03888.

Layer-wise adaptive rate scaling, per weight matrix (ndim > 1; vectors such as biases and
norm gains get plain momentum SGD, no decay, as is usual):

    trust = eta ||p|| / (||g|| + wd ||p||)   (1 when either norm is 0)
    u <- (g + wd p) trust;   buf <- mu buf + u;   p <- p - lr buf
"""

from __future__ import annotations

import torch

from effbench.methods.optimizers._rule import Rule, update_rule

PAPER = {"paper": "Large Batch Training of Convolutional Networks", "arxiv": "1708.03888"}
SUMMARY = "Momentum SGD whose step for each weight matrix is scaled by ||p|| / ||g||: a per-layer trust ratio."
HYPER = {"lr": 0.1, "momentum": 0.9, "weight_decay": 1e-4, "trust_coefficient": 1e-3}
method, convergence = update_rule("lars", summary=SUMMARY, hyper=HYPER, traffic=7, **PAPER)


class ReferenceLARS(Rule):
    """The definition, one parameter at a time."""

    def __init__(self, params: list[torch.Tensor], lr: float, momentum: float, weight_decay: float,
                 trust_coefficient: float) -> None:
        super().__init__(params, lr)
        self.momentum, self.weight_decay, self.trust = momentum, weight_decay, trust_coefficient
        self.buffers = [torch.zeros_like(p) for p in self.params]

    @torch.no_grad()
    def step(self) -> None:
        for p, buf in zip(self.params, self.buffers, strict=True):
            update = p.grad
            if p.ndim > 1:
                p_norm, g_norm = torch.linalg.vector_norm(p), torch.linalg.vector_norm(p.grad)
                denominator = g_norm + self.weight_decay * p_norm
                ok = (p_norm > 0) & (denominator > 0)
                trust = torch.where(ok, self.trust * p_norm / denominator, torch.ones_like(p_norm))
                update = (p.grad + self.weight_decay * p) * trust
            buf.mul_(self.momentum).add_(update)
            p.sub_(self.lr * buf)


@method.impl("reference")
def reference(params: list[torch.Tensor], **hyper: float) -> ReferenceLARS:
    return ReferenceLARS(params, **hyper)


class ForeachLARS(ReferenceLARS):
    """The same rule with multi-tensor ops: all norms in two launches, the trust ratios as one vector."""

    @torch.no_grad()
    def step(self) -> None:
        grads = [p.grad for p in self.params]
        matrices = [i for i, p in enumerate(self.params) if p.ndim > 1]
        updates = list(grads)
        if matrices:
            ps, gs = [self.params[i] for i in matrices], [grads[i] for i in matrices]
            p_norms = torch.stack(torch._foreach_norm(ps))
            g_norms = torch.stack(torch._foreach_norm(gs))
            denominator = g_norms + self.weight_decay * p_norms
            ok = (p_norms > 0) & (denominator > 0)
            trust = torch.where(ok, self.trust * p_norms / denominator, torch.ones_like(p_norms))
            decayed = torch._foreach_add(gs, ps, alpha=self.weight_decay)
            torch._foreach_mul_(decayed, list(trust.unbind()))
            for i, u in zip(matrices, decayed, strict=True):
                updates[i] = u
        torch._foreach_mul_(self.buffers, self.momentum)
        torch._foreach_add_(self.buffers, updates)
        torch._foreach_add_(self.params, self.buffers, alpha=-self.lr)


@method.impl("foreach")
def foreach(params: list[torch.Tensor], **hyper: float) -> ForeachLARS:
    return ForeachLARS(params, **hyper)


class TritonLARS(ReferenceLARS):
    """Per matrix, a norms kernel then a fused momentum step; the trust ratio never leaves the device."""

    @torch.no_grad()
    def step(self) -> None:
        from effbench.kernels.optimizer_step_trust import lars_step

        lars_step(self.params, self.buffers, self.lr, self.momentum, self.weight_decay, self.trust)


@method.impl("triton", needs=("triton",))
def triton(params: list[torch.Tensor], **hyper: float) -> TritonLARS:
    return TritonLARS(params, **hyper)


@method.impl("pytorch_optimizer", needs=("pytorch_optimizer",))
def pytorch_optimizer(params: list[torch.Tensor], **hyper: float) -> torch.optim.Optimizer:
    import pytorch_optimizer as po

    return po.LARS(params, **hyper)


