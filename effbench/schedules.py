"""Learning-rate schedules: ``schedule(step, total) -> multiplier`` of the base rate, step from 0.

- ``constant``;
- ``cosine``: 0.5 (1 + cos(pi t / T)), decaying to 0 (Loshchilov & Hutter, "SGDR",
  arXiv:1608.03983, without restarts);
- ``linear_decay``: 1 - t / T, to 0 — the baseline "No Train No Gain" (Kaddour et al.,
  arXiv:2307.06440) shows efficiency gains vanish against;
- ``wsd``: warmup-stable-decay: linear warmup over the first 5%, constant, then linear
  decay to 0 over the last 20% (Hu et al., "MiniCPM", arXiv:2404.06395).
"""

from __future__ import annotations

import math
from collections.abc import Callable

Schedule = Callable[[int, int], float]


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


SCHEDULES: dict[str, Schedule] = {"constant": constant, "cosine": cosine, "linear_decay": linear_decay, "wsd": wsd}
