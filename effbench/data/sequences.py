"""Token data with a known answer: sparse parity, associative recall, copying, key-value lookup."""


from __future__ import annotations

import functools

import torch

from effbench.data.base import IGNORE, Dataset, _dataset


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
