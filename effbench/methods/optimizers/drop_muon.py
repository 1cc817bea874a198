"""Drop-Muon: Gruntkowska, Maziane, Qu & Richtarik, "Drop-Muon: Update Less, Converge Faster", arXiv:2510.02239.

Randomized Progressive Training with Muon steps: with the layers 1..L in model order, each step
draws a start index s and updates only layers s..L; layers before s keep their weights and
their optimizer state (momentum, AdamW moments and step count) unchanged.

    s ~ Uniform{1, ..., L};   for i >= s:  Muon step (2-D) or AdamW step (other), as in muon.py

Uniform s is the sampling of the paper's main experiments (its appendix also tries schedules
that shift the mass over training); the last layer is always updated, the first with
probability 1/L, on average (L + 1) / 2 layers. s comes from a torch.Generator seeded in the
constructor, so two instances with the same seed draw the same indices.

A "layer" here is one parameter tensor of the list (in ``optimizer/step``: the embedding, each
block's norm gain, QKV, projection, norm gain, MLP up and down, the final gain). The paper's main
saving, stopping backpropagation at layer s, belongs to the training loop; a step task can only
show the skipped Newton-Schulz iterations and updates.
"""

from __future__ import annotations

from typing import Any

import torch

from effbench.methods.optimizers._rule import update_rule
from effbench.methods.optimizers.muon import HYPER as MUON_HYPER
from effbench.methods.optimizers.muon import ReferenceMuon, compiled_matrix_step

PAPER = {"paper": "Drop-Muon: Update Less, Converge Faster", "arxiv": "2510.02239"}
SUMMARY = "Muon that updates only the layers from a uniformly drawn start index to the last; the rest stay frozen."
HYPER = {**MUON_HYPER, "seed": 0}
method, convergence = update_rule("drop_muon", summary=SUMMARY, hyper=HYPER, **PAPER)


class ReferenceDropMuon(ReferenceMuon):
    """Muon's reference stepping only parameters start..L-1 (0-based), start drawn each step."""

    def __init__(self, params: list[torch.Tensor], lr: float, seed: int = 0, **muon_hyper: Any) -> None:
        super().__init__(params, lr, **muon_hyper)
        self.generator = torch.Generator().manual_seed(seed)  # on the CPU: the same draws on every device
        self.start: int | None = None  # the latest draw, for inspection

    def step(self) -> None:
        self.start = int(torch.randint(len(self.params), (), generator=self.generator))
        self.update(range(self.start, len(self.params)))


class CompiledDropMuon(ReferenceDropMuon):
    """The same sampling; each active matrix's step through ``torch.compile`` (muon.py's)."""

    step_matrix = staticmethod(compiled_matrix_step)


@method.impl("reference")
def reference(params: list[torch.Tensor], **hyper: Any) -> ReferenceDropMuon:
    return ReferenceDropMuon(params, **hyper)


@method.impl("compile")
def compiled(params: list[torch.Tensor], **hyper: Any) -> CompiledDropMuon:
    return CompiledDropMuon(params, **hyper)


