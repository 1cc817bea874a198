"""Task contracts: what a kernel task and a workload task must provide.

A *kernel task* compares implementations of the same function: it builds inputs for a
grid point, runs an implementation to get named outputs (values and gradients), and the
runner compares them with the method's reference run in float64. A *workload task*
trains a fixed model on fixed data with a method plugged in and reports curves and
metrics. Task modules in this package define one task object each.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from effbench.metrics import Metric, declarations, resolve
from effbench.registry import Skipped

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
    "float64": torch.float64,
}

KERNEL_METRICS = ("time_ms", "peak_mem_bytes", "rel_error")
WORKLOAD_METRICS = ("final_loss", "final_metric", "steps_to_target", "time_to_target_s", "peak_mem_bytes")


def _caller_file(depth: int) -> str | None:
    return sys._getframe(depth).f_globals.get("__file__")


@dataclass
class Task:
    """What every task has: a name in a family, append-only grids and their dtypes."""

    family: str
    name: str
    description: str
    grids: dict[str, list[dict[str, Any]]]
    dtypes: dict[str, tuple[str, ...]]
    # keyword-only so that subclasses may add required fields after it
    source_file: str | None = field(default=None, repr=False, kw_only=True)
    # Typical wall seconds per case by grid, worker overhead included, for estimates before a run (the
    # DB's measured times win once there are any): smoke and cpu on the 2-core development CPU, gpu on
    # one H100. A grid left out is unknown.
    cost_s: dict[str, float] = field(default_factory=dict, kw_only=True)
    # The point parameters whose product is the problem size (a name twice: squared, as N in attention's
    # B H N^2 d), for ordering points and picking the largest; empty: every positive integer of the point.
    sizes: tuple[str, ...] = field(default=(), kw_only=True)
    # The task's own metrics (unit, better direction, scope), beside those every task of its kind shares
    # (``effbench.metrics.KERNEL`` / ``WORKLOAD``); every metric a task emits must be declared in one of them.
    declares: tuple[Metric, ...] = field(default=(), kw_only=True)
    kind: ClassVar[str] = ""

    def __post_init__(self) -> None:
        if self.source_file is None:
            self.source_file = _caller_file(3)  # the module that built the task

    @property
    def metric_table(self) -> dict[str, Metric]:
        """Every metric this task declares, shared and its own, by name."""
        return declarations(self.kind, self.declares)

    def metric(self, name: str) -> Metric:
        """The declaration of a metric this task emits (``rel_error_<output>`` and the significance rows of a
        declared metric included); KeyError names an undeclared one."""
        found = resolve(name, self.metric_table)
        if found is None:
            raise KeyError(f"{self.key} emits metric {name!r}, which neither it (Task.declares) nor "
                           f"effbench.metrics declares")
        return found

    @property
    def key(self) -> str:
        return f"{self.family}/{self.name}"


@dataclass
class KernelTask(Task):
    """Same function, many implementations; accuracy is error against float64.

    ``make_inputs(point, dtype, device, seed, method) -> dict`` builds plain tensors
    (no ``requires_grad``); ``outputs(fn, inputs, point) -> dict[str, Tensor]`` runs an
    implementation and returns every output and gradient to be checked, without
    mutating ``inputs``; ``timed(fn, inputs, point)`` returns the zero-argument callable
    that is timed (default: the ``outputs`` call, i.e. forward + backward).
    ``tolerance[dtype]`` is the slack added to twice the naive same-dtype error.

    ``forward_outputs(fn, inputs, point)``, when given, returns the forward outputs alone
    (a subset of ``outputs``' names, computed without autograd). An implementation whose
    backward raises ``BackwardUnavailable`` is then checked on those outputs and measured by
    ``derived`` with ``time_ms=None`` instead of being recorded unavailable whole.
    """

    make_inputs: Callable[..., dict[str, Any]]
    outputs: Callable[..., dict[str, torch.Tensor]]
    tolerance: dict[str, float]
    timed: Callable[..., Callable[[], Any]] | None = None
    # derived(fn, inputs, point, method, time_ms) -> extra metrics of seed 0 (state bytes, GB/s, ...)
    derived: Callable[..., dict[str, float]] | None = None
    forward_outputs: Callable[..., dict[str, torch.Tensor]] | None = None
    # inputs an implementation may update in place (the task then checks the update itself); any other input
    # an implementation changes makes its case an ``error`` naming it
    in_place: tuple[str, ...] = ()
    metrics: tuple[str, ...] = KERNEL_METRICS
    # work(inputs, point, method) -> (bytes, FLOPs) one timed call must do at least (None: not declared for
    # this method): the roofline of the case (``effbench.roofline``: achieved GB/s and TFLOP/s of that work,
    # and the fraction of the time bound)
    work: Callable[..., tuple[float, float] | None] | None = None
    kind: ClassVar[str] = "kernel"

    def timed_call(self, fn: Callable[..., Any], inputs: dict[str, Any], point: dict[str, Any]) -> Callable[[], Any]:
        if self.timed is not None:
            return self.timed(fn, inputs, point)
        return lambda: self.outputs(fn, inputs, point)


@dataclass(frozen=True)
class CurveRecord:
    """One evaluation of a workload run."""

    step: int
    wall_s: float
    train_loss: float | None
    eval_loss: float | None
    eval_metric: float | None


@dataclass
class WorkloadOutcome:
    """What a workload run returns: metric name -> value (None = not reached), messages, and its curve."""

    metrics: dict[str, float | None]
    curve: list[CurveRecord]
    notes: dict[str, str] = field(default_factory=dict)  # metric -> message (e.g. "target not reached")


@dataclass
class WorkloadTask(Task):
    """Different methods, one fixed training problem.

    ``run(method, impl, point, seed, device, dtype) -> WorkloadOutcome``. ``target``
    documents the fixed target and how it was set; it is never moved to suit a method.
    ``prepare(point)``, when given, runs before the measured run (e.g. loading data into
    a cache) so one-time costs do not land on whichever method runs first. ``baseline``
    names the method every other one is compared with across seeds (significance rows).
    """

    run: Callable[..., WorkloadOutcome]
    target: str
    prepare: Callable[[dict[str, Any]], Any] | None = None
    baseline: str | None = None
    # metrics compared with the baseline across seeds (their direction is their declaration's)
    compare: tuple[str, ...] = ("final_metric", "steps_to_target")
    metrics: tuple[str, ...] = WORKLOAD_METRICS
    kind: ClassVar[str] = "workload"


def grad_outputs(
    loss_or_out: torch.Tensor,
    wrt: dict[str, torch.Tensor],
    grad_out: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """The output plus gradients w.r.t. ``wrt``, via ``autograd.grad`` (nothing accumulates in ``.grad``)."""
    names = list(wrt)
    grads = torch.autograd.grad(loss_or_out, [wrt[n] for n in names], grad_outputs=grad_out)
    out = {"out": loss_or_out.detach()}
    out.update({f"d{n}": g for n, g in zip(names, grads, strict=True)})
    return out


def leaf(t: torch.Tensor) -> torch.Tensor:
    """A fresh autograd leaf sharing ``t``'s storage (no copy)."""
    return t.detach().requires_grad_(True)


def need(point: dict[str, Any], *names: str) -> tuple[Any, ...]:
    """The point's values of ``names``; a point that lacks one does not define the pattern: skipped."""
    missing = [n for n in names if n not in point]
    if missing:
        raise Skipped(f"the grid point sets no {', '.join(missing)} (this pattern's parameters)")
    return tuple(point[n] for n in names)
