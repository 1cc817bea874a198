"""AdamW: Loshchilov & Hutter, "Decoupled Weight Decay Regularization", arXiv:1711.05101.

Per parameter, with gradient g at step t:
    p <- p * (1 - lr * wd)                       (decoupled weight decay)
    m <- b1 m + (1 - b1) g,   v <- b2 v + (1 - b2) g^2
    p <- p - lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
"""

from __future__ import annotations

import torch

from effbench.methods.optimizers._rule import AdamState, trainer, update_rule

PAPER = {"paper": "Decoupled Weight Decay Regularization", "arxiv": "1711.05101"}
HYPER = {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.01}
method, convergence = update_rule(
    "adamw",
    summary="Adam with weight decay applied to the weights directly instead of through the gradient.",
    hyper=HYPER,
    traffic=7,  # p, g, m, v read; p, m, v written
    **PAPER,
)


class ReferenceAdamW(AdamState):
    """The definition, one parameter at a time; state in the parameter's dtype."""

    @torch.no_grad()
    def step(self) -> None:
        self.t += 1
        bias1 = 1 - self.beta1**self.t
        bias2 = 1 - self.beta2**self.t
        for p, m, v in zip(self.params, self.m, self.v, strict=True):
            g = p.grad
            p.mul_(1 - self.lr * self.weight_decay)
            m.mul_(self.beta1).add_(g, alpha=1 - self.beta1)
            v.mul_(self.beta2).addcmul_(g, g, value=1 - self.beta2)
            denom = (v / bias2).sqrt_().add_(self.eps)
            p.addcdiv_(m, denom, value=-self.lr / bias1)


@method.impl("reference")
def reference(params: list[torch.Tensor], **hyper: float) -> ReferenceAdamW:
    return ReferenceAdamW(params, **hyper)


class TritonAdamW(ReferenceAdamW):
    """The same state, updated by one fused Triton kernel per tensor."""

    @torch.no_grad()
    def step(self) -> None:
        from effbench.kernels.optimizer_step import adamw_step

        self.t += 1
        adamw_step(self.params, self.m, self.v, self.t, self.lr, self.beta1, self.beta2, self.eps,
                   self.weight_decay)


@method.impl("triton", needs=("triton",))
def triton(params: list[torch.Tensor], **hyper: float) -> TritonAdamW:
    return TritonAdamW(params, **hyper)


@method.impl("torch_foreach")
def torch_foreach(params: list[torch.Tensor], **hyper: float) -> torch.optim.Optimizer:
    """torch.optim.AdamW with multi-tensor (foreach) kernels."""
    return torch.optim.AdamW(params, foreach=True, **hyper)


# HeavyBall's AdamW is not a peer here: it floors the denominator at eps (max(sqrt(v_hat), eps)) where
# the paper and torch.optim add eps, which changes coordinates with sqrt(v_hat) up to ~100 eps: 1e-3
# relative difference on the step task's gradients, so it computes another rule.
@method.impl("torch_fused")
def torch_fused(params: list[torch.Tensor], **hyper: float) -> torch.optim.Optimizer:
    """torch.optim.AdamW with its fused kernel (CUDA, and CPU since torch 2.4)."""
    return torch.optim.AdamW(params, fused=True, **hyper)



convergence.impl("torch_fused")(trainer(torch_fused, HYPER))
