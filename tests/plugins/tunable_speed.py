"""A plugin with a task of its own and a planted slowdown: ``sleepy`` takes EFFBENCH_TEST_SLOWDOWN times 10 ms
(default 1). Both implementations sleep, so their times are steady from run to run (sleep jitter is ~1%).
EFFBENCH_TEST_WRONG=1 makes ``sleepy`` 1% off (a planted fault: the case turns ``wrong``).

The task is linear cross-entropy at one tiny point on every grid: its ``cpu`` grid times as carefully as the
real cpu grid (warm-up, 5-100 repetitions) in a few seconds, so ``compare`` can judge it."""

import os
import time

import torch
import torch.nn.functional as F

from effbench import Method
from effbench.tasks import KernelTask
from effbench.tasks import linear_cross_entropy as lce

POINT = {"N": 64, "D": 32, "V": 257}
task = KernelTask(
    family="loss", name="tunable_speed", description="Test double: a tiny linear cross-entropy.",
    grids={"smoke": [POINT, {**POINT, "N": 32}], "cpu": [POINT, {**POINT, "N": 32}], "gpu": [POINT]},
    dtypes={"smoke": ("float32",), "cpu": ("float32",), "gpu": ("float32",)},
    make_inputs=lce.make_inputs, outputs=lce.outputs, tolerance=lce.task.tolerance,
)
method = Method(task="loss/tunable_speed", name="tunable_speed", summary="Test double with a planted slowdown.")


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
