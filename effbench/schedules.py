"""Learning-rate schedules: ``schedule(step, total) -> multiplier`` of the base rate, step from 0.

- ``constant``;
- ``cosine``: 0.5 (1 + cos(pi t / T)), decaying to 0 (Loshchilov & Hutter, "SGDR",
  arXiv:1608.03983, without restarts);
- ``linear_decay``: 1 - t / T, to 0 — the baseline "No Train No Gain" (Kaddour et al.,
  arXiv:2307.06440) shows efficiency gains vanish against;
- ``wsd``: warmup-stable-decay: linear warmup over the first 5%, constant, then linear
  decay to 0 over the last 20% (Hu et al., "MiniCPM", arXiv:2404.06395);
- ``refined``: built from the gradient norms of a prior run (Defazio et al., "When, Why and
  How Much? Adaptive Learning Rate Scheduling by Refinement", arXiv:2310.07831): the norms
  G_t are median-filtered, w_t = G_t^-2, and eta_t is proportional to w_t * sum_{p > t} w_p,
  with eta_{T-1} = 0, scaled to peak 1. Constant norms give back linear decay; norms that
  fall early give a warm-up, norms that rise late a fast final anneal. This is the
  paper's rule for SGD-like methods (the authors' ``find_closed_form_schedule``); its
  per-coordinate variant for Adam is not implemented. The filter width (10% of the run,
  odd) is our choice: the paper smooths with a median filter without fixing one width.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

ScheduleFn = Callable[[int, int], float]


@dataclass(frozen=True)
class Schedule:
    """A named schedule with its paper. ``from_prior_run``: built by :func:`refined` from a run's gradient
    norms (``fn`` is then None and the workload builds it)."""

    name: str
    fn: ScheduleFn | None
    summary: str
    paper: str | None = None
    arxiv: str | None = None
    from_prior_run: bool = False

    def __call__(self, step: int, total: int) -> float:
        if self.fn is None:
            raise TypeError(f"schedule {self.name!r} is built from a prior run's gradient norms: use refined()")
        return self.fn(step, total)


def constant(step: int, total: int) -> float:
    return 1.0


def cosine(step: int, total: int) -> float:
    return 0.5 * (1 + math.cos(math.pi * step / total))


def linear_decay(step: int, total: int) -> float:
    return 1.0 - step / total


def wsd(step: int, total: int, warmup: float = 0.05, decay: float = 0.2) -> float:
    warm, start_decay = max(1, round(warmup * total)), round((1 - decay) * total)
    if step < warm:
        return (step + 1) / warm
    if step < start_decay:
        return 1.0
    return (total - step) / (total - start_decay)


def median_filtered(values: Sequence[float], width_fraction: float = 0.1) -> np.ndarray:
    """Median filter of odd width ``width_fraction * len``; the end is padded by reflection so the last
    steps are not pulled toward the edge value."""
    from scipy.ndimage import median_filter

    g = np.asarray(values, dtype=np.float64)
    width = 2 * (int(width_fraction * len(g)) // 2) + 1
    if width <= 1:
        return g
    pad = min(2 * width, len(g) - 1)
    padded = np.pad(g, (0, pad), mode="reflect") if pad > 0 else g
    return median_filter(padded, size=width, mode="nearest")[: len(g)]


def refined_multipliers(grad_norms: Sequence[float], width_fraction: float = 0.1) -> np.ndarray:
    """The refined schedule for a run of ``len(grad_norms)`` steps, peak 1, last step 0."""
    if len(grad_norms) < 2:
        raise ValueError("a refined schedule needs the gradient norms of at least two steps")
    g = median_filtered(grad_norms, width_fraction)
    if not np.all(np.isfinite(g)) or np.any(g <= 0):
        raise ValueError("a refined schedule needs finite, positive gradient norms")
    w = g**-2.0
    after = np.cumsum(w[::-1])[::-1] - w  # sum over p > t
    eta = w * after
    return eta / eta.max()


def refined(grad_norms: Sequence[float], width_fraction: float = 0.1) -> ScheduleFn:
    """A ``(step, total)`` schedule from a prior run's gradient norms; a run of another length reads it
    at the same fraction of training."""
    values = refined_multipliers(grad_norms, width_fraction)

    def schedule(step: int, total: int) -> float:
        index = step if total == len(values) else min(len(values) - 1, round(step * len(values) / total))
        return float(values[index])

    return schedule


SCHEDULES: dict[str, Schedule] = {
    s.name: s
    for s in (
        Schedule("constant", constant, "The base rate throughout."),
        Schedule("cosine", cosine, "Half a cosine from the base rate to 0 (SGDR without restarts).",
                 "SGDR: Stochastic Gradient Descent with Warm Restarts", "1608.03983"),
        Schedule("linear_decay", linear_decay, "Linear decay to 0: the baseline efficiency gains must beat.",
                 "No Train No Gain: Revisiting Efficient Training Algorithms For Transformer-based Language Models",
                 "2307.06440"),
        Schedule("wsd", wsd, "Warmup (5%), a stable phase, then linear decay to 0 over the last 20%.",
                 "MiniCPM: Unveiling the Potential of Small Language Models with Scalable Training Strategies",
                 "2404.06395"),
        Schedule("refined", None, "Refined from a prior linear-decay run's gradient norms: eta_t ~ w_t sum_{p>t} w_p,"
                 " w = G^-2 (warm-up and final anneal emerge from the data).",
                 "When, Why and How Much? Adaptive Learning Rate Scheduling by Refinement", "2310.07831",
                 from_prior_run=True),
    )
}
