"""Statistics behind "A beats B" claims: significance across seeds and performance profiles.

Pure functions over plain numbers (scipy for the test), used by the runner (significance
rows stored with a run's results) and by analysis (performance profiles over workloads).
"""

from __future__ import annotations

import math
import statistics
import sys
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

ALPHA = 0.05


@dataclass(frozen=True)
class Comparison:
    """A method against the baseline on one metric over seeds."""

    p_value: float
    delta: float  # mean(method) - mean(baseline), in the metric's units
    significant: bool  # p < ALPHA (either direction; the sign of delta says which)
    better: bool  # significant and in the good direction
    n_method: int
    n_baseline: int
    test: str


def compare(method: Sequence[float], baseline: Sequence[float], higher_is_better: bool = True) -> Comparison:
    """Welch's t-test (unequal variances) of the means; needs at least 2 values on each side.

    When both samples have zero variance the test is undefined: equal means give p = 1,
    different means p = 0 (deterministic runs that differ do differ).
    """
    from scipy import stats

    a, b = [float(v) for v in method], [float(v) for v in baseline]
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"need at least 2 seeds per side, got {len(a)} and {len(b)}")
    delta = statistics.fmean(a) - statistics.fmean(b)
    if _flat(a) and _flat(b):
        p = 1.0 if delta == 0 else 0.0
    else:
        with warnings.catch_warnings():
            # scipy warns of lost precision when one side is (nearly) constant; the test stays defined
            warnings.simplefilter("ignore", RuntimeWarning)
            p = float(stats.ttest_ind(a, b, equal_var=False).pvalue)
    significant = p < ALPHA
    better = significant and (delta > 0 if higher_is_better else delta < 0)
    return Comparison(p, delta, significant, better, len(a), len(b), "welch_t")


def _flat(values: list[float]) -> bool:
    """No spread beyond float64 rounding of the values (repeated deterministic runs)."""
    return max(values) - min(values) <= 4 * sys.float_info.epsilon * max(abs(v) for v in values)


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
