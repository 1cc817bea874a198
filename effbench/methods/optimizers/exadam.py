"""EXAdam: Ahmed Mostafa, "EXAdam: The Power of Adaptive Cross-Moments", arXiv:2412.20302.

Adam with cross-moment bias corrections, the gradient added to the momentum in the
numerator, and a step size growing like log(t). The rule is the authors' ``exadam.py``
pinned at AhmedMostafa16/EXAdam commit 9ff84639; per parameter with gradient g at step t:

    p  <- p (1 - lr wd)                                   (decoupled weight decay, before the moments)
    m  <- b1 m + (1 - b1) g,   v <- b2 v + (1 - b2) g^2
    d1  = 1 + b2^t v / (v + eps),   d2 = 1 + b1^t m^2 / (m^2 + eps)
    m~  = m d1 / (1 - b1^t),   g~ = g d1 / (1 - b1^t),   v~ = v d2 / (1 - b2^t)
    a_t = lr ln(sqrt(2) sqrt(t + 1))
    p  <- p - a_t (m~ + g~) / (sqrt(v~) + eps)

Two state tensors (m, v). The repository's later commit 5ad536f7 drops the log growth
(a_t = lr). pytorch_optimizer's ``EXAdam`` (4.1.0) implements that later rule: identical
otherwise (same decoupled decay by default), so its step is ours times lr / a_t. The peer
impl below therefore drives it with lr_t = a_t and weight decay wd lr / a_t each step, which
is the pinned rule exactly; the tests check both the adapted peer and the plain ratio.
"""

from __future__ import annotations

import math

import torch

from effbench.methods.optimizers._rule import AdamState, update_rule

PAPER = {"paper": "EXAdam: The Power of Adaptive Cross-Moments", "arxiv": "2412.20302"}
SUMMARY = "Adam with cross-moment debiasing, the gradient added to the momentum, and a log-growing step size."
HYPER = {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 1e-4}  # README's vision setting
# traffic: p, g, m, v read; p, m, v written
method, convergence = update_rule("exadam", summary=SUMMARY, hyper=HYPER, traffic=7, **PAPER)


def log_step_size(lr: float, t: int) -> float:
    """a_t = lr ln(sqrt(2) sqrt(t + 1)): lr ln 2 at t = 1, then growing like lr ln(t) / 2."""
    return lr * math.log(math.sqrt(2.0) * math.sqrt(t + 1))


class ReferenceEXAdam(AdamState):
    """The definition (commit 9ff84639), one parameter at a time; state in the parameter's dtype."""

    @torch.no_grad()
    def step(self) -> None:
        self.t += 1
        beta1_t, beta2_t = self.beta1**self.t, self.beta2**self.t
        alpha = log_step_size(self.lr, self.t)
        for p, m, v in zip(self.params, self.m, self.v, strict=True):
            g = p.grad
            p.mul_(1 - self.lr * self.weight_decay)  # decay uses lr, not a_t
            m.mul_(self.beta1).add_(g, alpha=1 - self.beta1)
            v.mul_(self.beta2).addcmul_(g, g, value=1 - self.beta2)
            d1 = 1 + beta2_t * v / (v + self.eps)
            m2 = m * m
            d2 = 1 + beta1_t * m2 / (m2 + self.eps)
            numerator = (m + g) * d1 / (1 - beta1_t)  # m~ + g~
            denom = (v * d2 / (1 - beta2_t)).sqrt_().add_(self.eps)
            p.addcdiv_(numerator, denom, value=-alpha)


class ForeachEXAdam(ReferenceEXAdam):
    """The same rule with multi-tensor ops: a handful of kernel launches for all tensors."""

    @torch.no_grad()
    def step(self) -> None:
        self.t += 1
        beta1_t, beta2_t = self.beta1**self.t, self.beta2**self.t
        alpha = log_step_size(self.lr, self.t)
        grads = [p.grad for p in self.params]
        torch._foreach_mul_(self.params, 1 - self.lr * self.weight_decay)
        torch._foreach_mul_(self.m, self.beta1)
        torch._foreach_add_(self.m, grads, alpha=1 - self.beta1)
        torch._foreach_mul_(self.v, self.beta2)
        torch._foreach_addcmul_(self.v, grads, grads, value=1 - self.beta2)
        # d1 = 1 + b2^t v / (v + eps)
        d1 = torch._foreach_div(self.v, torch._foreach_add(self.v, self.eps))
        torch._foreach_mul_(d1, beta2_t)
        torch._foreach_add_(d1, 1.0)
        # d2 = 1 + b1^t m^2 / (m^2 + eps)
        m2 = torch._foreach_mul(self.m, self.m)
        d2 = torch._foreach_div(m2, torch._foreach_add(m2, self.eps))
        torch._foreach_mul_(d2, beta1_t)
        torch._foreach_add_(d2, 1.0)
        numerator = torch._foreach_add(self.m, grads)
        torch._foreach_mul_(numerator, d1)
        torch._foreach_div_(numerator, 1 - beta1_t)
        denom = torch._foreach_mul(self.v, d2)
        torch._foreach_div_(denom, 1 - beta2_t)
        torch._foreach_sqrt_(denom)
        torch._foreach_add_(denom, self.eps)
        torch._foreach_addcdiv_(self.params, numerator, denom, value=-alpha)


class TritonEXAdam(ReferenceEXAdam):
    """The same state, updated by one fused Triton kernel per tensor."""

    @torch.no_grad()
    def step(self) -> None:
        from effbench.kernels.optimizer_step_exadam import exadam_step

        self.t += 1
        exadam_step(self.params, self.m, self.v, self.t, self.lr, self.beta1, self.beta2, self.eps,
                    self.weight_decay)


@method.impl("reference")
def reference(params: list[torch.Tensor], **hyper: float) -> ReferenceEXAdam:
    return ReferenceEXAdam(params, **hyper)


@method.impl("foreach")
def foreach(params: list[torch.Tensor], **hyper: float) -> ForeachEXAdam:
    return ForeachEXAdam(params, **hyper)


@method.impl("triton", needs=("triton",))
def triton(params: list[torch.Tensor], **hyper: float) -> TritonEXAdam:
    return TritonEXAdam(params, **hyper)


@method.impl("pytorch_optimizer", needs=("pytorch_optimizer",),
             note="po.EXAdam is the later rule without log step-size growth (commit 5ad536f7); driven here "
                  "with lr_t = lr ln(sqrt(2(t+1))) and wd_t = wd lr / lr_t per step to give the pinned rule")
def pytorch_optimizer(params: list[torch.Tensor], **hyper: float) -> torch.optim.Optimizer:
    import pytorch_optimizer as po

    class LogStepEXAdam(po.EXAdam):
        """po.EXAdam with the pinned a_t; the groups' own lr and weight decay are restored after each step."""

        @torch.no_grad()
        def step(self, closure=None):
            saved = [(group["lr"], group["weight_decay"]) for group in self.param_groups]
            for group, (lr, wd) in zip(self.param_groups, saved, strict=True):
                alpha = log_step_size(lr, group.get("step", 0) + 1)
                group["lr"] = alpha
                group["weight_decay"] = wd * lr / alpha if alpha else 0.0  # keeps the decay at 1 - lr wd
            try:
                return super().step(closure)
            finally:
                for group, (lr, wd) in zip(self.param_groups, saved, strict=True):
                    group["lr"], group["weight_decay"] = lr, wd

    return LogStepEXAdam(params, **hyper)


