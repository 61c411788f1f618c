"""Timing helpers shared by the benchmarks."""

import time
from collections.abc import Callable

import jax


def best_time(fn: Callable[[], object], repeats: int, warmup: bool = True) -> float:
  """Fastest wall time in seconds of `fn()` over `repeats` runs, each ending with
  `block_until_ready`; `warmup` first runs it once untimed (compilation)."""
  if warmup:
    jax.block_until_ready(fn())
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - start)
  return min(times)
