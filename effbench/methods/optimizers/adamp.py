"""AdamP: Heo et al., "AdamP: Slowing Down the Slowdown for Momentum Optimizers on Scale-invariant Weights",
arXiv:2006.08217 (rule as in the official clovaai/AdamP code).

Per parameter, with gradient g at step t:
    m <- b1 m + (1 - b1) g,   v <- b2 v + (1 - b2) g^2
    d = n / (sqrt(v / (1 - b2^t)) + eps),   n = m  (nesterov: b1 m + (1 - b1) g)
    r = 1
    if p.ndim > 1, for each view V in (channel: (size(0), -1), layer: (1, -1)), first that fires:
        cos_i = |<g_i, p_i>| / (max(||g_i||, eps) max(||p_i||, eps))        (rows i of V)
        if max_i cos_i < delta / sqrt(row length):                           (p looks scale-invariant)
            u_i = p_i / (||p_i|| + eps);   d_i <- d_i - u_i <u_i, d_i>;   r = wd_ratio
    p <- p (1 - lr wd r)                        (decoupled weight decay, weaker on scale-invariant p)
    p <- p - lr / (1 - b1^t) d
The projection uses p before the decay, and the raw gradient (not m) for the cosine.
"""

from __future__ import annotations

import math

import torch

from effbench.methods.optimizers._rule import AdamState, update_rule

PAPER = {"paper": "AdamP: Slowing Down the Slowdown for Momentum Optimizers on Scale-invariant Weights",
         "arxiv": "2006.08217"}
SUMMARY = "Adam that removes the radial (weight-norm-growing) part of the update on scale-invariant weights."
# pytorch_optimizer's (and the official) defaults, except weight_decay: both default to 0, which would leave
# wd_ratio idle; 1e-2 is the official README's usage example.
HYPER = {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 1e-2, "delta": 0.1, "wd_ratio": 0.1,
         "nesterov": False}
# two passes, since the projection needs row sums of the new update: p, g, m, v read and m, v written;
# then p, m, v read (the update is recomputed, not stored) and p written
method, convergence = update_rule("adamp", summary=SUMMARY, hyper=HYPER, traffic=10, **PAPER)


class ReferenceAdamP(AdamState):
    """The definition, one parameter at a time; state in the parameter's dtype."""

    def __init__(self, params: list[torch.Tensor], lr: float, betas: tuple[float, float], eps: float,
                 weight_decay: float, delta: float, wd_ratio: float, nesterov: bool) -> None:
        super().__init__(params, lr, betas, eps, weight_decay)
        self.delta, self.wd_ratio, self.nesterov = delta, wd_ratio, nesterov

    def project(self, p: torch.Tensor, g: torch.Tensor, d: torch.Tensor) -> tuple[torch.Tensor, float]:
        """The update without its radial part and the weight-decay ratio, or (d, 1) when p is not scale-invariant."""
        for rows in (p.shape[0], 1):
            pv, gv = p.reshape(rows, -1), g.reshape(rows, -1)
            p_norm, g_norm = pv.norm(dim=1), gv.norm(dim=1)
            cos = (pv * gv).sum(dim=1).abs() / (p_norm.clamp_min(self.eps) * g_norm.clamp_min(self.eps))
            if cos.max() < self.delta / math.sqrt(pv.shape[1]):
                unit = pv / (p_norm[:, None] + self.eps)
                dv = d.reshape(rows, -1)
                return (dv - unit * (unit * dv).sum(dim=1, keepdim=True)).view_as(p), self.wd_ratio
        return d, 1.0

    @torch.no_grad()
    def step(self) -> None:
        self.t += 1
        bias1 = 1 - self.beta1**self.t
        bias2 = 1 - self.beta2**self.t
        for p, m, v in zip(self.params, self.m, self.v, strict=True):
            g = p.grad
            m.mul_(self.beta1).add_(g, alpha=1 - self.beta1)
            v.mul_(self.beta2).addcmul_(g, g, value=1 - self.beta2)
            numerator = self.beta1 * m + (1 - self.beta1) * g if self.nesterov else m
            d = numerator / ((v / bias2).sqrt_().add_(self.eps))
            ratio = 1.0
            if p.ndim > 1:
                d, ratio = self.project(p, g, d)
            p.mul_(1 - self.lr * self.weight_decay * ratio)
            p.add_(d, alpha=-self.lr / bias1)


def projection_coefficients(sums: torch.Tensor, numel: int, delta: float, wd_ratio: float,
                            eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The projection from row sums, on the device (no host sync): returns (c, r) with d_i <- d_i - c_i p_i.

    ``sums`` is (rows, 4): <g, p>, ||g||^2, ||p||^2, <p, d> per channel row. u <u, d> = p <p, d> / (||p|| + eps)^2,
    and the layer view's sums are the sums over rows. c is 0 for rows of a tensor where neither view fires.
    """
    gp, gg, pp, pd = sums.unbind(dim=1)
    rows = sums.shape[0]

    def fires(gp: torch.Tensor, gg: torch.Tensor, pp: torch.Tensor, length: int) -> torch.Tensor:
        cos = gp.abs() / (gg.sqrt().clamp_min(eps) * pp.sqrt().clamp_min(eps))
        return cos.max() < delta / math.sqrt(length)

    channel = fires(gp, gg, pp, numel // rows)
    layer = fires(gp.sum(), gg.sum(), pp.sum(), numel)
    c_channel = pd / (pp.sqrt() + eps) ** 2
    c_layer = pd.sum() / (pp.sum().sqrt() + eps) ** 2
    c = torch.where(channel, c_channel, torch.where(layer, c_layer, torch.zeros_like(c_channel)))
    ratio = torch.where(channel | layer, wd_ratio, 1.0).to(sums.dtype)
    return c, ratio


class ForeachAdamP(ReferenceAdamP):
    """Moments and Adam direction with multi-tensor ops; the projection per matrix from its row sums."""

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
        if self.nesterov:
            numerator = torch._foreach_mul(self.m, self.beta1)
            torch._foreach_add_(numerator, grads, alpha=1 - self.beta1)
        else:
            numerator = self.m
        d = torch._foreach_div(numerator, denom)
        decay = []  # all 0-d tensors: the foreach ops take no mix of floats and tensors
        for p, g, d_i in zip(self.params, grads, d, strict=True):
            if p.ndim <= 1:
                decay.append(torch.tensor(1 - self.lr * self.weight_decay, dtype=p.dtype, device=p.device))
                continue
            pv, gv, dv = p.reshape(p.shape[0], -1), g.reshape(p.shape[0], -1), d_i.view(p.shape[0], -1)
            sums = torch.stack([(gv * pv).sum(1), (gv * gv).sum(1), (pv * pv).sum(1), (pv * dv).sum(1)], dim=1)
            c, ratio = projection_coefficients(sums, p.numel(), self.delta, self.wd_ratio, self.eps)
            dv.sub_(pv * c[:, None])
            decay.append(1 - self.lr * self.weight_decay * ratio)
        torch._foreach_mul_(self.params, decay)
        torch._foreach_add_(self.params, d, alpha=-self.lr / bias1)


class TritonAdamP(ReferenceAdamP):
    """Two Triton kernels per matrix around a tiny device-side decision (see kernels/optimizer_step_adamp.py)."""

    @torch.no_grad()
    def step(self) -> None:
        from effbench.kernels.optimizer_step_adamp import adamp_apply, adamp_moments, adamp_vector_step

        self.t += 1
        bias1 = 1 - self.beta1**self.t
        bias2 = 1 - self.beta2**self.t
        for p, m, v in zip(self.params, self.m, self.v, strict=True):
            if p.ndim <= 1:
                adamp_vector_step(p, m, v, self.lr, self.beta1, self.beta2, self.eps, self.weight_decay, bias1, bias2,
                                  self.nesterov)
                continue
            sums = adamp_moments(p, m, v, self.beta1, self.beta2, self.eps, bias2, self.nesterov)
            c, ratio = projection_coefficients(sums, p.numel(), self.delta, self.wd_ratio, self.eps)
            decay = (1 - self.lr * self.weight_decay * ratio).reshape(1)
            adamp_apply(p, m, v, c, decay, self.lr / bias1, self.beta1, self.eps, bias2, self.nesterov)


@method.impl("reference")
def reference(params: list[torch.Tensor], **hyper) -> ReferenceAdamP:
    return ReferenceAdamP(params, **hyper)


@method.impl("foreach")
def foreach(params: list[torch.Tensor], **hyper) -> ForeachAdamP:
    return ForeachAdamP(params, **hyper)


@method.impl("triton", needs=("triton",))
def triton(params: list[torch.Tensor], **hyper) -> TritonAdamP:
    return TritonAdamP(params, **hyper)


@method.impl("pytorch_optimizer", needs=("pytorch_optimizer",))
def pytorch_optimizer(params: list[torch.Tensor], **hyper) -> torch.optim.Optimizer:
    """pytorch_optimizer's AdamP (per-tensor path, foreach=False, its default).

    Its denominator is (sqrt(v) + eps) / sqrt(1 - b2^t), i.e. eps / sqrt(1 - b2^t) where the official code
    has eps: up to 30x larger early on, enough to move small-gradient coordinates by more than fp32
    tolerance. Setting its eps to eps * sqrt(1 - b2^t) before each step makes the denominators equal; eps
    also guards its norms, where the change is far below tolerance.
    """
    import pytorch_optimizer as po

    eps, beta2 = hyper["eps"], hyper["betas"][1]

    class OfficialEpsAdamP(po.AdamP):
        def step(self, closure=None):  # noqa: ANN001, ANN202 - torch's signature
            for group in self.param_groups:
                group["eps"] = eps * math.sqrt(1 - beta2 ** (group.get("step", 0) + 1))
            return super().step(closure)

    return OfficialEpsAdamP(params, **hyper)


