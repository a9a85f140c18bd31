"""How many threads the runtimes compute with, chosen once per process, and how much to trust a timing.

Why this exists: torch, ONNX Runtime and numpy's BLAS each start a thread per core by default. On a machine with
other work running they oversubscribe the cores and a figure collapses (measured: preprocessor 52.6 ms with
torch's default threads on a loaded 2-core machine, 0.97 ms with one), and a speedup between two runtimes then
measures their thread pools, not their kernels. So the count is chosen deliberately:

- `DEFAULT_THREADS` = 1: every runtime computes on one thread (torch intra-op, ONNX Runtime intra-op, BLAS), so
  figures are stable on a shared machine and comparable across runtimes. `--threads N` (the CLI) or
  `RNNT_TUI_THREADS` sets N; 0 leaves each library its own default (a thread per core).
- `apply()` sets torch and BLAS (threadpoolctl) for the process; ONNX Runtime reads `onnxruntime_threads()` when
  it opens a session. Core ML and the MIL interpreter's numpy follow the BLAS limit or are not controllable.
- `conditions()` is what a timing records next to its figures: the threads used, the 1-minute load average and
  the CPU count; `reliability()` says in one sentence why a figure should not be trusted (spread or load), or
  None.

Must not import torch or onnxruntime itself: it only touches a library a runtime already imported.
"""

from __future__ import annotations

import os
import sys
from typing import Any

DEFAULT_THREADS = 1
ENV = "RNNT_TUI_THREADS"
#: p90 over median above this: the runs disagree too much for the median to mean much
MAX_SPREAD = 1.5

_requested: int | None = None
_blas_limit: Any = None  # threadpoolctl's limiter, kept alive for the process
_blas_count: int | None = None


def requested() -> int:
    """The thread count asked for: `set_threads`, else $RNNT_TUI_THREADS, else `DEFAULT_THREADS` (0 = library
    defaults)."""
    if _requested is not None:
        return _requested
    try:
        return max(0, int(os.environ.get(ENV, DEFAULT_THREADS)))
    except ValueError:
        return DEFAULT_THREADS


def set_threads(count: int) -> None:
    """Choose the thread count for this process (applied when a runtime is made)."""
    global _requested
    _requested = max(0, int(count))


def apply() -> None:
    """Set torch's intra-op threads (if torch is imported) and the BLAS pools to `requested()`; 0 leaves them."""
    global _blas_limit, _blas_count
    count = requested()
    if count == 0:
        return
    torch = sys.modules.get("torch")
    if torch is not None and torch.get_num_threads() != count:
        torch.set_num_threads(count)
    if _blas_count != count:
        try:
            from threadpoolctl import threadpool_limits  # small; a dependency of scikit-learn (NeMo's stack)
        except ImportError:
            return
        _blas_limit, _blas_count = threadpool_limits(limits=count), count


def onnxruntime_threads() -> int:
    """ONNX Runtime's `intra_op_num_threads` (0 = its default, a thread per core)."""
    return requested()


def _threads_in_use() -> int | None:
    torch = sys.modules.get("torch")
    if torch is not None:
        return int(torch.get_num_threads())
    return requested() or None


def conditions() -> dict[str, Any]:
    """The threads used now (torch's, else the requested count), the 1-minute load average and the CPU count."""
    try:
        load = round(os.getloadavg()[0], 2)
    except OSError:  # not on every platform
        load = None
    return {"threads": _threads_in_use(), "load_1min": load, "cpu_count": os.cpu_count()}


def reliability(median_ms: float, p90_ms: float, runs: int, load_1min: float | None,
                cpu_count: int | None) -> str | None:
    """Why a timing should not be trusted, in one sentence, or None."""
    reasons = []
    if runs >= 3 and median_ms > 0 and p90_ms / median_ms > MAX_SPREAD:
        reasons.append(f"p90 is {p90_ms / median_ms:.1f}x the median")
    if load_1min is not None and cpu_count and load_1min >= cpu_count:
        reasons.append(f"load {load_1min:.1f} on {cpu_count} CPUs: other work competes for the cores")
    return "; ".join(reasons) + " (figure unreliable)" if reasons else None
