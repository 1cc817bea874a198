"""The plug API of the one training loop (``effbench.train``): what a method supplies, and the defaults.

- **loss**: classify: ``loss(features (N, H), head_weight (C, H), head_bias (C,), targets)
  -> per-example loss (N,)``, with ``probabilities(features, weight, bias) -> (N, C)`` for
  evaluation (a loss such as the harmonic loss predicts from distances, not logits);
  regress: ``loss(outputs, targets) -> (N,)``; lm: ``loss(hidden (N, D), head_weight (V, D),
  targets (N,), ignore_index) -> mean loss`` (the signature of the loss family's linear
  cross-entropy, so fused heads drop in);
- **optimizer** ``(params, lr) -> torch.optim.Optimizer`` and **schedule**
  ``(step, total_steps) -> lr multiplier``; an optimizer with ``needs_closure`` (SAM) gets
  ``step(closure)``, the closure recomputing the loss and gradients on the same batch; one
  with ``eval()``/``train()`` (schedule-free) is switched to its evaluation weights around
  every evaluation;
- **select** ``(pool, k, generator) -> (indices into the pool, weights or None)``: data
  selection from a ``CandidatePool``, with per-example losses and output-gradient norms
  available on demand; the training loss is ``mean(weights * per-example loss)`` over the
  chosen examples (None = all weights 1), so importance weights keep it unbiased. Weights
  may instead be a function of the training forward's own detached losses (``LossWeights``:
  in-batch reweighting, token selection inside the loss), which costs no scoring pass;
- **attention** and token routing are model plug points (see ``models.TransformerLM``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from effbench.data import IGNORE, Dataset


def per_example_loss(model: torch.nn.Module, data_kind: str, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The reference per-example loss: CE (classify), mean squared error (regress), mean token CE (lm)."""
    out = model(x)
    if data_kind == "classify":
        return F.cross_entropy(out, y, reduction="none")
    if data_kind == "regress":
        return (out - y).pow(2).mean(-1)
    token = F.cross_entropy(out.flatten(0, 1), y.flatten(), ignore_index=IGNORE, reduction="none").view(y.shape)
    counted = (y != IGNORE).sum(-1).clamp_min(1)
    return token.sum(-1) / counted


def fit_copy(model: torch.nn.Module, kind: str, x: torch.Tensor, y: torch.Tensor, rows: torch.Tensor,
             steps: int, batch: int, lr: float, generator: torch.Generator) -> torch.nn.Module:
    """A deep copy of ``model`` trained ``steps`` SGD steps (momentum 0.9) on batches drawn with
    replacement from ``rows`` of (x, y): the auxiliary models selection methods train for
    themselves (an irreducible-loss model, early-training scorers); ``model`` is untouched."""
    trained = copy.deepcopy(model)
    optimizer = torch.optim.SGD(trained.parameters(), lr=lr, momentum=0.9)
    for _ in range(steps):
        chosen = rows[torch.randint(len(rows), (batch,), generator=generator).to(rows.device)]
        loss = per_example_loss(trained, kind, x[chosen], y[chosen]).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return trained


@dataclass
class CandidatePool:
    """Candidates offered to a selection method; per-example statistics are computed when first asked for.

    ``indices`` are the candidates' rows in ``data``'s training split; ``memory`` is one dict per
    training run that a method may keep state in across steps (a loss history, a model trained
    once on hold-out data); ``step`` counts from 1 to ``steps``. Every forward pass a method
    asks for counts in ``scored`` and, being inside the timed step, in wall time.
    """

    x: torch.Tensor
    y: torch.Tensor
    model: torch.nn.Module
    kind: str = "classify"
    indices: torch.Tensor | None = None
    data: Dataset | None = None
    memory: dict[str, Any] = field(default_factory=dict)
    step: int = 0
    steps: int = 0
    _losses: torch.Tensor | None = field(default=None, repr=False)
    _bound: torch.Tensor | None = field(default=None, repr=False)
    scored: int = 0

    @property
    def size(self) -> int:
        return self.x.shape[0]

    def losses(self) -> torch.Tensor:
        """Per-example loss of every candidate under the current model (no gradient)."""
        if self._losses is None:
            self._score()
        return self._losses

    def grad_norm_bound(self) -> torch.Tensor:
        """Per-example norm of the loss gradient w.r.t. the model's outputs (Katharopoulos & Fleuret's
        upper bound, up to a constant, of the full per-example gradient norm): ``||softmax(z) - onehot(y)||``
        for cross-entropy, ``||2 (out - y) / D||`` for mean squared error. The forward pass is shared
        with ``losses()``; no per-example gradient is materialised."""
        if self.kind not in ("classify", "regress"):
            raise ValueError(f"no output-gradient bound for {self.kind!r} data")
        if self._bound is None:
            self._score()
        return self._bound

    def _score(self) -> None:
        with torch.no_grad():
            if self.kind == "classify":
                out = self.model(self.x)
                self._losses = F.cross_entropy(out, self.y, reduction="none")
                residual = torch.softmax(out.float(), -1)
                residual[torch.arange(self.size, device=out.device), self.y] -= 1
                self._bound = torch.linalg.vector_norm(residual, dim=-1)
            elif self.kind == "regress":
                out = self.model(self.x)
                self._losses = (out - self.y).pow(2).mean(-1)
                self._bound = torch.linalg.vector_norm(2 * (out - self.y) / out.shape[-1], dim=-1)
            else:
                self._losses = per_example_loss(self.model, self.kind, self.x, self.y)
        self.scored += self.size


# Weights a selection may derive from the training forward's own losses instead of a scoring pass:
# (detached loss, valid) -> weights, where the loss is per example (N,) with valid None, or, on
# token data, per token (B, T) with ``valid`` marking counted tokens; the weights returned are
# per example or (token data) per sequence (B,) or per token (B, T).
LossWeights = Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]


SelectFn = Callable[[CandidatePool, int, torch.Generator], tuple[torch.Tensor, torch.Tensor | LossWeights | None]]


OptimizerFn = Callable[[list[torch.nn.Parameter], float], torch.optim.Optimizer]


ScheduleFn = Callable[[int, int], float]


def sgd_momentum(params: list[torch.nn.Parameter], lr: float) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=lr, momentum=0.9)


def adamw(params: list[torch.nn.Parameter], lr: float) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=lr, weight_decay=0.01)


def constant(step: int, total: int) -> float:
    return 1.0


def take_step(optimizer: Any, closure: Callable[[], torch.Tensor]) -> None:
    """``step(closure)`` for rules that take a second gradient (SAM), ``step()`` for the rest."""
    if getattr(optimizer, "needs_closure", False):
        optimizer.step(closure)
    else:
        optimizer.step()


@contextmanager
def evaluation_weights(optimizer: Any) -> Iterator[None]:
    """Hold the weights a schedule-free optimizer evaluates (its average) inside the block."""
    switch = callable(getattr(optimizer, "eval", None)) and callable(getattr(optimizer, "train", None))
    if switch:
        optimizer.eval()
    try:
        yield
    finally:
        if switch:
            optimizer.train()


@dataclass
class Plugs:
    loss: Callable[..., torch.Tensor] | None = None  # None: the reference per-example loss
    probabilities: Callable[..., torch.Tensor] | None = None  # classify: None = softmax of the logits
    optimizer: OptimizerFn = sgd_momentum
    schedule: ScheduleFn = constant
    select: SelectFn | None = None  # None: train on the first `batch` examples of the pool
    targets: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None  # lm: (x, y) -> y to train on
    grad_norms: list[float] | None = None  # a list here receives the latest run's gradient norms (untimed)


@dataclass(frozen=True)
class Budget:
    steps: int
    batch: int
    eval_every: int
    pool: int | None = None  # candidates per step; None = batch (no selection)
