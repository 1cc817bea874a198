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


def trainer(factory: Callable[..., Any], hyper: dict[str, Any]) -> Callable[[list[torch.Tensor], float], Any]:
    """An ``(params, lr) -> optimizer`` plug for training loops: the rule's hyper-parameters, a tuned lr."""

    def make(params: list[torch.Tensor], lr: float) -> Any:
        return factory(params, **{**hyper, "lr": lr})

    return make
