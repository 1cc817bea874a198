"""optimizer/step: one optimizer step over a parameter set shaped like a transformer.

Every implementation gets the same parameters and the same K gradient sets. Checked
outputs: each tensor's total update p_K - p_0 after K steps, compared with the
method's reference in float64; and ``horizon_update<i>``, the updates of a small
parameter set after 50 steps under a warm-up + cosine learning-rate schedule (step
counters, bias corrections, schedules and weight decay far past K). Comparing updates rather than parameters keeps the
check sharp: parameters barely move in K steps, so their relative error would hide
a wrong rule. Timed: one steady-state ``step()`` (state already initialised).

Implementations are factories ``impl(params, **hyper) -> object with .step()`` that
read gradients from ``p.grad``; ``hyper`` is the method's ``extras["hyper"]`` (default
``HYPER``, AdamW's). A rule with ``needs_closure`` (SAM) gets ``step(closure)``: the
closure stands in for the second forward and backward and sets ``p.grad`` to a second,
independent gradient set (in the timed call it only assigns precomputed tensors, so the
time is the optimizer's own work).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from effbench.metrics import Metric
from effbench.plugs import take_step
from effbench.tasks import KernelTask

HYPER = {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.01}


def transformer_shapes(d_model: int, layers: int, vocab: int) -> list[tuple[int, ...]]:
    """Parameter shapes of a GPT-style decoder: embedding, per-layer attention, MLP and norms."""
    shapes: list[tuple[int, ...]] = [(vocab, d_model)]
    for _ in range(layers):
        shapes += [(d_model,), (3 * d_model, d_model), (d_model, d_model), (d_model,),
                   (4 * d_model, d_model), (d_model, 4 * d_model)]
    shapes.append((d_model,))
    return shapes


@dataclass(frozen=True)
class SeededGrads:
    """Gradients regenerated on demand from (seed, step, tensor index), never all held at once.

    K stored gradient sets of a 1B-parameter model would not fit beside its float64
    truth. Each gradient is drawn in fp32 on the parameter's device, rounded to the
    case dtype (what the implementation sees), then cast to the parameter's dtype (the
    float64 truth sees the very same values).
    """

    seed: int
    case_dtype: torch.dtype
    scale: float = 1e-2
    stream: int = 0  # 1: the gradients a closure returns at the perturbed point (SAM)

    def get(self, step: int, index: int, like: torch.Tensor) -> torch.Tensor:
        key = self.seed * 1_000_003 + step * 10_007 + index + self.stream * 7_919_993
        gen = torch.Generator(device=like.device).manual_seed(key)
        g = torch.randn(like.shape, generator=gen, device=like.device, dtype=torch.float32) * self.scale
        return g.to(self.case_dtype).to(like.dtype)


def make_inputs(point: dict[str, Any], dtype: torch.dtype, device: str, seed: int, method: Any) -> dict[str, Any]:
    gen = torch.Generator().manual_seed(seed)
    shapes = transformer_shapes(point["d_model"], point["layers"], point["vocab"])
    params = [(torch.randn(s, generator=gen) * 0.02).to(device, dtype) for s in shapes]
    # each rule brings its own hyper-parameters (Lion has no eps, LARS a trust coefficient, ...)
    return {"params": params, "grads": SeededGrads(seed, dtype), "hyper": dict(method.extras.get("hyper", HYPER))}


# The long-horizon check: a small parameter set stepped HORIZON_STEPS times under a warm-up + cosine learning-rate
# schedule, so that bias corrections, step counters, schedules and weight decay are all exercised far past the
# grid point's K steps (a rule exact for K steps and off at 10 passes a K-step check alone).
HORIZON_STEPS = 50
HORIZON_SHAPES = [(8, 16), (16,), (16, 8)]


def horizon_lr(step: int, steps: int = HORIZON_STEPS, warmup: int = 5) -> float:
    """The learning-rate factor at ``step``: a linear warm-up from 0.2, then a cosine decay to 0.1."""
    if step < warmup:
        return 0.2 + 0.8 * step / warmup
    return 0.1 + 0.45 * (1 + math.cos(math.pi * (step - warmup) / (steps - warmup)))


def run_steps(factory: Callable[..., Any], start: list[torch.Tensor], grads: SeededGrads, steps: int,
              hyper: dict[str, Any], schedule: Callable[[int], float] | None = None) -> list[torch.Tensor]:
    """``steps`` steps of the rule from ``start`` (cloned) on ``grads`` (a closure, for rules that take one,
    sets the second gradient stream); ``schedule(step)`` scales every group's learning rate. The final
    parameters."""
    params = [p.clone().requires_grad_(True) for p in start]
    optimizer = factory(params, **hyper)
    base = [group["lr"] for group in optimizer.param_groups]
    second = dataclasses.replace(grads, stream=grads.stream + 1)
    for step in range(steps):
        if schedule is not None:
            for group, lr in zip(optimizer.param_groups, base, strict=True):
                group["lr"] = lr * schedule(step)
        for i, p in enumerate(params):
            p.grad = grads.get(step, i, p)

        def closure(step: int = step) -> None:
            for i, p in enumerate(params):
                p.grad = second.get(step, i, p)

        take_step(optimizer, closure)
    return [p.detach() for p in params]


def horizon_start(grads: SeededGrads, like: torch.Tensor) -> list[torch.Tensor]:
    """The horizon check's starting parameters, drawn from the case seed and rounded to the case dtype (so the
    float64 truth starts from the very same values)."""
    gen = torch.Generator().manual_seed(grads.seed + 7)
    return [(torch.randn(s, generator=gen) * 0.1).to(grads.case_dtype).to(like.device, like.dtype)
            for s in HORIZON_SHAPES]


def outputs(factory: Callable[..., Any], inputs: dict[str, Any], point: dict[str, Any]) -> dict[str, torch.Tensor]:
    start = inputs["params"]
    final = run_steps(factory, start, inputs["grads"], point["steps"], inputs["hyper"])
    updates = {f"update{i}": p - p0 for i, (p, p0) in enumerate(zip(final, start, strict=True))}
    begin = horizon_start(inputs["grads"], start[0])
    grads = dataclasses.replace(inputs["grads"], stream=2)
    final = run_steps(factory, begin, grads, HORIZON_STEPS, inputs["hyper"], horizon_lr)
    updates.update({f"horizon_update{i}": p - p0 for i, (p, p0) in enumerate(zip(final, begin, strict=True))})
    return updates


def _prepared(factory: Callable[..., Any], inputs: dict[str, Any]) -> tuple[Any, list[torch.Tensor], Callable]:
    """An optimizer one step in (state allocated), its parameters with gradients, and its closure."""
    params = [p.clone().requires_grad_(True) for p in inputs["params"]]
    first = [inputs["grads"].get(0, i, p) for i, p in enumerate(params)]
    second = [dataclasses.replace(inputs["grads"], stream=1).get(0, i, p) for i, p in enumerate(params)]

    def closure() -> None:
        for p, g in zip(params, second, strict=True):
            p.grad = g

    for p, g in zip(params, first, strict=True):
        p.grad = g
    optimizer = factory(params, **inputs["hyper"])
    take_step(optimizer, closure)
    return optimizer, params, closure


def timed(factory: Callable[..., Any], inputs: dict[str, Any], point: dict[str, Any]) -> Callable[[], Any]:
    optimizer, _, closure = _prepared(factory, inputs)  # state allocated outside the timed region
    return lambda: take_step(optimizer, closure)


def state_tensors(optimizer: Any, params: set[int], seen: set[int] | None = None) -> list[torch.Tensor]:
    """Tensors of optimizer state: torch's ``state`` dict, the tensor lists a reference rule keeps, and those
    of any optimizer it wraps (SAM's base, Muon's AdamW fallback), each counted once."""
    seen = set() if seen is None else seen
    if id(optimizer) in seen:
        return []
    seen.add(id(optimizer))
    found: list[torch.Tensor] = []
    if isinstance(optimizer, torch.optim.Optimizer):
        found += [v for state in optimizer.state.values() for v in state.values() if torch.is_tensor(v)]
        children = [v for v in vars(optimizer).values() if isinstance(v, torch.optim.Optimizer)]
    else:
        values = list(vars(optimizer).values())
        found += [t for value in values if isinstance(value, list) for t in value if torch.is_tensor(t)]
        children = [v for v in values if hasattr(v, "step") and hasattr(v, "param_groups")]
    for child in children:
        found += state_tensors(child, params, seen)
    unique = {id(t): t for t in found if id(t) not in params}
    return list(unique.values())


def state_bytes(optimizer: Any) -> int:
    """Bytes of optimizer state (parameters themselves excluded)."""
    params = {id(p) for group in optimizer.param_groups for p in group["params"]}
    return sum(t.numel() * t.element_size() for t in state_tensors(optimizer, params))


# Measured copy bandwidth per (device, dtype, bytes) in this worker: once per grid point.
_copy_bandwidth: dict[tuple[str, str, int], float] = {}


def copy_bandwidth(params: list[torch.Tensor], timing: Any = None) -> float:
    """GB/s of one device-to-device copy as large as the parameters (bytes read + written / time), timed
    like the cases: the yardstick of a memory-bound step."""
    from effbench.measure import TimingConfig, time_call
    from effbench.roofline import copy_bandwidth as measure_copy

    like = params[0]
    nbytes = sum(p.numel() * p.element_size() for p in params)
    key = (str(like.device), str(like.dtype), nbytes, timing)
    if key not in _copy_bandwidth:
        def timed(fn: Callable[[], Any]) -> float:
            return time_call(fn, like.device.type, timing or TimingConfig()).median_ms

        _copy_bandwidth[key] = measure_copy(nbytes, like.dtype, str(like.device), timed) / 1e9
    return _copy_bandwidth[key]


def derived(factory: Callable[..., Any], inputs: dict[str, Any], point: dict[str, Any], method: Any,
            time_ms: float, timing: Any = None) -> dict[str, float]:
    """Optimizer-state bytes, and the achieved bandwidth of the declared work (``work``; the runner stores it
    as ``work_gb_per_s``) beside the measured copy bandwidth of a tensor as large as the parameters on the same
    device: their ratio is 1.0 when the step moves its bytes as fast as a plain copy would.
    """
    optimizer, _, _ = _prepared(factory, inputs)
    metrics = {"state_bytes": float(state_bytes(optimizer))}
    declared = work(inputs, point, method)
    if declared is not None:
        del optimizer
        metrics["copy_gb_per_s"] = copy_bandwidth(inputs["params"], timing)
        metrics["bandwidth_fraction"] = declared[0] / (time_ms * 1e-3) / 1e9 / metrics["copy_gb_per_s"]
    return metrics



def work(inputs: dict[str, Any], point: dict[str, Any], method: Any) -> tuple[float, float] | None:
    """The bytes one step must read and write: the method's ``traffic`` in parameter-sized tensors (AdamW 7),
    or ``traffic(params) -> bytes`` for a state that is not parameter-shaped (a factored second moment); the
    element-wise arithmetic is negligible beside it. None for rules that declare no traffic (Muon's
    Newton-Schulz iterations are matmuls)."""
    traffic = method.extras.get("traffic")
    if not traffic:
        return None
    if callable(traffic):
        return float(traffic(inputs["params"])), 0.0
    return float(traffic * sum(p.numel() * p.element_size() for p in inputs["params"])), 0.0

task = KernelTask(
    family="optimizer",
    name="step",
    description="One optimizer step over transformer-shaped parameters (update error after K steps).",
    grids={
        "smoke": [{"d_model": 64, "layers": 1, "vocab": 256, "steps": 3}],
        "cpu": [
            {"d_model": 128, "layers": 4, "vocab": 2048, "steps": 5},  # ~1.1M parameters
            {"d_model": 256, "layers": 12, "vocab": 8192, "steps": 5},  # ~11.6M parameters
        ],
        "gpu": [
            {"d_model": 768, "layers": 12, "vocab": 50304, "steps": 5},  # ~124M (GPT-2 small)
            {"d_model": 2048, "layers": 20, "vocab": 32000, "steps": 5},  # ~1.07B
        ],
    },
    dtypes={"smoke": ("float32",), "cpu": ("float32",), "gpu": ("float32", "bfloat16")},
    # seconds per case on the 2-core development CPU, measured 2026-12-06: smoke, a smoke run of each method
    # once; cpu: run 20261206T141541Z-96b1ee84, 349 s for 270 cases; gpu: not measured yet
    # gpu: a guess, not a measurement (no GPU has run this grid): 5 steps, the 50-step check and the timing
    cost_s={"smoke": 0.27, "cpu": 1.3, "gpu": 10.0},
    sizes=("layers", "d_model", "d_model"),  # ~ the parameter count
    work=work,
    make_inputs=make_inputs,
    outputs=outputs,
    timed=timed,
    derived=derived,
    declares=(
        Metric("state_bytes", "bytes", "lower", "seed0", "optimizer state, parameters excluded"),
        Metric("copy_gb_per_s", "GB/s", None, "seed0", "a device-to-device copy as large as the parameters"),
        Metric("bandwidth_fraction", "fraction", "higher", "seed0",
               "work_gb_per_s / copy_gb_per_s: 1.0 moves the step's bytes as fast as a plain copy"),
        # rows of runs before 2026-12-06; the same number is now every kernel task's work_gb_per_s
        Metric("gb_per_s", "GB/s", "higher", "seed0", "declared bytes / time (older runs; now work_gb_per_s)"),
    ),
    tolerance={"float32": 1e-5, "bfloat16": 2e-2, "float16": 2e-3, "float64": 1e-12},
)
