"""``triton.autotune`` for effbench's kernels: tuned outside every timed region, and the choice reported.

- A kernel's config space is a short module-level list (``compile_specs`` compiles every entry, so
  ``effbench kernels`` checks what autotuning may pick), keyed on the problem sizes.
- The runner's first call of an impl is its correctness check, before timing and memory: that call
  autotunes (once per key), and the timed calls reuse the cached choice.
- Under Triton's CPU interpreter only the first config is kept: nothing is benchmarked there.
- ``forget()`` before a case and ``chosen()`` after it say which config each autotuned kernel ran,
  so a result records it.
Stdlib only at import: triton is imported by ``autotune`` itself (a kernel module needs it anyway).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from effbench.kernels._spec import python_function

_TUNERS: list[Any] = []


def interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET") == "1"


def autotune(configs: Sequence[Any], key: Sequence[str], **options: Any) -> Callable[[Any], Any]:
    """``triton.autotune`` over ``configs`` (only the first under the interpreter), registered for ``chosen``."""
    import triton

    def wrap(fn: Any) -> Any:
        tuner = triton.autotune(configs=list(configs[:1] if interpreting() else configs), key=list(key),
                                **options)(fn)
        _TUNERS.append(tuner)
        return tuner

    return wrap


def describe(config: Any) -> str:
    """``BLOCK_N=128 BLOCK_V=128 num_warps=8 num_stages=3``: a config's constexprs, warps and stages."""
    parts = [f"{k}={v}" for k, v in sorted(config.kwargs.items())]
    return " ".join([*parts, f"num_warps={config.num_warps}", f"num_stages={config.num_stages}"])


def forget() -> None:
    """Clear every tuner's last choice (the cache of tuned keys stays)."""
    for tuner in _TUNERS:
        tuner.best_config = None


def chosen() -> dict[str, str]:
    """Kernel name -> the config it last launched with, for every autotuned kernel launched since ``forget``."""
    found = {}
    for tuner in _TUNERS:
        config = getattr(tuner, "best_config", None)
        if config is not None:
            found[python_function(tuner).__name__] = describe(config)
    return dict(sorted(found.items()))
