"""What a kernel case's outputs must satisfy before any number of theirs is believed.

An implementation may be careless or adversarial, so the float64 truth is computed from a
snapshot of the inputs taken before any implementation ran (never from tensors an
implementation has touched), an implementation that changes its inputs is caught, and every
output is judged on its own: the same names, shapes and dtype as the reference's outputs in the
case dtype, finite, and within twice the reference's own error in that dtype (its *naive* error)
plus the task's slack. Tensors in, verdicts out: no registry, no I/O.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch


def snapshot(value: Any) -> Any:
    """A copy of ``value`` that nothing else holds: every tensor (of any dtype: masks and targets too)
    copied to the CPU, lists, tuples and dicts rebuilt around them, anything else deep-copied."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, list | tuple):
        return type(value)(snapshot(v) for v in value)
    if isinstance(value, dict):
        return {k: snapshot(v) for k, v in value.items()}
    try:
        return copy.deepcopy(value)
    except Exception:  # noqa: BLE001 - an object that cannot be copied is kept as it is
        return value


def restore(snap: Any, device: str, float_dtype: torch.dtype | None = None) -> Any:
    """Fresh tensors on ``device`` from a snapshot; floating-point ones cast to ``float_dtype`` when given."""
    if isinstance(snap, torch.Tensor):
        dtype = float_dtype if float_dtype is not None and snap.is_floating_point() else snap.dtype
        return snap.to(device=device, dtype=dtype, copy=True)
    if isinstance(snap, list | tuple):
        return type(snap)(restore(v, device, float_dtype) for v in snap)
    if isinstance(snap, dict):
        return {k: restore(v, device, float_dtype) for k, v in snap.items()}
    return copy.deepcopy(snap) if not callable(snap) else snap


def _same_tensor(current: torch.Tensor, snap: torch.Tensor) -> bool:
    if current.shape != snap.shape or current.dtype != snap.dtype:
        return False
    now = current.detach().cpu()
    if now.is_floating_point() or now.is_complex():
        return bool(((now == snap) | (now.isnan() & snap.isnan())).all())
    return torch.equal(now, snap)


def mutated(current: Any, snap: Any, name: str = "") -> list[str]:
    """Names of the tensors in ``current`` whose shape, dtype or contents differ from ``snap``
    (``"params[3]"`` inside a list, ``"x"`` at the top of an input dict)."""
    if isinstance(snap, torch.Tensor):
        return [] if isinstance(current, torch.Tensor) and _same_tensor(current, snap) else [name]
    if isinstance(snap, list | tuple):
        if not isinstance(current, list | tuple) or len(current) != len(snap):
            return [name]
        return [n for i, (c, s) in enumerate(zip(current, snap, strict=True)) for n in mutated(c, s, f"{name}[{i}]")]
    if isinstance(snap, dict):
        if not isinstance(current, dict) or set(current) != set(snap):
            return [name or "inputs"]
        return [n for k in snap for n in mutated(current[k], snap[k], f"{name}.{k}" if name else str(k))]
    return []


def refill(inputs: dict[str, Any], fresh: dict[str, Any]) -> None:
    """Write ``fresh``'s values into ``inputs``' own tensors (same storage, new contents): what was timed is
    checked again on values it has not seen, so a result cached by the tensors' identity or address is
    stale. Values that are not tensors are replaced."""

    def into(dst: Any, src: Any) -> Any:
        if isinstance(dst, torch.Tensor) and isinstance(src, torch.Tensor) and dst.shape == src.shape:
            with torch.no_grad():
                dst.copy_(src)
            return dst
        if isinstance(dst, list) and isinstance(src, list) and len(dst) == len(src):
            dst[:] = [into(d, s) for d, s in zip(dst, src, strict=True)]
            return dst
        return src

    for key, value in fresh.items():
        inputs[key] = into(inputs.get(key), value)


@dataclass
class Truth:
    """The float64 reference outputs of one (method, point, dtype, device, seed), and the reference's own
    per-output error when it runs in the case dtype (the *naive* error), its output dtypes and shapes."""

    outputs: dict[str, torch.Tensor]
    naive: dict[str, float]
    dtypes: dict[str, torch.dtype]
    shapes: dict[str, tuple[int, ...]]

    @property
    def broken(self) -> list[str]:
        """Outputs whose float64 truth is not finite: a broken reference, never something to pass."""
        return [k for k, v in self.outputs.items() if not bool(torch.isfinite(v).all())]


def relative_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    """``||out - ref|| / ||ref||`` in float64 on the CPU (the absolute norm when ``||ref|| == 0``); ``inf`` for
    a non-finite output."""
    out64 = out.detach().to(device="cpu", dtype=torch.float64)
    ref64 = ref.detach().to(device="cpu", dtype=torch.float64)
    if not bool(torch.isfinite(out64).all()):
        return math.inf
    diff = torch.linalg.vector_norm(out64 - ref64).item()
    scale = torch.linalg.vector_norm(ref64).item()
    return diff / scale if scale > 0 else diff


def make_truth(run: Callable[[Any], dict[str, torch.Tensor]], pristine: Any, device: str) -> Truth:
    """``run(inputs) -> outputs`` is the reference under the task's calling convention; it runs on a float64
    copy of the pristine inputs (the truth) and on a copy in the case dtype (the naive outputs)."""
    truth = {k: v.detach().cpu() for k, v in run(restore(pristine, device, torch.float64)).items()}
    naive_outputs = run(restore(pristine, device))
    naive = {k: relative_error(naive_outputs[k], truth[k]) if k in naive_outputs else math.inf for k in truth}
    return Truth(truth, naive, {k: v.dtype for k, v in naive_outputs.items()},
                 {k: tuple(v.shape) for k, v in naive_outputs.items()})


@dataclass
class Verdict:
    """Every output judged against its own threshold; ``status`` is ``ok`` or ``wrong``."""

    status: str = "ok"
    message: str = ""
    errors: dict[str, float] = field(default_factory=dict)
    thresholds: dict[str, float] = field(default_factory=dict)

    @property
    def worst(self) -> float:
        """The largest error (``inf`` if any is NaN or infinite; 0 without outputs)."""
        values = list(self.errors.values())
        if any(not math.isfinite(v) for v in values):
            return math.inf
        return max(values, default=0.0)


def judge(outputs: Mapping[str, torch.Tensor], truth: Truth, slack: float,
          names: list[str] | None = None) -> Verdict:
    """Judge ``outputs`` (those in ``names``, default all of the truth's) against ``truth``."""
    names = list(truth.outputs) if names is None else names
    verdict = Verdict()
    if sorted(outputs) != sorted(names):
        verdict.status = "wrong"
        verdict.message = f"outputs {sorted(outputs)} differ from the reference's {sorted(names)}"
        return verdict
    problems: list[str] = []
    for name in names:
        out = outputs[name]
        if not isinstance(out, torch.Tensor):
            problems.append(f"output {name!r} is a {type(out).__name__}, not a tensor")
            verdict.errors[name] = math.inf
            continue
        if tuple(out.shape) != truth.shapes.get(name, tuple(truth.outputs[name].shape)):
            problems.append(f"output {name!r} has shape {tuple(out.shape)}, the reference's "
                            f"{truth.shapes.get(name)}")
            verdict.errors[name] = math.inf
            continue
        if name in truth.dtypes and out.dtype != truth.dtypes[name]:
            problems.append(f"output {name!r} is {out.dtype}, the reference's is {truth.dtypes[name]} "
                            "for the same inputs")
        error = relative_error(out, truth.outputs[name])
        naive = truth.naive.get(name, math.inf)
        threshold = (2 * naive if math.isfinite(naive) else 0.0) + slack
        verdict.errors[name], verdict.thresholds[name] = error, threshold
        if not math.isfinite(error):
            problems.append(f"non-finite values in output {name!r}")
        elif error > threshold:
            problems.append(f"rel_error {error:.3e} in {name!r} above its tolerance {threshold:.3e} "
                            f"(2 x naive {naive:.2e} + slack {slack:.0e})")
    if problems:
        verdict.status = "wrong"
        verdict.message = problems[0] + (f" (and {len(problems) - 1} more: {'; '.join(problems[1:3])})"
                                         if len(problems) > 1 else "")
    return verdict
