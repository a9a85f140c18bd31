"""`BundleOnnxRuntime`: ONNX Runtime on the NeMo export stored in a bundle, with no restored model behind it.

It is `OnnxRuntime` (same graphs, sessions, bindings and greedy steps) with the graphs opened from the bundle's
`onnx/` folder and the prediction net's sizes read from what the recording wrote, instead of exporting a model.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from rnnt_tui.core.bundle.recorded import RecordedModel
from rnnt_tui.core.cache import CacheEntry
from rnnt_tui.core.components import ENCODER
from rnnt_tui.core.errors import RuntimeUnavailableError
from rnnt_tui.core.options import RuntimeOptions
from rnnt_tui.core.runtimes.base import PrepareReport, Progress, Runtime, no_progress
from rnnt_tui.core.runtimes.onnx_runtime import DECODER_JOINT_FILE, ENCODER_FILE, OnnxRuntime


class BundleOnnxRuntime(OnnxRuntime):
    """The recorded NeMo ONNX export on ONNX Runtime."""

    def __init__(self, loaded: RecordedModel, options: RuntimeOptions | None, folder: Path,
                 export: dict[str, Any]) -> None:
        Runtime.__init__(self, loaded, options)  # type: ignore[arg-type]  # no restored model
        self._encoder = self._decoder_joint = None
        self._entry = None
        self._tmp_root = None
        self._folder, self._recorded = folder, export
        self.layers, self.hidden = int(export["layers"]), int(export["hidden"])
        self.enc_hidden, self.blank_id = int(export["encoder_hidden"]), int(export["blank_id"])

    def prepare(self, progress: Progress = no_progress,
                cancel: threading.Event | None = None) -> list[PrepareReport]:
        available = self.availability()
        if not available.ok:
            raise RuntimeUnavailableError(available.reason)
        progress("ONNX: creating inference sessions on the recorded export", 0.5)
        start = time.perf_counter()
        entry = CacheEntry(key="bundle", path=self._folder, size_bytes=0, meta={"opset": self._recorded.get("opset")})
        enc, dj, enc_ms, dj_ms = self._sessions(entry)
        self._encoder, self._decoder_joint, self._entry = enc, dj, entry
        other_ms = max((time.perf_counter() - start) * 1000 - enc_ms - dj_ms, 0.0)
        self.reports = {
            c: PrepareReport(component=c, action="recorded export (NeMo model.export)", prepare_ms=other_ms,
                             load_ms=enc_ms if c == ENCODER else dj_ms, cached=True,
                             artifact=str(self._folder / (ENCODER_FILE if c == ENCODER else DECODER_JOINT_FILE)))
            for c in self.components}
        return list(self.reports.values())

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "exporter": "NeMo model.export (recorded in the bundle)"}
