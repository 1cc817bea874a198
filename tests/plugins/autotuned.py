"""Test double: an implementation whose (stand-in) kernel is autotuned, registered as effbench's kernels
register theirs, so the runner must record the config the timed calls launched."""

from types import SimpleNamespace

import torch.nn.functional as F

from effbench import Method
from effbench.kernels import _tune


def _stand_in_kernel():
    """Where a @triton.jit function would be: the autotuner wraps it in ``.fn``."""


TUNER = SimpleNamespace(best_config=None, fn=_stand_in_kernel)
_tune._TUNERS.append(TUNER)
CHOICE = SimpleNamespace(kwargs={"BLOCK_V": 128, "BLOCK_N": 64}, num_warps=8, num_stages=3)

method = Method(task="loss/linear_cross_entropy", name="autotuned", summary="Test double: an autotuned kernel.")


@method.impl("reference")
def reference(x, w, y, ignore_index=-100):
    return F.cross_entropy(x @ w.T, y, ignore_index=ignore_index)


@method.impl("tuned")
def tuned(x, w, y, ignore_index=-100):
    TUNER.best_config = CHOICE  # what triton's Autotuner.run does on every launch
    return F.cross_entropy(x @ w.T, y, ignore_index=ignore_index)


@method.impl("trials_not_reset")
def trials_not_reset(x, w, y, ignore_index=-100):
    """A tuned kernel whose tuning trial added into the gradient buffers the real launch adds into again (no
    ``reset_to_zero``): the loss is right, every gradient twice what it should be."""
    TUNER.best_config = CHOICE
    loss = F.cross_entropy(x @ w.T, y, ignore_index=ignore_index)
    trial = F.cross_entropy(x @ w.T, y, ignore_index=ignore_index)
    return loss + (trial - trial.detach())  # the value of one call, the gradient of two
