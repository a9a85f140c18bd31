"""Audio files → mono float32 at the model's sample rate, with what was done to get there.

Reads whatever libsndfile reads (wav, flac, ogg, ...), any rate, any channel count, any sample width (8-bit,
16/24/32-bit, float); downmixes by averaging the channels and resamples with soxr (a proper band-limited
resampler). The file is read in blocks and each block downmixed and resampled as it arrives, so memory holds the
mono result plus one block, whatever the channel count or the length. Refuses missing, empty, zero-sample,
corrupt and non-audio files, implausible header rates, non-finite samples, and (when the caller gives bounds)
clips shorter than one encoder frame or longer than the caller can handle, each with a message naming the file.
These samples equal NeMo's `AudioSegment.from_file(path, target_sr=rate, channel_selector="average")` bit for
bit; `Audio.resampler` / `Audio.loader` say what produced them (`core.nemo_audio` swaps in the samples NeMo's own
`transcribe()` loader gives where that differs).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rnnt_tui.core.archive import check_file
from rnnt_tui.core.clip import ClipInfo
from rnnt_tui.core.errors import BadInputError

MIN_RATE, MAX_RATE = 1000, 1_000_000  # Hz; outside this a header rate is corrupt, not audio
MAX_CHANNELS = 256
_BLOCK_FRAMES = 1 << 16
SOXR = "soxr HQ"
NOT_AUDIO = "not readable audio (corrupt, or not a format libsndfile reads)"
NATIVE = "rnnt-tui: libsndfile float32 (what NeMo's transcribe() reads for a mono file at the model's rate)"
#: how a user gets the tool's own samples with NeMo alone (then `model.transcribe([samples])`)
NEMO_AVERAGE = ("AudioSegment.from_file(path, target_sr=<model rate>, channel_selector='average').samples "
                "(nemo.collections.asr.parts.preprocessing.segment), the same samples bit for bit")


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
    #: what resampled the samples ("none" at the model's rate)
    resampler: str = "none"
    #: who read the samples, and how to get them with NeMo alone
    loader: str = NATIVE

    @property
    def duration_s(self) -> float:
        return len(self.samples) / float(self.sample_rate)

    @property
    def downmixed(self) -> bool:
        return self.info().downmixed

    @property
    def resampled(self) -> bool:
        return self.info().resampled

    def info(self) -> ClipInfo:
        """The clip less its samples (what events carry to a front end)."""
        return ClipInfo(self.path, self.duration_s, self.sample_rate, self.original_rate, self.channels,
                        self.subtype, self.format, self.resampler, self.loader)

    def notes(self) -> list[str]:
        return self.info().notes()

    def to_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "duration_s": round(self.duration_s, 4),
            "sample_rate": self.sample_rate,
            "original_rate": self.original_rate,
            "channels": self.channels,
            "downmixed": self.downmixed,
            "resampled": self.resampled,
            "resampler": self.resampler,
            "loader": self.loader,
            "format": self.format,
            "subtype": self.subtype,
            "samples": len(self.samples),
        }


def encoder_frame_seconds(window_stride: float | None, subsampling_factor: int | None) -> float | None:
    """Seconds of audio per encoder output frame (the feature hop times the encoder's subsampling), or None when
    the config does not say. A clip shorter than this yields no encoder frame at all."""
    if not window_stride or not subsampling_factor or window_stride <= 0 or subsampling_factor <= 0:
        return None
    return float(window_stride) * int(subsampling_factor)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"


def load_audio(path: Path | str, sample_rate: int, min_seconds: float | None = None,
               max_seconds: float | None = None) -> Audio:
    """Load `path` as mono float32 at `sample_rate`.

    `min_seconds` (usually `encoder_frame_seconds(...)`) refuses a clip too short to give one encoder frame;
    `max_seconds` refuses a clip longer than the caller can handle, before its samples are read.
    """
    import soundfile as sf

    path = Path(path).expanduser()
    check_file(path, "audio file")
    try:
        with sf.SoundFile(str(path)) as handle:
            rate, channels = int(handle.samplerate), int(handle.channels)
            subtype, fmt, frames = str(handle.subtype), str(handle.format), int(handle.frames)
            _check_header(path, rate, channels)
            limit = None if max_seconds is None else int(max_seconds * rate)
            if limit is not None and frames > limit:
                raise _too_long(path, frames / rate, max_seconds)
            mono, read = _read_mono(path, handle, rate, sample_rate, limit)
    except BadInputError:
        raise
    except (sf.SoundFileError, RuntimeError, TypeError, ValueError, OSError, EOFError) as exc:
        raise BadInputError(path, f"{NOT_AUDIO}: {exc}") from exc
    if read == 0:
        raise BadInputError(path, "holds zero audio samples")
    seconds = read / rate
    if min_seconds is not None and seconds < min_seconds:
        raise BadInputError(path, f"clip is {_ms(seconds)} long; shorter than one encoder frame "
                                  f"({_ms(min_seconds)}), so the model would see no audio")
    if mono.size == 0:
        raise BadInputError(path, f"clip is {_ms(seconds)} long ({read} samples at {rate} Hz): no sample is left "
                                  f"at {sample_rate} Hz")
    resampled = rate != sample_rate
    loader = "rnnt-tui: libsndfile float32" + (", channels averaged" if channels > 1 else "") + \
        (f", {SOXR}" if resampled else "") + f"; with NeMo alone: {NEMO_AVERAGE}"
    return Audio(path=path, samples=mono, sample_rate=sample_rate, original_rate=rate, channels=channels,
                 subtype=subtype, format=fmt, resampler=SOXR if resampled else "none",
                 loader=loader if resampled or channels > 1 else NATIVE)


def check_readable(path: Path | str) -> None:
    """Refuse, from its header (at most one sample read), a clip `load_audio` would refuse as missing, empty, not
    audio, with a corrupt header or holding no sample, in the same words: a front end says so before anything slow
    starts."""
    import soundfile as sf

    path = Path(path).expanduser()
    check_file(path, "audio file")
    try:
        with sf.SoundFile(str(path)) as handle:
            _check_header(path, int(handle.samplerate), int(handle.channels))
            # a header saying no frame is checked by reading one: a header may not know its length
            empty = int(handle.frames) == 0 and handle.read(1, dtype="float32").size == 0
    except BadInputError:
        raise
    except (sf.SoundFileError, RuntimeError, TypeError, ValueError, OSError, EOFError) as exc:
        raise BadInputError(path, f"{NOT_AUDIO}: {exc}") from exc
    if empty:
        raise BadInputError(path, "holds zero audio samples")


def _too_long(path: Path, seconds: float, max_seconds: float | None) -> BadInputError:
    return BadInputError(path, f"clip is {_ms(seconds)} long; longer than the {_ms(max_seconds or 0.0)} this "
                               "comparison can take")


def _check_header(path: Path, rate: int, channels: int) -> None:
    if not MIN_RATE <= rate <= MAX_RATE:
        raise BadInputError(path, f"sample rate {rate} Hz in its header is not a plausible audio rate "
                                  f"({MIN_RATE}-{MAX_RATE} Hz); the header is probably corrupt")
    if not 1 <= channels <= MAX_CHANNELS:
        raise BadInputError(path, f"{channels} channels in its header; the header is probably corrupt")


def _read_mono(path: Path, handle: Any, rate: int, sample_rate: int, limit: int | None) -> tuple[np.ndarray, int]:
    """Every frame of `handle`, downmixed by averaging and resampled to `sample_rate`, one block at a time;
    returns the samples and how many frames the file held. Stops with a refusal past `limit` frames."""
    import soxr

    stream = soxr.ResampleStream(rate, sample_rate, 1, dtype="float32", quality="HQ") \
        if rate != sample_rate else None
    parts: list[np.ndarray] = []
    read = 0
    while True:
        block = handle.read(_BLOCK_FRAMES, dtype="float32", always_2d=True)
        if block.shape[0] == 0:
            break
        finite = np.isfinite(block).all(axis=1)
        if not finite.all():
            first = read + int(np.argmin(finite))
            raise BadInputError(path, f"holds NaN or infinite samples (the first at {_ms(first / rate)}, "
                                      f"sample {first})")
        read += block.shape[0]
        if limit is not None and read > limit:
            raise _too_long(path, read / rate, limit / rate)
        mono = block.mean(axis=1, dtype=np.float32) if block.shape[1] > 1 else block[:, 0].copy()
        parts.append(stream.resample_chunk(mono, last=False) if stream is not None else mono)
    if stream is not None and read:
        parts.append(stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True))
    if not parts:
        return np.zeros(0, dtype=np.float32), read
    return np.ascontiguousarray(np.concatenate(parts), dtype=np.float32), read
