"""Compile every Triton kernel for real GPUs (sm_80, sm_90) on any machine, and say what each build costs.

``triton.compile(ASTSource(...), target=GPUTarget("cuda", 90, 32))`` runs Triton's whole pipeline
without a GPU (ttir -> ttgir -> llir -> ptx -> cubin, with the ptxas shipped in Triton's wheel). Of the
cubin, ``cuobjdump --dump-resource-usage`` (also in the wheel) gives the registers per thread and the
stack frame (local memory per thread: where ptxas puts registers it spills, since Triton kernels keep
nothing else there). Shared memory per block is Triton's dynamic allocation (its metadata: what its
launcher requests and checks against the device) plus any static ``.shared`` array the PTX declares
(none in Triton's kernels). cuobjdump's SHARED is not used: on sm_90 it includes the 1 KB that CUDA
reserves per block, which the per-block limit below already leaves out. ptxas's own ``-v`` log, which
Triton prints when its ``dump_ptxas_log`` knob is set, adds the bytes of spill stores and loads and
notes such as serialised wgmma; it is captured, never shown.

What is compiled comes from the kernel modules (``effbench/kernels/_spec.py``: every ``*_kernel`` has
specs, from ``compile_specs()``). Each build is compiled in a fresh Triton cache, so its compile time is
a real one.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import importlib
import importlib.util
import io
import os
import pkgutil
import re
import subprocess
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from types import ModuleType
from typing import Any

from effbench.kernels._spec import KERNEL_SUFFIX, CompileSpec, SpecError, python_function
from effbench.rows import KernelBuild

ARCHES: dict[str, int] = {"sm_80": 80, "sm_90": 90}
DEFAULT_ARCHES = ("sm_80", "sm_90")
# The most shared memory one block may use (static + dynamic; cuFuncSetAttribute: their sum may not exceed
# CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN, which is what Triton's launcher checks), in bytes.
# NVIDIA, CUDA C++ Programming Guide, "Technical Specifications per Compute Capability": maximum shared memory
# per thread block 163 KB for compute capability 8.0 and 227 KB for 9.0; the Ampere and Hopper tuning guides
# (docs.nvidia.com/cuda/ampere-tuning-guide, .../hopper-tuning-guide): A100 has up to 164 KB per SM and H100
# up to 228 KB, of which CUDA reserves 1 KB per block. As bytes: 166912 (also IREE's "limit of 166912 bytes"
# on sm_80) and 232448 (FlashInfer's 9.x opt-in).
SHARED_LIMIT: dict[str, int] = {"sm_80": 163 * 1024, "sm_90": 227 * 1024}
KERNELS_PACKAGE = "effbench.kernels"

_RESOURCES = re.compile(r"REG:(\d+)\s+STACK:(\d+)\s+SHARED:(\d+)\s+LOCAL:(\d+)")
_STATIC_SHARED = re.compile(r"^\s*\.shared\s+(?:\.align\s+\d+\s+)?\.\w+\s+\w+\[(\d+)\]", re.MULTILINE)
_SPILLS = re.compile(r"(\d+) bytes spill stores, (\d+) bytes spill loads")
_NOTE = re.compile(r"(Performance Loss|warning).*", re.IGNORECASE)


class KernelCheckError(Exception):
    """The check cannot run here (no triton, or a tool missing from its wheel): one line for the CLI."""


# --------------------------------------------------------------------------- what there is to compile


def kernel_modules() -> list[ModuleType]:
    """Every module of effbench/kernels, imported (they import torch and triton)."""
    package = importlib.import_module(KERNELS_PACKAGE)
    return [importlib.import_module(f"{KERNELS_PACKAGE}.{info.name}")
            for info in pkgutil.iter_modules(package.__path__)]


def _jit_types() -> tuple[type, ...]:
    """What ``@triton.jit`` makes: a JITFunction, or an InterpretedFunction under TRITON_INTERPRET=1."""
    try:
        from triton.runtime.interpreter import InterpretedFunction
        from triton.runtime.jit import JITFunction
    except ImportError as exc:
        raise KernelCheckError(f"triton is not installed ({exc}): pip install -e '.[triton]'") from None
    return JITFunction, InterpretedFunction


def unwrap(obj: Any) -> Any:
    """The JIT function under ``triton.autotune`` / ``triton.heuristics`` wrappers (which keep it in ``.fn``)."""
    jit = _jit_types()
    while not isinstance(obj, jit) and hasattr(obj, "fn"):
        obj = obj.fn
    return obj


def launched_kernels(modules: Iterable[ModuleType]) -> dict[str, Any]:
    """``module.function`` -> the object in the module, for every ``*_kernel`` JIT function a module defines."""
    jit = _jit_types()
    found = {}
    for module in modules:
        for name, obj in vars(module).items():
            if (isinstance(unwrap(obj), jit) and name.endswith(KERNEL_SUFFIX)
                    and python_function(obj).__module__ == module.__name__):
                found[f"{module.__name__.rsplit('.', 1)[-1]}.{name}"] = obj
    return found


def expand(spec: CompileSpec) -> list[CompileSpec]:
    """A spec of an autotuned kernel becomes one spec per autotune config (its kwargs, warps and stages)."""
    configs = getattr(spec.fn, "configs", None)
    if configs is None:
        return [spec]
    fn = unwrap(spec.fn)
    return [
        CompileSpec(fn, spec.dtype, {**spec.constexprs, **c.kwargs}, spec.pointers, spec.floats, spec.int64,
                    spec.divisible, num_warps=c.num_warps or spec.num_warps,
                    num_stages=c.num_stages if c.num_stages is not None else spec.num_stages)
        for c in configs
    ]


def all_specs(modules: Iterable[ModuleType]) -> list[CompileSpec]:
    """Every module's ``compile_specs()``, autotune configs expanded, duplicates (same kernel and config) once."""
    specs: dict[tuple[str, str], CompileSpec] = {}
    for module in modules:
        make = getattr(module, "compile_specs", None)
        for spec in (make() if make is not None else []):
            for one in expand(spec):
                specs.setdefault((one.kernel, one.config), one)
    return list(specs.values())


def uncovered(modules: Iterable[ModuleType], specs: Iterable[CompileSpec]) -> list[str]:
    """Kernels that no spec compiles: a module launches them, but its compile_specs() forgot them."""
    have = {s.kernel for s in specs}
    return sorted(set(launched_kernels(modules)) - have)


@functools.cache
def _outline(module: str) -> tuple[dict[str, set[str]], dict[str, tuple[str, str]]]:
    """Of one effbench module's source: the names each top-level def/class/constant refers to, and the names it
    imports from other effbench modules (anywhere in the file: impls import kernels lazily)."""
    found = importlib.util.find_spec(module)
    if found is None or not found.origin or not found.origin.endswith(".py"):
        return {}, {}
    tree = ast.parse(Path(found.origin).read_text())
    imported = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("effbench."):
            for alias in node.names:
                imported[alias.asname or alias.name] = (node.module, alias.name)
    refs: dict[str, set[str]] = {}
    for node in tree.body:
        names = []
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names = [node.name]
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = [t.id for t in targets if isinstance(t, ast.Name)]
        for name in names:
            refs[name] = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} - {name}
    return refs, imported


def reached_kernels(module: str, name: str) -> set[str]:
    """The ``*_kernel`` functions that ``module.name`` can launch: every name its source refers to, followed
    through effbench's modules (a static over-approximation of the calls)."""
    todo, seen, kernels = [(module, name)], set(), set()
    while todo:
        mod, name = todo.pop()
        if (mod, name) in seen:
            continue
        seen.add((mod, name))
        refs, imported = _outline(mod)
        if name in imported and name not in refs:  # a name this module imports: follow it home
            todo.append(imported[name])
            continue
        if mod.startswith(KERNELS_PACKAGE + ".") and name.endswith(KERNEL_SUFFIX) and name in refs:
            kernels.add(f"{mod.rsplit('.', 1)[-1]}.{name}")
        todo += [(mod, r) for r in refs.get(name, ()) if r in refs or r in imported]
    return kernels


def kernel_users(methods: Iterable[Any]) -> dict[str, list[str]]:
    """Kernel (``module.function``) -> sorted 'task:method' of the methods whose Triton impls launch it."""
    users: dict[str, set[str]] = {}
    for method in methods:
        for impl in method.impls.values():
            if "triton" not in impl.needs:
                continue
            module, name = getattr(impl.fn, "__module__", None), getattr(impl.fn, "__name__", "")
            for kernel in reached_kernels(module, name) if module and module.startswith("effbench.") else ():
                users.setdefault(kernel, set()).add(f"{method.task}:{method.name}")
    return {kernel: sorted(found) for kernel, found in users.items()}


# --------------------------------------------------------------------------- compiling


def _tool(name: str) -> str:
    try:
        from triton import knobs
    except ImportError:
        import triton

        raise KernelCheckError(f"effbench kernels needs a Triton with triton.knobs (3.4 or newer); this is "
                               f"{triton.__version__}") from None
    path = getattr(knobs.nvidia, name).path
    if not path or not Path(path).exists():
        raise KernelCheckError(f"{name} not found (Triton's wheel ships it in triton/backends/nvidia/bin)")
    return path


@contextlib.contextmanager
def _fresh_cache() -> Iterator[None]:
    """A throw-away Triton cache: every build compiles for real (and the user's cache stays as it was)."""
    from triton import knobs

    with tempfile.TemporaryDirectory(prefix="effbench-kernels-") as tmp:
        before = knobs.cache.dir
        knobs.cache.dir = tmp
        try:
            yield
        finally:
            knobs.cache.dir = before


@contextlib.contextmanager
def _ptxas_log() -> Iterator[io.StringIO]:
    """Triton prints ptxas's -v log (and, on failure, the whole PTX) to stdout: caught here, never shown."""
    from triton import knobs

    out = io.StringIO()
    before = getattr(knobs.nvidia, "dump_ptxas_log", None)
    if before is not None:
        knobs.nvidia.dump_ptxas_log = True
    try:
        with contextlib.redirect_stdout(out):
            yield out
    finally:
        if before is not None:
            knobs.nvidia.dump_ptxas_log = before


def resource_usage(cubin: bytes, name: str) -> dict[str, int]:
    """REG, STACK, SHARED and LOCAL of function ``name`` in a cubin, from cuobjdump."""
    with tempfile.TemporaryDirectory(prefix="effbench-cubin-") as tmp:
        path = Path(tmp) / f"{name}.cubin"
        path.write_bytes(cubin)
        proc = subprocess.run([_tool("cuobjdump"), "--dump-resource-usage", str(path)], capture_output=True,
                              text=True, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"cuobjdump failed: {(proc.stderr or proc.stdout).strip()}")
    text = proc.stdout
    start = text.find(f"Function {name}:")
    found = _RESOURCES.search(text, start if start >= 0 else 0)
    if found is None:
        raise RuntimeError(f"cuobjdump printed no resource usage for {name}: {text.strip()[:300]}")
    reg, stack, shared, local = (int(g) for g in found.groups())
    return {"registers": reg, "stack": stack, "shared": shared, "local": local}


def _message(exc: BaseException) -> str:
    """The compiler's own words: Triton's errors carry the source line; ptxas's carry its log."""
    text = str(exc).strip() or type(exc).__name__
    return f"{type(exc).__name__}: {text}"


def build(spec: CompileSpec, arch: str, methods: str = "", git_commit: str | None = None) -> KernelBuild:
    """Compile ``spec`` for ``arch`` and measure it; a compiler error or a shared overflow is a record too."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    if arch not in ARCHES:
        raise KernelCheckError(f"unknown arch {arch!r}; valid: {', '.join(ARCHES)}")
    fn = unwrap(spec.fn)
    if not isinstance(fn, _jit_types()[0]):
        raise KernelCheckError("the kernels were imported under TRITON_INTERPRET=1, which replaces Triton's compiler "
                               "with its CPU interpreter: run `effbench kernels` without it")
    limit = SHARED_LIMIT[arch]
    record: dict[str, Any] = {
        "kernel": spec.kernel, "config": spec.config, "arch": arch, "triton_version": triton.__version__,
        "status": "error", "registers": None, "spills": None, "spill_stores": None, "spill_loads": None,
        "shared_bytes": None, "shared_limit": limit, "compile_s": None, "message": "", "methods": methods,
        "code_hash": "", "git_commit": git_commit,
        "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    start = time.perf_counter()
    try:
        record["code_hash"] = str(fn.cache_key)[:16]
        source = ASTSource(fn, spec.signature(), spec.constants(), spec.attrs())
        with _ptxas_log() as log, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Triton's notices about its own defaults, once per process
            compiled = triton.compile(source, target=GPUTarget("cuda", ARCHES[arch], 32),
                                      options={"num_warps": spec.num_warps, "num_stages": spec.num_stages})
        record["compile_s"] = round(time.perf_counter() - start, 3)
        usage = resource_usage(compiled.asm["cubin"], compiled.metadata.name)
    except SpecError as exc:
        record["message"] = f"bad spec: {exc}"
        return KernelBuild(**record)
    except Exception as exc:  # noqa: BLE001 - every compiler failure is a result, with its message
        record["compile_s"] = round(time.perf_counter() - start, 3)
        record["message"] = _message(exc)
        return KernelBuild(**record)
    spills = _SPILLS.search(log.getvalue())
    notes = sorted({m.group(0).strip() for m in _NOTE.finditer(log.getvalue())})
    shared = int(compiled.metadata.shared) + sum(int(n) for n in _STATIC_SHARED.findall(compiled.asm["ptx"]))
    record.update(
        registers=usage["registers"], spills=usage["stack"] + usage["local"], shared_bytes=shared,
        spill_stores=int(spills.group(1)) if spills else None, spill_loads=int(spills.group(2)) if spills else None,
        status="ok", message="; ".join(notes),
    )
    budget = spec.spill_budget.get(arch)
    if shared > limit:
        record["status"] = "overflow"
        record["message"] = f"shared memory {shared} B per block > the {arch} limit of {limit} B"
    elif budget is not None and record["spills"] > budget:
        record["status"] = "over_budget"
        record["message"] = (f"spills {record['spills']} B > the {budget} B its compile spec allows on {arch} (the "
                             "kernel's documented budget)")
    return KernelBuild(**record)


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def check(specs: list[CompileSpec], arches: Iterable[str], users: dict[str, list[str]] | None = None,
          on_build: Callable[[int, int, KernelBuild], None] | None = None) -> list[KernelBuild]:
    """Build every spec for every arch (in a fresh Triton cache); ``on_build(i, total, record)`` after each."""
    arches = list(arches)
    unknown = [a for a in arches if a not in ARCHES]
    if unknown:
        raise KernelCheckError(f"unknown arch {', '.join(unknown)}; valid: {', '.join(ARCHES)}")
    _tool("cuobjdump")
    if os.environ.get("TRITON_INTERPRET") == "1":
        raise KernelCheckError("TRITON_INTERPRET=1 replaces Triton's compiler with its CPU interpreter: run "
                               "`effbench kernels` without it")
    commit = git_commit()
    users = users or {}
    jobs = [(spec, arch) for spec in specs for arch in arches]
    builds = []
    with _fresh_cache():
        for i, (spec, arch) in enumerate(jobs, 1):
            methods = ",".join(users.get(spec.kernel, []))
            record = build(spec, arch, methods, commit)
            builds.append(record)
            if on_build is not None:
                on_build(i, len(jobs), record)
    return builds
