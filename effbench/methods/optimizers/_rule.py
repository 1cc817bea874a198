"""What every reference optimizer shares, so it plugs into torch-style training loops."""

from __future__ import annotations

import sys
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import torch

from effbench.registry import Method


class Rule(ABC):
    """Minimal optimizer interface: ``param_groups[0]["lr"]`` (schedules set it), ``zero_grad``, ``step``."""

    def __init__(self, params: list[torch.Tensor], lr: float) -> None:
        self.params = list(params)
        self.param_groups: list[dict[str, Any]] = [{"lr": lr, "params": self.params}]

    @property
    def lr(self) -> float:
        return self.param_groups[0]["lr"]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            p.grad = None

    @abstractmethod
    def step(self) -> None:
        """Apply one update from ``p.grad`` to every parameter."""


class AdamState(Rule):
    """Adam's moments and scalars, shared by the Adam-family references: betas, eps, weight decay,
    the step count and m, v in the parameters' dtype; each rule's ``step`` is its own."""

    def __init__(self, params: list[torch.Tensor], lr: float, betas: tuple[float, float], eps: float,
                 weight_decay: float) -> None:
        super().__init__(params, lr)
        (self.beta1, self.beta2), self.eps, self.weight_decay = betas, eps, weight_decay
        self.t = 0
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]


def trainer(factory: Callable[..., Any], hyper: dict[str, Any]) -> Callable[[list[torch.Tensor], float], Any]:
    """An ``(params, lr) -> optimizer`` plug for training loops: the rule's hyper-parameters, a tuned lr."""

    def make(params: list[torch.Tensor], lr: float) -> Any:
        return factory(params, **{**hyper, "lr": lr})

    return make


def update_rule(name: str, *, summary: str, hyper: dict[str, Any], traffic: int | Callable[..., float] | None = None,
                paper: str | None = None, arxiv: str | None = None) -> tuple[Method, Method]:
    """The family kit: an update rule's two methods, ``optimizer/step`` (its file adds the implementations) and
    ``optimizer/convergence``, whose reference trains with the step's reference at the tuned lr.

    ``traffic``: what one step must move, for the roofline (``tasks.optimizer_step.work``): a count of
    parameter-sized tensors read and written (AdamW: p, g, m, v read and p, m, v written = 7), or, for a state
    that is not parameter-shaped (a factored second moment), ``traffic(params) -> bytes``. None: not declared
    (matmul-bound rules such as Muon)."""
    source = sys._getframe(1).f_globals.get("__file__")  # provenance: the rule's own file
    step = Method("optimizer/step", name, paper=paper, arxiv=arxiv, summary=summary, hyper=hyper,
                  **({"traffic": traffic} if traffic is not None else {}))
    convergence = Method("optimizer/convergence", name, paper=paper, arxiv=arxiv, summary=summary, hyper=hyper)
    step.source_file = convergence.source_file = source
    convergence.impl("reference")(trainer(lambda params, **h: step.reference.fn(params, **h), hyper))
    return step, convergence
