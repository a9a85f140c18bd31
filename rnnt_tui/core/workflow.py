"""From file paths to a prepared Session: the sequence both the headless commands and the app follow.

summary (instant) -> restore (NeMo) -> audio -> runtimes -> Session -> prepare (export / convert / load).
"""

from __future__ import annotations

import threading
from pathlib import Path

from rnnt_tui.core.audio import load_audio
from rnnt_tui.core.checkpoint import LoadedModel, restore
from rnnt_tui.core.errors import CancelledError
from rnnt_tui.core.runtimes import get_runtime_class
from rnnt_tui.core.runtimes.base import Progress, RuntimeOptions, no_progress
from rnnt_tui.core.session import Session, SessionSettings
from rnnt_tui.core.summary import read_summary
from rnnt_tui.paths import cache_dir


def load_model(checkpoint: Path, progress: Progress = no_progress,
               cancel: threading.Event | None = None) -> LoadedModel:
    summary = read_summary(checkpoint)
    progress(f"restoring {checkpoint.name} with NeMo", None)
    return restore(checkpoint, summary, cache_dir=cache_dir(), cancel=cancel)


def open_session(checkpoint: Path, audio_path: Path, against: str | None = None,
                 options: RuntimeOptions | None = None, settings: SessionSettings | None = None,
                 progress: Progress = no_progress, cancel: threading.Event | None = None,
                 loaded: LoadedModel | None = None) -> Session:
    """Restore (unless `loaded` is given), load the clip, build the runtimes and prepare them."""
    loaded = loaded or load_model(checkpoint, progress, cancel)
    if cancel is not None and cancel.is_set():
        raise CancelledError("cancelled after restoring the model")
    audio = load_audio(audio_path, loaded.summary.sample_rate or 16000)
    reference = get_runtime_class("pytorch")(loaded)
    candidate = get_runtime_class(against)(loaded, options) if against else None
    session = Session(loaded, audio, reference, candidate, settings)
    session.prepare(progress, cancel)
    return session
