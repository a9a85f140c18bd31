"""TEMPORARY shim for code written against the old API; use `rnnt_tui.core.pipeline.pipeline.Pipeline`."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from rnnt_tui.core.options import RuntimeOptions
from rnnt_tui.core.pipeline.events import Progress as ProgressEvent
from rnnt_tui.core.pipeline.pipeline import load_clip
from rnnt_tui.core.pipeline.pipeline import open_session as _open
from rnnt_tui.core.pipeline.request import Request, Settings
from rnnt_tui.core.pipeline.session import Session
from rnnt_tui.core.progress import Progress, no_progress

SessionSettings = Settings
__all__ = ["SessionSettings", "load_clip", "open_session"]


def open_session(checkpoint: Path, audio_path: Path, against: str | None = None,
                 options: RuntimeOptions | None = None, settings: Settings | None = None,
                 progress: Progress = no_progress, cancel: threading.Event | None = None,
                 loaded: Any = None) -> Session:
    def emit(event: object) -> None:
        if isinstance(event, ProgressEvent):
            progress(event.text, event.fraction)

    request = Request(Path(checkpoint), Path(audio_path), against, options or RuntimeOptions(),
                      settings or Settings())
    return _open(request, emit, cancel, loaded)
