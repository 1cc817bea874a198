"""A plugin with planted faults, one per status the runner must record."""

import os
import signal
import time

import torch
import torch.nn.functional as F

from effbench import Method, Unavailable
from effbench.registry import BackwardUnavailable

method = Method(task="loss/linear_cross_entropy", name="planted_faults", summary="Test double with planted faults.")


@method.impl("reference")
def reference(x, w, y, ignore_index=-100):
    return F.cross_entropy((x @ w.T).to(torch.promote_types(x.dtype, torch.float32)), y, ignore_index=ignore_index)


@method.impl("correct")
def correct(x, w, y, ignore_index=-100):
    logits = x @ w.T
    return F.cross_entropy(logits, y, ignore_index=ignore_index)


@method.impl("raises")
def raises(x, w, y, ignore_index=-100):
    raise ValueError("planted failure")


@method.impl("nan")
def nan(x, w, y, ignore_index=-100):
    return reference(x, w, y, ignore_index) * float("nan")


@method.impl("off")
def off(x, w, y, ignore_index=-100):
    return reference(x, w, y, ignore_index) * 1.01  # 1% wrong: above any fp32 tolerance


@method.impl("hangs")
def hangs(x, w, y, ignore_index=-100):
    time.sleep(3600)


@method.impl("crashes")
def crashes(x, w, y, ignore_index=-100):
    os.abort()


@method.impl("allocates")
def allocates(x, w, y, ignore_index=-100):
    hog = torch.ones(8 << 30, dtype=torch.uint8)  # 8 GiB: past a --memory-limit of a few GiB
    return reference(x, w, y, ignore_index) + hog[0]


@method.impl("kills_itself")
def kills_itself(x, w, y, ignore_index=-100):
    os.kill(os.getpid(), signal.SIGKILL)  # the same signal as the OOM killer's, but not from it


@method.impl("sleepy")
def sleepy(x, w, y, ignore_index=-100):
    time.sleep(0.2)  # slow enough that a run of a few cases can be killed mid-way
    return correct(x, w, y, ignore_index)


@method.impl("slow")
def slow(x, w, y, ignore_index=-100):
    time.sleep(float(os.environ.get("EFFBENCH_TEST_SLOW_S", "5")))  # long enough to be caught in flight
    return correct(x, w, y, ignore_index)


@method.impl("oom")
def oom(x, w, y, ignore_index=-100):
    raise torch.OutOfMemoryError("planted: CUDA out of memory. Tried to allocate 1 TiB")


@method.impl("unavailable")
def unavailable(x, w, y, ignore_index=-100):
    raise Unavailable("planted: needs hardware this machine lacks")


@method.impl("no_backward")
def no_backward(x, w, y, ignore_index=-100):
    raise BackwardUnavailable("planted: the backward cannot run here")


@method.impl("missing_peer", needs=("surely_not_an_installed_package",))
def missing_peer(x, w, y, ignore_index=-100):
    raise AssertionError("never called")
