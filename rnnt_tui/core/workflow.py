"""From file paths to a prepared Session: the sequence both the headless commands and the app follow.

summary (instant) -> restore (NeMo) -> audio -> runtimes -> Session -> prepare (export / convert / load).
"""

from __future__ import annotations

import threading
from pathlib import Path

from rnnt_tui.core.audio import Audio, encoder_frame_seconds, load_audio
from rnnt_tui.core.checkpoint import LoadedModel, restore
from rnnt_tui.core.errors import CancelledError
from rnnt_tui.core.runtimes import get_runtime_class
from rnnt_tui.core.runtimes.base import Progress, RuntimeOptions, no_progress
from rnnt_tui.core.session import Session, SessionSettings
from rnnt_tui.core.summary import ModelSummary, read_summary
from rnnt_tui.paths import cache_dir


def load_clip(audio_path: Path, summary: ModelSummary) -> Audio:
    """The clip at the model's rate; refused if shorter than one encoder frame."""
    return load_audio(audio_path, summary.sample_rate or 16000,
                      min_seconds=encoder_frame_seconds(summary.window_stride, summary.encoder.subsampling_factor))


def load_model(checkpoint: Path, progress: Progress = no_progress,
               cancel: threading.Event | None = None) -> LoadedModel:
    summary = read_summary(checkpoint)
    progress(f"restoring {checkpoint.name} with NeMo", None)
    return restore(checkpoint, summary, cache_dir=cache_dir(), cancel=cancel)


def open_session(checkpoint: Path, audio_path: Path, against: str | None = None,
                 options: RuntimeOptions | None = None, settings: SessionSettings | None = None,
                 progress: Progress = no_progress, cancel: threading.Event | None = None,
                 loaded: LoadedModel | None = None) -> Session:
    """Load the clip (a bad one is refused before the slow restore), restore (unless `loaded` is given), build
    the runtimes and prepare them. Paths are made absolute first: NeMo's restore changes the working directory."""
    checkpoint, audio_path = checkpoint.expanduser().resolve(), audio_path.expanduser().resolve()
    audio = load_clip(audio_path, loaded.summary if loaded else read_summary(checkpoint))
    loaded = loaded or load_model(checkpoint, progress, cancel)
    if cancel is not None and cancel.is_set():
        raise CancelledError("cancelled after restoring the model")
    reference = get_runtime_class("pytorch")(loaded)
    candidate = get_runtime_class(against)(loaded, options) if against else None
    session = Session(loaded, audio, reference, candidate, settings)
    session.prepare(progress, cancel)
    return session
