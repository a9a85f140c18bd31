"""Timing one call: first call, then median and p90 over N warm runs after W warm-ups.

Only the call is inside the timed region: inputs are converted to the runtime's native type before, outputs to
numpy after (see `runtimes.base.BoundCall`). Uses `time.perf_counter_ns`. Every timing carries the conditions it
was taken in (threads, 1-minute load, CPU count; `core.threads`) and, when the spread or the load makes it
unreliable, a one-sentence `warning`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
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
    threads: int | None = None
    load_1min: float | None = None
    cpu_count: int | None = None
    warning: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def measure(call: Callable[[], Any], runs: int = 5, warmup: int = 1) -> tuple[Any, Timings]:
    """Run `call` once (first call), `warmup` times untimed, then `runs` timed times; return first output."""
    from rnnt_tui.core import threads

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
    median, p90 = float(np.median(ms)), float(np.percentile(ms, 90))
    machine = threads.conditions()
    return first, Timings(first_ms=first_ns / 1e6, median_ms=median, p90_ms=p90, runs=runs, warmup=warmup,
                          **machine, warning=threads.reliability(median, p90, runs, machine["load_1min"],
                                                                 machine["cpu_count"]))


def conditions_footer(timed: Iterable[tuple[str, Timings | None]]) -> list[str]:
    """Sentences for under a timing table: the threads, load and CPUs the figures were taken with (and whether the
    load makes them all unreliable), then each figure whose spread does (`timed`: label -> timings)."""
    from rnnt_tui.core.threads import reliability

    rows = [(label, t) for label, t in timed if t is not None]
    measured = [t for _, t in rows if t.load_1min is not None or t.threads is not None]
    if not measured:
        return []
    threads = sorted({t.threads for t in measured if t.threads is not None})
    loads = [t.load_1min for t in measured if t.load_1min is not None]
    cpus = next((t.cpu_count for t in measured if t.cpu_count), None)
    head = f"timed with {'/'.join(map(str, threads)) or '?'} thread(s) per runtime (--threads)"
    if loads:
        head += f", machine load {max(loads):.2f} on {cpus} CPUs"
        if reliability(1.0, 1.0, 1, max(loads), cpus):
            head += ": other work competes for the cores, every figure here is unreliable"
    spread = [(label, reliability(t.median_ms, t.p90_ms, t.runs, None, None)) for label, t in rows]
    return [head, *[f"{label}: {why}" for label, why in spread if why]]
