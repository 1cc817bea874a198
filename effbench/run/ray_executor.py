"""Runs a plan on a Ray cluster (``effbench run --executor ray``): its case groups as Ray tasks.

The driver (``effbench run``) keeps everything a local run does, through the same code: the plan and its
fingerprint, the run's shard with its one writer, resume, the store at the end, SIGTERM and progress
(``session.run`` and its ``Ledger``). This executor only decides where the cases run:

- Scheduling. The cases are grouped as ``--shard`` groups them (``plan.case_group``: a kernel case's
  impls and seeds, a workload point's methods and seeds), and each group is one Ray task with a resource
  request: one whole GPU for a cuda group (a timing needs the device alone), ``cpus_per_group`` CPUs for
  a cpu group. At most ``max_in_flight`` groups are submitted at a time (default: twice as many as the
  cluster can run at once). On a grid that runs each method at its first covered point only (smoke), a
  group waits for the groups holding the same cases at earlier points, as a local run's order does.
- On the node, the task runs its cases one at a time through effbench's worker process exactly as a local
  run does (``executors.CaseRunner``: crash, hang and OOM isolation and statuses, tuning jobs), and streams
  each case's result to the driver as it finishes (a Ray generator task). The driver appends the case's
  rows to the shard and fsyncs them, naming the node (host, GPU or CPU model) in every row.
- Failures. A case's own failure (an exception, its worker crashing, a hang, an OOM, a wrong number) is a
  status the worker already recorded: never retried. A failure of the cluster (the node lost, the task's
  Ray worker process killed, an object lost: any ``ray.exceptions.RayError`` but an error raised by the
  task's own code) is retried: the group's unfinished cases are submitted again, up to ``max_retries``
  (default 2) times; then each case still unfinished is recorded ``error`` with the reason. Cases the
  group finished before the failure keep their results (they are in the shard). The retry is the
  driver's, not Ray's (``max_retries=0`` on the task): Ray would run the whole group again, finished
  cases included. A worker that cannot start on a node (effbench or a plugin missing there) stops the run
  as it does locally (``SessionError``), every finished case kept.
- Resume. The executor is not part of the plan's fingerprint: ``--resume`` continues a Ray run's shard
  with either executor, and a local run's with Ray. A driver killed with ``kill -9`` loses the cases in
  flight only (Ray ends a dead driver's tasks).

Ray is optional (``pip install 'effbench[ray]'``): ``require_ray`` says how to install it.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import logging
import os
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from effbench.errors import UsageError, first_line
from effbench.registry import Registry
from effbench.rows import tuning_key
from effbench.run.case import CaseResult, TuningResult
from effbench.run.executors import CaseRunner
from effbench.run.ledger import Ledger
from effbench.run.plan import Case, RunConfig, _config_dict, case_group, config_from_dict
from effbench.run.provenance import Node
from effbench.run.worker import WorkerError

INSTALL = "pip install 'effbench[ray]'"
MAX_RETRIES = 2  # resubmissions of a group's unfinished cases after a failure of the cluster
WAIT_S = 1.0  # the driver wakes at least this often (signals are handled between waits)


def require_ray() -> Any:
    """The ``ray`` module; a ``UsageError`` saying how to install it when it is not importable."""
    try:
        import ray
    except ImportError as exc:
        raise UsageError(f"--executor ray needs Ray, which is not installed here ({exc}): {INSTALL}") from None
    return ray


@dataclass
class _Group:
    """One Ray task's worth of cases, and what became of them."""

    index: int
    cases: list[Case]
    after: set[int] = field(default_factory=set)  # groups to finish first (the same cases at earlier points)
    todo: list[Case] = field(default_factory=list)  # admitted, not yet finished
    attempts: int = 0  # submissions so far
    node: Node | None = None  # where its task last reported from
    running: Case | None = None  # the case its task last started

    def describe(self) -> str:
        first = self.cases[0]
        return f"{first.task} {first.method if len(self.cases) == 1 else '...'} [{first.point_key}] {first.dtype}"


def _groups(registry: Registry, cases: Sequence[Case], first_covered: bool) -> list[_Group]:
    """The plan's case groups in plan order (each group's cases in plan order); with ``first_covered``, each
    group knows the groups holding the same cases (lineages) at earlier points."""
    index: dict[str, _Group] = {}
    last_of: dict[tuple[str, ...], int] = {}  # lineage -> the group of its latest case so far
    for case in cases:
        group = index.setdefault(case_group(registry, case), _Group(len(index), []))
        group.cases.append(case)
        if first_covered:
            earlier = last_of.get(case.lineage)
            if earlier is not None and earlier != group.index:
                group.after.add(earlier)
            last_of[case.lineage] = group.index
    return list(index.values())


@dataclass
class RayExecutor:
    """Runs case groups as Ray tasks (module docstring: scheduling, failures and retries, resume).

    ``address``: the cluster's (``"auto"``: the one this machine belongs to; ``"ray://head:10001"``: a
    remote head through Ray Client); None: Ray's default (``RAY_ADDRESS``, else a new local cluster, ended
    with the run). When Ray is already initialised in this process, that connection is used as it is.
    ``cpus_per_group``: CPUs a cpu group asks for (Ray sets its worker's thread count to match);
    ``max_in_flight``: groups submitted at a time (None: twice what the cluster can run at once);
    ``say``: one line of news for the user (a retry, a cluster without GPUs).
    """

    address: str | None = None
    max_retries: int = MAX_RETRIES
    cpus_per_group: float = 1
    max_in_flight: int | None = None
    say: Callable[[str], None] = lambda text: None
    _owned: bool = field(default=False, init=False, repr=False)  # this executor started the connection
    _local: bool = field(default=False, init=False, repr=False)  # ... and a new local cluster with it

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise UsageError(f"max_retries must be 0 or more, got {self.max_retries}")
        if not self.cpus_per_group > 0:
            raise UsageError(f"cpus_per_group must be above 0, got {self.cpus_per_group}")
        if self.max_in_flight is not None and self.max_in_flight < 1:
            raise UsageError(f"max_in_flight must be 1 or more, got {self.max_in_flight}")

    # ------------------------------------------------------------------ the cluster

    def connect(self) -> Any:
        """Connect to the cluster (or start a local one); the ``ray`` module. Keeps this process's SIGTERM
        handler (``ray.init`` replaces it with its own, which would lose the run's save on SIGTERM)."""
        ray = require_ray()
        if ray.is_initialized():
            return ray
        main = threading.current_thread() is threading.main_thread()
        previous = signal.getsignal(signal.SIGTERM) if main else None
        kwargs: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False}
        local = self.address is None and not os.environ.get("RAY_ADDRESS")
        if local:
            kwargs["include_dashboard"] = False  # a cluster of our own for this run: no dashboard to serve
        try:
            ray.init(address=self.address, **kwargs)
        except Exception as exc:  # noqa: BLE001 - whatever Ray raises, one line for the user
            where = self.address or os.environ.get("RAY_ADDRESS") or "a new local cluster"
            raise WorkerError(f"cannot connect to Ray ({where}): {first_line(exc)}") from None
        finally:
            if main and previous is not None:
                signal.signal(signal.SIGTERM, previous)
        self._owned, self._local = True, local
        return ray

    def _close(self, ray: Any) -> None:
        if self._owned:
            ray.shutdown()  # ends this job's tasks, and a local cluster this run started
            self._owned = self._local = False

    def _limit(self, ray: Any, config: RunConfig) -> int:
        """Groups in flight at a time."""
        if self.max_in_flight is not None:
            return self.max_in_flight
        resources = ray.cluster_resources()
        if config.device == "cuda":
            slots = int(resources.get("GPU", 0))
            if slots < 1 and self._local:  # nothing will ever add one
                raise WorkerError("the new local Ray cluster has no GPU for a cuda run: give --ray-address (or "
                                  "RAY_ADDRESS) of a cluster with GPUs")
            if slots < 1:
                self.say("note: the Ray cluster has no GPU now: the cuda groups wait for one (an autoscaler may "
                         "add nodes; Ctrl-C stops the run, --resume goes on)")
        else:
            slots = int(resources.get("CPU", 0) // self.cpus_per_group)
        return 2 * max(slots, 1)

    # ------------------------------------------------------------------ the driver

    def execute(self, registry: Registry, config: RunConfig, cases: Sequence[Case], ledger: Ledger) -> None:
        """Run the cases' groups on the cluster, each finished case into ``ledger`` (``executors.Executor``)."""
        groups = _groups(registry, cases, config.points == "first_covered")
        waiting = collections.deque(groups)
        finished: set[int] = set()
        in_flight: dict[Any, _Group] = {}
        ray: Any = None
        limit = 1
        options = {"num_gpus": 1, "num_cpus": 1} if config.device == "cuda" else {"num_cpus": self.cpus_per_group}
        remote: Any = None
        try:
            while waiting or in_flight:
                while waiting and len(in_flight) < limit:
                    group = next((g for g in waiting if g.after <= finished), None)
                    if group is None:
                        break
                    waiting.remove(group)
                    if group.attempts == 0:
                        group.todo = [c for c in group.cases if ledger.admit(c)]
                    if not group.todo:  # every case dropped or done before a resume
                        finished.add(group.index)
                        continue
                    if ray is None:  # connect on the first case to run (a finished plan needs no cluster)
                        ray = self.connect()
                        limit = self._limit(ray, config)
                        remote = ray.remote(_run_group).options(max_retries=0, retry_exceptions=False, **options)
                    group.attempts += 1
                    group.running = None
                    keys = {tuning_key(c.task, c.method, c.impl, c.point_key, c.dtype, c.device) for c in group.todo}
                    tunings = {k: v.to_json() for k, v in ledger.tunings.items() if k in keys}
                    in_flight[remote.remote(list(registry.plugins), _config_dict(config),
                                            [dataclasses.asdict(c) for c in group.todo], tunings)] = group
                if not in_flight:
                    if waiting:  # cannot happen: a group waits only on earlier ones
                        raise RuntimeError("Ray executor: groups wait on groups that never run")
                    break
                ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=WAIT_S)
                for gen in ready:
                    group = in_flight[gen]
                    done = self._next_event(ray, gen, group, ledger)
                    if done is None:
                        continue
                    del in_flight[gen]
                    if done:
                        finished.add(group.index)
                    else:
                        waiting.appendleft(group)  # a retry goes first
        except BaseException:
            for gen in in_flight:
                try:
                    ray.cancel(gen, force=True)
                except Exception:  # noqa: BLE001 - the task may be gone already; shutdown ends the rest
                    pass
            raise
        finally:
            if ray is not None:
                self._close(ray)

    def _next_event(self, ray: Any, gen: Any, group: _Group, ledger: Ledger) -> bool | None:
        """Take the group's next event into the ledger. None: the task goes on; True: the group is finished;
        False: the task was lost and the group is to be submitted again."""
        try:
            event = ray.get(next(gen))
        except StopIteration:
            if group.todo:  # the task ended without a word on some cases: not the cluster's failure
                self._lost(group, ledger, "its Ray task ended without reporting them", retried=False)
            return True
        except ray.exceptions.RayTaskError as exc:  # the task's own code raised: a bug, not retried
            self._lost(group, ledger, f"the Ray task of its group raised {first_line(exc.cause or exc)}",
                       retried=False)
            return True
        except ray.exceptions.RayError as exc:  # the cluster failed the task: the node, the process, an object
            reason = f"{type(exc).__name__}: {first_line(exc)}"
            if group.attempts <= self.max_retries:
                where = f" on {group.node.host}" if group.node else ""
                self.say(f"Ray task of {group.describe()} lost{where} ({reason}); retrying its {len(group.todo)} "
                         f"unfinished case(s), attempt {group.attempts + 1} of {self.max_retries + 1}")
                return False
            self._lost(group, ledger, reason, retried=True)
            return True
        kind = event["kind"]
        group.node = Node(*event["node"])
        case = next(c for c in group.todo if c.key == event["case"]) if "case" in event else None
        if kind == "start":
            group.running = case
            ledger.start(case)
        elif kind == "tuning":
            ledger.tuned(case, TuningResult.from_json(event["result"]), event["wall_s"])
        elif kind == "case":
            group.todo.remove(case)
            ledger.finish(case, CaseResult.from_json(event["result"]), event["wall_s"], group.node)
        elif kind == "worker_failed":  # as a local run: the run cannot go on
            raise WorkerError(f"on Ray node {group.node.host}: {event['message']}")
        else:
            raise RuntimeError(f"Ray executor: unknown event {kind!r}")
        return None

    def _lost(self, group: _Group, ledger: Ledger, reason: str, retried: bool) -> None:
        """Record each unfinished case of the group ``error``, with the reason."""
        tries = f" after {group.attempts} attempts ({self.max_retries} retries)" if retried else ""
        where = f" on {group.node.host}" if group.node else ""
        for case in list(group.todo):
            flight = " (the case in flight)" if case == group.running else ""
            message = f"lost on the Ray cluster{where}{tries}{flight}: {reason}"
            group.todo.remove(case)
            ledger.finish(case, CaseResult(status="error", message=message), None, group.node)


# --------------------------------------------------------------------------- on the node, inside a Ray task

# This Ray worker process's registry and idle cpu worker between tasks: a cpu group is often a few quick
# cases, and a worker's start (torch, the registry) would cost more. Never a cuda worker: it would hold a
# CUDA context on a GPU that Ray may give to another task.
_CACHED: dict[str, Any] = {}


def _run_group(plugins: list[str], config_data: dict[str, Any], cases_data: list[dict[str, Any]],
               tunings_data: dict[str, str]) -> Iterator[dict[str, Any]]:
    """The Ray task of one case group: each case through the worker process (``CaseRunner``), one event per
    step: ``start``, ``tuning`` (a tuning job done), ``case`` (its result), or ``worker_failed``."""
    from effbench.registry import discover
    from effbench.run.provenance import this_node

    config = config_from_dict(config_data)
    node = this_node(config.device)
    where = [node.host, node.hardware]
    key = json.dumps([plugins, config_data, os.environ.get("CUDA_VISIBLE_DEVICES")])
    if _CACHED.get("key") != key:
        if _CACHED.get("worker") is not None:
            _CACHED["worker"].kill()
        _CACHED.clear()
        try:
            _CACHED["registry"] = discover(plugins)
        except Exception as exc:  # noqa: BLE001 - a plugin missing or broken on this node: the run stops
            yield {"kind": "worker_failed", "node": where, "message": f"cannot load the plugins: {first_line(exc)}"}
            return
        _CACHED["key"] = key
    tuned: list[dict[str, Any]] = []

    def on_tuning(case: Case, result: TuningResult, wall_s: float) -> None:
        tuned.append({"kind": "tuning", "node": where, "case": case.key, "result": result.to_json(),
                      "wall_s": wall_s})

    runner = CaseRunner(_CACHED["registry"], config, tunings={k: TuningResult.from_json(v)
                                                               for k, v in tunings_data.items()},
                        on_tuning=on_tuning)
    runner._node = node
    runner.worker = _CACHED.pop("worker", None)
    keep = False
    try:
        for data in cases_data:
            case = Case(**data)
            yield {"kind": "start", "node": where, "case": case.key}
            runner.tune(case)  # the group's tuning job reaches the driver before the cases it serves
            while tuned:
                yield tuned.pop(0)
            result, wall_s = runner.run(case)
            yield {"kind": "case", "node": where, "case": case.key, "result": result.to_json(), "wall_s": wall_s}
        keep = config.device == "cpu"
    except WorkerError as exc:
        yield {"kind": "worker_failed", "node": where, "message": str(exc)}
    finally:  # also when the driver cancels the task or goes away (GeneratorExit)
        if keep and runner.worker is not None and runner.worker.alive():
            _CACHED["worker"] = runner.worker
        else:
            runner.kill()
