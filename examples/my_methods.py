"""An example plugin: compare your own implementation against the catalog.

    effbench run --plugin examples/my_methods.py --task linear_cross_entropy --grid smoke

A plugin is a Python file that defines Method objects (and, if you like, new tasks).
Here: a cross-entropy computed by hand, next to the built-in linear_cross_entropy.
"""

import torch

from effbench import Method

method = Method(
    task="loss/linear_cross_entropy",
    name="my_cross_entropy",
    summary="Cross-entropy written out by hand: logsumexp minus the target logit.",
)


@method.impl("reference")
def reference(x: torch.Tensor, w: torch.Tensor, y: torch.Tensor, ignore_index: int = -100) -> torch.Tensor:
    logits = (x @ w.T).to(torch.promote_types(x.dtype, torch.float32))
    valid = y != ignore_index
    target = logits.gather(1, torch.where(valid, y, 0)[:, None])[:, 0]
    return ((torch.logsumexp(logits, -1) - target) * valid).sum() / valid.sum()


@method.impl("half_logits")
def half_logits(x: torch.Tensor, w: torch.Tensor, y: torch.Tensor, ignore_index: int = -100) -> torch.Tensor:
    """The same loss with logits kept in the input dtype (no upcast): cheaper, less exact in bf16."""
    logits = x @ w.T
    valid = y != ignore_index
    target = logits.gather(1, torch.where(valid, y, 0)[:, None])[:, 0]
    return ((torch.logsumexp(logits, -1) - target) * valid).sum() / valid.sum()
