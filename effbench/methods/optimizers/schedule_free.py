"""Schedule-Free AdamW: Defazio et al., "The Road Less Scheduled", arXiv:2405.15682.

No learning-rate schedule: an averaged iterate x replaces the decay. Per parameter, at step
k (from 0), with the gradient g taken at y (the point the model holds while training):

    lr_k = lr * min(1, (k + 1) / warmup)        lr_max = max(lr_max, lr_k)
    c = w_k / sum_{i<=k} w_i,  w_k = (k + 1)^r * lr_max^weight_lr_power
    v <- b2 v + (1 - b2) g^2;   d = sqrt(v / (1 - b2^(k+1))) + eps
    z <- z - lr_k (g / d + wd y)              (the base "SGD" sequence; decay taken at y)
    x <- (1 - c) x + c z                      (the weighted average: what is evaluated)
    y <- (1 - b1) z + b1 x                    (the interpolation the next gradient is taken at)

The parameters hold y during training and x during evaluation: training loops call
``optimizer.eval()`` before evaluating and ``optimizer.train()`` after, as the paper's code
requires. The reference keeps x explicitly (3 state tensors); ``foreach`` keeps only z and v
and recovers x from y and z, as the published package does.
"""

from __future__ import annotations

import torch

from effbench.methods.optimizers._rule import Rule, update_rule

PAPER = {"paper": "The Road Less Scheduled", "arxiv": "2405.15682"}
SUMMARY = ("AdamW without a schedule: gradients at an interpolation of the base iterate and its running "
           "average; the average is what is evaluated.")
HYPER = {"lr": 2.5e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0, "warmup_steps": 0, "r": 0.0,
         "weight_lr_power": 2.0}
# p, g, z, v read; p, z, v written (the two-buffer form)
method, convergence = update_rule("schedule_free_adamw", summary=SUMMARY, hyper=HYPER, traffic=7, **PAPER)


class _Averaging(Rule):
    """The scalar bookkeeping both forms share: warmup, the averaging weight c, the mode."""

    def __init__(self, params: list[torch.Tensor], lr: float, betas: tuple[float, float], eps: float,
                 weight_decay: float, warmup_steps: int, r: float, weight_lr_power: float) -> None:
        super().__init__(params, lr)
        (self.beta1, self.beta2), self.eps, self.weight_decay = betas, eps, weight_decay
        self.warmup, self.r, self.power = warmup_steps, r, weight_lr_power
        self.k, self.lr_max, self.weight_sum = 0, -1.0, 0.0
        self.training = True

    def advance(self) -> tuple[float, float, float]:
        """(lr_k, c, 1 - b2^(k+1)) for this step; counts the step."""
        lr = self.lr * min(1.0, (self.k + 1) / self.warmup) if self.warmup else self.lr
        self.lr_max = max(self.lr_max, lr)
        weight = (self.k + 1) ** self.r * self.lr_max**self.power
        self.weight_sum += weight
        c = weight / self.weight_sum if self.weight_sum > 0 else 0.0
        bias2 = 1 - self.beta2 ** (self.k + 1)
        self.k += 1
        return lr, c, bias2

    def check_training(self) -> None:
        if not self.training:
            raise RuntimeError("schedule-free: step() called in eval mode; call optimizer.train() first")


class ReferenceScheduleFreeAdamW(_Averaging):
    """The definition, one parameter at a time, with x, z and v kept."""

    def __init__(self, params: list[torch.Tensor], **hyper: float) -> None:
        super().__init__(params, **hyper)
        self.z = [p.detach().clone() for p in self.params]
        self.x = [p.detach().clone() for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]

    @torch.no_grad()
    def step(self) -> None:
        self.check_training()
        lr, c, bias2 = self.advance()
        for y, z, x, v in zip(self.params, self.z, self.x, self.v, strict=True):
            g = y.grad
            v.mul_(self.beta2).addcmul_(g, g, value=1 - self.beta2)
            d = (v / bias2).sqrt_().add_(self.eps)
            z.sub_(lr * (g / d + self.weight_decay * y))
            x.mul_(1 - c).add_(z, alpha=c)
            y.copy_((1 - self.beta1) * z + self.beta1 * x)

    @torch.no_grad()
    def eval(self) -> None:
        if self.training:
            for p, x in zip(self.params, self.x, strict=True):
                p.copy_(x)
            self.training = False

    @torch.no_grad()
    def train(self) -> None:
        if not self.training:
            for p, x, z in zip(self.params, self.x, self.z, strict=True):
                p.copy_((1 - self.beta1) * z + self.beta1 * x)
            self.training = True


class ForeachScheduleFreeAdamW(_Averaging):
    """Two buffers (z, v) and multi-tensor ops; x = (y - (1 - b1) z) / b1 is never stored.

    Substituting the x update into y's: y_new = (1 - c) y + c z + lr_k (b1 (1 - c) - 1) u,
    with u = g / d + wd y and z_new = z - lr_k u.
    """

    def __init__(self, params: list[torch.Tensor], **hyper: float) -> None:
        super().__init__(params, **hyper)
        self.z = [p.detach().clone() for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]

    @torch.no_grad()
    def step(self) -> None:
        self.check_training()
        lr, c, bias2 = self.advance()
        grads = [p.grad for p in self.params]
        torch._foreach_mul_(self.v, self.beta2)
        torch._foreach_addcmul_(self.v, grads, grads, value=1 - self.beta2)
        d = torch._foreach_div(self.v, bias2)
        torch._foreach_sqrt_(d)
        torch._foreach_add_(d, self.eps)
        u = torch._foreach_div(grads, d)
        if self.weight_decay:
            torch._foreach_add_(u, self.params, alpha=self.weight_decay)
        torch._foreach_lerp_(self.params, self.z, c)
        torch._foreach_add_(self.params, u, alpha=lr * (self.beta1 * (1 - c) - 1))
        torch._foreach_add_(self.z, u, alpha=-lr)

    @torch.no_grad()
    def eval(self) -> None:
        if self.training:  # x = y + (1 - 1/b1) (z - y)
            torch._foreach_lerp_(self.params, self.z, 1 - 1 / self.beta1)
            self.training = False

    @torch.no_grad()
    def train(self) -> None:
        if not self.training:  # y = x + (1 - b1) (z - x)
            torch._foreach_lerp_(self.params, self.z, 1 - self.beta1)
            self.training = True


@method.impl("reference")
def reference(params: list[torch.Tensor], **hyper: float) -> ReferenceScheduleFreeAdamW:
    return ReferenceScheduleFreeAdamW(params, **hyper)


@method.impl("foreach")
def foreach(params: list[torch.Tensor], **hyper: float) -> ForeachScheduleFreeAdamW:
    return ForeachScheduleFreeAdamW(params, **hyper)


@method.impl("schedulefree", needs=("schedulefree",))
def schedulefree(params: list[torch.Tensor], **hyper: float) -> torch.optim.Optimizer:
    """The authors' package (``AdamWScheduleFree``), put in train mode as it requires."""
    import schedulefree as sf

    optimizer = sf.AdamWScheduleFree(params, **hyper)
    optimizer.train()
    return optimizer


