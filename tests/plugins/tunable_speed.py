"""A plugin whose ``sleepy`` implementation takes EFFBENCH_TEST_SLOWDOWN times 10 ms (default 1): a planted
slowdown. Both implementations sleep, so their times are steady from run to run (sleep jitter is ~1%).
EFFBENCH_TEST_WRONG=1 makes ``sleepy`` 1% off (a planted fault: the case turns ``wrong``)."""

import os
import time

import torch
import torch.nn.functional as F

from effbench import Method

method = Method(task="loss/linear_cross_entropy", name="tunable_speed", summary="Test double with a planted slowdown.")


def exact(x, w, y, ignore_index=-100):
    return F.cross_entropy((x @ w.T).to(torch.promote_types(x.dtype, torch.float32)), y, ignore_index=ignore_index)


@method.impl("reference")
def reference(x, w, y, ignore_index=-100):
    time.sleep(0.010)
    return exact(x, w, y, ignore_index)


@method.impl("sleepy")
def sleepy(x, w, y, ignore_index=-100):
    time.sleep(0.010 * float(os.environ.get("EFFBENCH_TEST_SLOWDOWN", "1")))
    return exact(x, w, y, ignore_index) * (1.01 if os.environ.get("EFFBENCH_TEST_WRONG") == "1" else 1.0)
