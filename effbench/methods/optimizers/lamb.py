"""LAMB: You et al., "Large Batch Optimization for Deep Learning: Training BERT in 76 minutes", arXiv:1904.00962.

Per parameter tensor, with gradient g at step t (the paper's Algorithm 2, with phi = identity):
    m <- b1 m + (1 - b1) g,   v <- b2 v + (1 - b2) g^2
    r = (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
    u = r + wd p
    trust = ||p|| / ||u||   (1 when either norm is 0)
    p <- p - lr trust u
Every tensor, vectors included, gets its own trust ratio, so each moves by lr ||p|| per step.
"""

from __future__ import annotations

import math

import torch

from effbench.methods.optimizers._rule import AdamState, update_rule

PAPER = {"paper": "Large Batch Optimization for Deep Learning: Training BERT in 76 minutes", "arxiv": "1904.00962"}
SUMMARY = "Adam direction plus weight decay, rescaled per tensor to a step of lr * ||p||: a layer-wise trust ratio."
HYPER = {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-6, "weight_decay": 0.01}
# two passes, since the trust ratio needs ||u|| first: p, g, m, v read and m, v written; then p, m, v read
# (u is recomputed, not stored) and p written
method, convergence = update_rule("lamb", summary=SUMMARY, hyper=HYPER, traffic=10, **PAPER)


class ReferenceLAMB(AdamState):
    """The definition, one parameter at a time; state in the parameter's dtype."""

    @torch.no_grad()
    def step(self) -> None:
        self.t += 1
        bias1 = 1 - self.beta1**self.t
        bias2 = 1 - self.beta2**self.t
        for p, m, v in zip(self.params, self.m, self.v, strict=True):
            g = p.grad
            m.mul_(self.beta1).add_(g, alpha=1 - self.beta1)
            v.mul_(self.beta2).addcmul_(g, g, value=1 - self.beta2)
            u = (m / bias1) / ((v / bias2).sqrt_().add_(self.eps)) + self.weight_decay * p
            p_norm, u_norm = torch.linalg.vector_norm(p), torch.linalg.vector_norm(u)
            trust = torch.where((p_norm > 0) & (u_norm > 0), p_norm / u_norm, torch.ones_like(p_norm))
            p.sub_(self.lr * trust * u)


class ForeachLAMB(ReferenceLAMB):
    """The same rule with multi-tensor ops; ``torch._foreach_norm`` gives every tensor's norms at once."""

    @torch.no_grad()
    def step(self) -> None:
        self.t += 1
        bias1 = 1 - self.beta1**self.t
        bias2 = 1 - self.beta2**self.t
        grads = [p.grad for p in self.params]
        torch._foreach_mul_(self.m, self.beta1)
        torch._foreach_add_(self.m, grads, alpha=1 - self.beta1)
        torch._foreach_mul_(self.v, self.beta2)
        torch._foreach_addcmul_(self.v, grads, grads, value=1 - self.beta2)
        denom = torch._foreach_div(self.v, bias2)
        torch._foreach_sqrt_(denom)
        torch._foreach_add_(denom, self.eps)
        u = torch._foreach_div(self.m, denom)
        torch._foreach_div_(u, bias1)
        torch._foreach_add_(u, self.params, alpha=self.weight_decay)
        p_norms = torch.stack(torch._foreach_norm(self.params))
        u_norms = torch.stack(torch._foreach_norm(u))
        trust = torch.where((p_norms > 0) & (u_norms > 0), p_norms / u_norms, torch.ones_like(p_norms))
        torch._foreach_mul_(u, list(trust.unbind()))
        torch._foreach_add_(self.params, u, alpha=-self.lr)


class TritonLAMB(ReferenceLAMB):
    """Two Triton kernels per tensor around a device-side trust ratio (see kernels/optimizer_step_trust.py)."""

    @torch.no_grad()
    def step(self) -> None:
        from effbench.kernels.optimizer_step_trust import lamb_step

        self.t += 1
        lamb_step(self.params, self.m, self.v, self.t, self.lr, self.beta1, self.beta2, self.eps, self.weight_decay)


@method.impl("reference")
def reference(params: list[torch.Tensor], **hyper) -> ReferenceLAMB:
    return ReferenceLAMB(params, **hyper)


@method.impl("foreach")
def foreach(params: list[torch.Tensor], **hyper) -> ForeachLAMB:
    return ForeachLAMB(params, **hyper)


@method.impl("triton", needs=("triton",))
def triton(params: list[torch.Tensor], **hyper) -> TritonLAMB:
    return TritonLAMB(params, **hyper)


@method.impl("pytorch_optimizer", needs=("pytorch_optimizer",))
def pytorch_optimizer(params: list[torch.Tensor], **hyper) -> torch.optim.Optimizer:
    """pytorch_optimizer's Lamb, set up to compute the rule above.

    - ``weight_decouple=False``: wd p joins u inside the trust ratio (its default decays p outside it);
    - ``grad_averaging=True`` (m an EMA), ``adam=False`` (trust ratio on), ``pre_norm=False`` (no global
      gradient clipping), ``rectify=False`` (no RAdam): its defaults, spelled out;
    - ``adam_debias=True``: its step size is otherwise lr / (1 - b1^t) *outside* the trust ratio, a 10x
      longer first step;
    - ``clamp = inf``: it caps ||p|| at 10 (the paper's phi); here phi is the identity.
    It has no bias correction inside u: u' = m / (sqrt(v) + eps') + wd' p. With eps' = eps sqrt(1 - b2^t)
    and wd' = wd (1 - b1^t) / sqrt(1 - b2^t), set before each step, u' = u (1 - b1^t) / sqrt(1 - b2^t):
    the same direction, and the trust ratio removes the scale. Left over: its trust ratio is
    ||p|| / (||u'|| + eps'), below tolerance for any u' of unit-size entries.
    """
    import pytorch_optimizer as po

    eps, weight_decay = hyper["eps"], hyper["weight_decay"]
    beta1, beta2 = hyper["betas"]

    class BiasCorrectedLamb(po.Lamb):
        clamp = math.inf

        def step(self, closure=None):  # noqa: ANN001, ANN202 - torch's signature
            for group in self.param_groups:
                t = group.get("step", 0) + 1
                bias1, bias2 = 1 - beta1**t, 1 - beta2**t
                group["eps"] = eps * math.sqrt(bias2)
                group["weight_decay"] = weight_decay * bias1 / math.sqrt(bias2)
            return super().step(closure)

    return BiasCorrectedLamb(params, weight_decouple=False, grad_averaging=True, adam=False, pre_norm=False,
                             rectify=False, adam_debias=True, **hyper)


