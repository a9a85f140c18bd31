"""Audio files → mono float32 at the model's sample rate, with what was done to get there.

Reads whatever libsndfile reads (wav, flac, ogg, ...), any rate, any channel count; downmixes by averaging the
channels and resamples with soxr (a proper band-limited resampler). Refuses missing, empty, zero-sample,
corrupt and non-audio files with a message naming the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rnnt_tui.core.archive import check_file
from rnnt_tui.core.errors import BadInputError

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".opus", ".mp3", ".aiff", ".aif", ".au", ".caf", ".w64")


@dataclass(frozen=True)
class Audio:
    """A clip ready for the preprocessor: mono float32 samples at `sample_rate`."""

    path: Path
    samples: np.ndarray
    sample_rate: int
    original_rate: int
    channels: int
    subtype: str
    format: str

    @property
    def duration_s(self) -> float:
        return len(self.samples) / float(self.sample_rate)

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
            out.append(f"resampled {self.original_rate} Hz to {self.sample_rate} Hz")
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "duration_s": round(self.duration_s, 4),
            "sample_rate": self.sample_rate,
            "original_rate": self.original_rate,
            "channels": self.channels,
            "downmixed": self.downmixed,
            "resampled": self.resampled,
            "format": self.format,
            "subtype": self.subtype,
            "samples": len(self.samples),
        }


def load_audio(path: Path | str, sample_rate: int) -> Audio:
    """Load `path` as mono float32 at `sample_rate`."""
    import soundfile as sf

    path = Path(path).expanduser()
    check_file(path, "audio file")
    try:
        info = sf.info(str(path))
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise BadInputError(path, f"not readable audio (corrupt, or not a format libsndfile reads): {exc}") \
            from exc
    if data.shape[0] == 0:
        raise BadInputError(path, "holds zero audio samples")
    if not np.all(np.isfinite(data)):
        raise BadInputError(path, "holds NaN or infinite samples")
    channels = int(data.shape[1])
    mono = data.mean(axis=1, dtype=np.float32) if channels > 1 else data[:, 0]
    if rate != sample_rate:
        import soxr

        mono = soxr.resample(mono, rate, sample_rate, quality="HQ").astype(np.float32, copy=False)
    return Audio(path=path, samples=np.ascontiguousarray(mono, dtype=np.float32), sample_rate=sample_rate,
                 original_rate=int(rate), channels=channels, subtype=str(info.subtype), format=str(info.format))
