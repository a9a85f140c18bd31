"""The reference: NeMo's own cache-aware streaming loop, run as NeMo's example runs it, with each chunk recorded.

Nothing is re-derived: `CacheAwareStreamingAudioBuffer` cuts the chunks (online_normalization off,
pad_and_drop_preencoded off), `encoder.get_initial_cache_state` gives the first caches, and every chunk goes
through `model.conformer_stream_step` with NeMo's `drop_extra_pre_encoded` rule (0 on the first chunk) and
`keep_all_outputs` on the last. The step's encoder output is read with a forward hook on the encoder and passed
through the encoder's own `streaming_post_process`, exactly as `cache_aware_stream_step` does. The offline
transcript is NeMo's full-context forward at the same att context plus `model.decoding`, in windows on a long clip
(`core.stream.offline`).

What is kept per chunk is what the candidate needs and what the comparison shows: the chunk's features, the
caches going in and coming out (layer-first, NeMo's layout), the encoder output, the tokens so far and the time.
Only the caches of the current chunk are held by the loop; the records are the caller's to keep or drop.
"""

from __future__ import annotations

import functools
import threading
import time
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from rnnt_tui.core.nemo_decoding import hypothesis_tokens
from rnnt_tui.core.stream.config import OFFLINE_WINDOW_S
from rnnt_tui.core.stream.offline import OfflineTranscript, offline_transcript

if TYPE_CHECKING:
    from rnnt_tui.core.checkpoint import LoadedModel

CACHE_NAMES = ("cache_last_channel", "cache_last_time", "cache_last_channel_len")


@dataclass
class RefChunk:
    """One chunk as NeMo's loop ran it."""

    index: int
    features: np.ndarray  # [1, F, T] what the step was fed (pre-encode cache frames first)
    length: int
    drop_extra_pre_encoded: int
    keep_all_outputs: bool
    start_s: float  # where the new audio of this chunk starts in the clip
    audio_s: float  # how much new audio it covers
    caches_in: dict[str, np.ndarray]
    encoded: np.ndarray  # [1, D, T]
    encoded_length: int
    caches_out: dict[str, np.ndarray]
    tokens: list[int]  # every token so far (NeMo's partial hypothesis)
    compute_ms: float
    notes: list[str] = field(default_factory=list)


def set_context(model: Any, context: list[int]) -> None:
    """Make `context` the encoder's att context and recompute its streaming_cfg (NeMo's own setters)."""
    model.encoder.set_default_att_context_size(list(context))
    model.encoder.setup_streaming_params()


def streaming_cfg_json(model: Any) -> dict[str, Any]:
    cfg = model.encoder.streaming_cfg
    keys = ("chunk_size", "shift_size", "cache_drop_size", "last_channel_cache_size", "valid_out_len",
            "pre_encode_cache_size", "drop_extra_pre_encoded", "last_channel_num", "last_time_num")
    return {k: getattr(cfg, k) for k in keys if hasattr(cfg, k)}


def _np(t: Any) -> np.ndarray:
    return t.detach().cpu().numpy().copy()


def _tokens(hyps: Any) -> list[int]:
    return hypothesis_tokens(hyps[0]) if hyps else []


def nemo_chunks(model: Any, audio: np.ndarray, sample_rate: int) -> Iterator[RefChunk]:
    """Run NeMo's streaming loop over `audio` at the encoder's current context, one RefChunk per chunk.
    The model must be in eval mode; `set_context` first to choose the context."""
    import torch  # heavy: the model is already restored

    encoder = model.encoder
    buffer = streaming_buffer(model)
    buffer.append_audio(audio, stream_id=-1)
    stride_s = float(model.cfg.preprocessor.get("window_stride", 0.01))
    total_frames = int(buffer.streams_length[0])
    ch, tm, chl = encoder.get_initial_cache_state(batch_size=1)
    captured: list[Any] = []
    hook = encoder.register_forward_hook(lambda _m, _i, output: captured.append(output))
    prev_hyp: Any = None
    prev_out: Any = None
    caches_in = {"cache_last_channel": _np(ch), "cache_last_time": _np(tm), "cache_last_channel_len": _np(chl)}
    chunks = iter(buffer)
    try:
        with torch.inference_mode():
            step = 0
            while True:
                began = time.perf_counter()  # NeMo's loop: cutting the chunk is part of its per-chunk work
                item = next(chunks, None)
                if item is None:
                    break
                chunk, length = item
                start_frame = buffer.buffer_idx - _shift(encoder.streaming_cfg, step)
                new_frames = max(0, min(total_frames, buffer.buffer_idx) - start_frame)
                drop = 0 if step == 0 else encoder.streaming_cfg.drop_extra_pre_encoded
                keep_all = buffer.is_buffer_empty()
                captured.clear()
                prev_out, _, ch, tm, chl, prev_hyp = model.conformer_stream_step(
                    processed_signal=chunk, processed_signal_length=length, cache_last_channel=ch,
                    cache_last_time=tm, cache_last_channel_len=chl, keep_all_outputs=keep_all,
                    previous_hypotheses=prev_hyp, previous_pred_out=prev_out, drop_extra_pre_encoded=drop,
                    return_transcription=True)
                compute_ms = (time.perf_counter() - began) * 1000
                encoded, encoded_len, *_ = encoder.streaming_post_process(captured[-1], keep_all_outputs=keep_all)
                caches_out = {"cache_last_channel": _np(ch), "cache_last_time": _np(tm),
                              "cache_last_channel_len": _np(chl)}
                yield RefChunk(
                    index=step, features=_np(chunk), length=int(length[0]), drop_extra_pre_encoded=int(drop),
                    keep_all_outputs=bool(keep_all), start_s=start_frame * stride_s, audio_s=new_frames * stride_s,
                    caches_in=caches_in, encoded=_np(encoded), encoded_length=int(encoded_len[0]),
                    caches_out=caches_out, tokens=_tokens(prev_hyp), compute_ms=compute_ms)
                caches_in = caches_out  # what went out of this chunk goes into the next (read-only)
                step += 1
    finally:
        hook.remove()


#: model -> (the streaming buffer's preprocessor, the model's normalize type): built once per model
_PREPROCESSORS: weakref.WeakKeyDictionary[Any, tuple[Any, Any]] = weakref.WeakKeyDictionary()


def streaming_buffer(model: Any) -> Any:
    """An empty `CacheAwareStreamingAudioBuffer` as NeMo's example makes it (online_normalization off,
    pad_and_drop_preencoded off), its preprocessor built once per model (`_buffer_class`)."""
    return _buffer_class()(model, online_normalization=False, pad_and_drop_preencoded=False)


@functools.cache
def _buffer_class() -> type:
    """NeMo's `CacheAwareStreamingAudioBuffer`, its preprocessor built once per model instead of once per buffer.
    NeMo builds it from a deep copy of the model's config (dither 0, pad_to 0: `extract_preprocessor`), which cost
    15-55 ms a clip, before the first chunk; the features are the same (the same config, nothing random).
    `NemoStream` builds it when the session starts."""
    from nemo.collections.asr.parts.utils.streaming_utils import CacheAwareStreamingAudioBuffer

    class ReusingBuffer(CacheAwareStreamingAudioBuffer):  # type: ignore[misc]
        model_normalize_type: Any  # set by NeMo's extract_preprocessor

        def extract_preprocessor(self) -> Any:
            cached = _PREPROCESSORS.get(self.model)
            if cached is None:
                cached = _PREPROCESSORS[self.model] = (super().extract_preprocessor(), self.model_normalize_type)
            self.model_normalize_type = cached[1]
            return cached[0]

    return ReusingBuffer


def _shift(cfg: Any, step: int) -> int:
    shift = cfg.shift_size
    if isinstance(shift, list):
        return int(shift[0] if step == 0 else shift[1])
    return int(shift)


class StreamReference(Protocol):
    """What the comparison's chunk loop reads of its reference: NeMo live (`NemoStream`) or a recording
    (`core.bundle.stream_replay.RecordedStream`, no NeMo)."""

    blank: int
    max_symbols: int | None

    def begin(self, context: list[int]) -> None: ...
    def chunks(self, audio: np.ndarray | None, sample_rate: int) -> Iterator[RefChunk]: ...
    def offline(self, audio: np.ndarray | None) -> OfflineTranscript: ...
    def text(self, tokens: list[int]) -> str: ...
    def streaming_cfg(self) -> dict[str, Any]: ...
    def latency_ms(self, context: list[int]) -> float: ...
    def clip_s(self, audio: np.ndarray | None, sample_rate: int) -> float: ...


class NemoStream:
    """The live reference: NeMo's loop (`nemo_chunks`) and offline decode on a restored model; the offline
    transcript in windows of `offline_window_s` beyond that length, skipped when it is None; `cancel` (the
    comparison's) stops it (`CancelledError`) before the pass or between its windows."""

    def __init__(self, loaded: LoadedModel, offline_window_s: float | None = OFFLINE_WINDOW_S,
                 cancel: threading.Event | None = None) -> None:
        from rnnt_tui.core.nemo_decoding import max_symbols

        self.loaded = loaded
        self.model = loaded.eval()
        self.blank = int(self.model.decoder.blank_idx)
        self.max_symbols = max_symbols(loaded)
        self.offline_window_s = offline_window_s
        self.cancel = cancel
        self.context = [int(x) for x in self.model.encoder.att_context_size]
        streaming_buffer(self.model)  # its preprocessor built now, with the session, not before a clip's first chunk

    def begin(self, context: list[int]) -> None:
        set_context(self.model, context)
        self.context = list(context)

    def chunks(self, audio: np.ndarray | None, sample_rate: int) -> Iterator[RefChunk]:
        assert audio is not None
        return nemo_chunks(self.model, audio, sample_rate)

    def offline(self, audio: np.ndarray | None) -> OfflineTranscript:
        assert audio is not None
        rate = int(self.model.cfg.preprocessor.get("sample_rate", 16000))
        return offline_transcript(self.model, audio, self.context, self.offline_window_s, rate, self.cancel)

    def text(self, tokens: list[int]) -> str:
        from rnnt_tui.core.nemo_decoding import tokens_to_text

        return tokens_to_text(self.loaded, tokens)

    def streaming_cfg(self) -> dict[str, Any]:
        return streaming_cfg_json(self.model)

    def latency_ms(self, context: list[int]) -> float:
        from rnnt_tui.core.stream.config import algorithmic_latency_ms

        return algorithmic_latency_ms(self.model, context)

    def clip_s(self, audio: np.ndarray | None, sample_rate: int) -> float:
        return 0.0 if audio is None else len(audio) / float(sample_rate)
