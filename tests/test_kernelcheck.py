"""effbench kernels: every Triton kernel compiled for sm_80 and sm_90 by Triton's own compiler and ptxas (no GPU,
no mocks), and the specs that say what to compile checked against the gpu grid they stand for."""

import ast
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("triton")

from click.testing import CliRunner  # noqa: E402

from effbench import kernelcheck  # noqa: E402
from effbench.cli import cli  # noqa: E402
from effbench.kernels._spec import KERNEL_SUFFIX, CompileSpec, SpecError  # noqa: E402
from effbench.rows import KernelBuild, MethodInfo  # noqa: E402
from effbench.store import Store  # noqa: E402
from tests.conftest import PLUGINS  # noqa: E402

KERNELS = Path(kernelcheck.__file__).parent / "kernels"


@pytest.fixture(scope="module")
def modules():
    return kernelcheck.kernel_modules()


@pytest.fixture(scope="module")
def specs(modules):
    return kernelcheck.all_specs(modules)


@pytest.fixture(scope="module")
def registry():
    from effbench.registry import discover

    return discover(())


def by_kernel(specs, kernel):
    return [s for s in specs if s.kernel == kernel]


# --------------------------------------------------------------------------- coverage (no compiling)


def test_every_launched_kernel_has_compile_specs(modules, specs):
    launched = kernelcheck.launched_kernels(modules)
    assert len(launched) >= 20 and "block_sparse_attention._fwd_kernel" in launched
    assert kernelcheck.uncovered(modules, specs) == []
    assert {s.kernel for s in specs} <= set(launched)  # no spec for a helper
    for spec in specs:
        signature = spec.signature()  # raises SpecError on a parameter the kernel lacks or a missing constexpr
        assert set(signature) == set(spec.fn.arg_names)
        assert all(t == "constexpr" or t.startswith("*") or t in ("i32", "i64", "fp32") for t in signature.values())
    assert len({(s.kernel, s.config) for s in specs}) == len(specs)


def test_launches_follow_the_naming_convention():
    """``fn[grid](...)`` launches only ``*_kernel`` functions, so the scan above finds every launched kernel."""
    for path in KERNELS.glob("*.py"):
        tree = ast.parse(path.read_text())
        jitted = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)
                  and any("jit" in ast.unparse(d) or "autotune" in ast.unparse(d) for d in node.decorator_list)}
        launched = {node.func.value.id for node in ast.walk(tree)
                    if isinstance(node, ast.Call) and isinstance(node.func, ast.Subscript)
                    and isinstance(node.func.value, ast.Name) and node.func.value.id in jitted}
        bad = sorted(name for name in launched if not name.endswith(KERNEL_SUFFIX))
        assert not bad, f"{path.name} launches {bad}: name launched kernels *{KERNEL_SUFFIX}"


def test_a_spec_naming_a_missing_parameter_is_refused(specs):
    spec = by_kernel(specs, "optimizer_step._lion_step_kernel")[0]
    with pytest.raises(SpecError, match="has no parameter"):
        CompileSpec(spec.fn, "float32", {"BLOCK": 1024}, floats=("learning_rate",)).signature()
    with pytest.raises(SpecError, match="no value for constexpr"):
        CompileSpec(spec.fn, "float32", {}).signature()


def test_autotune_configs_become_one_spec_each():
    import triton
    import triton.language as tl

    @triton.autotune(configs=[triton.Config({"BLOCK": 256}, num_warps=2, num_stages=1),
                              triton.Config({"BLOCK": 1024}, num_warps=8, num_stages=4)], key=["n"])
    @triton.jit
    def _scale_kernel(x_ptr, n, scale, BLOCK: tl.constexpr):
        offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        tl.store(x_ptr + offs, tl.load(x_ptr + offs, mask=offs < n) * scale, mask=offs < n)

    expanded = kernelcheck.expand(CompileSpec(_scale_kernel, "float32", {}, floats=("scale",)))
    assert [s.config for s in expanded] == ["dtype=float32 BLOCK=256 num_warps=2 num_stages=1",
                                            "dtype=float32 BLOCK=1024 num_warps=8 num_stages=4"]
    assert all(s.kernel.endswith("._scale_kernel") and s.signature()["scale"] == "fp32" for s in expanded)


def test_every_kernel_is_launched_by_a_method_at_its_gpu_dtypes(modules, specs, registry):
    users = kernelcheck.kernel_users(registry.methods.values())
    assert "loss/contrastive:infonce" in users["linear_cross_entropy._linear_ce_fwd_kernel"]  # row_logsumexp
    assert users["optimizer_step._adamw_step_kernel"] == ["optimizer/step:adamw"]  # diffgrad imports, never calls
    for kernel in kernelcheck.launched_kernels(modules):
        assert users.get(kernel), f"no method's Triton impl launches {kernel}"
        dtypes = {s.dtype for s in by_kernel(specs, kernel)}
        if dtypes == {None}:
            continue  # its data never follow the case's dtype (int64 tokens)
        for user in users[kernel]:
            task = registry.tasks[user.split(":")[0]]
            assert set(task.dtypes["gpu"]) <= dtypes, (kernel, user)


def test_attention_specs_cover_every_gpu_launch(specs):
    from effbench.kernels.block_sparse_attention import HEAD_DIMS, default_block
    from effbench.tasks.masked_attention import task

    launches = set()
    for point in task.grids["gpu"]:
        block = point.get("block")
        if block is None or block < 16 or block & (block - 1):  # as methods/attention/_masked.triton_attention
            block = default_block(point["N"])
        launches.add((point["d"], block))
        padded = [d for d in HEAD_DIMS if d >= point["d"] + point.get("bias_rank", 0)]  # FlashBias's padding
        if padded and "bias_rank" in point:
            launches.add((padded[0], block))
        assert point["N"] % 16 == 0  # the specs' divisible=("N",)
    for kernel in ("_fwd_kernel", "_bwd_dkdv_kernel", "_bwd_dq_kernel", "_delta_kernel"):
        have = {(s.constexprs["D"], s.constexprs["BLOCK"])
                for s in by_kernel(specs, f"block_sparse_attention.{kernel}")}
        assert launches <= have, (kernel, launches - have)


def test_other_specs_hold_on_the_gpu_grid():
    """The block sizes the launchers derive, and the sizes the specs call multiples of 16, at every gpu point."""
    from effbench.kernels import cross_entropy, optimizer_step_adamp, sample_scores
    from effbench.tasks import contrastive, linear_cross_entropy, optimizer_step, scoring, sigmoid_pairwise

    for point in optimizer_step.task.grids["gpu"]:
        for shape in optimizer_step.transformer_shapes(point["d_model"], point["layers"], point["vocab"]):
            assert math.prod(shape) % 16 == 0, shape  # divisible=("n",)
            if len(shape) == 2:
                assert shape[0] % 16 == 0 and shape[1] % 16 == 0
                assert optimizer_step_adamp._tile_shape(shape[0], shape[1]) in optimizer_step_adamp.GPU_TILES
    for point in linear_cross_entropy.task.grids["gpu"]:
        assert all(point[k] % 16 == 0 for k in ("N", "D", "V")), point
        assert point["V"] >= cross_entropy.BLOCK_V
    for point in [*contrastive.task.grids["gpu"], *sigmoid_pairwise.task.grids["gpu"]]:
        assert point["b"] % 16 == 0 and point["d"] % 16 == 0, point
    for point in scoring.task.grids["gpu"]:
        if point["inputs"] == "head":
            assert all(point[k] % 16 == 0 for k in ("N", "H", "C")), point
            for config in [*sample_scores.FUSED_CONFIGS, *sample_scores.FROM_ROWS_CONFIGS]:
                assert point["C"] >= config.kwargs["BLOCK_C"]
        else:
            assert point["T"] >= sample_scores.BLOCK_T and point["T"] % 16 == 0 and point["buckets"] % 16 == 0
    assert set(scoring.task.dtypes["gpu"]) == set(sample_scores.GPU_DTYPES)


# --------------------------------------------------------------------------- real compilation
# The tests run under TRITON_INTERPRET=1 (conftest), where @triton.jit makes interpreted functions: the compiling
# tests run `effbench kernels` in a process of its own, without it, as a user does.


def effbench_kernels(*args: str, planted: bool = False) -> subprocess.CompletedProcess:
    """``effbench kernels ARGS`` in a fresh process; ``planted``: on tests/plugins/planted_kernels.py's kernels
    instead of effbench's (the discovery is redirected, the compiler is the real one)."""
    code = "from effbench.cli import main\nmain()\n"
    if planted:
        code = (f"import sys\nsys.path.insert(0, {str(PLUGINS)!r})\nimport planted_kernels\n"
                "from effbench import kernelcheck\nkernelcheck.kernel_modules = lambda: [planted_kernels]\n" + code)
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    return subprocess.run([sys.executable, "-c", code, "kernels", *args], capture_output=True, text=True, env=env,
                          timeout=300)


def test_cli_compiles_a_small_kernel_for_sm_80_and_sm_90(tmp_path):
    from effbench.kernels import optimizer_step

    db = tmp_path / "db.duckdb"
    proc = effbench_kernels("--kernel", "optimizer_step._lion_step_kernel", "--json", "--db", str(db))
    assert proc.returncode == 0, proc.stderr
    builds = json.loads(proc.stdout)
    assert {(b["arch"], b["config"].split()[0]) for b in builds} == {
        (arch, f"dtype={dtype}") for arch in ("sm_80", "sm_90") for dtype in ("float32", "bfloat16")}
    for b in builds:
        assert {"kernel", "arch", "config", "registers", "spills", "shared_bytes"} <= set(b)
        assert b["kernel"] == "optimizer_step._lion_step_kernel" and b["status"] == "ok"
        assert 0 < b["registers"] <= 255 and b["spills"] == 0 and b["compile_s"] > 0
        assert 0 <= b["shared_bytes"] <= b["shared_limit"] == kernelcheck.SHARED_LIMIT[b["arch"]]
        assert b["methods"] == "optimizer/step:lion" and b["triton_version"]
    # each of its autotune configs: 2 archs x 2 dtypes x 3 configs
    assert {b["config"].split(" ", 1)[1] for b in builds} == {
        f"BLOCK={c.kwargs['BLOCK']} num_warps={c.num_warps} num_stages={c.num_stages}"
        for c in optimizer_step.ELEMENTWISE_CONFIGS}
    assert "[12/12] ok" in proc.stderr and "Traceback" not in proc.stderr
    with Store(db, read_only=True) as store:
        stored = store.query("SELECT kernel, arch, registers FROM kernel_builds")
    assert stored.height == 12 and set(stored["registers"]) == {b["registers"] for b in builds}


def test_a_build_that_cannot_run_exits_1_naming_kernel_config_and_message(tmp_path):
    proc = effbench_kernels("--db", str(tmp_path / "db.duckdb"), planted=True)
    assert proc.returncode == 1, proc.stderr
    err = proc.stderr
    for arch in ("sm_80", "sm_90"):
        assert (f"FAILED error: planted_kernels._narrow_dot_kernel [dtype=float16 K=8 num_warps=4 num_stages=3] "
                f"on {arch}") in err
        assert (f"FAILED overflow: planted_kernels._deep_pipeline_kernel [dtype=float16 BLOCK=128 num_warps=8 "
                f"num_stages=6] on {arch}") in err
        assert f"> the {arch} limit of {kernelcheck.SHARED_LIMIT[arch]} B" in err
        assert (f"FAILED over_budget: planted_kernels._spilling_kernel [dtype=float32 BLOCK=128 num_warps=1 "
                f"num_stages=3] on {arch}") in err
        assert f"> the 0 B its compile spec allows on {arch}" in err
    assert "K >= 16" in err and "Traceback" not in err  # the compiler's own message, no crash
    with Store(tmp_path / "db.duckdb", read_only=True) as store:  # failures are stored too
        statuses = sorted(store.query("SELECT DISTINCT status FROM kernel_builds")["status"])
    assert statuses == ["error", "over_budget", "overflow"]


def test_bad_arguments_are_one_line():
    for args, needle in ((["--kernel", "flash"], "unknown kernel 'flash'"),
                         (["--arch", "sm_75"], "unknown arch sm_75")):
        result = CliRunner().invoke(cli, ["kernels", "--no-store", *args])
        assert result.exit_code != 0
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("Error: ") and needle in lines[0], result.output
    result = CliRunner().invoke(cli, ["kernels", "--no-store", "--kernel", "optimizer_step._lion_step_kernel"])
    assert result.exit_code != 0 and "TRITON_INTERPRET=1" in result.output  # interpreted kernels cannot compile


# --------------------------------------------------------------------------- store and site


def _build(registers: int, built_at: str, **changes) -> KernelBuild:
    fields = dict(kernel="cross_entropy._cross_entropy_fwd_bwd_kernel", config="dtype=bfloat16 BLOCK_V=1024 "
                  "num_warps=4 num_stages=3", arch="sm_90", triton_version="3.9.0", status="ok", registers=registers,
                  spills=0, spill_stores=0, spill_loads=0, shared_bytes=16, shared_limit=232448, compile_s=0.3,
                  message="", methods="loss/linear_cross_entropy:linear_cross_entropy", code_hash="abc",
                  git_commit=None, built_at=built_at)
    return KernelBuild(**{**fields, **changes})


def test_the_store_keeps_the_newest_build_and_the_method_page_shows_it(tmp_path):
    from effbench import analysis
    from effbench.sitegen import build, method_page

    db = tmp_path / "db.duckdb"
    with Store(db) as store:
        store.insert([_build(30, "2026-12-06T10:00:00+00:00")])
        store.insert([_build(40, "2026-12-06T12:00:00+00:00")])
        store.insert([_build(35, "2026-12-06T11:00:00+00:00")])  # an older DB merged later: it does not win
        store.insert([_build(99, "2026-12-06T10:00:00+00:00", arch="sm_80", shared_limit=166912, methods="")])
        store.insert([MethodInfo("loss", "loss/linear_cross_entropy", "linear_cross_entropy", "reference,triton_ce",
                                 None, None, "summary")])
    builds = analysis.kernel_builds(db)
    assert builds.height == 2 and builds.filter(builds["arch"] == "sm_90")["registers"].to_list() == [40]
    mine = analysis.kernel_builds(db, "loss/linear_cross_entropy:linear_cross_entropy")
    assert mine["arch"].to_list() == ["sm_90"]
    merged = tmp_path / "merged.duckdb"  # what the workflow's merge of the shards' DBs does
    with Store(merged) as store:
        store.insert([_build(50, "2026-12-07T00:00:00+00:00")])
        store.ingest(db)
        assert store.query("SELECT registers FROM kernel_builds WHERE arch = 'sm_90'")["registers"].to_list() == [50]
        assert store.query("SELECT count(*) AS n FROM kernel_builds")["n"][0] == 2
    build(db, tmp_path / "site")
    page = (tmp_path / "site" / method_page("loss/linear_cross_entropy", "linear_cross_entropy")).read_text()
    assert "Kernel builds" in page and "cross_entropy._cross_entropy_fwd_bwd_kernel" in page
    assert "<td>40</td>" in page and "<td>99</td>" not in page


def test_tile_kernels_use_64_bit_offsets_and_relaxed_reductions(tmp_path):
    """A row index times a stride passes 2^31 once V x D does: the shared logit tiles must do their offset
    arithmetic in int64 (read at the TTIR). The backward tiles' gradient sums need no ordering: their atomics
    must be relaxed reductions (PTX ``red...relaxed``), never acquire-release ``atom`` (Triton's default, a
    round trip per add). Real compilation of one config of each kernel that uses them, for sm_90."""
    code = """
import re, sys, triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from effbench.kernelcheck import expand
from effbench.kernels import contrastive, linear_cross_entropy, sigmoid_pairwise
seen = set()
for module in (linear_cross_entropy, contrastive, sigmoid_pairwise):
    for spec in [one for spec in module.compile_specs() for one in expand(spec)]:
        if spec.kernel in seen:
            continue
        seen.add(spec.kernel)
        source = ASTSource(spec.fn, spec.signature(), spec.constants(), spec.attrs())
        asm = triton.compile(source, target=GPUTarget("cuda", 90, 32),
                             options={"num_warps": spec.num_warps, "num_stages": spec.num_stages}).asm
        wide = [line for line in asm["ttir"].splitlines() if "arith.muli" in line and "xi64>" in line]
        atomics = sorted(set(re.findall(r"\\b((?:atom|red)\\.[\\w.]+)", asm["ptx"])))
        print(spec.kernel, len(wide), ",".join(atomics) or "-")
"""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600,
                            cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    found = {kernel: (int(wide), atomics) for kernel, wide, atomics in map(str.split, result.stdout.splitlines())}
    assert len(found) >= 5 and all(wide >= 2 for wide, _ in found.values()), found  # row and column offsets
    backward = {k: a for k, (_, a) in found.items() if "_bwd_" in k}
    assert len(backward) == 3, found
    for kernel, atomics in backward.items():
        assert atomics != "-" and all(a.startswith("red.") and ".relaxed." in a for a in atomics.split(",")), \
            (kernel, atomics)


def test_block_sparse_attention_declares_its_spill_budget_on_sm_90(specs):
    """The spills the compile check found are fixed where they can be: at every config the autotuner may pick
    for the gpu grid on sm_90, the forward and dQ kernels spill nothing, block 64 nothing at all, and block 128's
    dK/dV (two fp32 accumulators of BLOCK x d) at most 376 bytes (``_tune_space``'s docstring has the numbers
    and the alternatives tried). The specs declare it and `effbench kernels` (CI's `make kernels`) fails a build
    past it (``over_budget``, the planted test above); sm_80 is held to none."""
    attention = [s for s in specs if s.kernel.startswith("block_sparse_attention.") and "_delta" not in s.kernel]
    # 3 kernels x (block 64: 4 configs at head dim 64, 2 at 128; block 128: 1 at each), bfloat16
    assert len(attention) == 24
    for spec in attention:
        large_dkdv = spec.kernel.endswith("_bwd_dkdv_kernel") and spec.constexprs.get("BLOCK") == 128
        assert spec.spill_budget == {"sm_90": 376 if large_dkdv else 0}, (spec.kernel, spec.config)


def test_autotuning_leaves_in_place_and_accumulated_tensors_as_one_call_would():
    """Autotuning launches a kernel once per config on the caller's tensors: every pointer a kernel both loads
    and stores (an in-place update) must be restored after each trial, and every buffer it accumulates into with
    atomics zeroed before each, or the tuned call returns several steps' or several sums' worth."""
    import inspect
    import re

    from effbench.kernels import (
        contrastive,
        cross_entropy,
        linear_cross_entropy,
        optimizer_step,
        optimizer_step_adamp,
        optimizer_step_diffgrad,
        optimizer_step_exadam,
        optimizer_step_trust,
        sample_scores,
        sigmoid_pairwise,
    )
    from effbench.kernels._spec import python_function

    modules = (optimizer_step, optimizer_step_diffgrad, optimizer_step_exadam, optimizer_step_trust,
               optimizer_step_adamp, linear_cross_entropy, cross_entropy, contrastive, sigmoid_pairwise, sample_scores)
    tuned = [obj for module in modules
             for name, obj in vars(module).items() if name.endswith(KERNEL_SUFFIX) and hasattr(obj, "configs")]
    assert len(tuned) == 16
    for kernel in tuned:
        source = inspect.getsource(python_function(kernel))
        aliases = dict(re.findall(r"(\w+) = (\w+_ptr) \+", source))  # row_ptr = logits_ptr + row * stride

        # tl.load / tl.store, and the element-wise steps' shared load_f32 / store_as
        loaded, stored = ({aliases.get(name, name)
                           for name in re.findall(rf"(?:tl\.{op}|{helper})\((\w+_ptr)\b", source)}
                          for op, helper in (("load", "load_f32"), ("store", "store_as")))
        updated = loaded & stored
        assert updated <= set(kernel.restore_value), (python_function(kernel).__name__, updated)
        if python_function(kernel).__name__.endswith("_step_kernel"):  # a step updates its parameters in place
            assert "p_ptr" in updated, python_function(kernel).__name__
    assert set(cross_entropy._cross_entropy_fwd_bwd_kernel.restore_value) == {"logits_ptr"}
    # the tile kernels' gradients are sums of atomics, and their per-tile partial sums have more slots than a
    # larger tile writes: all zeroed before each trial
    assert set(contrastive._contrastive_bwd_kernel.reset_to_zero) == {"da_ptr", "dt_ptr"}
    assert sample_scores._ngram_counts_kernel.reset_to_zero == ["counts_ptr"]
    assert set(sigmoid_pairwise._sigmoid_fwd_kernel.reset_to_zero) == {"partial_ptr"}
    assert set(sigmoid_pairwise._sigmoid_bwd_kernel.reset_to_zero) == {
        "da_ptr", "dt_ptr", "dtemp_partial_ptr", "dbias_partial_ptr"}
    for norms in (optimizer_step_trust._lamb_moments_kernel, optimizer_step_trust._sumsq_kernel):
        assert norms.reset_to_zero == ["partial_ptr"]
    assert set(linear_cross_entropy._linear_ce_bwd_kernel.reset_to_zero) == {"dx_ptr", "dw_ptr"}  # atomics
