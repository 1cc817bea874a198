"""What a kernel module declares about its launches, so that ``effbench kernels`` compiles what runs.

Naming convention: a ``@triton.jit`` function whose name ends in ``_kernel`` is launched from
Python (``fn[grid](...)``); every other ``@triton.jit`` function is a device helper, compiled
inside the kernels that call it. Each module that defines a kernel has a ``compile_specs()``
next to its launchers, returning one ``CompileSpec`` per configuration the ``gpu`` grid can
launch (dtype, constexprs, num_warps, num_stages), built from the same helpers and constants as
the launch itself, so the check cannot drift from what runs.

A spec names only what differs from the launch's defaults: pointers (``*_ptr`` parameters) hold
the case's dtype unless ``pointers`` says otherwise; scalars are i32 unless listed in ``floats``
(fp32) or ``int64`` (values past 2^31, which Triton passes as i64). Triton specialises a pointer
or an integer that is a multiple of 16 (``tt.divisibility``), which lets it vectorise loads: every
pointer is marked so (torch's allocations are aligned far beyond 16 bytes, and the launchers pass
whole, contiguous tensors), and the integers in ``divisible``, those the gpu grid always makes
multiples of 16. Stdlib only: no triton import here.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any

KERNEL_SUFFIX = "_kernel"
# Triton's launch defaults on CUDA when a launch sets none
DEFAULT_NUM_WARPS = 4
DEFAULT_NUM_STAGES = 3
TRITON_TYPES = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16", "int64": "i64", "int32": "i32"}


def python_function(fn: Any) -> Any:
    """The Python function under ``@triton.jit`` (compiled or, under TRITON_INTERPRET=1, interpreted) and under
    ``triton.autotune`` / ``triton.heuristics`` wrappers: each keeps what it wraps in ``.fn``."""
    while not inspect.isfunction(fn) and hasattr(fn, "fn"):
        fn = fn.fn
    return fn


class SpecError(ValueError):
    """A spec that does not fit its kernel's parameters (a typo, or a parameter it forgot)."""


@dataclass(frozen=True)
class CompileSpec:
    """One launch configuration of one kernel, as the compiler needs it."""

    fn: Any  # the @triton.jit function (a triton JITFunction)
    dtype: str | None  # the case's dtype ("bfloat16"); None when the kernel's data never follow it
    constexprs: dict[str, Any]
    pointers: dict[str, str] = field(default_factory=dict)  # pointer parameter -> element type, when not dtype's
    floats: tuple[str, ...] = ()
    int64: tuple[str, ...] = ()
    divisible: tuple[str, ...] = ()
    num_warps: int = DEFAULT_NUM_WARPS
    num_stages: int = DEFAULT_NUM_STAGES
    # arch -> the most bytes this build may spill (a documented budget); an arch left out is not held to one
    spill_budget: dict[str, int] = field(default_factory=dict)

    @property
    def kernel(self) -> str:
        """``module.function``, e.g. ``block_sparse_attention._fwd_kernel``."""
        fn = python_function(self.fn)
        return f"{fn.__module__.rsplit('.', 1)[-1]}.{fn.__name__}"

    @property
    def config(self) -> str:
        """Canonical text of the configuration: dtype, constexprs in parameter order, warps, stages."""
        parts = [f"dtype={self.dtype}"] if self.dtype is not None else []
        parts += [f"{name}={self.constants()[name]}" for name in self._names() if name in self.constants()]
        return " ".join([*parts, f"num_warps={self.num_warps}", f"num_stages={self.num_stages}"])

    def _parameters(self) -> list[inspect.Parameter]:
        return list(inspect.signature(python_function(self.fn)).parameters.values())

    def _names(self) -> list[str]:
        return [p.name for p in self._parameters()]

    def _constexpr_names(self) -> list[str]:
        # `x: tl.constexpr`, or the string "tl.constexpr" under `from __future__ import annotations`
        return [p.name for p in self._parameters()
                if "constexpr" in (p.annotation if isinstance(p.annotation, str) else getattr(p.annotation,
                                                                                               "__name__", ""))]

    def constants(self) -> dict[str, Any]:
        """The constexprs, with the kernel's own defaults for any the spec leaves out."""
        constexprs = set(self._constexpr_names())
        defaults = {p.name: p.default for p in self._parameters()
                    if p.name in constexprs and p.default is not inspect.Parameter.empty}
        return {**defaults, **self.constexprs}

    def check(self) -> None:
        """Raise SpecError when the spec names a parameter the kernel lacks, or misses one it needs."""
        names = set(self._names())
        named = [*self.constexprs, *self.pointers, *self.floats, *self.int64, *self.divisible]
        unknown = sorted(set(named) - names)
        if unknown:
            raise SpecError(f"{self.kernel} has no parameter(s) {', '.join(unknown)}")
        missing = sorted(set(self._constexpr_names()) - set(self.constants()))
        if missing:
            raise SpecError(f"{self.kernel}: no value for constexpr(s) {', '.join(missing)}")
        untyped = [n for n in self._names() if n.endswith("_ptr") and n not in self.pointers and self.dtype is None]
        if untyped:
            raise SpecError(f"{self.kernel}: no element type for {', '.join(untyped)} (the spec has no dtype)")
        if self.dtype is not None and self.dtype not in TRITON_TYPES:
            raise SpecError(f"{self.kernel}: unknown dtype {self.dtype!r}; valid: {', '.join(TRITON_TYPES)}")

    def signature(self) -> dict[str, str]:
        """Every parameter's Triton type ("*bf16", "i32", "fp32", ... or "constexpr")."""
        self.check()
        constexprs = set(self._constexpr_names())
        signature = {}
        for name in self._names():
            if name in constexprs:
                signature[name] = "constexpr"
            elif name.endswith("_ptr"):
                signature[name] = "*" + self.pointers.get(name, TRITON_TYPES.get(self.dtype or "", ""))
            elif name in self.floats:
                signature[name] = "fp32"
            else:
                signature[name] = "i64" if name in self.int64 else "i32"
        return signature

    def attrs(self) -> dict[tuple[int, ...], list[list[Any]]]:
        """Triton's per-argument attributes: 16-byte divisibility of every pointer and of ``divisible``."""
        return {(i,): [["tt.divisibility", 16]] for i, name in enumerate(self._names())
                if name.endswith("_ptr") or name in self.divisible}
