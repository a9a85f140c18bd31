"""A clip's samples as NeMo's own `transcribe()` reads them, so "NeMo's transcript" is NeMo's on any file.

rnnt-tui reads audio with libsndfile (float32), averages the channels and resamples with soxr HQ
(`core.audio`). For a mono file at the model's rate that is exactly what NeMo reads. For a file NeMo has to
resample, NeMo's `transcribe()` uses its model class's data loader: the char models' `AudioSegment` (librosa's
soxr_hq, the same samples as ours) or, for the BPE / hybrid / TDT classes, lhotse (its own sinc resampler: up to
~1e-2 from soxr, enough to change a transcript). So for a resampled or downmixed clip this module asks NeMo's own
transcribe data loader (`_transcribe_input_processing`, what `model.transcribe([path])` iterates) for the samples,
and the reference and the candidate are both fed those. When NeMo's loader cannot read the file (a stereo file:
`transcribe()` refuses it in every class, with any `channel_selector`), the tool's own samples are kept, which are
NeMo's `AudioSegment.from_file(path, target_sr=rate, channel_selector="average")` bit for bit; `Audio.loader`
says which, and how to reproduce the reference's numbers with NeMo alone.

Must not: import NeMo at module import (it is heavy), change the user's file, or guess: a loader error is said.
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from rnnt_tui.core.audio import NEMO_AVERAGE, Audio

if TYPE_CHECKING:
    from rnnt_tui.core.checkpoint import LoadedModel


def as_nemo_reads(loaded: LoadedModel, audio: Audio) -> Audio:
    """`audio` with the samples NeMo's `transcribe()` would feed the model for the same file (see the module)."""
    if not (audio.resampled or audio.downmixed) or audio.loader.startswith("NeMo"):
        return audio
    try:
        samples, how = _transcribe_loader_samples(loaded, audio)
    except Exception as exc:  # noqa: BLE001 - NeMo's loader refusing a file is a finding, said in `loader`
        reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:160]
        return replace(audio, loader=f"rnnt-tui ({audio.resampler}); NeMo's transcribe() cannot read this file "
                                     f"({reason}). To reproduce with NeMo alone: {NEMO_AVERAGE}")
    if samples.ndim != 1 or samples.size == 0:
        return replace(audio, loader=f"rnnt-tui ({audio.resampler}); NeMo's transcribe() cannot read this file "
                                     f"(its data loader gives samples of shape {list(samples.shape)}, not one "
                                     f"channel). To reproduce with NeMo alone: {NEMO_AVERAGE}")
    resampler = how if audio.resampled else "none"
    return replace(audio, samples=np.ascontiguousarray(samples, dtype=np.float32), resampler=resampler,
                   loader=f"NeMo's transcribe() data loader ({how}): the samples `model.transcribe([path])` "
                          "feeds the model")


def _transcribe_loader_samples(loaded: LoadedModel, audio: Audio) -> tuple[np.ndarray, str]:
    """The first (only) item of the data loader `model.transcribe([path], batch_size=1)` builds, and which loader
    that is ("lhotse" or "AudioSegment, librosa soxr_hq")."""
    from nemo.collections.asr.parts.mixins.transcription import (  # heavy: only after a restore
        InternalTranscribeConfig,
        TranscribeConfig,
    )

    from rnnt_tui.core.quiet import quiet

    model = loaded.model
    config = TranscribeConfig(batch_size=1, num_workers=0, verbose=False)
    config._internal = InternalTranscribeConfig()
    with quiet(), tempfile.TemporaryDirectory(prefix="rnnt-tui-nemo-audio-") as tmp:
        config._internal.temp_dir = tmp
        loader = model._transcribe_input_processing([str(audio.path)], config)
        batch: Any = next(iter(loader))
    signal, length = batch[0], batch[1]
    samples = signal[0][..., : int(length[0])].detach().cpu().numpy()
    lhotse = "lhotse" in type(getattr(loader, "dataset", None)).__module__
    return samples, ("lhotse's resampler" if lhotse else "AudioSegment: librosa soxr_hq")
