"""A plugin whose impls kill the Ray worker process that runs their case's group (the effbench worker's
parent): a lost node, as the Ray executor sees it. Outside a Ray task they raise instead, so that a local
run never kills its own driver."""

import os
import signal
from pathlib import Path

import torch.nn.functional as F

from effbench import Method

method = Method(task="loss/linear_cross_entropy", name="ray_faults", summary="Test double that kills its Ray worker.")
MARKERS = "EFFBENCH_TEST_RAY_MARKERS"  # a directory: "once" kills leave a file there


def _kill_ray_worker() -> None:
    parent = os.getppid()
    with open(f"/proc/{parent}/cmdline", "rb") as cmdline:
        if not cmdline.read().startswith(b"ray::"):
            raise RuntimeError("planted: not in a Ray task, nothing to kill")
    os.kill(parent, signal.SIGKILL)


@method.impl("reference")
def reference(x, w, y, ignore_index=-100):
    return F.cross_entropy(x @ w.T, y, ignore_index=ignore_index)


@method.impl("kills_ray_worker")
def kills_ray_worker(x, w, y, ignore_index=-100):
    _kill_ray_worker()  # every time: the group is lost after its retries
    return reference(x, w, y, ignore_index)


@method.impl("kills_ray_worker_once")
def kills_ray_worker_once(x, w, y, ignore_index=-100):
    marker = Path(os.environ[MARKERS]) / "killed-once"
    if not marker.exists():
        marker.touch()
        _kill_ray_worker()  # the first time only: the retry finishes the group
    return reference(x, w, y, ignore_index)
