"""What every dataset is: the ``Dataset`` record, its content hash, and ``IGNORE`` (a target nothing scores)."""


from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field

import numpy as np
import torch

IGNORE = -100


@dataclass(frozen=True)
class Dataset:
    name: str
    kind: str  # "classify" | "regress" | "lm"
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_eval: torch.Tensor
    y_eval: torch.Tensor
    n_classes: int  # classes (classify), outputs (regress), vocabulary size (lm)
    metric: str  # what eval_metric means; higher is better for every dataset here
    content_hash: str
    notes: dict[str, str] = field(default_factory=dict)
    # a small sample of the distribution training should move toward (data selection toward a target
    # domain, e.g. DSIR); apart from both the training and the eval split; None where there is none
    x_target: torch.Tensor | None = None

    @property
    def n_features(self) -> int:
        return self.x_train.shape[1]

    def to(self, device: str) -> Dataset:
        """The same data on ``device`` (same hash: the content does not change)."""
        if self.x_train.device.type == torch.device(device).type:
            return self
        moved = {k: getattr(self, k).to(device) for k in ("x_train", "y_train", "x_eval", "y_eval")}
        return dataclasses.replace(self, **moved)


def content_hash(*tensors: torch.Tensor | np.ndarray | bytes) -> str:
    digest = hashlib.sha256()
    for item in tensors:
        if isinstance(item, torch.Tensor):
            item = item.contiguous().numpy()
        if isinstance(item, np.ndarray):
            digest.update(str((item.dtype, item.shape)).encode())
            item = np.ascontiguousarray(item).tobytes()
        digest.update(item)
    return digest.hexdigest()[:16]


def _dataset(name: str, kind: str, x_tr, y_tr, x_ev, y_ev, n_classes: int, metric: str, **notes: str) -> Dataset:
    return Dataset(name, kind, x_tr, y_tr, x_ev, y_ev, n_classes, metric,
                   content_hash(x_tr, y_tr, x_ev, y_ev), dict(notes))
