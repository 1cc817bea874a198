"""Minimising a test function with the optimizer and schedule plugs: the convergence task's loop (no data,
no model)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from effbench.evaluation import outcome_from_curve
from effbench.plugs import Plugs, evaluation_weights, take_step
from effbench.tasks import CurveRecord, WorkloadOutcome
from effbench.train import StepClock, observe_gradients


def minimize(
    objective: Callable[[torch.Tensor, torch.Generator | None], torch.Tensor],
    x0: torch.Tensor,
    plugs: Plugs,
    steps: int,
    eval_every: int,
    lr: float,
    target: float | None,
    seed: int,
    optimum: float = 0.0,
) -> WorkloadOutcome:
    """Minimise a test function with the optimizer and schedule plugs (no data, no model).

    ``objective(x, generator)`` is the training loss (stochastic when given a generator);
    ``objective(x, None)`` the exact value. The metric is -log10(f(x) - f*): orders of
    magnitude of suboptimality removed, higher is better.
    """
    if plugs.grad_norms is not None:
        plugs.grad_norms.clear()
    noise = torch.Generator().manual_seed(30_000 + seed)
    x = torch.nn.Parameter(x0.clone())
    optimizer = plugs.optimizer([x], lr)
    base_lrs = [group["lr"] for group in optimizer.param_groups]
    curve: list[CurveRecord] = []
    clock = StepClock(x.device)
    last = math.nan

    def record(step: int) -> None:
        with torch.no_grad(), evaluation_weights(optimizer):
            gap = objective(x, None).item() - optimum
        metric = -math.log10(max(gap, 1e-30)) if math.isfinite(gap) else -math.inf
        curve.append(CurveRecord(step, clock.elapsed, None if math.isnan(last) else last, gap, metric))

    record(0)
    for step in range(1, steps + 1):
        clock.start()
        for group, base in zip(optimizer.param_groups, base_lrs, strict=True):
            group["lr"] = base * plugs.schedule(step - 1, steps)
        sample = noise.get_state()  # a closure re-evaluates the same stochastic sample
        loss = objective(x, noise)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if plugs.grad_norms is not None:
            with clock.excluded():  # the backward's kernels finish first and stay in the step
                observe_gradients([x], plugs.grad_norms)

        def closure(sample: torch.Tensor = sample) -> torch.Tensor:
            after = noise.get_state()
            noise.set_state(sample)
            optimizer.zero_grad(set_to_none=True)
            again = objective(x, noise)
            again.backward()
            noise.set_state(after)
            return again

        take_step(optimizer, closure)
        clock.stop()
        last = loss.item()
        if step % eval_every == 0 or step == steps:
            record(step)
    return outcome_from_curve(curve, target, steps, train_time=clock.elapsed)
