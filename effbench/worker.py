"""Worker process of the runner: reads cases as JSON lines on stdin, writes results on stdout.

Run as ``python -m effbench.worker '<plugins as JSON>'``. The protocol owns the original
stdout; anything the code under test prints goes to stderr instead.

The worker belongs to its parent alone: the parent starts it in a session of its own, so a
Ctrl-C or a signal to the terminal's process group reaches only the parent, which ends the
worker itself; it ignores SIGINT (a stray one must not turn the case in flight into an
``error``), and the kernel kills it if the parent dies (no orphan left computing).
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sys

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
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = int(os.environ.get("EFFBENCH_WORKER_PARENT", "0"))
    if parent:
        _die_with_parent(parent)
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # prints from methods (Python or C) must not corrupt the protocol
    sys.stdout = sys.stderr

    from effbench.registry import discover
    from effbench.runner import Case, _TruthCache, apply_memory_limit, config_from_dict, execute, execute_tuning

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
