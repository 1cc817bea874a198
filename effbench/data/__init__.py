"""Datasets that need no download; each records a content hash of exactly what it holds.

Every builder is deterministic in its arguments (a dataset seed apart from any run's
initialisation and data-order seeds) and returns a :class:`Dataset`: train and eval
tensors, the kind of problem, the eval metric, and a hash over the tensors.

Kinds: ``classify`` (x (N, F) float, y (N,) class), ``regress`` (x (N, F), y (N, O)),
``lm`` (x (N, T) tokens, y (N, T) next tokens with ``IGNORE`` where nothing is scored).
"""

from effbench.data.base import IGNORE, Dataset, content_hash
from effbench.data.sequences import associative_recall, copying, key_value_lookup, sparse_parity
from effbench.data.tabular import (
    digits,
    digits_duplicated,
    digits_label_noise,
    easy_hard_noisy,
    long_tail_mixture,
    teacher_student,
)
from effbench.data.text import (
    stdlib_bytes,
    stdlib_memorize,
    stdlib_mixed_pool,
    stdlib_random_pool,
    stdlib_repeated_pool,
    stdlib_windows,
    zipf_tokens,
)

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

__all__ = ["DATASETS", "IGNORE", "Dataset", "content_hash", *DATASETS]
