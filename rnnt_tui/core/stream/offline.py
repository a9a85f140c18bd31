"""NeMo's offline (full-context) transcript for the streaming comparison: one pass, in windows on a long clip, or
skipped (`--no-offline`); `OfflineHow` says which, so a report never passes a windowed transcript off as one pass.

The one-pass transcript is `model.forward` + `model.decoding` at the stream's att context. Its memory grows with the
square of the clip (NeMo builds a T x T attention mask and scores even at a chunked_limited context: +215 MiB at
1 minute, +1 GiB at 2, > 18 GB at 10), so a clip longer than the offline window runs in windows instead:

- the features are NeMo's preprocessor over the whole clip (linear in the clip, and the per-feature normalisation
  the one pass and NeMo's streaming buffer use);
- the encoder and `model.decoding` run on windows of those features, each a whole number of the context's chunks
  (right + 1 encoder frames; the window rounded up) and starting on a chunk, so the chunked_limited mask cuts each
  window where it cuts the whole clip; windows overlap by a third (`windows.plan`, the windowed pipeline's planner
  and merge rule), and each keeps its tokens (NeMo's own frame indices, `Hypothesis.timestamp`) from the middle of
  its left overlap to the middle of its right overlap.

A window loses the left context before its start (the layers' receptive fields reach further back than the
overlap on a deep model) and its decoder starts blank, so the windowed transcript is an approximation of the one
pass, labelled as such. NeMo's own long-audio routes do not give this model's offline transcript: local attention
(`change_attention_model("rel_pos_local_attn", ...)`) replaces the chunked_limited pattern with a sliding window
(another model's output), and buffered RNNT inference (`streaming_utils.BatchedFrameASRRNNT`) is for offline
models fed from manifests, with its own merge.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from rnnt_tui.core.errors import CancelledError
from rnnt_tui.core.nemo_decoding import hypothesis_tokens
from rnnt_tui.core.stream.config import OFFLINE_OVERLAP, subsampling_factor
from rnnt_tui.core.stream.result import OfflineHow
from rnnt_tui.core.stream.windows import plan


@dataclass(frozen=True)
class OfflineTranscript:
    tokens: list[int]
    how: OfflineHow


SKIPPED = OfflineTranscript([], OfflineHow("skipped"))


def _hypothesis(model: Any, encoded: Any, encoded_len: Any) -> tuple[list[int], list[int]]:
    """(tokens, their encoder frames) of NeMo's decode of one utterance."""
    out = model.decoding.rnnt_decoder_predictions_tensor(encoder_output=encoded, encoded_lengths=encoded_len,
                                                        return_hypotheses=True)
    hyps = out[0] if isinstance(out, tuple) else out
    if not hyps:
        return [], []
    hyp = hyps[0]
    stamps = hyp.timestamp
    tokens = hypothesis_tokens(hyp)
    frames = [int(t) for t in (stamps.tolist() if hasattr(stamps, "tolist") else (stamps or []))]
    return tokens, frames


def offline_tokens(model: Any, audio: np.ndarray) -> list[int]:
    """NeMo's full-context transcript at the encoder's current context, in one pass."""
    import torch  # heavy: the model is already restored

    with torch.inference_mode():
        signal = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))[None]
        encoded, encoded_len = model.forward(input_signal=signal, input_signal_length=torch.tensor([len(audio)]))
        return _hypothesis(model, encoded, encoded_len)[0]


@dataclass(frozen=True)
class OfflineWindows:
    """The offline windows of one context, in chunks of its chunked_limited mask."""

    chunk_mel: int  # feature frames per chunk
    chunk_s: float
    width: int  # chunks per window
    overlap: int  # chunks shared by neighbours

    @classmethod
    def of(cls, model: Any, context: list[int], window_s: float) -> OfflineWindows:
        chunk_mel = (context[1] + 1) * subsampling_factor(model.encoder)
        chunk_s = chunk_mel * float(model.cfg.preprocessor.get("window_stride", 0.01))
        width = max(2, math.ceil(window_s / chunk_s - 1e-9))  # at least the window asked for
        return cls(chunk_mel, chunk_s, width, min(width - 1, max(1, round(width * OFFLINE_OVERLAP))))


def _check(cancel: threading.Event | None) -> None:
    """`CancelledError` once `cancel` is set: the offline transcript comes after the last chunk, and on a long clip
    its windows take seconds (18.8 s on 10 minutes): a cancel there used to go unheard until the report was done."""
    if cancel is not None and cancel.is_set():
        raise CancelledError("cancelled during NeMo's offline transcript")


def windowed_tokens(model: Any, audio: np.ndarray, windows: OfflineWindows,
                    cancel: threading.Event | None = None) -> OfflineTranscript:
    """NeMo's offline transcript of `audio` in chunk-aligned `windows` (module docstring); `cancel` is checked
    before each window."""
    import torch  # heavy: the model is already restored

    sub = subsampling_factor(model.encoder)
    step = windows.chunk_mel
    tokens: list[int] = []
    with torch.inference_mode():
        signal = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))[None]
        feats, feats_len = model.preprocessor(input_signal=signal, length=torch.tensor([len(audio)]))
        total = int(feats_len[0])
        spans = plan(total / step, float(windows.width), float(windows.overlap))  # in chunks
        for start, _end, keep_from, keep_to in spans:
            _check(cancel)
            a = int(start) * step
            b = min(total, a + windows.width * step)
            encoded, encoded_len = model.forward(processed_signal=feats[:, :, a:b].contiguous(),
                                                 processed_signal_length=torch.tensor([b - a]))
            got, frames = _hypothesis(model, encoded, encoded_len)
            first = a // sub  # the window's first encoder frame in the clip
            tokens += [t for t, f in zip(got, frames, strict=True)
                       if keep_from <= (first + f) * sub / step < keep_to]
    return OfflineTranscript(tokens, OfflineHow("windowed", round(windows.width * windows.chunk_s, 3),
                                                round(windows.overlap * windows.chunk_s, 3), len(spans)))


def offline_transcript(model: Any, audio: np.ndarray, context: list[int], window_s: float | None,
                       sample_rate: int, cancel: threading.Event | None = None) -> OfflineTranscript:
    """One pass on a clip up to `window_s` (rounded up to whole chunks), windows beyond it; None: skipped. `cancel`
    is checked before the pass and before each window (`CancelledError`)."""
    if window_s is None:
        return SKIPPED
    _check(cancel)
    windows = OfflineWindows.of(model, context, window_s)
    if len(audio) <= math.ceil(windows.width * windows.chunk_s * sample_rate):
        return OfflineTranscript(offline_tokens(model, audio), OfflineHow("full"))
    return windowed_tokens(model, audio, windows, cancel)
