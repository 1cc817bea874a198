"""Provenance keys (#18, item 7): ``code_hash`` (and asv's ``version``) cover a method's whole import closure,
kernels and harness included; results are keyed by the hardware they ran on, and nothing divides or compares
numbers of two machines unless asked."""

import dataclasses
import json
import sys
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from effbench.analysis import HardwareMismatch, changes, history_changes, open_results, speedups, time_history
from effbench.cli import cli
from effbench.closure import PACKAGE_DIR, source_label
from effbench.registry import Registry, UsageError, discover
from effbench.rows import Result, Run
from effbench.store import Store

# --------------------------------------------------------------------------- code_hash: the import closure

PLUGIN = '''
import torch
import torch.nn.functional as F

from effbench import Method
from prov_util import ONE  # a sibling module, imported when the plugin loads

method = Method(task="loss/linear_cross_entropy", name="prov_method", summary="Provenance test double.")


@method.impl("reference")
def reference(x, w, y, ignore_index=-100):
    from prov_kernel import scale  # imported lazily, as effbench's methods import their kernels

    logits = (x @ w.T).to(torch.promote_types(x.dtype, torch.float32))
    return scale(F.cross_entropy(logits, y, ignore_index=ignore_index)) * ONE
'''


@pytest.fixture
def plugin_dir(tmp_path, monkeypatch):
    """A plugin beside its own "kernel" and helper modules, plus a file nothing imports."""
    (tmp_path / "prov_plugin.py").write_text(PLUGIN)
    (tmp_path / "prov_kernel.py").write_text("def scale(x):\n    return x\n")
    (tmp_path / "prov_util.py").write_text("ONE = 1.0\n")
    (tmp_path / "unrelated.py").write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))  # how a user makes the plugin's siblings importable
    for name in ("prov_kernel", "prov_util"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    return tmp_path


def _fresh(registry: Registry) -> Registry:
    """The same tasks and methods with empty provenance caches: the sources are read again."""
    return Registry(tasks=registry.tasks, methods=registry.methods, plugins=registry.plugins)


def test_code_hash_changes_with_a_kernel_the_method_imports(plugin_dir):
    registry = discover([plugin_dir / "prov_plugin.py"])
    method = registry.methods[("loss/linear_cross_entropy", "prov_method")]
    labels = [source_label(p, [plugin_dir]) for p in registry.closure(method)]
    assert {"prov_plugin.py", "prov_kernel.py", "prov_util.py"} <= set(labels)
    assert "unrelated.py" not in labels
    assert {"effbench/tasks/linear_cross_entropy.py", "effbench/run/case.py", "effbench/measure.py",
            "effbench/checks.py"} <= set(labels)
    before = registry.code_hash(method)
    assert len(before) == 16 and int(before, 16) >= 0

    (plugin_dir / "unrelated.py").write_text("X = 2\n")
    assert _fresh(registry).code_hash(method) == before  # a file nothing imports changes nothing

    (plugin_dir / "prov_kernel.py").write_text("def scale(x):\n    return x * 1.0\n")
    after_kernel = _fresh(registry).code_hash(method)
    assert after_kernel != before  # only the (lazily imported) kernel changed

    (plugin_dir / "prov_util.py").write_text("ONE = 1\n")
    assert _fresh(registry).code_hash(method) not in (before, after_kernel)
    # one registry is one snapshot: every row of a run gets the same hash
    assert registry.code_hash(method) == before


def test_asv_version_follows_the_closure(plugin_dir):
    registry = discover([plugin_dir / "prov_plugin.py"])
    before = registry.suite_hash("loss/linear_cross_entropy")
    (plugin_dir / "prov_kernel.py").write_text("def scale(x):\n    return x + 0.0\n")
    assert _fresh(registry).suite_hash("loss/linear_cross_entropy") != before


def test_builtin_closure_has_its_kernels_and_the_harness_only(registry):
    method = registry.methods[("loss/linear_cross_entropy", "linear_cross_entropy")]
    labels = [source_label(p) for p in registry.closure(method)]
    assert labels == sorted(labels)
    expected = {
        "effbench/methods/losses/linear_cross_entropy.py",  # the method
        "effbench/kernels/linear_cross_entropy.py",  # its Triton kernels (imported inside the impls)
        "effbench/kernels/cross_entropy.py",
        "effbench/kernels/_common.py",  # and what they import
        "effbench/kernels/__init__.py",
        "effbench/tasks/linear_cross_entropy.py",  # the task
        "effbench/tasks/_tokens.py",  # imported by the task (the goldfish option)
        "effbench/run/case.py", "effbench/run/worker.py", "effbench/run/session.py", "effbench/measure.py",
        "effbench/checks.py", "effbench/kernels/_tune.py",
        "effbench/rows.py", "effbench/tasks/__init__.py", "effbench/registry.py",  # the harness
    }
    assert expected <= set(labels), expected - set(labels)
    # what never changes a number stays out: editing the CLI or the site keeps results current
    assert not {"effbench/cli/running.py", "effbench/store.py", "effbench/analysis/views.py",
                "effbench/analysis/changes.py", "effbench/sitegen.py",
                "effbench/asv_suites.py"} & set(labels)
    assert all((PACKAGE_DIR.parent / label).is_file() for label in labels)
    # an attention pattern's LM form: the pattern's file and the shared LM plumbing
    lm = [source_label(p) for p in registry.closure(registry.methods[("attention/lm", "sliding_window")])]
    assert {"effbench/methods/attention/sliding_window.py", "effbench/methods/attention/_lm.py",
            "effbench/tasks/attention_lm.py", "effbench/train.py"} <= set(lm)


def test_every_method_hashes_differently(registry):
    fresh = _fresh(registry)
    hashes = {key: fresh.code_hash(m) for key, m in fresh.methods.items()}
    sources = {(m.source_file, m.task) for m in fresh.methods.values()}
    assert len(set(hashes.values())) == len(sources)  # one hash per distinct (method file, task file) pair
    with pytest.raises(UsageError):
        registry.suite_hash("loss/nope")


def test_asv_suite_version_is_the_suite_hash(registry, monkeypatch):
    from effbench import asv_suites

    monkeypatch.delenv("EFFBENCH_SHARD", raising=False)
    suite = asv_suites.make_suite("loss/linear_cross_entropy")
    assert suite.version == registry.suite_hash("loss/linear_cross_entropy")


# --------------------------------------------------------------------------- keyed by hardware

TASK = "loss/tiny"


def _run(run_id: str, day: int, *, machine: str = "m1", device: str = "cpu", gpu: str | None = None,
         cpu: str | None = "Intel Xeon X", grid: str = "cpu") -> Run:
    return Run(run_id, f"2026-12-{day:02d}T00:00:00+00:00", None, None, machine, device, gpu, cpu, 2, "3.11", None,
               None, None, "0", grid, "effbench", "effbench run")


def _kernel_rows(run: Run, impl: str, time_ms: float) -> list[Result]:
    return [Result(run.run_id, "loss", TASK, "m", impl, "N=1", '{"N": 1}', "float32", run.device, 0, metric, value,
                   "", "ok", "", "", "h")
            for metric, value in (("time_ms", time_ms), ("peak_mem_bytes", 1e6), ("rel_error", 1e-7))]


def _db(tmp_path: Path, records: list) -> Path:
    db = tmp_path / "db.duckdb"
    with Store(db) as store:
        store.insert(records)
    return db


def test_speedups_never_divide_numbers_of_two_machines(tmp_path):
    # machine A ran the reference and the fast impl; the newer machine B ran the fast impl only
    a = _run("a", 1, machine="ma", cpu="Intel Xeon A")
    b = _run("b", 2, machine="mb", cpu="AMD EPYC B")
    db = _db(tmp_path, [a, b, *_kernel_rows(a, "reference", 10.0), *_kernel_rows(a, "fast", 5.0),
                        *_kernel_rows(b, "fast", 1.0)])
    frame = open_results(db)
    # both machines' latest results stay (before, B's newer row hid A's)
    fast = frame.filter((frame["impl"] == "fast") & (frame["metric"] == "time_ms"))
    assert sorted(fast["hardware"]) == ["AMD EPYC B", "Intel Xeon A"]
    ratios = {(r["hardware"], r["impl"]): r["speedup"] for r in speedups(frame).iter_rows(named=True)}
    assert ratios[("Intel Xeon A", "fast")] == pytest.approx(2.0)  # 10 / 5, one machine
    assert ratios[("AMD EPYC B", "fast")] is None  # no reference on B: no number, never 10 / 1
    assert ratios[("Intel Xeon A", "reference")] == pytest.approx(1.0)
    assert "hardware" in open_results(db, latest=False).columns


def test_curves_keep_each_machine_s_and_each_grid_s_own_runs(tmp_path):
    from effbench.analysis import curves
    from effbench.rows import CurvePoint

    a = _run("a", 1, cpu="Intel Xeon A")
    b = _run("b", 2, cpu="AMD EPYC B", machine="m2")  # newer, another CPU model
    a_smoke = _run("a-smoke", 3, cpu="Intel Xeon A", grid="smoke")  # newest, A's machine, a check

    def curve(run: Run, metric: float) -> list:  # a curve and the case's final metric
        return [*(CurvePoint(run.run_id, TASK, "m", "reference", "N=1", "float32", "cpu", 0, step, 0.1 * step, 1.0,
                             1.0, metric) for step in (0, 10)),
                Result(run.run_id, "loss", TASK, "m", "reference", "N=1", '{"N": 1}', "float32", "cpu", 0,
                       "final_metric", metric, "", "ok", "", "", "h")]

    db = _db(tmp_path, [a, b, a_smoke, *curve(a, 0.5), *curve(b, 0.6), *curve(a_smoke, 0.7)])
    newest = curves(db, TASK)
    assert sorted(set(newest["run_id"])) == ["a-smoke", "b"]  # B's newer run hides none of A's machine's
    rows = pl.DataFrame({"run_id": ["a"], "task": [TASK], "method": ["m"], "impl": ["reference"],
                         "point_key": ["N=1"], "dtype": ["float32"], "device": ["cpu"], "seed": [0]})
    mine = curves(db, TASK, rows=rows)  # the cpu grid's rows of A: A's cpu run's curve, not the newer smoke one
    assert set(mine["run_id"]) == {"a"} and mine["eval_metric"].to_list() == [0.5, 0.5]


def test_hardware_is_the_gpu_model_for_cuda_and_the_machine_without_a_model(tmp_path):
    h100 = _run("h100", 1, machine="box1", device="cuda", gpu="NVIDIA H100 80GB HBM3", cpu="Intel Xeon A")
    h100b = _run("h100b", 2, machine="box2", device="cuda", gpu="NVIDIA H100 80GB HBM3", cpu="AMD EPYC B")
    a100 = _run("a100", 3, machine="box3", device="cuda", gpu="NVIDIA A100-SXM4-40GB")
    old = _run("old", 4, machine="legacy", cpu=None)  # a run that recorded no model
    bare = _run("bare", 5, machine="", cpu="")
    db = _db(tmp_path, [h100, h100b, a100, old, bare, *_kernel_rows(h100, "reference", 2.0),
                        *_kernel_rows(h100b, "reference", 2.2), *_kernel_rows(a100, "reference", 4.0),
                        *_kernel_rows(old, "reference", 9.0), *_kernel_rows(bare, "reference", 8.0)])
    rows = open_results(db).filter(pl.col("metric") == "time_ms")
    by_hardware = {r["hardware"]: r["run_id"] for r in rows.iter_rows(named=True)}
    # the same GPU model on two machines is one hardware (newest wins); the host CPU does not matter for cuda
    assert by_hardware == {"NVIDIA H100 80GB HBM3": "h100b", "NVIDIA A100-SXM4-40GB": "a100", "legacy": "old",
                           "unknown": "bare"}


def test_compare_refuses_two_hardwares_unless_asked(tmp_path):
    a = _run("a", 1, cpu="Intel Xeon A")
    a2 = _run("a2", 2, cpu="Intel Xeon A", machine="m2")  # another machine, same CPU model: comparable
    b = _run("b", 3, cpu="AMD EPYC B")
    db = _db(tmp_path, [a, a2, b, *_kernel_rows(a, "reference", 10.0), *_kernel_rows(a2, "reference", 10.5),
                        *_kernel_rows(b, "reference", 30.0)])
    same = changes(db, "a", "a2", ("time_ms",))
    assert same["verdict"].to_list() == ["same"] and same["hardware"].to_list() == ["Intel Xeon A"]

    with pytest.raises(HardwareMismatch, match="Intel Xeon A.*AMD EPYC B.*--across-hardware"):
        changes(db, "a", "b", ("time_ms",))
    across = changes(db, "a", "b", ("time_ms",), across_hardware=True)
    row = across.row(0, named=True)
    assert (row["base_hardware"], row["hardware"], row["verdict"]) == ("Intel Xeon A", "AMD EPYC B", "regression")
    assert row["ratio"] == pytest.approx(3.0)

    refused = CliRunner().invoke(cli, ["compare", "a", "b", "--db", str(db)])
    assert refused.exit_code == 2, refused.output  # a usage error, not the gate's "regression" (1)
    assert "Intel Xeon A" in refused.output and "AMD EPYC B" in refused.output and "Traceback" not in refused.output
    asked = CliRunner().invoke(cli, ["compare", "a", "b", "--db", str(db), "--across-hardware", "--metric", "time_ms"])
    assert asked.exit_code == 1, asked.output  # 3x slower on the other machine: judged, as asked
    assert "compared across hardware" in asked.output and "base on Intel Xeon A, head on AMD EPYC B" in asked.output
    as_json = CliRunner().invoke(cli, ["compare", "a", "a2", "--db", str(db), "--json"])
    assert as_json.exit_code == 0 and {r["hardware"] for r in json.loads(as_json.output)} == {"Intel Xeon A"}


def test_history_compares_a_case_only_with_the_same_hardware(tmp_path):
    # runs alternate between a fast and a slow machine; on each, nothing changed
    runs = [_run("x1", 1, cpu="Fast CPU"), _run("y1", 2, cpu="Slow CPU"), _run("x2", 3, cpu="Fast CPU"),
            _run("y2", 4, cpu="Slow CPU")]
    times = {"x1": 1.0, "y1": 3.0, "x2": 1.02, "y2": 2.97}
    db = _db(tmp_path, [*runs, *(row for run in runs for row in _kernel_rows(run, "reference", times[run.run_id]))])
    history = time_history(db)
    assert set(history["hardware"]) == {"Fast CPU", "Slow CPU"}
    marks = history_changes(history)
    pairs = {(r["previous_run"], r["run_id"]): r["verdict"] for r in marks.iter_rows(named=True)}
    assert pairs == {("x1", "x2"): "same", ("y1", "y2"): "same"}  # never y1 against x1 (a 3x "regression")


def test_site_keeps_two_machines_apart(tmp_path):
    from effbench import sitegen

    runs = [_run("a1", 1, cpu="Intel Xeon A"), _run("b1", 2, cpu="AMD EPYC B"), _run("a2", 3, cpu="Intel Xeon A"),
            _run("b2", 4, cpu="AMD EPYC B")]
    times = {"a1": (10.0, 5.0), "b1": (30.0, 10.0), "a2": (10.0, 5.0), "b2": (30.0, 10.0)}
    db = _db(tmp_path, [*runs, *(row for run in runs for impl, t in zip(("reference", "fast"), times[run.run_id],
                                                                          strict=True)
                                 for row in _kernel_rows(run, impl, t))])
    lines = sitegen.headline(open_results(db), "kernel")
    assert len(lines) == 2 and any("cpu (Intel Xeon A)" in line and "2.00x" in line for line in lines), lines
    assert any("cpu (AMD EPYC B)" in line and "3.00x" in line for line in lines), lines
    figures, rows = sitegen.history(db)
    assert rows == []  # no run changed on its own machine (b1 against a1 would be a 3x "regression")
    assert {f.title for f in figures} == {f"{TASK} across runs [cpu (Intel Xeon A)]",
                                          f"{TASK} across runs [cpu (AMD EPYC B)]"}
    index = sitegen.build(db, tmp_path / "site")
    page = (index.parent / sitegen.task_page(TASK)).read_text()
    assert "cpu (Intel Xeon A)" in page and "cpu (AMD EPYC B)" in page


def test_a_run_records_its_peers_and_on_a_gpu_the_driver_and_clocks(monkeypatch):
    import types
    from importlib import metadata

    from effbench.run.plan import make_config
    from effbench.run.provenance import gpu_state, new_run

    run = new_run(make_config("smoke", "cpu"), "test")
    peers = json.loads(run.peers)
    assert peers["schedulefree"] == metadata.version("schedulefree") and "triton" in peers
    assert "liger-kernel" not in peers or peers["liger-kernel"] == metadata.version("liger-kernel")
    assert run.driver_version is None and run.gpu_clocks is None  # a CPU run asks NVML nothing

    calls = []
    nvml = types.SimpleNamespace(  # NVML's Python API as nvidia-ml-py exposes it, for a machine without a GPU
        NVML_CLOCK_SM=0, NVML_CLOCK_MEM=2, nvmlInit=lambda: calls.append("init"),
        nvmlShutdown=lambda: calls.append("shutdown"), nvmlDeviceGetHandleByIndex=lambda i: f"gpu{i}",
        nvmlSystemGetDriverVersion=lambda: b"570.86.15",
        nvmlDeviceGetClockInfo=lambda h, kind: {0: 1755, 2: 2619}[kind],
        nvmlDeviceGetMaxClockInfo=lambda h, kind: {0: 1980, 2: 2619}[kind])
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    driver, clocks = gpu_state()
    assert driver == "570.86.15" and calls == ["init", "shutdown"]
    assert json.loads(clocks) == {"sm_mhz": 1755, "sm_max_mhz": 1980, "mem_mhz": 2619, "mem_max_mhz": 2619}
    monkeypatch.setattr(nvml, "nvmlInit", lambda: (_ for _ in ()).throw(RuntimeError("NVML: driver not loaded")))
    assert gpu_state() == (None, None)  # NVML refusing never stops a run


def test_memory_ratios_need_both_peaks_above_the_noise_floor(tmp_path):
    """CPU memory is read by the page: an impl that allocates little reads ~0, and 4 GB / 0 is not "infx less"."""
    run = _run("a", 1)

    def rows(impl: str, mem: float) -> list[Result]:
        return [dataclasses.replace(r, value=mem) if r.metric == "peak_mem_bytes" else r
                for r in _kernel_rows(run, impl, 1.0)]

    db = _db(tmp_path, [run, *rows("reference", 400e6), *rows("chunked", 40e6), *rows("tiny", 0.0),
                        *rows("small", 1e6)])
    ratio = {r["impl"]: r["memory_ratio"] for r in speedups(open_results(db)).iter_rows(named=True)}
    assert ratio["chunked"] == pytest.approx(10.0) and ratio["reference"] == pytest.approx(1.0)
    assert ratio["tiny"] is None and ratio["small"] is None  # under the CPU's 4 MiB floor: no ratio


def test_points_order_by_their_sizes_not_their_coefficients():
    from effbench.analysis import point_size

    plain = '{"N": 4096, "D": 256, "V": 32000, "ignore_frac": 0.1}'
    options = '{"N": 2048, "D": 256, "V": 32000, "ignore_frac": 0.0, "z_loss": 0.0001, "label_smoothing": 0.1}'
    assert point_size(plain) == 4096 * 256 * 32000 and point_size(options) == 2048 * 256 * 32000
    assert point_size(options) < point_size(plain)  # with the coefficients multiplied in, 10^6 times smaller
