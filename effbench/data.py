"""Datasets that need no download; each records a content hash of what it holds."""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class Dataset:
    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_eval: torch.Tensor
    y_eval: torch.Tensor
    n_classes: int
    content_hash: str


def _hash(*arrays: np.ndarray) -> str:
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:16]


@functools.lru_cache(maxsize=4)
def digits(eval_fraction: float = 0.25, split_seed: int = 0) -> Dataset:
    """scikit-learn's 8x8 digits (1797 images, shipped inside the package), pixels scaled to [0, 1].

    The train/eval split is fixed by ``split_seed``, independent of any run's seed.
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.data / 16.0).astype(np.float32)
    y = bunch.target.astype(np.int64)
    order = np.random.default_rng(split_seed).permutation(len(y))
    n_eval = int(round(len(y) * eval_fraction))
    eval_idx, train_idx = order[:n_eval], order[n_eval:]
    return Dataset(
        name="digits",
        x_train=torch.from_numpy(x[train_idx]),
        y_train=torch.from_numpy(y[train_idx]),
        x_eval=torch.from_numpy(x[eval_idx]),
        y_eval=torch.from_numpy(y[eval_idx]),
        n_classes=10,
        content_hash=_hash(x, y, order),
    )
