"""What there is to run: ``effbench list``, ``zoo`` and ``kernels`` (compile every Triton kernel for real GPUs)."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import click

from effbench.cli.base import DB_OPTION, PLUGIN_OPTION, _fail, _registry, cli
from effbench.rows import FAMILIES


@cli.command("list")
@click.option("--family", help=f"Only this family ({', '.join(FAMILIES)}).")
@click.option("--json", "as_json", is_flag=True,
              help="Print a JSON list of {family, task, method, impls, paper, arxiv, kind}; kind is kernel, "
              "workload or schedule (the learning-rate schedules of optimizer/convergence).")
@PLUGIN_OPTION
def list_cmd(family: str | None, as_json: bool, plugins: tuple[Path, ...]) -> None:
    """List tasks, methods and their implementations.

    \b
    Example:
        effbench list --family attention --json
    """
    from effbench.registry import FAMILIES, suggest

    registry = _registry(plugins)
    if family is not None and family not in FAMILIES:
        _fail(str(suggest("family", family, FAMILIES)))
    entries = [
        {
            "family": m.family, "task": m.task, "method": m.name, "impls": list(m.impls),
            "paper": m.paper, "arxiv": m.arxiv, "kind": registry.tasks[m.task].kind,
        }
        for m in registry.methods.values()
        if family is None or m.family == family
    ]
    if family in (None, "optimizer"):
        from effbench.schedules import SCHEDULES

        # learning-rate schedules are an axis of the convergence workload, listed beside the update rules
        entries += [
            {"family": "optimizer", "task": "optimizer/convergence", "method": s.name, "impls": [],
             "paper": s.paper, "arxiv": s.arxiv, "kind": "schedule"}
            for s in SCHEDULES.values()
        ]
    entries.sort(key=lambda e: (e["family"], e["task"], e["kind"] == "schedule", e["method"]))
    if as_json:
        click.echo(json.dumps(entries, indent=2))
        return
    from effbench.console import print_table

    rows = []
    for e in entries:
        paper = f"{e['paper']} (arXiv:{e['arxiv']})" if e["arxiv"] else (e["paper"] or "")
        impls = "(schedule)" if e["kind"] == "schedule" else ", ".join(e["impls"])
        rows.append([e["family"], e["task"], e["method"], impls, paper])
    print_table(["family", "task", "method", "impls", "paper"], rows)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON: {datasets: [...], models: [...]}.")
def zoo(as_json: bool) -> None:
    """List the fixed datasets and models that workloads are built from.

    Every dataset is built here (no download) and shown with its content hash.

    \b
    Example:
        effbench zoo --json
    """
    from effbench.data import DATASETS
    from effbench.models import LM_SIZES, count_parameters
    from effbench.workloads import MODELS, build_model

    datasets = []
    for name, build in sorted(DATASETS.items()):
        data = build()
        datasets.append({
            "name": name, "kind": data.kind, "train": int(data.x_train.shape[0]), "eval": int(data.x_eval.shape[0]),
            "classes_or_vocab": data.n_classes, "metric": data.metric, "content_hash": data.content_hash,
        })
    models = []
    for name in MODELS:
        if name.startswith("lm_"):
            size = LM_SIZES[name[3:]]
            models.append({"name": name, "parameters": size.parameters(256), "counted_for": "vocab 256",
                           "d_model": size.d_model, "layers": size.layers, "heads": size.heads,
                           "context": size.context})
        else:
            models.append({"name": name, "parameters": count_parameters(build_model(name, DATASETS["digits"](), 0)),
                           "counted_for": "digits"})
    if as_json:
        click.echo(json.dumps({"datasets": datasets, "models": models}, indent=2))
        return
    from effbench.console import print_table

    print_table(["dataset", "kind", "train", "eval", "classes/vocab", "metric", "content hash"],
                [[d["name"], d["kind"], d["train"], d["eval"], d["classes_or_vocab"], d["metric"], d["content_hash"]]
                 for d in datasets])
    print_table(["model", "parameters", "counted for"],
                [[m["name"], f"{m['parameters']:,}", m["counted_for"]] for m in models])


def _kernel_filter(tokens: str | None, names: list[str]) -> set[str]:
    """Kernels that ``--kernel`` picks: each token is 'module.function', a module or a function name."""
    if tokens is None:
        return set(names)
    wanted = [t.strip() for t in tokens.split(",") if t.strip()]
    if not wanted:
        _fail(f"empty kernel filter {tokens!r}")
    picked: set[str] = set()
    for token in wanted:
        hits = {n for n in names if token in (n, n.split(".", 1)[0], n.split(".", 1)[1])}
        if not hits:
            modules = sorted({n.split(".", 1)[0] for n in names})
            _fail(f"unknown kernel {token!r}; valid: a module ({', '.join(modules)}), a function or 'module.function'")
        picked |= hits
    return picked


@cli.command()
@click.option("--arch", "arch_list", default="sm_80,sm_90", show_default=True,
              help="GPU archs to compile for, comma-separated (sm_80, sm_90).")
@click.option("--kernel", "kernel_filter", metavar="NAMES",
              help="Only these kernels, comma-separated: a kernel module, a function, or 'module.function'.")
@click.option("--json", "as_json", is_flag=True,
              help="Print a JSON list of builds: {kernel, arch, config, status, registers, spills (bytes), "
              "spill_stores, spill_loads, shared_bytes, shared_limit, compile_s, message, methods, triton_version}.")
@DB_OPTION
@click.option("--no-store", is_flag=True, help="Do not write the builds to the DB.")
def kernels(arch_list: str, kernel_filter: str | None, as_json: bool, db: Path, no_store: bool) -> None:
    """Compile every Triton kernel for real GPUs, on any machine, and report what each build costs.

    Every configuration the gpu grid launches (dtype, block sizes, head dims, num_warps,
    num_stages; autotune configs expanded), as each kernel module declares it in
    compile_specs(), goes through Triton's real pipeline and the ptxas in its wheel for each
    arch. Reported per build: registers per thread, spilled bytes (local memory per thread),
    shared memory per block against the arch's limit (sm_80 166912 B, sm_90 232448 B) and the
    compile time. Progress goes to stderr. The builds are stored in the DB's kernel_builds table
    (newest per kernel, config, arch, triton version). Exit 1 when a build fails to compile or
    overflows shared memory (naming kernel, config and the compiler's message), or when a
    kernel has no spec.

    \b
    Example:
        effbench kernels --arch sm_90 --kernel block_sparse_attention
        effbench kernels --json --no-store > kernel_builds.json
    """
    import time

    from effbench import kernelcheck
    from effbench.console import duration, print_table

    arches = [a.strip() for a in arch_list.split(",") if a.strip()]
    unknown = [a for a in arches if a not in kernelcheck.ARCHES]
    if not arches or unknown:
        _fail(f"unknown arch {', '.join(unknown) or repr(arch_list)}; valid: {', '.join(kernelcheck.ARCHES)}")
    try:
        modules = kernelcheck.kernel_modules()
        specs = kernelcheck.all_specs(modules)
        names = sorted(set(kernelcheck.launched_kernels(modules)) | {s.kernel for s in specs})
        picked = _kernel_filter(kernel_filter, names)
        specs = sorted((s for s in specs if s.kernel in picked), key=lambda s: (s.kernel, s.config))
        missing = [k for k in kernelcheck.uncovered(modules, specs) if k in picked]
        users = kernelcheck.kernel_users(_registry(()).methods.values())
        click.echo(f"compiling {len(specs)} configurations of {len({s.kernel for s in specs})} kernels for "
                   f"{', '.join(arches)}", err=True)
        start = time.perf_counter()

        def progress(i: int, total: int, b: Any) -> None:
            what = (f"{b.registers} regs, {b.spills} B spilled, {b.shared_bytes} B shared" if b.status != "error"
                    else b.message.splitlines()[0][:160])
            click.echo(f"[{i}/{total}] {b.status:<8} {b.kernel} {b.arch} {b.config}: {what} ({b.compile_s} s)",
                       err=True)

        builds = kernelcheck.check(specs, arches, users, on_build=progress)
    except kernelcheck.KernelCheckError as exc:
        _fail(str(exc))
    elapsed = time.perf_counter() - start
    if as_json:
        click.echo(json.dumps([dataclasses.asdict(b) for b in builds], indent=2))
    else:
        rows = [[b.kernel, b.arch, b.config, b.status, b.registers, b.spills, b.shared_bytes,
                 "" if b.shared_bytes is None else f"{100 * b.shared_bytes / b.shared_limit:.0f}%", b.compile_s]
                for b in builds]
        print_table(["kernel", "arch", "config", "status", "regs", "spills_B", "shared_B", "of_limit", "compile_s"],
                    rows)
    failed = [b for b in builds if b.status != "ok"]
    spilled = [b for b in builds if b.spills]
    compile_s = sum(b.compile_s or 0 for b in builds)
    click.echo(f"{len(builds)} builds in {duration(elapsed)} (compiling {compile_s:.1f} s): "
               f"{len(builds) - len(failed)} ok, {len(spilled)} with spills, {len(failed)} failed", err=True)
    if builds and not no_store:
        from effbench.store import Store, StoreError

        try:
            with Store(db, on_wait=lambda message: click.echo(message, err=True)) as store:
                store.insert(builds)
        except StoreError as exc:
            _fail(str(exc))
        click.echo(f"stored {len(builds)} builds in {db} (table kernel_builds)", err=True)
    for b in failed:
        lines = b.message.splitlines()
        more = f"\n  ... ({len(lines) - 40} more lines)" if len(lines) > 40 else ""
        click.echo(f"FAILED {b.status}: {b.kernel} [{b.config}] on {b.arch}:\n  " + "\n  ".join(lines[:40]) + more,
                   err=True)
    for kernel in missing:
        click.echo(f"FAILED: {kernel} has no compile spec (declare it in its module's compile_specs())", err=True)
    if failed or missing:
        sys.exit(1)
