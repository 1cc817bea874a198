"""LISA, layerwise importance sampled AdamW: Pan et al., "LISA: Layerwise
Importance Sampling for Memory-Efficient Large Language Model Fine-Tuning", arXiv:2403.17919.

The embedding (tied with the LM head here), the positions and the final norm always train.
Every ``interval`` steps (K), ``layers`` (gamma) of the transformer blocks are drawn uniformly
without replacement and unfrozen; every other block has ``requires_grad = False``, so it holds
no weight gradient and no optimizer state (gradients still flow through it to the embedding).
The AdamW over the trainable tensors is rebuilt at every switch, i.e. its moments restart,
as in the paper's runs (which reloaded the model every interval); LMFlow's public callback
keeps every block's moments instead, which forfeits the optimizer-state saving.

Defaults gamma = 2, K = 20 (ms-swift's and LMFlow's defaults; the paper's ablation ranges over
gamma in {1, 2, 4, 8} and K in {5, 20, 50}).
"""

from __future__ import annotations

from typing import Any

import torch

from effbench.registry import Method

method = Method(
    task="sampler/memory",
    name="lisa",
    paper="LISA: Layerwise Importance Sampling for Memory-Efficient Large Language Model Fine-Tuning",
    arxiv="2403.17919",
    summary="Train the embedding, head and a few uniformly resampled blocks; the rest stay frozen.",
    layers=2,
    interval=20,
    weight_decay=0.01,
)


class LayerwiseSampledAdamW:
    """AdamW over the always-trained tensors plus ``layers`` sampled blocks, resampled every ``interval`` steps.

    It presents one parameter group (the training loop's schedule writes its ``lr``).
    """

    def __init__(self, model: torch.nn.Module, lr: float, layers: int, interval: int, weight_decay: float,
                 seed: int) -> None:
        self.blocks = list(model.blocks)
        in_blocks = {id(p) for block in self.blocks for p in block.parameters()}
        self.always = [p for p in model.parameters() if id(p) not in in_blocks]
        self.layers, self.interval, self.weight_decay = min(layers, len(self.blocks)), interval, weight_decay
        self.generator = torch.Generator().manual_seed(40_000 + seed)
        self.param_groups: list[dict[str, Any]] = [{"lr": lr}]
        self.steps = 0
        self.active: list[int] = []
        self._resample()

    def _resample(self) -> None:
        self.active = sorted(torch.randperm(len(self.blocks), generator=self.generator)[: self.layers].tolist())
        for i, block in enumerate(self.blocks):
            block.requires_grad_(i in self.active)
            if i not in self.active:
                for p in block.parameters():
                    p.grad = None
        trainable = self.always + [p for i in self.active for p in self.blocks[i].parameters()]
        self.inner = torch.optim.AdamW(trainable, lr=self.param_groups[0]["lr"], weight_decay=self.weight_decay)

    @property
    def state(self) -> dict:
        return self.inner.state

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.inner.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        for group in self.inner.param_groups:
            group["lr"] = self.param_groups[0]["lr"]
        self.inner.step()
        self.steps += 1
        if self.steps % self.interval == 0:
            self._resample()


@method.impl("reference")
def reference(model: torch.nn.Module, lr: float, seed: int) -> LayerwiseSampledAdamW:
    extras = method.extras
    return LayerwiseSampledAdamW(model, lr, extras["layers"], extras["interval"], extras["weight_decay"], seed)
