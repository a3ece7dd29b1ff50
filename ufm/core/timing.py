"""Best-of-n wall-clock timing for the benchmarks (``ufm.bench``, ``deep.bench``).

``best_of(fn, repeat)`` calls ``fn`` once (compilation, caches), then ``repeat`` times, and
returns the smallest wall time in seconds: ``min_t (t_end - t_start)``, each call waited for
with ``sync`` (``jax.block_until_ready`` by default; ``lambda r: r`` for synchronous work such
as PyTorch on the CPU). The minimum is the figure least disturbed by other load.

>>> best_of(lambda: sum(range(100)), 3, sync=lambda r: r) >= 0.0
True
"""

from __future__ import annotations

import time
from typing import Any, Callable

__all__ = ["best_of"]


def best_of(fn: Callable[[], Any], repeat: int, sync: Callable[[Any], Any] | None = None) -> float:
    """Seconds of the fastest of ``repeat`` calls of ``fn`` after one warm-up call.

    Args:
      fn: the work, no arguments.
      repeat: timed calls (>= 1).
      sync: waits for a call's result (default ``jax.block_until_ready``).

    Returns:
      the minimum wall time in seconds.
    """
    if sync is None:
        import jax

        sync = jax.block_until_ready
    sync(fn())
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        sync(fn())
        best = min(best, time.perf_counter() - t0)
    return best
