"""Byte-level text from the installed Python standard library (no download), and Zipfian token streams."""


from __future__ import annotations

import dataclasses
import functools
import sysconfig
from pathlib import Path

import torch

from effbench.data.base import Dataset, _dataset, content_hash

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
