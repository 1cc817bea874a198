"""Methods and their implementations, and discovery of tasks and methods.

A method file builds a module-level :class:`Method` and attaches implementations with
decorators. :func:`discover` imports every module under ``effbench.tasks`` and
``effbench.methods`` (and any plugin files the user names) and collects the Task and
Method objects it finds. There is no global mutable registry: each call builds a new one.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import pkgutil
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from effbench.closure import PACKAGE_DIR, _local_dirs, _Source, source_label
from effbench.errors import UsageError  # noqa: F401 - re-exported: every layer raises it
from effbench.rows import FAMILIES

GRIDS = ("smoke", "cpu", "gpu")

# Provenance roots besides a method's and its task's files: what every case's numbers pass through, whatever
# the method. The run package plans, checks (checks.py), times and measures (measure.py) and writes each row,
# in the worker process each case runs in. Naming its modules is enough: their import closures bring in
# measure.py, checks.py, rows.py, registry.py, tasks/__init__.py (and workloads.py, train.py, data.py,
# models.py where the runner or a task imports them), and a new import of theirs joins by itself. The CLI,
# store, analysis and site never change a number and stay out: editing them keeps stored results current.
HARNESS = tuple(sorted((PACKAGE_DIR / "run").glob("*.py")))


class Unavailable(Exception):
    """Raised by an implementation that cannot run here; recorded as status ``unavailable``."""


class BackwardUnavailable(Unavailable):
    """Raised by an implementation whose forward runs here but whose backward cannot.

    A kernel task that declares ``forward_outputs`` then checks and measures the forward
    alone (status ``ok``, the fwd+bwd metrics NULL with this reason); any other task
    records the case ``unavailable``.
    """


class Skipped(Exception):
    """Raised by an implementation for a combination it does not cover; recorded as ``skipped``."""


def suggest(kind: str, name: str, valid: Iterable[str]) -> UsageError:
    """An error naming the valid choices."""
    choices = ", ".join(sorted(set(valid))) or "(none)"
    return UsageError(f"unknown {kind} {name!r}; valid: {choices}")


@dataclass
class Impl:
    """One way of computing a method.

    ``needs`` are importable module names (peers, triton); ``devices`` and ``dtypes``
    restrict where it runs. Anything outside them is recorded, never dropped.
    """

    name: str
    fn: Callable[..., Any]
    needs: tuple[str, ...] = ()
    devices: tuple[str, ...] = ("cpu", "cuda")
    dtypes: tuple[str, ...] | None = None
    note: str = ""

    def why_not(self, device: str, dtype: str) -> tuple[str, str] | None:
        """``(status, reason)`` when this impl cannot run on ``device``/``dtype``, else None."""
        if device not in self.devices:  # first: installing a package would not help
            return "unavailable", f"impl {self.name!r} runs on {', '.join(self.devices)} only, not {device}"
        for module in self.needs:
            if importlib.util.find_spec(module) is None:
                return "unavailable", f"package {module!r} is not installed"
        if self.dtypes is not None and dtype not in self.dtypes:
            return "skipped", f"impl {self.name!r} supports {', '.join(self.dtypes)} only, not {dtype}"
        return None


class Method:
    """A named algorithm of one task, with its paper and its implementations.

    ``extras`` carries method-specific data a task needs (e.g. an attention pattern's
    mask builder, a sampler's hyper-parameters).
    """

    def __init__(
        self,
        task: str,
        name: str,
        *,
        paper: str | None = None,
        arxiv: str | None = None,
        summary: str = "",
        **extras: Any,
    ) -> None:
        if "/" not in task:
            raise UsageError(f"method {name!r}: task must be 'family/name', got {task!r}")
        self.task = task
        self.name = name
        self.paper = paper
        self.arxiv = arxiv
        self.summary = summary
        self.extras = extras
        self.impls: dict[str, Impl] = {}
        # The defining file feeds the provenance hash of every result of this method.
        self.source_file: str | None = sys._getframe(1).f_globals.get("__file__")

    @property
    def family(self) -> str:
        return self.task.split("/", 1)[0]

    @property
    def reference(self) -> Impl:
        """The reference implementation (the definition); every method has one."""
        if "reference" not in self.impls:
            raise UsageError(f"method {self.task}:{self.name} has no 'reference' implementation")
        return self.impls["reference"]

    def impl(
        self,
        name: str,
        *,
        needs: Sequence[str] = (),
        devices: Sequence[str] = ("cpu", "cuda"),
        dtypes: Sequence[str] | None = None,
        note: str = "",
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator registering ``fn`` as implementation ``name``."""

        def register(fn: Callable[..., Any]) -> Callable[..., Any]:
            if name in self.impls:
                raise UsageError(f"method {self.name!r} already has an impl {name!r}")
            self.impls[name] = Impl(
                name, fn, tuple(needs), tuple(devices), tuple(dtypes) if dtypes else None, note
            )
            return fn

        return register

    def __repr__(self) -> str:
        return f"Method({self.task}:{self.name}, impls={list(self.impls)})"


@dataclass
class Registry:
    """Tasks and methods found by :func:`discover`."""

    tasks: dict[str, Any] = field(default_factory=dict)  # "family/name" -> Task
    methods: dict[tuple[str, str], Method] = field(default_factory=dict)  # (task, method) -> Method
    plugins: list[str] = field(default_factory=list)  # resolved plugin paths, so workers load the same
    # Provenance caches, one snapshot per registry: a file is read and parsed once however many methods
    # share it, and every row of one run gets the hash of the same sources.
    _sources: dict[Path, _Source] = field(default_factory=dict, init=False, repr=False, compare=False)
    _edges: dict[tuple[Path, tuple[Path, ...]], list[Path]] = field(
        default_factory=dict, init=False, repr=False, compare=False)
    _hashes: dict[tuple[str, ...], str] = field(default_factory=dict, init=False, repr=False, compare=False)

    def add(self, obj: Any, origin: str) -> None:
        from effbench.tasks import Task

        if isinstance(obj, Task):
            if obj.family not in FAMILIES:
                raise UsageError(f"{origin}: task {obj.key!r} has unknown family; valid: {', '.join(FAMILIES)}")
            if obj.key in self.tasks and self.tasks[obj.key] is not obj:
                raise UsageError(f"{origin}: task {obj.key!r} is defined twice")
            self.tasks[obj.key] = obj
        elif isinstance(obj, Method):
            key = (obj.task, obj.name)
            if key in self.methods and self.methods[key] is not obj:
                raise UsageError(f"{origin}: method {obj.task}:{obj.name} is defined twice")
            self.methods[key] = obj

    def check(self) -> None:
        """Every task's grids are well formed; every method belongs to a known task and has a reference."""
        for task in self.tasks.values():
            _check_grids(task)
        for (task, name), method in self.methods.items():
            if task not in self.tasks:
                raise suggest(f"task for method {name!r}:", task, self.tasks)
            method.reference  # noqa: B018 - raises when missing

    def task(self, key: str) -> Any:
        if key not in self.tasks:
            raise suggest("task", key, self.tasks)
        return self.tasks[key]

    def methods_of(self, task_key: str) -> list[Method]:
        return [m for (t, _), m in sorted(self.methods.items()) if t == task_key]

    def closure(self, method: Method) -> list[Path]:
        """Every source file behind a method's numbers: the import closure of its file, its task's file and
        the harness (``HARNESS``), within effbench and the plugin's directory, sorted by :func:`source_label`."""
        return self._closure([method.source_file, self.tasks[method.task].source_file])

    def code_hash(self, method: Method) -> str:
        """16 hex digits over :meth:`closure`: changes when any file a method's numbers depend on changes."""
        return self._hash([method.source_file, self.tasks[method.task].source_file])

    def suite_hash(self, task_key: str) -> str:
        """One hash over the closures of a task and all its methods (asv's ``version`` of the task's suite:
        asv drops the suite's stored results when it changes)."""
        task = self.task(task_key)
        return self._hash([task.source_file, *(m.source_file for m in self.methods_of(task_key))])

    def _hash(self, roots: Sequence[str | None]) -> str:
        key = tuple(sorted({str(r) for r in roots if r}))
        if key not in self._hashes:
            digest = hashlib.sha256()
            locals_ = _local_dirs(key)
            for path in self._closure(key):
                # the label, not the absolute path: the same code hashes the same on every machine
                digest.update(f"{source_label(path, locals_)}\0{self._source(path).digest}\n".encode())
            self._hashes[key] = digest.hexdigest()[:16]
        return self._hashes[key]

    def _closure(self, roots: Sequence[str | None]) -> list[Path]:
        paths = [Path(r).resolve() for r in roots if r and Path(r).is_file()]
        locals_ = tuple(_local_dirs(paths))
        seen: set[Path] = set()
        todo = [*paths, *HARNESS]
        while todo:
            path = todo.pop()
            if path in seen or not path.is_file():
                continue
            seen.add(path)
            if (path, locals_) not in self._edges:
                self._edges[(path, locals_)] = self._source(path).imported(path, locals_)
            todo.extend(self._edges[(path, locals_)])
        return sorted(seen, key=lambda p: source_label(p, locals_))

    def _source(self, path: Path) -> _Source:
        if path not in self._sources:
            self._sources[path] = _Source.read(path)
        return self._sources[path]


def _check_grids(task: Any) -> None:
    """A plugin's task gets the same checks as ours: a list of flat points for every grid, known dtypes."""
    from effbench.rows import point_key
    from effbench.tasks import DTYPES

    where = f"task {task.key!r}"
    if task.family not in FAMILIES:
        raise suggest(f"family of {where}:", str(task.family), FAMILIES)
    for attr in ("grids", "dtypes"):
        value = getattr(task, attr)
        if not isinstance(value, dict) or set(value) != set(GRIDS):
            raise UsageError(f"{where}: {attr} must name exactly the grids {', '.join(GRIDS)}")
    for grid in GRIDS:
        points = task.grids[grid]
        if not isinstance(points, list | tuple):
            raise UsageError(f"{where}: grid {grid!r} must be a list of points")
        seen = set()
        for point in points:
            if not isinstance(point, dict) or not all(isinstance(k, str) for k in point):
                raise UsageError(f"{where}: grid {grid!r} has a point that is not a dict of named values: {point!r}")
            bad = {k: v for k, v in point.items() if not isinstance(v, bool | int | float | str | None)}
            if bad:
                raise UsageError(f"{where}: grid {grid!r}: point values must be numbers, strings or booleans: {bad!r}")
            if point_key(point) in seen:
                raise UsageError(f"{where}: grid {grid!r} repeats the point {point_key(point)}")
            seen.add(point_key(point))
        dtypes = task.dtypes[grid]
        if not isinstance(dtypes, list | tuple) or any(d not in DTYPES for d in dtypes):
            raise UsageError(f"{where}: dtypes of grid {grid!r} must be some of {', '.join(DTYPES)}: {dtypes!r}")
    _check_metrics(task, where)


def _check_metrics(task: Any, where: str) -> None:
    """Every metric a task names is declared once (unit, direction, scope); compared ones have a direction."""
    undeclared = [m for m in (*task.metrics, *getattr(task, "compare", ())) if not isinstance(m, str)
                  or m not in task.metric_table]
    if undeclared:
        raise UsageError(f"{where}: metrics {undeclared!r} are not declared: add effbench.metrics.Metric(...) "
                         f"entries to the task's declares=")
    aimless = [m for m in getattr(task, "compare", ()) if task.metric_table[m].better is None]
    if aimless:
        raise UsageError(f"{where}: compared metrics {aimless!r} declare no better direction")


def _objects_of(module: ModuleType) -> list[Any]:
    from effbench.tasks import Task

    return [obj for obj in vars(module).values() if isinstance(obj, (Method, Task))]


def _walk(package: str) -> list[ModuleType]:
    root = importlib.import_module(package)
    modules = [root]
    for info in pkgutil.walk_packages(root.__path__, prefix=f"{package}."):
        modules.append(importlib.import_module(info.name))
    return modules


def load_plugin(path: str | Path) -> ModuleType:
    """Import a user's Python file by path; only files the user names are ever loaded."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"plugin file not found: {path}")
    if path.suffix != ".py":
        raise UsageError(f"plugin must be a .py file: {path}")
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
    name = f"effbench_plugin_{path.stem}_{digest}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise UsageError(f"cannot load plugin {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001 - any failure of user code is a usage error
        sys.modules.pop(name, None)
        raise UsageError(f"plugin {path} failed to import: {type(exc).__name__}: {exc}") from None
    return module


def discover(plugins: Sequence[str | Path] = ()) -> Registry:
    """Build the registry from the built-in tasks and methods plus plugin files."""
    registry = Registry()
    for package in ("effbench.tasks", "effbench.methods"):
        for module in _walk(package):
            for obj in _objects_of(module):
                registry.add(obj, module.__name__)
    for path in plugins:
        module = load_plugin(path)
        found = _objects_of(module)
        if not found:
            raise UsageError(f"plugin {path} defines no Method or task")
        for obj in found:
            registry.add(obj, str(path))
        registry.plugins.append(str(Path(path).resolve()))
    registry.check()
    return registry
