"""The one-way flow: registry -> runner -> rows -> store -> analysis/site, checked on the imports."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "effbench"

# module -> imports it must never make (effbench modules or third-party roots)
RUN_INTERNALS = {"effbench.run.plan", "effbench.run.case", "effbench.run.worker", "effbench.run.provenance",
                 "effbench.run.session"}
ABOVE_RUN = {"duckdb", "polars", "plotly", "jinja2", "effbench.store", "effbench.sitegen", "effbench.site",
             "effbench.analysis",
             "effbench.cli"}
FORBIDDEN = {
    "rows": {"effbench", "torch", "duckdb", "polars", "plotly", "triton"},
    "errors": {"effbench", "torch", "duckdb", "polars", "plotly", "triton"},
    # declarations the store and the site read: stdlib only
    "metrics": {"effbench", "torch", "duckdb", "polars", "plotly", "triton"},
    # the store reads shards (run/shards), nothing else of the run package
    "store": {"torch", "triton", "effbench.registry", "effbench.measure", "effbench.tasks", *RUN_INTERNALS},
    "analysis": {"torch", "triton", "effbench.run", "effbench.registry", "effbench.tasks"},
    "sitegen": {"torch", "triton", "effbench.run", "effbench.registry", "effbench.tasks"},
    "site/common": {"torch", "triton", "effbench.run", "effbench.registry", "effbench.tasks", "effbench.sitegen"},
    "site/kernel": {"torch", "triton", "effbench.run", "effbench.registry", "effbench.tasks", "effbench.sitegen"},
    "site/workload": {"torch", "triton", "effbench.run", "effbench.registry", "effbench.tasks", "effbench.sitegen"},
    "site/overview": {"torch", "triton", "effbench.run", "effbench.registry", "effbench.tasks", "effbench.sitegen"},
    "measure": {"duckdb", "polars", "plotly", "jinja2", "effbench.store", "effbench.registry"},
    "run/plan": ABOVE_RUN,
    "run/case": ABOVE_RUN,
    "run/worker": ABOVE_RUN,
    "run/provenance": ABOVE_RUN,
    "run/session": ABOVE_RUN,
    "run/ray_executor": ABOVE_RUN,
    "run/shards": {*ABOVE_RUN, "torch", "triton", "effbench.registry", "effbench.tasks", *RUN_INTERNALS},
    "registry": {"duckdb", "polars", "plotly", "effbench.run", "effbench.store"},
    "asv_results": {"torch", "triton", "duckdb", "polars", "plotly", "effbench.store", "effbench.registry",
                    "effbench.run", "effbench.tasks"},
    "asv_suites": {"duckdb", "polars", "plotly", "effbench.store", "effbench.sitegen"},
    # compiles kernels and returns rows: the CLI stores them, the site reads them through analysis
    "kernelcheck": {"duckdb", "polars", "plotly", "jinja2", "effbench.store", "effbench.sitegen", "effbench.analysis",
                    "effbench.run"},
}
DEFINITIONS = {"duckdb", "polars", "plotly", "jinja2", "effbench.run", "effbench.store", "effbench.sitegen",
               "effbench.site",
               "effbench.analysis", "effbench.cli"}


def imports(path: Path) -> set[str]:
    """Every module ``path`` imports, but those under ``if TYPE_CHECKING:`` (annotations, never run)."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
            node.body = []
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def violates(name: str, banned: set[str]) -> bool:
    return any(name == b or name.startswith(b + ".") for b in banned)


def module_files(module: str) -> list[Path]:
    """A module's file, or every file of a package of that name."""
    file = PACKAGE / f"{module}.py"
    files = [file] if file.is_file() else sorted((PACKAGE / module).glob("*.py"))
    assert files, f"no module or package effbench/{module}"
    return files


def test_layers():
    for module, banned in FORBIDDEN.items():
        for path in module_files(module):
            bad = [n for n in imports(path) if violates(n, banned)]
            assert not bad, f"{path.relative_to(PACKAGE)} imports {bad}"


def test_definitions_never_import_the_layers_after_them():
    for path in [*PACKAGE.glob("tasks/*.py"), *PACKAGE.glob("methods/**/*.py"), *PACKAGE.glob("kernels/*.py"),
                 *(PACKAGE / f"{m}.py" for m in ("train", "plugs", "evaluation", "minimize")),
                 *PACKAGE.glob("data/*.py")]:
        bad = [n for n in imports(path) if violates(n, DEFINITIONS)]
        assert not bad, f"{path.relative_to(PACKAGE)} imports {bad}"


def test_kernels_and_tasks_never_import_methods():
    """Kernels are what methods call, and tasks define what methods are judged on: both sit below methods."""
    for path in [*PACKAGE.glob("kernels/*.py"), *PACKAGE.glob("tasks/*.py")]:
        bad = [n for n in imports(path) if violates(n, {"effbench.methods"})]
        assert not bad, f"{path.relative_to(PACKAGE)} imports {bad}"


def test_site_and_query_work_without_torch():
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['torch'] = None; sys.modules['triton'] = None\n"
        "import effbench.sitegen, effbench.analysis, effbench.store, effbench.cli\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
