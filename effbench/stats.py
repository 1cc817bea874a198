"""Statistics behind "A beats B" claims: significance across seeds, its correction for many
comparisons, and performance profiles.

Pure functions over plain numbers (scipy for the test), used by ``analysis`` on stored per-seed
rows (the runner stores raw numbers only, so a re-analysis needs no re-run).
"""

from __future__ import annotations

import math
import statistics
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

ALPHA = 0.05
# The correction for many comparisons: one family per task and metric (every method and point of it).
# Benjamini-Hochberg controls the false discovery rate; Holm (the family-wise error) is the stricter choice.
CORRECTIONS = ("bh", "holm")
TEST = "two-sided Mann-Whitney U (scipy, exact without ties and up to 8 seeds a side, else normal with tie correction)"


@dataclass(frozen=True)
class Comparison:
    """One (method, impl) against the baseline (method, impl) on one metric over the same scored seeds.

    A failed seed (diverged, error, timeout, target missed) is a miss: it ranks below every number on
    its side's bad end, so a method that fails more is worse, never silently spared."""

    p_value: float
    delta: float  # median(method) - median(baseline) in the metric's units; +-inf when a median is a miss
    below_resolution: bool  # |delta| under the metric's resolution: never significant, whatever p says
    n_method: int
    n_baseline: int
    failed_method: int
    failed_baseline: int
    test: str = TEST

    def better(self, higher_is_better: bool) -> bool:
        return self.delta > 0 if higher_is_better else self.delta < 0


def compare(method: Sequence[float | None], baseline: Sequence[float | None], higher_is_better: bool = True,
            resolution: float = 0.0) -> Comparison:
    """Rank test of ``method`` against ``baseline`` (a value per scored seed; None or non-finite = a miss).

    Values are first rounded to ``resolution`` (so that one-ulp differences tie); when every value ties
    (two deterministic methods that agree, or both always failing) p = 1."""
    from scipy import stats

    if len(method) < 2 or len(baseline) < 2:
        raise ValueError(f"need at least 2 seeds per side, got {len(method)} and {len(baseline)}")
    miss = -math.inf if higher_is_better else math.inf

    def ranked(values: Sequence[float | None]) -> list[float]:
        out = []
        for v in values:
            if v is None or not math.isfinite(v):
                out.append(miss)
            else:
                out.append(round(v / resolution) * resolution if resolution > 0 else float(v))
        return out

    a, b = ranked(method), ranked(baseline)
    if len(set(a + b)) == 1:
        p = 1.0
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            p = float(stats.mannwhitneyu(a, b, alternative="two-sided", method="auto").pvalue)
    ma, mb = statistics.median(a), statistics.median(b)
    delta = ma - mb if not (math.isinf(ma) and ma == mb) else 0.0
    return Comparison(p, delta, abs(delta) < resolution or delta == 0, len(a), len(b),
                      sum(v == miss for v in a), sum(v == miss for v in b))


def adjust(p_values: Sequence[float], method: str = "bh") -> list[float]:
    """p-values adjusted for multiple comparisons (one family): ``"bh"`` Benjamini-Hochberg (false
    discovery rate), ``"holm"`` Holm's step-down (family-wise error). Each adjusted p >= its raw p."""
    if method not in CORRECTIONS:
        raise ValueError(f"unknown correction {method!r}; valid: {', '.join(CORRECTIONS)}")
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    if method == "holm":
        running = 0.0
        for rank, i in enumerate(order):  # p_(k) * (m - k + 1), made monotone from the smallest up
            running = max(running, min(1.0, (m - rank) * p_values[i]))
            adjusted[i] = running
    else:
        running = 1.0
        for rank in range(m - 1, -1, -1):  # p_(k) * m / k, made monotone from the largest down
            i = order[rank]
            running = min(running, p_values[i] * m / (rank + 1))
            adjusted[i] = min(1.0, running)
    return adjusted


def performance_profile(
    costs: Mapping[str, Mapping[str, float | None]], taus: Sequence[float]
) -> dict[str, list[float]]:
    """AlgoPerf-style performance profile.

    ``costs[workload][method]`` is a cost to reach the workload's target (time or steps),
    None when the method never reached it. For each workload the ratio r = cost / best
    cost over methods; ``rho_method(tau)`` = fraction of workloads with r <= tau. A method
    that misses a target counts as never solving that workload.
    """
    methods = sorted({m for per in costs.values() for m in per})
    solved = {m: [0] * len(taus) for m in methods}  # counted, then divided once: rho(1) of all is exactly 1
    for per in costs.values():
        reached = [c for c in per.values() if c is not None and math.isfinite(c)]
        best = min(reached) if reached else None
        for m in methods:
            cost = per.get(m)
            if best is None or cost is None or not math.isfinite(cost):
                continue
            ratio = cost / best if best > 0 else (1.0 if cost == 0 else math.inf)
            for i, tau in enumerate(taus):
                if ratio <= tau:
                    solved[m][i] += 1
    return {m: [n / len(costs) if costs else 0.0 for n in counts] for m, counts in solved.items()}
