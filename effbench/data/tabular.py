"""Classification and regression data: scikit-learn's digits (shipped inside the package) and its noisy and
duplicated variants, and seeded synthetic problems (teacher-student, long tails, easy/hard/noisy mixtures)."""


from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
import torch

from effbench.data.base import Dataset, _dataset

# --------------------------------------------------------------------------- digits


@functools.lru_cache(maxsize=16)
def digits(eval_fraction: float = 0.25, split_seed: int = 0) -> Dataset:
    """scikit-learn's 8x8 digits (1797 images shipped inside the package), pixels scaled to [0, 1]."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.data / 16.0).astype(np.float32)
    y = bunch.target.astype(np.int64)
    order = np.random.default_rng(split_seed).permutation(len(y))
    n_eval = int(round(len(y) * eval_fraction))
    ev, tr = order[:n_eval], order[n_eval:]
    return _dataset("digits", "classify", torch.from_numpy(x[tr]), torch.from_numpy(y[tr]),
                    torch.from_numpy(x[ev]), torch.from_numpy(y[ev]), 10, "accuracy")


@functools.lru_cache(maxsize=16)
def digits_label_noise(noise: float = 0.3, seed: int = 0) -> Dataset:
    """Digits with a fraction ``noise`` of training labels replaced by a different random class; eval is clean."""
    base = digits()
    gen = torch.Generator().manual_seed(seed)
    y = base.y_train.clone()
    flip = torch.rand(len(y), generator=gen) < noise
    shift = torch.randint(1, 10, (len(y),), generator=gen)  # never the true class
    y[flip] = (y[flip] + shift[flip]) % 10
    return _dataset(f"digits_noise{noise:g}", "classify", base.x_train, y, base.x_eval, base.y_eval, 10, "accuracy",
                    flipped=str(int(flip.sum())))


@functools.lru_cache(maxsize=16)
def digits_duplicated(fraction: float = 0.5, copies: int = 4, seed: int = 0) -> Dataset:
    """Digits where a random ``fraction`` of training examples appears ``copies`` extra times (redundant data)."""
    base = digits()
    gen = torch.Generator().manual_seed(seed)
    n = len(base.y_train)
    chosen = torch.randperm(n, generator=gen)[: int(n * fraction)]
    index = torch.cat([torch.arange(n), chosen.repeat(copies)])
    index = index[torch.randperm(len(index), generator=gen)]
    return _dataset(f"digits_dup{fraction:g}x{copies}", "classify", base.x_train[index], base.y_train[index],
                    base.x_eval, base.y_eval, 10, "accuracy")


# --------------------------------------------------------------------------- synthetic


@functools.lru_cache(maxsize=16)
def teacher_student(n_train: int = 2048, n_eval: int = 512, dim: int = 32, hidden: int = 64, outputs: int = 1,
                    noise: float = 0.1, seed: int = 0) -> Dataset:
    """y = teacher(x) + noise, teacher a random two-layer tanh network; metric R^2 on clean eval targets."""
    gen = torch.Generator().manual_seed(seed)
    w1 = torch.randn(dim, hidden, generator=gen) / dim**0.5
    w2 = torch.randn(hidden, outputs, generator=gen) / hidden**0.5
    x = torch.randn(n_train + n_eval, dim, generator=gen)
    y = torch.tanh(x @ w1) @ w2
    y_noisy = y + noise * torch.randn(y.shape, generator=gen)
    return _dataset("teacher_student", "regress", x[:n_train], y_noisy[:n_train], x[n_train:], y[n_train:],
                    outputs, "r2")


@functools.lru_cache(maxsize=16)
def long_tail_mixture(classes: int = 10, dim: int = 16, n_head: int = 500, imbalance: float = 100.0,
                      n_eval_per_class: int = 100, spread: float = 2.5, seed: int = 0) -> Dataset:
    """Gaussian mixture whose class sizes fall geometrically from ``n_head`` to ``n_head / imbalance``.

    Eval is balanced, so accuracy on it is the balanced accuracy the tail decides.
    """
    gen = torch.Generator().manual_seed(seed)
    means = torch.randn(classes, dim, generator=gen) * 2.0
    sizes = [max(1, round(n_head * imbalance ** (-c / (classes - 1)))) for c in range(classes)]

    def draw(counts: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        ys = torch.cat([torch.full((n,), c) for c, n in enumerate(counts)])
        xs = means[ys] + spread * torch.randn(len(ys), dim, generator=gen)
        order = torch.randperm(len(ys), generator=gen)
        return xs[order], ys[order]

    x_tr, y_tr = draw(sizes)
    x_ev, y_ev = draw([n_eval_per_class] * classes)
    return _dataset("long_tail_mixture", "classify", x_tr, y_tr, x_ev, y_ev, classes, "balanced_accuracy",
                    class_sizes=",".join(map(str, sizes)))


@functools.lru_cache(maxsize=16)
def easy_hard_noisy(n_train: int = 4000, n_eval: int = 2000, dim: int = 20, classes: int = 4,
                    fractions: tuple[float, float, float] = (0.5, 0.35, 0.15), seed: int = 0) -> Dataset:
    """Labels from a random linear teacher; training examples are a mixture of three kinds:

    - easy: teacher margin (top logit minus the runner-up) above 2 — redundant once learnt;
    - hard: margin below 0.5 — near a boundary, informative;
    - noisy: drawn like any x, labelled with a uniformly random *other* class — unlearnable.

    Eval draws x ~ N(0, I) with the teacher's labels (clean), so accuracy rewards learning the
    boundaries. The kind of every training example is in the notes' counts only.
    """
    gen = torch.Generator().manual_seed(seed)
    teacher = torch.randn(dim, classes, generator=gen)

    def margin_of(x: torch.Tensor) -> torch.Tensor:
        top2 = (x @ teacher).topk(2, dim=-1).values
        return top2[:, 0] - top2[:, 1]

    def draw_where(n: int, keep: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        found, total = [], 0
        while total < n:
            x = torch.randn(4 * n, dim, generator=gen)
            x = x[keep(x)]
            found.append(x)
            total += len(x)
        return torch.cat(found)[:n]

    n_easy, n_hard = int(n_train * fractions[0]), int(n_train * fractions[1])
    n_noisy = n_train - n_easy - n_hard
    x_easy = draw_where(n_easy, lambda x: margin_of(x) > 2.0)
    x_hard = draw_where(n_hard, lambda x: margin_of(x) < 0.5)
    x_noisy = torch.randn(n_noisy, dim, generator=gen)
    x_tr = torch.cat([x_easy, x_hard, x_noisy])
    y_tr = (x_tr @ teacher).argmax(-1)
    shift = torch.randint(1, classes, (n_noisy,), generator=gen)
    y_tr[n_easy + n_hard:] = (y_tr[n_easy + n_hard:] + shift) % classes
    order = torch.randperm(n_train, generator=gen)
    x_ev = torch.randn(n_eval, dim, generator=gen)
    return _dataset("easy_hard_noisy", "classify", x_tr[order], y_tr[order], x_ev, (x_ev @ teacher).argmax(-1),
                    classes, "accuracy", easy=str(n_easy), hard=str(n_hard), noisy=str(n_noisy))
