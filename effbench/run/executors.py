"""Who runs a run's cases: ``CaseRunner`` (one at a time on this machine, each in the worker process) and the
``Executor`` protocol with its local implementation; a Ray cluster's is ``run.ray_executor``."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from effbench import workloads
from effbench.registry import (
    Registry,
)
from effbench.rows import (
    tuning_key,
)
from effbench.run.case import CaseResult, TuningResult, _TruthCache, execute, execute_tuning, needs_tuning
from effbench.run.ledger import Ledger, _known_status
from effbench.run.plan import Case, RunConfig
from effbench.run.provenance import Node, this_node
from effbench.run.worker import Worker


class CaseRunner:
    """Runs cases on this machine one at a time, each in the worker process (crash, hang and OOM isolation):
    the local executor's whole run, and a Ray task's group of cases on its node (``run.ray_executor``).

    A case whose impl cannot run here (a peer missing, no such device) is recorded without a worker. A case
    that needs a tuning job gets its group's job first, run once: ``tunings`` holds the jobs already done
    (by tuning key; a resumed run's among them), and each new one goes to ``on_tuning(case, result, wall_s)``
    before the case runs. ``in_process=True`` runs cases in this process (no isolation): tests and debugging.
    """

    def __init__(
        self,
        registry: Registry,
        config: RunConfig,
        in_process: bool = False,
        tunings: dict[str, TuningResult] | None = None,
        on_tuning: Callable[[Case, TuningResult, float], None] | None = None,
    ) -> None:
        self.registry = registry
        self.config = config
        self.in_process = in_process
        self.tunings = {} if tunings is None else tunings
        self.on_tuning = on_tuning
        self.worker: Worker | None = None
        self.cache = _TruthCache()
        self._node: Node | None = None

    @property
    def node(self) -> Node:
        """This machine, as the rows of the cases it runs name it."""
        if self._node is None:
            self._node = this_node(self.config.device)
        return self._node

    def _worker(self) -> Worker:
        if self.worker is None or not self.worker.alive():
            self.worker = Worker(self.registry.plugins)
        return self.worker

    def _blocked(self, case: Case) -> tuple[str, str] | None:
        return self.registry.methods[(case.task, case.method)].impls[case.impl].why_not(case.device, case.dtype)

    def tune(self, case: Case) -> TuningResult | None:
        """The tuning job of the case's group (None when the case needs none): run once, before its first
        scored seed; a job ``tunings`` holds is not run again."""
        if self._blocked(case) or not needs_tuning(self.registry, case):
            return None
        group = tuning_key(case.task, case.method, case.impl, case.point_key, case.dtype, case.device)
        if group not in self.tunings:
            started = time.perf_counter()
            if self.in_process:
                result = execute_tuning(self.registry, case)
            else:
                # every lr of the grid, and a prior run per lr for a schedule built from one: a hang guard
                budget = self.config.timeout_s * 2 * (len(workloads.learning_rates(case.point)) + 1)
                result = self._worker().tune(case, self.config, budget)
            if self.on_tuning is not None:
                self.on_tuning(case, result, round(time.perf_counter() - started, 4))
            self.tunings[group] = result
        return self.tunings[group]

    def run(self, case: Case) -> tuple[CaseResult, float]:
        """The case's result and its wall time in seconds (its group's tuning job excluded)."""
        blocked = self._blocked(case)
        tuning = None if blocked else self.tune(case)
        started = time.perf_counter()  # after its group's tuning job: a case's time is its own
        if blocked:  # no need to start a process to learn that a package is missing
            result = CaseResult(status=blocked[0], message=blocked[1])
        elif tuning is not None and tuning.status != "ok":
            failed = tuning.status not in ("skipped", "unavailable")
            result = CaseResult(status=tuning.status,
                                message=f"tuning failed: {tuning.message}" if failed else tuning.message)
        elif self.in_process:
            result = execute(self.registry, case, self.config, self.cache, None if tuning is None else tuning.values)
        else:
            result = self._worker().run(case, self.config, None if tuning is None else tuning.values)
        return _known_status(result), round(time.perf_counter() - started, 4)

    def kill(self) -> None:
        """End the worker now (the case in flight, if any, is lost)."""
        if self.worker is not None:
            self.worker.kill()

    def close(self) -> None:
        if self.worker is not None:
            self.worker.close()


class Executor(Protocol):
    """How a run's cases are executed: on this machine (``LocalExecutor``) or on a cluster
    (``run.ray_executor.RayExecutor``). ``execute`` runs every case ``ledger.admit`` lets through and
    reports each to the ledger as it finishes; an exception (an interrupt) ends what is in flight and
    propagates, every case finished before it being in the shard."""

    def execute(self, registry: Registry, config: RunConfig, cases: Sequence[Case], ledger: Ledger) -> None: ...


@dataclass
class LocalExecutor:
    """The cases one after another in plan order, in one worker process on this machine (``CaseRunner``)."""

    in_process: bool = False

    def execute(self, registry: Registry, config: RunConfig, cases: Sequence[Case], ledger: Ledger) -> None:
        runner = CaseRunner(registry, config, self.in_process, ledger.tunings, ledger.tuned)
        try:
            for case in cases:
                if not ledger.admit(case):
                    continue
                ledger.start(case)
                result, wall_s = runner.run(case)
                ledger.finish(case, result, wall_s, runner.node)
        except BaseException:
            runner.kill()  # interrupted: the case in flight is lost, everything before it is in the shard
            raise
        else:
            runner.close()
