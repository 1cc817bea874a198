"""The spine's acceptance plugin: one method raises, one returns NaN, one is correct."""

import torch
import torch.nn.functional as F

from effbench import Method


def cross_entropy(x, w, y, ignore_index=-100):
    logits = (x @ w.T).to(torch.promote_types(x.dtype, torch.float32))
    return F.cross_entropy(logits, y, ignore_index=ignore_index)


raising = Method(task="loss/linear_cross_entropy", name="plugin_raises", summary="Always raises.")
nan = Method(task="loss/linear_cross_entropy", name="plugin_nan", summary="Returns NaN.")
correct = Method(task="loss/linear_cross_entropy", name="plugin_correct", summary="A correct cross-entropy.")


@raising.impl("reference")
def raise_always(x, w, y, ignore_index=-100):
    raise RuntimeError("this plugin method always fails")


@nan.impl("reference")
def nan_always(x, w, y, ignore_index=-100):
    return cross_entropy(x, w, y, ignore_index) * float("nan")


correct.impl("reference")(cross_entropy)
