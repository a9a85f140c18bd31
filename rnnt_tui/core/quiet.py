"""Keeps the heavy libraries' import chatter (NeMo telemetry, coremltools version warnings) off the user's screen.

What they print is captured, not thrown away: `Quiet.text` holds it, so a caller can show it on request.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field

_NOISY_LOGGERS = ("nemo_logger", "nemo", "coremltools", "torch", "onnx", "onnxruntime", "lightning",
                  "pytorch_lightning", "numba", "matplotlib", "urllib3", "httpx")


@dataclass
class Quiet:
    buffer: io.StringIO = field(default_factory=io.StringIO)

    @property
    def text(self) -> str:
        return self.buffer.getvalue()


def calm_loggers() -> None:
    """Turn the chatty libraries' loggers down to errors (idempotent)."""
    os.environ.setdefault("NEMO_TELEMETRY_DISABLED", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    for name in _NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    if "nemo" not in sys.modules:
        return  # importing NeMo just to quiet it would cost seconds
    try:
        from nemo.utils import logging as nemo_logging

        nemo_logging.setLevel(logging.ERROR)
    except Exception:  # noqa: BLE001 - NeMo's logger changed: nothing to calm
        pass


@contextlib.contextmanager
def gc_frozen() -> Iterator[None]:
    """Import heavy libraries with the cyclic GC off, then freeze what they left: torch + NeMo + coremltools make
    ~700 k long-lived objects, and every full collection over them holds the GIL for ~0.5 s (coremltools even
    calls gc.collect() after each conversion), which stalls the app's event loop. Frozen objects are never
    scanned again; objects made later (models, results) stay collectable."""
    import gc

    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


@contextlib.contextmanager
def quiet() -> Iterator[Quiet]:
    """Capture Python-level stdout/stderr and warnings for the duration (imports, restores, exports)."""
    captured = Quiet()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with contextlib.redirect_stdout(captured.buffer), contextlib.redirect_stderr(captured.buffer):
            calm_loggers()
            yield captured
    calm_loggers()
