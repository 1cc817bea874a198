"""Datasets that need no download; each records a content hash of exactly what it holds.

Every builder is deterministic in its arguments (a dataset seed apart from any run's
initialisation and data-order seeds) and returns a :class:`Dataset`: train and eval
tensors, the kind of problem, the eval metric, and a hash over the tensors.

Kinds: ``classify`` (x (N, F) float, y (N,) class), ``regress`` (x (N, F), y (N, O)),
``lm`` (x (N, T) tokens, y (N, T) next tokens with ``IGNORE`` where nothing is scored).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import sysconfig
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

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


@functools.lru_cache(maxsize=16)
def sparse_parity(bits: int = 20, k: int = 3, n_train: int = 4096, n_eval: int = 1024, seed: int = 0) -> Dataset:
    """x in {-1, +1}^bits, y = parity of ``k`` secret bits: hard for gradient descent until it finds them."""
    gen = torch.Generator().manual_seed(seed)
    secret = torch.randperm(bits, generator=gen)[:k]
    x = torch.randint(0, 2, (n_train + n_eval, bits), generator=gen)
    y = x[:, secret].sum(1) % 2
    xf = x.float() * 2 - 1
    return _dataset(f"sparse_parity_{bits}_{k}", "classify", xf[:n_train], y[:n_train], xf[n_train:], y[n_train:],
                    2, "accuracy", secret=",".join(map(str, secret.tolist())))


@functools.lru_cache(maxsize=16)
def associative_recall(pairs: int = 8, keys: int = 32, values: int = 32, n_train: int = 4096, n_eval: int = 512,
                       seed: int = 0) -> Dataset:
    """Sequences ``k1 v1 ... kP vP q`` with q one of the keys; the only scored target is q's value.

    Tokens: keys [0, keys), values [keys, keys + values). Solving it needs retrieval across
    the whole context, which local attention patterns cannot do.
    """
    gen = torch.Generator().manual_seed(seed)
    n = n_train + n_eval
    k = torch.stack([torch.randperm(keys, generator=gen)[:pairs] for _ in range(n)])  # distinct keys per row
    v = torch.randint(keys, keys + values, (n, pairs), generator=gen)
    which = torch.randint(0, pairs, (n,), generator=gen)
    seq = torch.stack([k, v], dim=2).reshape(n, 2 * pairs)
    query = k[torch.arange(n), which]
    x = torch.cat([seq, query[:, None]], dim=1)  # (n, 2P + 1)
    y = torch.full_like(x, IGNORE)
    y[:, -1] = v[torch.arange(n), which]
    return _dataset(f"associative_recall_{pairs}", "lm", x[:n_train], y[:n_train], x[n_train:], y[n_train:],
                    keys + values, "answer_accuracy")


@functools.lru_cache(maxsize=16)
def copying(length: int = 16, vocab: int = 16, n_train: int = 4096, n_eval: int = 512, seed: int = 0) -> Dataset:
    """``a1 .. aL SEP`` then the model must emit ``a1 .. aL``; only the copy positions are scored."""
    gen = torch.Generator().manual_seed(seed)
    n = n_train + n_eval
    sep = vocab
    payload = torch.randint(0, vocab, (n, length), generator=gen)
    # input: payload, SEP, payload[:-1] (teacher forcing); target: IGNORE on the first L positions, then payload
    x = torch.cat([payload, torch.full((n, 1), sep), payload[:, :-1]], dim=1)  # (n, 2L)
    y = torch.cat([torch.full((n, length), IGNORE), payload], dim=1)
    return _dataset(f"copying_{length}", "lm", x[:n_train], y[:n_train], x[n_train:], y[n_train:], vocab + 1,
                    "token_accuracy")


@functools.lru_cache(maxsize=16)
def key_value_lookup(pairs: int = 24, queries: int = 8, keys: int = 32, values: int = 8, n_train: int = 65536,
                     n_eval: int = 512, seed: int = 0) -> Dataset:
    """A store of ``pairs`` key-value tokens, then ``queries`` keys, each scored with its stored value.

    Each store token encodes one pair (id ``key * values + value``; keys distinct in a row),
    so retrieval is one attention hop by content: a query finds the store token of its key
    wherever it sits. (In ``associative_recall`` the value is the token after its key, a
    two-hop induction circuit that small LMs reach only after long plateaus.) Tokens: store
    [0, keys * values), queries [keys * values, + keys), answers [keys * values + keys, + values).
    """
    gen = torch.Generator().manual_seed(seed)
    n = n_train + n_eval
    k = torch.stack([torch.randperm(keys, generator=gen)[:pairs] for _ in range(n)])  # distinct keys per row
    v = torch.randint(0, values, (n, pairs), generator=gen)
    which = torch.stack([torch.randperm(pairs, generator=gen)[:queries] for _ in range(n)])  # distinct queries
    store, n_store = k * values + v, keys * values
    x = torch.cat([store, n_store + k.gather(1, which)], dim=1)  # (n, pairs + queries)
    y = torch.full_like(x, IGNORE)
    y[:, pairs:] = n_store + keys + v.gather(1, which)
    return _dataset(f"key_value_lookup_{pairs}x{queries}", "lm", x[:n_train], y[:n_train], x[n_train:], y[n_train:],
                    n_store + keys + values, "answer_accuracy")


# --------------------------------------------------------------------------- text


def _stdlib_files() -> list[Path]:
    root = Path(sysconfig.get_paths()["stdlib"])
    return sorted(p for p in root.glob("*.py") if p.is_file())


@functools.lru_cache(maxsize=4)
def stdlib_bytes(seq_len: int = 128, max_bytes: int = 1 << 20, eval_fraction: float = 0.1) -> Dataset:
    """A byte-level corpus from the installed Python standard library's top-level modules (no download).

    Files are taken in sorted order until ``max_bytes``; the file list and the bytes are
    hashed (the corpus differs between Python versions, and the hash says so). The last
    ``eval_fraction`` of the stream is held out.
    """
    chunks, names, total = [], [], 0
    for path in _stdlib_files():
        data = path.read_bytes()
        chunks.append(data)
        names.append(path.name)
        total += len(data)
        if total >= max_bytes:
            break
    stream = torch.frombuffer(bytearray(b"".join(chunks)[:max_bytes]), dtype=torch.uint8).long()
    n_seq = (len(stream) - 1) // seq_len
    x = stream[: n_seq * seq_len].reshape(n_seq, seq_len)
    y = stream[1 : n_seq * seq_len + 1].reshape(n_seq, seq_len)
    n_eval = max(1, int(n_seq * eval_fraction))
    return _dataset("stdlib_bytes", "lm", x[:-n_eval], y[:-n_eval], x[-n_eval:], y[-n_eval:], 256,
                    "token_accuracy", files=str(len(names)), file_list_hash=content_hash("\n".join(names).encode()))


@functools.lru_cache(maxsize=4)
def stdlib_mixed_pool(seq_len: int = 64, n_train: int = 2048, off_fraction: float = 0.5, n_eval: int = 256,
                      n_target: int = 128, seed: int = 0, off: str = "shuffled") -> Dataset:
    """A training pool of byte sequences, ``off_fraction`` of them off-distribution, for selection.

    In-distribution: consecutive windows of the Python standard library's source
    (``stdlib_bytes``). Off-distribution (``off``): ``"shuffled"``, in-distribution windows with
    their bytes shuffled within the window, so unigram statistics match and only order (bigrams
    and up) tells them apart; ``"random"``, uniformly random bytes (noise no model can learn);
    ``"repeated"``, copies of 8 in-distribution windows (redundant data). Eval: in-distribution
    windows apart from training; ``x_target``: a further ``n_target`` in-distribution windows,
    the target sample DSIR-style selection may use. Which training rows are off-distribution is
    recorded in the notes as a count only.
    """
    if off not in ("shuffled", "random", "repeated"):
        raise ValueError(f"off must be 'shuffled', 'random' or 'repeated', not {off!r}")
    base = stdlib_bytes(seq_len=seq_len)
    gen = torch.Generator().manual_seed(seed)
    windows = torch.cat([base.x_train, base.y_train[:, -1:]], dim=1)  # seq_len + 1 bytes each
    order = torch.randperm(len(windows), generator=gen)
    n_off = int(n_train * off_fraction)
    need = n_train + n_eval + n_target
    if need > len(windows):
        raise ValueError(f"stdlib_mixed_pool needs {need} windows, the corpus has {len(windows)}")
    train, ev, target = (windows[order[a:b]] for a, b in
                         ((0, n_train), (n_train, n_train + n_eval), (n_train + n_eval, need)))
    if n_off == 0:
        corrupted = train[:0]
    elif off == "shuffled":
        corrupted = torch.stack([row[torch.randperm(len(row), generator=gen)] for row in train[:n_off]])
    elif off == "random":
        corrupted = torch.randint(0, 256, (n_off, train.shape[1]), generator=gen)
    else:
        corrupted = train[:8][torch.arange(n_off) % 8]
    train = torch.cat([corrupted, train[n_off:]])[torch.randperm(n_train, generator=gen)]
    name = "stdlib_windows" if n_off == 0 else "stdlib_mixed_pool" if off == "shuffled" else f"stdlib_{off}_pool"
    data = _dataset(name, "lm", train[:, :-1], train[:, 1:], ev[:, :-1], ev[:, 1:], 256,
                    "token_accuracy", off_distribution=str(n_off))
    return dataclasses.replace(data, x_target=target[:, :-1],
                               content_hash=content_hash(data.content_hash.encode(), target))


@functools.lru_cache(maxsize=1)
def stdlib_windows() -> Dataset:
    """``stdlib_mixed_pool``'s windows with nothing off-distribution: clean source-code windows."""
    return stdlib_mixed_pool(off_fraction=0.0)


@functools.lru_cache(maxsize=1)
def stdlib_random_pool() -> Dataset:
    """``stdlib_mixed_pool`` with half the pool uniformly random bytes."""
    return stdlib_mixed_pool(off="random")


@functools.lru_cache(maxsize=1)
def stdlib_repeated_pool() -> Dataset:
    """``stdlib_mixed_pool`` with half the pool copies of 8 in-distribution windows."""
    return stdlib_mixed_pool(off="repeated")


@functools.lru_cache(maxsize=4)
def stdlib_memorize(n_train: int = 32, n_eval: int = 64, seq_len: int = 64) -> Dataset:
    """A few byte sequences to be seen over and over (memorisation), and held-out ones.

    Sequences are spread evenly over the standard-library corpus; the train and eval
    sequences never overlap.
    """
    corpus = stdlib_bytes(seq_len=seq_len)
    x = torch.cat([corpus.x_train, corpus.x_eval])
    y = torch.cat([corpus.y_train, corpus.y_eval])
    picks = torch.linspace(0, x.shape[0] - 1, n_train + n_eval).long()
    tr, ev = picks[0::2][:n_train], picks[1::2][:n_eval]
    if len(tr) < n_train or len(ev) < n_eval:
        tr, ev = picks[:n_train], picks[n_train:]
    return _dataset("stdlib_memorize", "lm", x[tr], y[tr], x[ev], y[ev], 256, "token_accuracy")


@functools.lru_cache(maxsize=4)
def zipf_tokens(vocab: int = 32000, seq_len: int = 128, n_train: int = 512, n_eval: int = 64,
                exponent: float = 1.1, seed: int = 0) -> Dataset:
    """I.i.d. tokens with Zipfian frequencies p(r) ~ 1 / r^exponent: a large-vocabulary stream.

    Nothing but the unigram distribution is learnable, so the best eval loss is its entropy
    (stored in the notes).
    """
    gen = torch.Generator().manual_seed(seed)
    ranks = torch.arange(1, vocab + 1, dtype=torch.float64)
    probs = ranks ** (-exponent)
    probs /= probs.sum()
    ids = torch.randperm(vocab, generator=gen)  # frequent tokens scattered over the id range
    draws = torch.multinomial(probs, (n_train + n_eval) * (seq_len + 1), replacement=True, generator=gen)
    stream = ids[draws].reshape(n_train + n_eval, seq_len + 1)
    entropy = float(-(probs * probs.log()).sum())
    return _dataset(f"zipf_{vocab}", "lm", stream[:n_train, :-1], stream[:n_train, 1:], stream[n_train:, :-1],
                    stream[n_train:, 1:], vocab, "token_accuracy", entropy_nats=f"{entropy:.6f}")


DATASETS = {
    "digits": digits,
    "digits_label_noise": digits_label_noise,
    "digits_duplicated": digits_duplicated,
    "teacher_student": teacher_student,
    "long_tail_mixture": long_tail_mixture,
    "easy_hard_noisy": easy_hard_noisy,
    "sparse_parity": sparse_parity,
    "associative_recall": associative_recall,
    "copying": copying,
    "key_value_lookup": key_value_lookup,
    "stdlib_bytes": stdlib_bytes,
    "stdlib_mixed_pool": stdlib_mixed_pool,
    "stdlib_windows": stdlib_windows,
    "stdlib_random_pool": stdlib_random_pool,
    "stdlib_repeated_pool": stdlib_repeated_pool,
    "stdlib_memorize": stdlib_memorize,
    "zipf_tokens": zipf_tokens,
}
