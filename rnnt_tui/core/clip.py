"""`ClipInfo`: what a front end shows of a loaded clip - its file, length, rates, channels and how it was read -
without its samples.

Events carry this, not `core.audio.Audio`: the app's process unpickles every event, and a clip's samples (a
numpy array: numpy imported and the whole clip copied over the pipe, on the thread that feeds the screen) are
never drawn. This module imports nothing heavy so the reader of an event does not either. `Audio.info()` makes
one; the notes about downmixing and resampling are written here once, for both.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ClipInfo:
    """A clip as read for the model, less its samples."""

    path: Path
    duration_s: float
    sample_rate: int
    original_rate: int
    channels: int
    subtype: str
    format: str
    resampler: str
    loader: str

    @property
    def downmixed(self) -> bool:
        return self.channels > 1

    @property
    def resampled(self) -> bool:
        return self.original_rate != self.sample_rate

    def notes(self) -> list[str]:
        out = []
        if self.downmixed:
            out.append(f"downmixed {self.channels} channels to mono")
        if self.resampled:
            out.append(f"resampled {self.original_rate} Hz to {self.sample_rate} Hz with {self.resampler}")
        if self.downmixed or self.resampled:
            out.append(f"samples for both runtimes from {self.loader}")
        return out
