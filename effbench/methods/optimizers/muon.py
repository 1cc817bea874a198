"""Muon: Jordan et al., "Muon: An optimizer for hidden layers in neural networks" (2024,
kellerjordan.github.io/posts/muon), with the shape-scaled step and decoupled weight decay of
Liu et al., "Muon is Scalable for LLM Training", arXiv:2502.16982.

Each 2-D parameter (rows x cols) follows torch.optim.Muon's rule:

    B <- mu B + (1 - mu) g;   U <- (1 - mu) g + mu B   (Nesterov; U = B without it)
    O <- NS5(U);              p <- p (1 - lr wd) - lr s O
    s = sqrt(max(1, rows / cols))     ("original", Jordan's code)
    s = 0.2 sqrt(max(rows, cols))     ("match_rms_adamw", Liu et al.: O then has AdamW's update RMS)

The blog writes the momentum as M <- mu M + g, U = g + mu M; the EMA above is exactly that
times (1 - mu), and NS5 normalises its input, so O is the same.

NS5, the quintic Newton-Schulz iteration: X <- U / max(||U||_F, eps), transposed so that
rows <= cols (the Gram matrix X X^T is then the small one), then 5 times

    A = X X^T;   X <- a X + (b A + c A^2) X,    (a, b, c) = (3.4445, -4.7750, 2.0315)

Each singular value follows x -> a x + b x^3 + c x^5, which Jordan tuned for a steep slope at 0:
after 5 steps every x in [0.002, 1] lands in [0.68, 1.21] rather than at 1, so O ~ U V^T
(U = U S V^T); the slope a^5 ~ 500 also amplifies rounding, so fp32 stays ~1e-5 from float64.

Every other parameter (biases, norm gains, the 1-D x of a test function) gets AdamW, as the Muon
authors recommend, with its own betas, eps and weight decay. It shares Muon's lr: with
"match_rms_adamw" one lr serves both (Liu et al.), which is why it is the default here (the
convergence task tunes a single lr). torch.optim.Muon orthogonalises in bfloat16; this reference
stays in the parameter's dtype, so it is also its own float64 truth.

In ``optimizer/step`` the parameters come as a bare list, so every 2-D tensor, the embedding
included, is a Muon matrix; the authors put embedding and head on AdamW, which takes knowing the
model.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from effbench.methods.optimizers._rule import Rule, update_rule
from effbench.methods.optimizers.adamw import ReferenceAdamW

PAPER = {"paper": "Muon: An optimizer for hidden layers in neural networks (Jordan et al., 2024); "
                  "Muon is Scalable for LLM Training", "arxiv": "2502.16982"}
SUMMARY = "Nesterov momentum orthogonalised by 5 Newton-Schulz steps for 2-D weights; AdamW for the rest."
NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)
HYPER = {"lr": 1e-3, "momentum": 0.95, "nesterov": True, "weight_decay": 0.1, "ns_coefficients": NS_COEFFICIENTS,
         "ns_steps": 5, "eps": 1e-7, "adjust_lr_fn": "match_rms_adamw", "adamw_betas": (0.9, 0.95),
         "adamw_eps": 1e-8, "adamw_weight_decay": 0.0}
method, convergence = update_rule("muon", summary=SUMMARY, hyper=HYPER, **PAPER)


def newton_schulz(u: torch.Tensor, coefficients: tuple[float, float, float] = NS_COEFFICIENTS, steps: int = 5,
                  eps: float = 1e-7) -> torch.Tensor:
    """NS5(U) in U's dtype: approximately the orthogonal polar factor U V^T of U = U S V^T."""
    a, b, c = coefficients
    tall = u.shape[0] > u.shape[1]
    x = u.T if tall else u
    x = x / x.norm().clamp(min=eps)  # ||X||_2 <= ||X||_F = 1: inside the iteration's basin
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.T if tall else x


def lr_scale(shape: torch.Size, adjust_lr_fn: str | None) -> float:
    """The step-size factor s of a (rows, cols) matrix."""
    rows, cols = shape
    if adjust_lr_fn in (None, "original"):
        return math.sqrt(max(1.0, rows / cols))
    if adjust_lr_fn == "match_rms_adamw":
        return 0.2 * math.sqrt(max(rows, cols))
    raise ValueError(f"adjust_lr_fn must be 'original' or 'match_rms_adamw', not {adjust_lr_fn!r}")


def matrix_step(p: torch.Tensor, g: torch.Tensor, buf: torch.Tensor, momentum: float, nesterov: bool,
                coefficients: tuple[float, float, float], steps: int, eps: float, decay: float,
                step_size: float) -> None:
    """One Muon step of one matrix, in place on ``p`` and its momentum ``buf``."""
    buf.lerp_(g, 1 - momentum)
    update = g.lerp(buf, momentum) if nesterov else buf
    o = newton_schulz(update, coefficients, steps, eps)
    p.mul_(decay).sub_(step_size * o)


_compiled_matrix_step: Any = None


def compiled_matrix_step(*args: Any) -> None:
    """``matrix_step`` through ``torch.compile`` (dynamic shapes: a few graphs per process, not one per shape)."""
    global _compiled_matrix_step
    if _compiled_matrix_step is None:
        _compiled_matrix_step = torch.compile(matrix_step, dynamic=True)
    _compiled_matrix_step(*args)


class ReferenceMuon(Rule):
    """The definition, one parameter at a time: Muon for 2-D tensors, AdamW for the others."""

    step_matrix = staticmethod(matrix_step)

    def __init__(self, params: list[torch.Tensor], lr: float, momentum: float = 0.95, nesterov: bool = True,
                 weight_decay: float = 0.1, ns_coefficients: tuple[float, float, float] = NS_COEFFICIENTS,
                 ns_steps: int = 5, eps: float = 1e-7, adjust_lr_fn: str | None = None,
                 adamw_betas: tuple[float, float] = (0.9, 0.95), adamw_eps: float = 1e-8,
                 adamw_weight_decay: float = 0.0) -> None:
        super().__init__(params, lr)
        self.momentum, self.nesterov, self.weight_decay = momentum, nesterov, weight_decay
        self.coefficients, self.ns_steps, self.eps = tuple(ns_coefficients), ns_steps, eps
        self.scales = [lr_scale(p.shape, adjust_lr_fn) if p.ndim == 2 else None for p in self.params]
        self.buffers = [torch.zeros_like(p) if p.ndim == 2 else None for p in self.params]
        # one AdamW per tensor: each counts its own steps for bias correction (Drop-Muon skips some)
        self.adamw = [None if p.ndim == 2 else ReferenceAdamW([p], lr, adamw_betas, adamw_eps, adamw_weight_decay)
                      for p in self.params]
        self.adamw_state = [t for opt in self.adamw if opt is not None for t in (*opt.m, *opt.v)]

    @torch.no_grad()
    def update(self, indices: range) -> None:
        """Step the parameters at ``indices``; the others keep weights and state."""
        for i in indices:
            p = self.params[i]
            if self.adamw[i] is None:
                self.step_matrix(p, p.grad, self.buffers[i], self.momentum, self.nesterov, self.coefficients,
                                 self.ns_steps, self.eps, 1 - self.lr * self.weight_decay, self.lr * self.scales[i])
            else:
                self.adamw[i].param_groups[0]["lr"] = self.lr  # follows the schedule
                self.adamw[i].step()

    def step(self) -> None:
        self.update(range(len(self.params)))


class CompiledMuon(ReferenceMuon):
    """The same rule, each matrix's momentum, Newton-Schulz and update through ``torch.compile``."""

    step_matrix = staticmethod(compiled_matrix_step)


class TorchMuonAdamW:
    """torch.optim.Muon on the 2-D tensors and torch.optim.AdamW on the rest, stepped as one optimizer."""

    def __init__(self, params: list[torch.Tensor], lr: float, momentum: float = 0.95, nesterov: bool = True,
                 weight_decay: float = 0.1, ns_coefficients: tuple[float, float, float] = NS_COEFFICIENTS,
                 ns_steps: int = 5, eps: float = 1e-7, adjust_lr_fn: str | None = None,
                 adamw_betas: tuple[float, float] = (0.9, 0.95), adamw_eps: float = 1e-8,
                 adamw_weight_decay: float = 0.0) -> None:
        self.params = list(params)
        matrices = [p for p in self.params if p.ndim == 2]
        others = [p for p in self.params if p.ndim != 2]
        self.optimizers: list[torch.optim.Optimizer] = []
        if matrices:  # torch refuses an empty parameter list
            self.optimizers.append(torch.optim.Muon(
                matrices, lr=lr, weight_decay=weight_decay, momentum=momentum, nesterov=nesterov,
                ns_coefficients=tuple(ns_coefficients), eps=eps, ns_steps=ns_steps, adjust_lr_fn=adjust_lr_fn))
        if others:
            self.optimizers.append(torch.optim.AdamW(others, lr=lr, betas=adamw_betas, eps=adamw_eps,
                                                     weight_decay=adamw_weight_decay))
        self.param_groups = [group for opt in self.optimizers for group in opt.param_groups]
        self.state_tensors: list[torch.Tensor] = []  # for optimizer/step's state_bytes, filled once torch has state

    def zero_grad(self, set_to_none: bool = True) -> None:
        for opt in self.optimizers:
            opt.zero_grad(set_to_none)

    def step(self) -> None:
        for opt in self.optimizers:
            opt.step()
        if not self.state_tensors:
            self.state_tensors = [v for opt in self.optimizers for s in opt.state.values() for v in s.values()
                                  if torch.is_tensor(v) and v.ndim > 0]


_BF16_NOTE = ("orthogonalises in bfloat16 whatever the parameter dtype (about 1e-2 off the float32 rule), "
              "so it is compared at bfloat16 only")


@method.impl("reference")
def reference(params: list[torch.Tensor], **hyper: Any) -> ReferenceMuon:
    return ReferenceMuon(params, **hyper)


@method.impl("compile")
def compiled(params: list[torch.Tensor], **hyper: Any) -> CompiledMuon:
    return CompiledMuon(params, **hyper)


@method.impl("torch", dtypes=("bfloat16",), note="torch.optim.Muon " + _BF16_NOTE)
def torch_muon(params: list[torch.Tensor], **hyper: Any) -> TorchMuonAdamW:
    return TorchMuonAdamW(params, **hyper)


@method.impl("pytorch_optimizer", needs=("pytorch_optimizer",), dtypes=("bfloat16",),
             note="pytorch_optimizer.Muon " + _BF16_NOTE)
def pytorch_optimizer(params: list[torch.Tensor], lr: float, momentum: float = 0.95, nesterov: bool = True,
                      weight_decay: float = 0.1, ns_coefficients: tuple[float, float, float] = NS_COEFFICIENTS,
                      ns_steps: int = 5, eps: float = 1e-7, adjust_lr_fn: str | None = None,
                      adamw_betas: tuple[float, float] = (0.9, 0.95), adamw_eps: float = 1e-8,
                      adamw_weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """pytorch_optimizer.Muon with use_muon groups; its Newton-Schulz eps is fixed at 1e-7, as here."""
    import pytorch_optimizer as po

    if eps != 1e-7 or adjust_lr_fn not in (None, "original", "match_rms_adamw"):
        raise ValueError("pytorch_optimizer.Muon fixes the Newton-Schulz eps at 1e-7 and knows two lr adjustments")
    groups = [{"params": [p for p in params if p.ndim == 2], "use_muon": True},
              {"params": [p for p in params if p.ndim != 2], "use_muon": False}]
    return po.Muon([g for g in groups if g["params"]], lr=lr, momentum=momentum, weight_decay=weight_decay,
                   nesterov=nesterov, ns_steps=ns_steps, ns_coeffs=tuple(ns_coefficients),
                   use_adjusted_lr=adjust_lr_fn == "match_rms_adamw", adamw_lr=lr, adamw_betas=adamw_betas,
                   adamw_wd=adamw_weight_decay, adamw_eps=adamw_eps)


