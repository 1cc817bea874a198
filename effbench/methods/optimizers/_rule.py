"""What every reference optimizer shares, so it plugs into torch-style training loops."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import torch


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
