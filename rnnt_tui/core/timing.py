"""Timing one call: first call, then median and p90 over N warm runs after W warm-ups.

Only the call is inside the timed region: inputs are converted to the runtime's native type before, outputs to
numpy after (see `runtimes.base.BoundCall`). Uses `time.perf_counter_ns`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Timings:
    """Milliseconds for one component on one runtime."""

    first_ms: float
    median_ms: float
    p90_ms: float
    runs: int
    warmup: int
    prepare_ms: float | None = None
    load_ms: float | None = None
    cached: bool | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def measure(call: Callable[[], Any], runs: int = 5, warmup: int = 1) -> tuple[Any, Timings]:
    """Run `call` once (first call), `warmup` times untimed, then `runs` timed times; return first output."""
    if runs < 1 or warmup < 0:
        raise ValueError("runs must be >= 1 and warmup >= 0")
    clock = time.perf_counter_ns
    start = clock()
    first = call()
    first_ns = clock() - start
    for _ in range(warmup):
        call()
    samples = np.empty(runs, dtype=np.float64)
    for i in range(runs):
        start = clock()
        call()
        samples[i] = clock() - start
    ms = samples / 1e6
    return first, Timings(first_ms=first_ns / 1e6, median_ms=float(np.median(ms)),
                          p90_ms=float(np.percentile(ms, 90)), runs=runs, warmup=warmup)
