"""diffGrad: Dubey et al., "diffGrad: An Optimization Method for Convolutional Neural Networks", arXiv:1909.11015.

Adam whose first moment is damped by a friction coefficient that is near 1/2 where the
gradient barely changed since the last step and near 1 where it changed a lot. The rule
is the authors' ``diffGrad_v2.py`` (shivram1987/diffGrad, commit 93fb7fcd), per parameter
with gradient g at step t:

    g  <- g + wd p                                (coupled L2 weight decay, as the authors' code)
    m  <- b1 m + (1 - b1) g,   v <- b2 v + (1 - b2) g^2
    xi  = sigmoid(|g_prev - g|)                   (g_prev = 0 before the first step)
    p  <- p - lr sqrt(1 - b2^t) / (1 - b1^t) * xi m / (sqrt(v) + eps)
    g_prev <- g

i.e. lr xi m_hat / (sqrt(v_hat) + eps / sqrt(1 - b2^t)): eps sits outside the *uncorrected*
sqrt(v), as in the authors' code (the paper writes sqrt(v_hat) + eps). The v2 fix: the original
``diffGrad.py`` stored ``previous_grad = grad``, an alias of ``p.grad``, which an in-place
zero_grad + backward overwrites, so g_prev was the current gradient, |g_prev - g| = 0 and xi = 1/2
(plain Adam at half the lr); v2 stores a copy (``grad.clone()``). g_prev is the gradient the rule
used, including the L2 term when wd > 0. Three state tensors: m, v, g_prev.

pytorch_optimizer's ``DiffGrad`` (4.1.0) defaults to decoupled decay (``weight_decouple=True``);
with ``weight_decouple=False`` it is this rule except that it adds 1e-15 under the square root,
sqrt(v + 1e-15): a floor that changes the step of coordinates with |g| below ~1e-6 by tens of
percent (a few tenths of a percent of the update norm at gradient scale 1e-2). The peer impl zeroes that term.
"""

from __future__ import annotations

import functools

import torch

from effbench.methods.optimizers._rule import AdamState, update_rule

PAPER = {"paper": "diffGrad: An Optimization Method for Convolutional Neural Networks", "arxiv": "1909.11015"}
SUMMARY = "Adam with its momentum scaled by sigmoid(|g_prev - g|): slows where the gradient stops changing."
HYPER = {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0}  # the authors' defaults
# traffic: p, g, m, v, g_prev read; p, m, v, g_prev written
method, convergence = update_rule("diffgrad", summary=SUMMARY, hyper=HYPER, traffic=9, **PAPER)


class ReferenceDiffGrad(AdamState):
    """The definition (diffGrad_v2), one parameter at a time; state in the parameter's dtype."""

    def __init__(self, params: list[torch.Tensor], lr: float, betas: tuple[float, float], eps: float,
                 weight_decay: float) -> None:
        super().__init__(params, lr, betas, eps, weight_decay)
        self.g_prev = [torch.zeros_like(p) for p in self.params]

    def _step_size(self) -> float:
        return self.lr * (1 - self.beta2**self.t) ** 0.5 / (1 - self.beta1**self.t)

    @torch.no_grad()
    def step(self) -> None:
        self.t += 1
        step_size = self._step_size()
        for p, m, v, g_prev in zip(self.params, self.m, self.v, self.g_prev, strict=True):
            g = p.grad + self.weight_decay * p if self.weight_decay else p.grad  # p.grad is left untouched
            m.mul_(self.beta1).add_(g, alpha=1 - self.beta1)
            v.mul_(self.beta2).addcmul_(g, g, value=1 - self.beta2)
            xi = torch.sigmoid((g_prev - g).abs())
            g_prev.copy_(g)  # a copy, never an alias of p.grad: the v2 fix
            p.addcdiv_(xi * m, v.sqrt().add_(self.eps), value=-step_size)


class ForeachDiffGrad(ReferenceDiffGrad):
    """The same rule with multi-tensor ops: a handful of kernel launches for all tensors."""

    @torch.no_grad()
    def step(self) -> None:
        self.t += 1
        step_size = self._step_size()
        grads = [p.grad for p in self.params]
        if self.weight_decay:
            grads = torch._foreach_add(grads, self.params, alpha=self.weight_decay)
        torch._foreach_mul_(self.m, self.beta1)
        torch._foreach_add_(self.m, grads, alpha=1 - self.beta1)
        torch._foreach_mul_(self.v, self.beta2)
        torch._foreach_addcmul_(self.v, grads, grads, value=1 - self.beta2)
        xi_m = torch._foreach_sub(self.g_prev, grads)
        torch._foreach_abs_(xi_m)
        torch._foreach_sigmoid_(xi_m)
        torch._foreach_mul_(xi_m, self.m)
        denom = torch._foreach_sqrt(self.v)
        torch._foreach_add_(denom, self.eps)
        torch._foreach_addcdiv_(self.params, xi_m, denom, value=-step_size)
        torch._foreach_copy_(self.g_prev, grads)


class TritonDiffGrad(ReferenceDiffGrad):
    """The same state, updated by one fused Triton kernel per tensor."""

    @torch.no_grad()
    def step(self) -> None:
        from effbench.kernels.optimizer_step_diffgrad import diffgrad_step

        self.t += 1
        diffgrad_step(self.params, self.m, self.v, self.g_prev, self.t, self.lr, self.beta1, self.beta2, self.eps,
                      self.weight_decay)


@method.impl("reference")
def reference(params: list[torch.Tensor], **hyper: float) -> ReferenceDiffGrad:
    return ReferenceDiffGrad(params, **hyper)


@method.impl("foreach")
def foreach(params: list[torch.Tensor], **hyper: float) -> ForeachDiffGrad:
    return ForeachDiffGrad(params, **hyper)


@method.impl("triton", needs=("triton",))
def triton(params: list[torch.Tensor], **hyper: float) -> TritonDiffGrad:
    return TritonDiffGrad(params, **hyper)


@method.impl("pytorch_optimizer", needs=("pytorch_optimizer",),
             note="DiffGrad(weight_decouple=False), the authors' coupled L2 decay, with its 1e-15 under the "
                  "sqrt set to 0 (it floors sqrt(v) near 3e-8, visible at small gradients)")
def pytorch_optimizer(params: list[torch.Tensor], **hyper: float) -> torch.optim.Optimizer:
    import pytorch_optimizer as po

    class ExactDiffGrad(po.DiffGrad):
        # both denominators (per-parameter and foreach paths) without the extra 1e-15 inside sqrt(v)
        apply_ams_bound = staticmethod(functools.partial(po.DiffGrad.apply_ams_bound, exp_avg_sq_eps=0.0))
        apply_ams_bound_foreach = staticmethod(
            functools.partial(po.DiffGrad.apply_ams_bound_foreach, exp_avg_sq_eps=0.0))

    return ExactDiffGrad(params, weight_decouple=False, **hyper)


