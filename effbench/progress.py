"""Progress of a run for people (a rich bar on a terminal) and for logs (plain lines in a pipe).

Both show cases done of the total, elapsed time, an ETA, the case in flight and the counts by
status. On a terminal: a live bar, with a line per failing case (wrong, error, oom, timeout)
above it. In a pipe or a file (a CI log): no markup and no wrapping, a line per case that is not
``ok`` as it ends (status first, so ``grep`` finds them), and a summary line every
``interval_s`` seconds, also while one long case runs, so a log is never silent for long.
The ETA scales the remaining cases' estimates (``effbench.estimate``) by how the finished cases
compared with theirs, or uses the mean time per finished case when there are no estimates.
``per_node`` (a run on a cluster) adds the cases each node finished to the counts.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Mapping
from typing import Any, TextIO

from effbench.console import duration, is_terminal

FAILING = ("error", "oom", "timeout", "wrong")
STATUS_STYLE = {"ok": "green", "wrong": "red", "error": "red", "oom": "red", "timeout": "red",
                "unavailable": "yellow", "skipped": "dim"}


class RunProgress:
    """Callbacks for ``run_cases`` (``start``, ``finish``, ``drop``); use as a context manager."""

    def __init__(self, total: int, done_before: int = 0, stream: TextIO | None = None,
                 estimates: Mapping[str, float | None] | None = None, interval_s: float = 60.0,
                 force_plain: bool = False, per_node: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.plain = force_plain or not is_terminal(self.stream)
        self.total = total
        self.done = done_before
        self.done_before = done_before
        self.counts: dict[str, int] = {}
        self.per_node = per_node
        self.nodes: dict[str, int] = {}  # host -> cases it finished in this session
        self.estimates = dict(estimates or {})  # case key -> seconds (None: unknown)
        self.estimated_done = 0.0  # estimates of the cases finished in this session
        self.estimated_left = sum(v for v in self.estimates.values() if v is not None)
        self.interval_s = interval_s
        self.started = time.monotonic()
        self.case: Any = None
        self.case_started = self.started
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None
        self.progress: Any = None
        self.bar: Any = None

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> RunProgress:
        if self.plain:
            self.thread = threading.Thread(target=self._tick, name="effbench-progress", daemon=True)
            self.thread.start()
        else:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.progress = Progress(
                TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
                TimeElapsedColumn(), TextColumn("ETA {task.fields[eta]}", markup=False),
                TextColumn("{task.fields[counts]}", markup=False),
                console=Console(file=self.stream), transient=False,
            )
            self.progress.start()
            self.bar = self.progress.add_task("starting", total=self.total, completed=self.done,
                                              eta=self.eta_text(), counts="")
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(timeout=5)
        if self.progress is not None:
            self.progress.stop()

    def _tick(self) -> None:
        while not self.stop.wait(self.interval_s):
            self.write(self.summary_line())

    # ------------------------------------------------------------------ callbacks

    def start(self, case: Any) -> None:
        with self.lock:
            self.case, self.case_started = case, time.monotonic()
        if self.progress is not None:
            self.progress.update(self.bar, description=self.short(case))

    def finish(self, case: Any, result: Any) -> None:
        with self.lock:
            self.done += 1
            self.counts[result.status] = self.counts.get(result.status, 0) + 1
            self.case = None
            seconds = self.estimates.pop(case.key, None)
            if seconds is not None:
                self.estimated_done += seconds
                self.estimated_left -= seconds
        if result.status in FAILING or (self.plain and result.status != "ok"):
            self.failure(case, result)
        if self.progress is not None:
            self.progress.update(self.bar, completed=self.done, eta=self.eta_text(), counts=self.counts_text())

    def node(self, case: Any, node: Any) -> None:
        """The node (``provenance.Node``) that ran ``case``, told just before ``finish``."""
        with self.lock:
            self.nodes[node.host] = self.nodes.get(node.host, 0) + 1

    def drop(self, case: Any) -> None:
        """A planned case that will not run (an earlier point covered its method)."""
        with self.lock:
            self.total -= 1
            seconds = self.estimates.pop(case.key, None)
            if seconds is not None:
                self.estimated_left -= seconds
        if self.progress is not None:
            self.progress.update(self.bar, total=self.total)

    # ------------------------------------------------------------------ text

    @staticmethod
    def short(case: Any) -> str:
        return f"{case.task} {case.method}/{case.impl} seed {case.seed}"

    def counts_text(self) -> str:
        text = ", ".join(f"{status} {n}" for status, n in sorted(self.counts.items(), key=lambda kv: -kv[1]))
        if self.per_node and self.nodes:
            text += "; by node: " + ", ".join(f"{host} {n}" for host, n in sorted(self.nodes.items()))
        return text

    def eta_seconds(self) -> float | None:
        elapsed = time.monotonic() - self.started
        finished = self.done - self.done_before
        left = self.total - self.done
        if left <= 0:
            return 0.0
        if self.estimated_done > 0 and self.estimated_left > 0:
            return self.estimated_left * elapsed / self.estimated_done
        if finished > 0:
            return elapsed / finished * left
        if self.estimates and self.estimated_left > 0:
            return self.estimated_left
        return None

    def eta_text(self) -> str:
        return duration(self.eta_seconds())

    def summary_line(self) -> str:
        with self.lock:
            elapsed = time.monotonic() - self.started
            share = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
            line = (f"progress: {self.done}/{self.total} cases{share}, elapsed {duration(elapsed)}, "
                    f"ETA {self.eta_text()}")
            if self.counts:
                line += f"; {self.counts_text()}"
            if self.case is not None:
                line += f"; running {self.case.label()} for {duration(time.monotonic() - self.case_started)}"
        return line

    def failure(self, case: Any, result: Any) -> None:
        message = " ".join(str(result.message).split())
        if self.plain:
            self.write(f"{result.status} [{self.done}/{self.total}] {case.label()}: {message}")
            return
        from rich.text import Text

        self.progress.console.print(Text.assemble((result.status, STATUS_STYLE.get(result.status, "")),
                                                  f" {case.label()}: {message}"))

    def write(self, line: str) -> None:
        with self.lock:
            self.stream.write(line + "\n")
            self.stream.flush()
