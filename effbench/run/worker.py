"""The worker process: its parent-side handle (``Worker``) and its entry point (``main``).

Cases run one at a time in a long-lived ``python -m effbench.run.worker`` subprocess, so that an exception,
a hang past the timeout or a crash of the process becomes a recorded result and the run goes on with a fresh
worker. The protocol is JSON lines: a case (or a tuning job) on the worker's stdin, its result on stdout.

The worker belongs to its parent alone: the parent starts it in a session of its own, so a Ctrl-C or a
signal to the terminal's process group reaches only the parent, which ends the worker itself; it ignores
SIGINT (a stray one must not turn the case in flight into an ``error``), and the kernel kills it if the
parent dies (no orphan left computing). Anything the code under test prints goes to stderr.
"""

from __future__ import annotations

import ctypes
import dataclasses
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any

from effbench.run.case import CaseResult, TuningResult
from effbench.run.plan import Case, RunConfig, _config_dict

WORKER_ENV = {"PYTHONUNBUFFERED": "1"}


class WorkerError(RuntimeError):
    """The worker process could not start."""


def oom_kills() -> int | None:
    """The kernel's count of processes its OOM killer has killed (Linux >= 4.13), None when unknown."""
    try:
        with open("/proc/vmstat") as vmstat:
            for line in vmstat:
                if line.startswith("oom_kill "):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


class Worker:
    """A ``python -m effbench.run.worker`` subprocess speaking JSON lines over its stdin/stdout."""

    def __init__(self, plugins: Sequence[str], startup_timeout_s: float = 300.0) -> None:
        env = dict(os.environ)
        env.update(WORKER_ENV, EFFBENCH_WORKER_PARENT=str(os.getpid()))
        self.stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "effbench.run.worker", json.dumps(list(plugins))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            env=env,
            # its own session: signals to the terminal's process group (Ctrl-C, a CI cancel) reach the
            # parent only, which ends the worker itself instead of losing the case in flight as an error
            start_new_session=True,
        )
        self.buffer = b""
        self.eof = False
        self.oom_kills_before: int | None = None
        line = self._read_line(time.monotonic() + startup_timeout_s)
        if line is None or not line.startswith("ready"):
            self.kill()
            raise WorkerError(f"worker failed to start: {line or self.stderr_tail()}")

    def _read_line(self, deadline: float) -> str | None:
        """One line from the worker; None on timeout (``self.eof`` tells an end of stream apart)."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            ready, _, _ = select.select([fd], [], [], remaining)
            if not ready:
                return None
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                self.eof = True
                return None
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line.decode()

    def stderr_tail(self, n: int = 400) -> str:
        self.stderr.seek(0, os.SEEK_END)
        size = self.stderr.tell()
        self.stderr.seek(max(0, size - n))
        return " ".join(self.stderr.read().decode(errors="replace").split())

    def alive(self) -> bool:
        return self.proc.poll() is None

    def run(self, case: Case, config: RunConfig, tuned: dict[str, Any] | None = None) -> CaseResult:
        reply = self._exchange({"job": "case", "case": dataclasses.asdict(case), "config": _config_dict(config),
                                "tuned": tuned}, config.timeout_s)
        if isinstance(reply, CaseResult):
            return reply
        try:
            return CaseResult.from_json(reply)
        except (ValueError, TypeError) as exc:
            self.kill()  # the protocol is broken: start afresh
            return CaseResult(status="error", message=f"unreadable worker reply ({exc}): {reply[:200]}")

    def tune(self, case: Case, config: RunConfig, timeout_s: float) -> TuningResult:
        reply = self._exchange({"job": "tune", "case": dataclasses.asdict(case), "config": _config_dict(config)},
                               timeout_s)
        if isinstance(reply, CaseResult):
            return TuningResult(reply.status, reply.message)
        try:
            return TuningResult.from_json(reply)
        except (ValueError, TypeError) as exc:
            self.kill()
            return TuningResult("error", f"unreadable worker reply ({exc}): {reply[:200]}")

    def _exchange(self, message: dict[str, Any], timeout_s: float) -> str | CaseResult:
        """Send one job; its reply line, or the failure (timeout, crash) as a CaseResult."""
        assert self.proc.stdin is not None
        self.oom_kills_before = oom_kills()
        try:
            self.proc.stdin.write(json.dumps(message).encode() + b"\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            return self._crashed()
        line = self._read_line(time.monotonic() + timeout_s)
        if line is not None:
            return line
        if not self.eof and self.alive():
            self.kill()
            return CaseResult(status="timeout", message=f"no result within {timeout_s:g} s; worker killed")
        return self._crashed()

    def _crashed(self) -> CaseResult:
        code = self.proc.wait()
        if code < 0:
            try:
                how = f"killed by signal {signal.Signals(-code).name}"
            except ValueError:
                how = f"killed by signal {-code}"
        else:
            how = f"exited with code {code}"
        tail = self.stderr_tail()
        status = "error"
        if code == -signal.SIGKILL:
            # The kernel's OOM killer sends SIGKILL, and so does `kill -9`: its counter tells them apart.
            after = oom_kills()
            if after is not None and self.oom_kills_before is not None and after > self.oom_kills_before:
                status, how = "oom", how + " (by the kernel's OOM killer)"
            elif after is None:
                how += " (the OOM killer or kill -9: this kernel does not count OOM kills)"
            else:
                how += " (not by the OOM killer)"
        return CaseResult(status=status, message=f"worker process {how}" + (f"; stderr: {tail}" if tail else ""))

    def kill(self) -> None:
        if self.alive():
            self.proc.kill()
        self.proc.wait()

    def close(self) -> None:
        if self.alive():
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.close()
                self.proc.wait(timeout=10)
            except (subprocess.TimeoutExpired, BrokenPipeError):
                self.kill()
        self.stderr.close()


# --------------------------------------------------------------------------- the worker process itself

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _die_with_parent(parent: int) -> None:
    """SIGKILL this process when the parent that started it dies (Linux; elsewhere stdin's EOF ends it)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)


def main() -> None:
    """``python -m effbench.run.worker '<plugins as JSON>'``: cases in on stdin, results out on the original stdout."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = int(os.environ.get("EFFBENCH_WORKER_PARENT", "0"))
    if parent:
        _die_with_parent(parent)
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # prints from methods (Python or C) must not corrupt the protocol
    sys.stdout = sys.stderr

    from effbench.registry import discover
    from effbench.run.case import _TruthCache, apply_memory_limit, execute, execute_tuning
    from effbench.run.plan import config_from_dict

    plugins = json.loads(sys.argv[1]) if len(sys.argv) > 1 else []
    try:
        registry = discover(plugins)
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which stops the run
        protocol.write(f"failed {type(exc).__name__}: {exc}\n")
        return
    protocol.write("ready\n")
    cache = _TruthCache()
    limited = False
    for line in sys.stdin:
        message = json.loads(line)
        case = Case(**message["case"])
        config = config_from_dict(message["config"])
        if not limited:  # after the imports: the cap is for the cases (one run, one config per worker)
            apply_memory_limit(config)
            limited = True
        if message.get("job") == "tune":
            protocol.write(execute_tuning(registry, case).to_json() + "\n")
        else:
            protocol.write(execute(registry, case, config, cache, message.get("tuned")).to_json() + "\n")


if __name__ == "__main__":
    main()
