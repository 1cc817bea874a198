"""One case, evaluated inside the worker: a kernel case (truth, verdict, timing, memory, derived metrics,
the unseen-values check) or a workload case (a training run, with its tuning job first). ``execute`` is the
entry point; every failure becomes a ``CaseResult`` with a status and a message, never an exception.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
import os
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from effbench import roofline, workloads
from effbench.checks import Truth, Verdict, judge, make_truth, mutated, refill, snapshot
from effbench.kernels import _tune
from effbench.measure import TimingConfig, peak_memory, time_call
from effbench.registry import (
    BackwardUnavailable,
    Method,
    Registry,
    Skipped,
    Unavailable,
)
from effbench.run.plan import Case, RunConfig
from effbench.tasks import DTYPES, KernelTask, WorkloadTask


@dataclass
class CaseResult:
    """What one case produced; a failure carries its status and message and no values."""

    status: str
    message: str = ""
    metrics: dict[str, float | None] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)  # metric -> message
    measure_methods: dict[str, str] = field(default_factory=dict)  # metric -> how it was measured
    samples: dict[str, list[float]] = field(default_factory=dict)
    curve: list[tuple[int, float, float | None, float | None, float | None]] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> CaseResult:
        data = json.loads(text)
        data["curve"] = [tuple(p) for p in data["curve"]]
        return cls(**data)


def _is_oom(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError | torch.OutOfMemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def _describe(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
    text = " ".join(str(exc).split())
    if len(text) > 400:
        text = text[:400] + "..."
    return f"{type(exc).__name__}: {text}{where}"


class _TruthCache:
    """The float64 truths of the latest (method, point, dtype, device, seed) and of its refill check: every
    implementation of a case shares them. Each is computed from a snapshot of freshly made inputs, before
    any implementation ran, so none can depend on what an implementation did."""

    def __init__(self, size: int = 2) -> None:
        self.size = size
        self.entries: dict[tuple[Any, ...], Truth] = {}

    def get(self, key: tuple[Any, ...], make: Callable[[], Truth]) -> Truth:
        if key not in self.entries:
            while len(self.entries) >= self.size:  # free the oldest before building a new one
                self.entries.pop(next(iter(self.entries)))
            self.entries[key] = make()
        return self.entries[key]


REFILL_SEED = 1_000_003  # the refill check draws inputs of seed + this: values no timed call has seen


def _truth_of(task: KernelTask, method: Method, point: dict[str, Any], pristine: Any, device: str) -> Truth:
    return make_truth(lambda inputs: task.outputs(method.reference.fn, inputs, point), pristine, device)


def _outputs(task: KernelTask, impl: Any, inputs: dict[str, Any], point: dict[str, Any],
             forward_only: bool) -> dict[str, torch.Tensor]:
    if forward_only:
        assert task.forward_outputs is not None
        return task.forward_outputs(impl.fn, inputs, point)
    return task.outputs(impl.fn, inputs, point)


def _mutation(task: KernelTask, inputs: dict[str, Any], pristine: dict[str, Any], when: str) -> CaseResult | None:
    """``error`` naming the inputs an implementation changed (but those the task lets it update)."""
    changed = [name for name in mutated(inputs, pristine) if name.split("[")[0].split(".")[0] not in task.in_place]
    if not changed:
        return None
    more = f" (and {', '.join(repr(n) for n in changed[1:4])})" if len(changed) > 1 else ""
    return CaseResult(status="error", message=f"mutated input {changed[0]!r}{more} {when}: an implementation "
                                              "must not change its inputs")


def _kernel_case(
    task: KernelTask, method: Method, case: Case, config: RunConfig, cache: _TruthCache
) -> CaseResult:
    impl = method.impls[case.impl]
    dtype = DTYPES[case.dtype]
    inputs = task.make_inputs(case.point, dtype, case.device, case.seed, method)
    pristine = snapshot(inputs)  # before anything runs: the truth is made from this, never from `inputs`
    key = (case.task, case.method, case.point_key, case.dtype, case.device, case.seed)
    truth = cache.get(key, lambda: _truth_of(task, method, case.point, pristine, case.device))
    if truth.broken:
        return CaseResult(status="error", message=f"broken reference: the float64 truth of {truth.broken[0]!r} has "
                                                  "non-finite values (a reference must be finite where it is checked)")
    forward_only = ""  # why the backward cannot run here, when only the forward is checked and measured
    _tune.forget()  # an autotuned kernel tunes in this first call, outside the timed calls below
    try:
        outputs = task.outputs(impl.fn, inputs, case.point)
    except BackwardUnavailable as exc:
        if task.forward_outputs is None:
            raise
        forward_only = f"forward only: {exc}"
        outputs = task.forward_outputs(impl.fn, inputs, case.point)
    bad = _mutation(task, inputs, pristine, "while computing its outputs")
    if bad is not None:
        return bad
    names = sorted(outputs) if forward_only else None  # a forward-only case: the outputs it has
    verdict = judge(outputs, truth, task.tolerance[case.dtype], names)
    outputs = {}  # free them before timing
    result = CaseResult(status=verdict.status, message=verdict.message or forward_only)
    _error_metrics(result, verdict, truth)
    # Speed and memory once per (point, dtype): on the first seed. Never of Triton's CPU interpreter.
    interpreted = case.device == "cpu" and "triton" in impl.needs and os.environ.get("TRITON_INTERPRET") == "1"
    if case.seed != 0:
        return result
    if interpreted:
        result.metrics.update(time_ms=None, peak_mem_bytes=None)
        result.notes["time_ms"] = result.notes["peak_mem_bytes"] = "not measured: Triton's CPU interpreter"
        return result
    if forward_only:
        result.metrics.update(time_ms=None, peak_mem_bytes=None)
        result.notes["time_ms"] = result.notes["peak_mem_bytes"] = forward_only
        _add_derived(task, impl, inputs, case, method, result, None, config.timing)
    else:
        call = task.timed_call(impl.fn, inputs, case.point)
        timing = time_call(call, case.device, config.timing)
        memory = peak_memory(call, case.device)
        del call
        result.metrics.update(
            time_ms=timing.median_ms,
            time_p20_ms=timing.p20_ms,
            time_p80_ms=timing.p80_ms,
            peak_mem_bytes=float(memory.delta_bytes),
            peak_mem_abs_bytes=float(memory.abs_bytes),
        )
        result.samples["time_ms"] = timing.samples_ms
        configs = _tune.chosen()
        if configs:  # what the timed calls launched: the autotuner's choice for these sizes
            result.notes["time_ms"] = "autotuned kernel configs: " + "; ".join(f"{k}: {v}" for k, v in configs.items())
        _add_derived(task, impl, inputs, case, method, result, timing.median_ms, config.timing)
        _add_roofline(task, inputs, case, method, result, timing.median_ms, config.timing)
        for name in ("time_ms", "time_p20_ms", "time_p80_ms"):
            result.measure_methods[name] = timing.method
        result.measure_methods["peak_mem_bytes"] = memory.method
        result.measure_methods["peak_mem_abs_bytes"] = memory.method
    bad = _mutation(task, inputs, pristine, "while it was timed")
    if bad is not None:
        return bad
    if result.status == "ok":
        _check_unseen_values(task, method, impl, case, inputs, cache, bool(forward_only), result)
    return result


def _error_metrics(result: CaseResult, verdict: Verdict, truth: Truth) -> None:
    """The case's worst error, the reference's own (naive) error, their ratio, and every output's error."""
    naive = max((truth.naive[k] for k in verdict.errors if k in truth.naive), default=0.0)
    ratios = [e / truth.naive[k] for k, e in verdict.errors.items()
              if truth.naive.get(k, 0) > 0 and math.isfinite(truth.naive[k])]
    result.metrics["rel_error"] = verdict.worst
    result.metrics["naive_rel_error"] = naive
    result.metrics["error_ratio"] = max(ratios) if ratios else None
    detail = ", ".join(f"{k}={v:.2e} (tolerance {verdict.thresholds.get(k, math.nan):.2e})"
                       for k, v in verdict.errors.items())
    result.notes["rel_error"] = f"per output: {detail}"
    result.measure_methods.update(
        rel_error="max over outputs of ||out-ref||/||ref|| vs float64 reference",
        naive_rel_error="reference impl in case dtype vs float64 (worst output)",
        error_ratio="max over outputs of rel_error / naive_rel_error",
    )
    for name, error in verdict.errors.items():
        metric = f"rel_error_{name}"
        result.metrics[metric] = error
        result.notes[metric] = (f"tolerance {verdict.thresholds.get(name, math.nan):.2e} "
                                f"(naive {truth.naive.get(name, math.nan):.2e})")
        result.measure_methods[metric] = "||out-ref||/||ref|| of this output vs float64 reference"


def _check_unseen_values(task: KernelTask, method: Method, impl: Any, case: Case, inputs: dict[str, Any],
                         cache: _TruthCache, forward_only: bool, result: CaseResult) -> None:
    """What was timed, checked once more after new values were written into the very tensors the timed calls
    reused: a result kept from an earlier call (keyed by the tensors' address or identity) is now stale."""
    fresh = task.make_inputs(case.point, DTYPES[case.dtype], case.device, case.seed + REFILL_SEED, method)
    pristine = snapshot(fresh)
    refill(inputs, fresh)
    del fresh
    key = (case.task, case.method, case.point_key, case.dtype, case.device, case.seed + REFILL_SEED)
    truth = cache.get(key, lambda: _truth_of(task, method, case.point, pristine, case.device))
    outputs = _outputs(task, impl, inputs, case.point, forward_only)
    verdict = judge(outputs, truth, task.tolerance[case.dtype], sorted(outputs) if forward_only else None)
    if verdict.status != "ok" and not truth.broken:
        result.status = "wrong"
        result.message = (f"{verdict.message}, on new values written into the tensors the timed calls reused "
                          "(is a result kept from an earlier call?)")


def _add_derived(task: KernelTask, impl: Any, inputs: dict[str, Any], case: Case, method: Method,
                 result: CaseResult, time_ms: float | None, timing: TimingConfig) -> None:
    """The task's own seed-0 metrics; ``time_ms`` is None for a forward-only case. A ``derived`` that takes
    ``timing`` times what it measures with the grid's settings, like the case itself."""
    if task.derived is None:
        return
    extra = {"timing": timing} if "timing" in inspect.signature(task.derived).parameters else {}
    for name, value in task.derived(impl.fn, inputs, case.point, method, time_ms, **extra).items():
        result.metrics[name] = value
        result.measure_methods[name] = f"by {case.task}'s derived metrics (its docstring)"


def _add_roofline(task: KernelTask, inputs: dict[str, Any], case: Case, method: Method, result: CaseResult,
                  time_ms: float, timing: TimingConfig) -> None:
    """The case's roofline (``effbench.roofline``), when its task declares the work a call must do."""
    if task.work is None or not time_ms:
        return
    declared = task.work(inputs, case.point, method)
    if declared is None:  # the method's work is not of the task's form (see the task's work docstring)
        return
    moved, flops = declared
    limits = roofline.peaks(case.device, DTYPES[case.dtype], lambda fn: time_call(fn, case.device, timing).median_ms)
    how = (f"declared work ({moved:.4g} B, {flops:.4g} FLOP) / time_ms; peaks {limits.bandwidth / 1e9:.4g} GB/s, "
           f"{limits.flops / 1e12:.4g} TFLOP/s: {limits.source}")
    for name, value in roofline.roofline(moved, flops, time_ms, limits).items():
        result.metrics[name] = value
        result.measure_methods[name] = how


def _workload_case(task: WorkloadTask, method: Method, case: Case, tuned: dict[str, Any] | None) -> CaseResult:
    impl = method.impls[case.impl]
    if task.prepare is not None:
        task.prepare(case.point)
    holder: list[Any] = []
    start = time.perf_counter()
    with workloads.preset(tuned):
        memory = peak_memory(
            lambda: holder.append(task.run(method, impl, case.point, case.seed, case.device, DTYPES[case.dtype])),
            case.device,
        )
    wall = time.perf_counter() - start
    outcome = holder[0]
    result = CaseResult(status="ok")
    result.metrics.update(outcome.metrics)
    result.metrics["peak_mem_bytes"] = float(memory.delta_bytes)
    result.metrics["wall_s"] = wall
    result.notes.update(outcome.notes)
    result.measure_methods["peak_mem_bytes"] = memory.method + " over the whole training run"
    result.measure_methods["wall_s"] = "perf_counter"
    result.curve = [(c.step, c.wall_s, c.train_loss, c.eval_loss, c.eval_metric) for c in outcome.curve]
    bad = [k for k, v in outcome.metrics.items() if v is not None and not math.isfinite(v)]
    if bad:
        result.status, result.message = "wrong", f"non-finite {', '.join(bad)}"
    return result


def apply_memory_limit(config: RunConfig) -> None:
    """Cap this process's memory (call it in a worker only): past the cap an allocation fails and the
    case is recorded ``oom``. On the CPU the cap is RLIMIT_DATA, which covers the whole process (Python,
    torch and the case); on CUDA a fraction of the device's memory, for the caching allocator."""
    limit = config.memory_limit_bytes
    if limit is None:
        return
    if config.device == "cuda":
        total = torch.cuda.get_device_properties(0).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, limit / total))
        return
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_DATA)
    resource.setrlimit(resource.RLIMIT_DATA, (limit if hard == resource.RLIM_INFINITY else min(limit, hard), hard))


@dataclass
class TuningResult:
    """A tuning job's outcome: ``status`` as a case's; on ok, the values for the scored cases and every trial."""

    status: str
    message: str = ""
    values: dict[str, Any] = field(default_factory=dict)
    trials: list[dict[str, Any]] = field(default_factory=list)  # workloads.TrialRecord as dicts

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> TuningResult:
        return cls(**json.loads(text))


def needs_tuning(registry: Registry, case: Case) -> bool:
    """A workload case whose point has a setting to tune: a tuning job runs before its scored seeds."""
    return isinstance(registry.tasks[case.task], WorkloadTask) and workloads.needs_tuning(case.point)


def execute_tuning(registry: Registry, case: Case) -> TuningResult:
    """A workload case's tuning job, in this process: the task's run on the tuning seed, stopped where the
    scored training would start (``workloads.TuningComplete``). ``case.seed`` is ignored."""
    try:
        task = registry.task(case.task)
        method = registry.methods[(case.task, case.method)]
        impl = method.impls[case.impl]
        if task.prepare is not None:
            task.prepare(case.point)
        torch.manual_seed(workloads.TUNING_SEED)
        with workloads.tuning_job() as job:
            try:
                task.run(method, impl, case.point, workloads.TUNING_SEED, case.device, DTYPES[case.dtype])
            except workloads.TuningComplete:
                pass
        if not job.values:
            return TuningResult("error", "the tuning job tuned nothing: the task never asked for a tuned value")
        return TuningResult("ok", values=job.values, trials=[dataclasses.asdict(t) for t in job.trials])
    except Unavailable as exc:
        return TuningResult("unavailable", str(exc))
    except Skipped as exc:
        return TuningResult("skipped", str(exc))
    except Exception as exc:  # noqa: BLE001 - a failed tuning job fails its scored cases, with the reason
        return TuningResult("oom" if _is_oom(exc) else "error", _describe(exc))
    finally:
        if case.device == "cuda":
            torch.cuda.empty_cache()


def execute(registry: Registry, case: Case, config: RunConfig, cache: _TruthCache | None = None,
            tuned: dict[str, Any] | None = None) -> CaseResult:
    """Run one case in this process; never raises for a failure of the case itself. ``tuned``: a workload
    case's values from its tuning job (``execute_tuning``); None tunes inline (outside the runner)."""
    cache = cache or _TruthCache()
    try:
        task = registry.task(case.task)
        method = registry.methods[(case.task, case.method)]
        impl = method.impls[case.impl]
        blocked = impl.why_not(case.device, case.dtype)
        if blocked:
            return CaseResult(status=blocked[0], message=blocked[1])
        torch.manual_seed(case.seed)
        if isinstance(task, KernelTask):
            return _kernel_case(task, method, case, config, cache)
        return _workload_case(task, method, case, tuned)
    except Unavailable as exc:
        return CaseResult(status="unavailable", message=str(exc))
    except Skipped as exc:
        return CaseResult(status="skipped", message=str(exc))
    except Exception as exc:  # noqa: BLE001 - every failure of a case becomes a result
        return CaseResult(status="oom" if _is_oom(exc) else "error", message=_describe(exc))
    finally:
        if case.device == "cuda":
            torch.cuda.empty_cache()
