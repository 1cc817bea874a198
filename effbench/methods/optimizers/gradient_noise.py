"""Gradient-noise injection: Neelakantan et al., "Adding Gradient Noise Improves Learning for Very Deep
Networks", arXiv:1511.06807.

Before the base optimizer's step, every gradient gets annealed Gaussian noise:

    g <- g + N(0, sigma_t^2),   sigma_t^2 = eta / (1 + t)^gamma,   t = 0, 1, 2, ...

The paper sweeps eta in {0.01, 0.3, 1.0} with gamma = 0.55 and adds the noise to Adam's and
SGD's gradients alike; here the base is AdamW (``adamw.ReferenceAdamW``) and eta = 0.01.
The noise comes from a ``torch.Generator`` (one per device) seeded by the ``noise_seed``
hyper-parameter, drawn tensor by tensor in parameter order, so every implementation sees
the same noise.
"""

from __future__ import annotations

import torch

from effbench.methods.optimizers._rule import Rule, update_rule
from effbench.methods.optimizers.adamw import ReferenceAdamW

PAPER = {"paper": "Adding Gradient Noise Improves Learning for Very Deep Networks", "arxiv": "1511.06807"}
SUMMARY = "Annealed Gaussian noise (variance eta / (1 + t)^0.55) added to every gradient before an AdamW step."
HYPER = {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.01, "eta": 0.01, "gamma": 0.55,
         "noise_seed": 0}
# AdamW's 7 tensor passes plus the noise written into g (its generation is compute, not traffic)
method, convergence = update_rule("gradient_noise", summary=SUMMARY, hyper=HYPER, traffic=9, **PAPER)


def noise_std(eta: float, gamma: float, t: int) -> float:
    """sigma_t for step t (counted from 0)."""
    return (eta / (1 + t) ** gamma) ** 0.5


class ReferenceGradientNoise(Rule):
    """The definition: perturb each gradient, then the base rule's step."""

    def __init__(self, params: list[torch.Tensor], lr: float, betas: tuple[float, float], eps: float,
                 weight_decay: float, eta: float, gamma: float, noise_seed: int) -> None:
        super().__init__(params, lr)
        self.eta, self.gamma, self.t = eta, gamma, 0
        self.noise_seed = noise_seed
        self.generators: dict[torch.device, torch.Generator] = {}
        self.base = self.make_base(lr, betas, eps, weight_decay)
        self.param_groups = self.base.param_groups  # one lr, whichever object a schedule sets

    def make_base(self, lr: float, betas: tuple[float, float], eps: float, weight_decay: float) -> Rule:
        base = ReferenceAdamW(self.params, lr, betas, eps, weight_decay)
        base.param_groups = self.param_groups
        return base

    def draw(self, like: torch.Tensor) -> torch.Tensor:
        # drawn in fp32 on the parameter's device: the float64 truth sees the same numbers as the case
        if like.device not in self.generators:
            self.generators[like.device] = torch.Generator(device=like.device).manual_seed(self.noise_seed)
        noise = torch.randn(like.shape, generator=self.generators[like.device], device=like.device)
        return noise.to(like.dtype)

    @torch.no_grad()
    def step(self) -> None:
        sigma = noise_std(self.eta, self.gamma, self.t)
        for p in self.params:
            p.grad = p.grad + sigma * self.draw(p)
        self.t += 1
        self.base.step()


class ForeachGradientNoise(ReferenceGradientNoise):
    """The same noise, added in place with one multi-tensor op, then torch's foreach AdamW."""

    def make_base(self, lr: float, betas: tuple[float, float], eps: float,
                  weight_decay: float) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, foreach=True)

    @torch.no_grad()
    def step(self) -> None:
        sigma = noise_std(self.eta, self.gamma, self.t)
        grads = [p.grad for p in self.params]
        torch._foreach_add_(grads, [self.draw(p) for p in self.params], alpha=sigma)
        self.t += 1
        self.base.step()


@method.impl("reference")
def reference(params: list[torch.Tensor], **hyper: float) -> ReferenceGradientNoise:
    return ReferenceGradientNoise(params, **hyper)


@method.impl("foreach")
def foreach(params: list[torch.Tensor], **hyper: float) -> ForeachGradientNoise:
    return ForeachGradientNoise(params, **hyper)


