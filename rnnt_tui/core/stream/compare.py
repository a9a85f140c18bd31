"""The cache-aware streaming comparison: NeMo's chunked loop against a candidate's streaming step, chunk by chunk.

Entry point `run_stream(request, emit, cancel)`; `StreamSession` prepares once and streams many clips (a corpus).
For each att context asked for, the reference loop
(`reference.nemo_chunks`) and the candidate advance in lockstep, one chunk at a time, so memory holds one chunk's
caches and the results (never the whole history): per chunk the candidate's step runs twice - teacher-forced
(the reference's caches in: the step's own error) and free-running (its own caches from the previous chunk: the
error as it accumulates) - and its own decoder / joint decode the free-running output, carrying their state.
Progress goes out as `Progress` events and each finished chunk as a `ChunkCompared` event; nothing is formatted
for a screen.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from rnnt_tui.core.audio import load_audio
from rnnt_tui.core.checkpoint import LoadedModel, restore
from rnnt_tui.core.errors import BadInputError, CancelledError, RuntimeUnavailableError
from rnnt_tui.core.names import RUNTIME_LABELS
from rnnt_tui.core.pipeline.events import Emit, Event, progress_of
from rnnt_tui.core.stats.diff import diff_stats
from rnnt_tui.core.stream.chunk_decode import ChunkGreedy
from rnnt_tui.core.stream.config import (
    STREAM_CANDIDATES,
    StreamRequest,
    cache_states_problem,
    choose_contexts,
    states_kind,
)
from rnnt_tui.core.stream.reference import CACHE_NAMES, NemoStream, RefChunk, StreamReference, set_context
from rnnt_tui.core.stream.result import ChunkResult, ContextResult, Divergence, FeedResult, StreamResult, TensorDiff
from rnnt_tui.core.stream.step_kinds import STATE_STEPS, STEPS
from rnnt_tui.core.stream.steps import Caches, StreamStep

JOB = "stream"


@dataclass(frozen=True)
class ChunkCompared(Event):
    """One chunk of one context compared (the app's timeline grows by one column)."""

    context: tuple[int, int]
    chunk: ChunkResult


def check_candidate(against: str) -> None:
    """RuntimeUnavailableError for a candidate the streaming comparison does not run."""
    if against not in STREAM_CANDIDATES:
        raise RuntimeUnavailableError(f"no streaming candidate {against!r} (choose {', '.join(STREAM_CANDIDATES)})")


def _diff(name: str, ref: np.ndarray, cand: np.ndarray, value_range: float, atol: float, rtol: float,
          gates: bool = True) -> TensorDiff:
    stats = diff_stats(ref, cand, atol, rtol) if ref.shape == cand.shape else None
    return TensorDiff(name, stats, value_range, tuple(ref.shape), tuple(cand.shape), gates)


class _Compared:
    """One reference chunk's compared tensors, read once for both feeds (its valid encoder frames, made contiguous,
    and every tensor's value range)."""

    def __init__(self, ref: RefChunk) -> None:
        self.ref = ref
        self.tensors = {"encoded": np.ascontiguousarray(ref.encoded[:, :, : ref.encoded_length]),
                        **{n: ref.caches_out[n] for n in CACHE_NAMES[:2]}}
        self.ranges = {n: float(t.max() - t.min()) if t.size else 0.0 for n, t in self.tensors.items()}

    def feed(self, feed: str, out: tuple[np.ndarray, int, Caches], atol: float, rtol: float,
             padded: bool) -> FeedResult:
        encoded, length, caches = out
        cand = {"encoded": encoded[:, :, :length], **caches}
        diffs = tuple(_diff(n, t, cand[n], self.ranges[n], atol, rtol, gates=n == "encoded" or not padded)
                      for n, t in self.tensors.items())
        return FeedResult(feed, diffs, int(self.ref.caches_out["cache_last_channel_len"][0]),
                          int(caches["cache_last_channel_len"][0]), self.ref.encoded_length, length)


def _decoder_runtime(loaded: LoadedModel, against: str, use_cache: bool) -> Any:
    """The candidate's own decoder and joint: the tool's ONNX runtime, or the package / asset runtime on the
    decoder and joint only (the streaming encoder is the step's): the offline conversions, cached."""
    from rnnt_tui.core.components import DECODER, JOINT
    from rnnt_tui.core.options import RuntimeOptions
    from rnnt_tui.core.runtimes import get_runtime_class

    options = RuntimeOptions(use_cache=use_cache)
    base = get_runtime_class(against)
    if against == "onnx":
        return base(loaded, options)
    only = type(f"{base.__name__}DecoderJoint", (base,), {"components": (DECODER, JOINT)})
    return only(loaded, options)


def _context(reference: StreamReference, audio: np.ndarray | None, sample_rate: int, context: list[int],
             step: StreamStep, runtime: Any, request: StreamRequest, emit: Emit,
             cancel: threading.Event | None) -> ContextResult:
    """One att context: the reference's chunks and the candidate in lockstep (the one chunk loop; `reference` is
    NeMo live or a recording)."""
    reference.begin(context)
    text = reference.text
    progress = progress_of(emit, JOB)
    atol, rtol = request.tolerance.atol, request.tolerance.rtol
    decoder = ChunkGreedy(runtime, reference.blank, reference.max_symbols)
    caches: Caches | None = None
    chunks: list[ChunkResult] = []
    divergence: Divergence | None = None
    ref_tokens: list[int] = []
    clip_s = reference.clip_s(audio, sample_rate)
    for ref in reference.chunks(audio, sample_rate):
        if cancel is not None and cancel.is_set():
            raise CancelledError("cancelled between chunks")
        first = ref.index == 0
        began = time.perf_counter()
        free = step(ref.features, ref.length, caches if caches is not None else ref.caches_in, first)
        step_ms = (time.perf_counter() - began) * 1000
        emitted = decoder.advance(free[0], free[1])
        cand_ms = (time.perf_counter() - began) * 1000
        # the first chunk's caches in are the reference's either way: its teacher-forced run is the free-running one
        teacher = free if caches is None else step(ref.features, ref.length, ref.caches_in, first)
        caches = free[2]
        fixed = step.frames.get("first" if first else "next", ref.features.shape[2])
        padded = fixed > ref.features.shape[2]
        notes = (f"zero-padded from {ref.features.shape[2]} to the program's fixed chunk of {fixed} frames: its "
                 "caches are shown, not judged (nothing reads them after the last chunk)",) if padded else ()
        new_ref = ref.tokens[len(ref_tokens):]
        ref_tokens = list(ref.tokens)
        compared = _Compared(ref)
        free_result = compared.feed("free-running", free, atol, rtol, padded)
        teacher_result = (replace(free_result, feed="teacher-forced") if teacher is free
                          else compared.feed("teacher-forced", teacher, atol, rtol, padded))
        result = ChunkResult(
            index=ref.index, start_s=ref.start_s, audio_s=ref.audio_s, feature_frames=ref.length,
            teacher_forced=teacher_result, free_running=free_result,
            reference_tokens=tuple(new_ref), candidate_tokens=tuple(emitted),
            reference_piece=text(new_ref), candidate_piece=text(emitted),
            reference_ms=ref.compute_ms, candidate_ms=cand_ms, candidate_step_ms=step_ms, notes=notes)
        chunks.append(result)
        if divergence is None and decoder.tokens != ref_tokens:
            divergence = Divergence(ref.index, ref.start_s, text(ref_tokens), text(decoder.tokens))
        emit(ChunkCompared((context[0], context[1]), result))
        progress(f"att context {context}: chunk {ref.index + 1}", min(1.0, (ref.start_s + ref.audio_s) /
                                                                      max(clip_s, 1e-9)))
    if not chunks:
        raise BadInputError(request.clip, f"{clip_s:.2f} s is shorter than one streaming chunk of att context "
                                          f"{context}")
    transcript = reference.offline(audio)
    offline = transcript.tokens
    gap = None
    if transcript.how.mode != "skipped" and offline != ref_tokens:
        n = next((i for i, (a, b) in enumerate(zip(offline, ref_tokens, strict=False)) if a != b),
                 min(len(offline), len(ref_tokens)))
        gap = Divergence(-1, float("nan"), text(offline[: n + 1]), text(ref_tokens[: n + 1]))
    return ContextResult((context[0], context[1]), reference.streaming_cfg(), reference.latency_ms(context),
                         tuple(chunks), text(ref_tokens), text(offline), text(decoder.tokens), divergence, gap,
                         transcript.how)


class StreamSession:
    """The model restored, the candidate's decoder / joint and its streaming step for every context prepared once;
    `compare(clip)` then streams one clip (a corpus calls it per utterance). `run_stream` is one session, one clip.
    `close()` restores the encoder's default context and closes the runtime."""

    def __init__(self, request: StreamRequest, emit: Emit, cancel: threading.Event | None = None,
                 loaded: LoadedModel | None = None) -> None:
        request = request.resolved()
        check_candidate(request.against)
        problem = cache_states_problem(request)
        if problem:
            raise BadInputError(None, problem)
        if request.step_packages:  # a user's packages whose names cannot be mapped are refused before anything loads
            from rnnt_tui.core.stream.package_io import package_roles

            package_roles(request.step_packages, request.role_map, request.against)
        self.request, self.emit, self.cancel = request, emit, cancel
        progress = progress_of(emit, JOB)
        if loaded is None:
            progress("restoring the checkpoint with NeMo", None)
            loaded = restore(request.checkpoint, cancel=cancel)
        self.loaded = loaded
        self.reference = NemoStream(loaded, request.offline_window_s if request.offline else None, cancel)
        model = loaded.eval()
        self.notes: list[str] = []
        if getattr(model, "cur_decoder", "rnnt") != "rnnt":  # a hybrid switched to CTC: stream its transducer head
            from rnnt_tui.core.quiet import quiet

            with quiet():
                model.change_decoding_strategy(decoder_type="rnnt", verbose=False)
            self.notes.append("the hybrid model was set to its transducer (rnnt) decoder for streaming")
        self.contexts = choose_contexts(request.checkpoint, model.encoder, request.att_context)
        if request.step_packages:  # the contexts the package was built for (`--att-context all`), or a refusal
            from rnnt_tui.core.stream.package_context import package_contexts

            self.contexts, notes = package_contexts(request.step_packages, request.role_map, request.against, model,
                                                    self.contexts, request.att_context)
            self.notes += notes
        self.default_context = [int(x) for x in model.encoder.att_context_size]
        self.sample_rate = int(model.cfg.preprocessor.get("sample_rate", model.cfg.get("sample_rate", 16000)))
        self.runtime = _decoder_runtime(loaded, request.against, request.use_cache)
        progress(f"{self.runtime.label}: preparing the decoder and joint", 0.0)
        self.steps: list[StreamStep] = []
        self.step_notes: list[str] = []
        try:
            self.runtime.prepare(lambda text, fraction=None: progress(text, fraction), cancel)
            for context in self.contexts:
                step = _step(loaded, context, request)
                self.steps.append(step)
                progress(f"{step.label}: building the streaming step for att context {context}"
                         + (f" (caches in {states_kind(request.against)})" if request.cache_states else ""), 0.0)
                step.prepare(progress, cancel)
                self.step_notes += [f"{context}: {n}" for n in step.notes]
        except BaseException:
            self.close()
            raise

    def compare(self, clip: Path, emit: Emit | None = None) -> StreamResult:
        """Stream `clip` through NeMo's loop and the candidate at every context, events to `emit` (default: the
        session's); BadInputError naming a clip that cannot be read or is shorter than one chunk."""
        request = replace(self.request, clip=clip.expanduser().resolve())
        audio = load_audio(request.clip, self.sample_rate)
        results = [_context(self.reference, audio.samples, self.sample_rate, context, step, self.runtime, request,
                            emit or self.emit, self.cancel)
                   for context, step in zip(self.contexts, self.steps, strict=True)]
        return StreamResult(str(request.checkpoint), str(request.clip), audio.duration_s, RUNTIME_LABELS["pytorch"],
                            self.runtime.label, tuple(self.step_notes), tuple(results),
                            {"atol": request.tolerance.atol, "rtol": request.tolerance.rtol}, tuple(self.notes),
                            audio.resampler, audio.loader, self.steps[0].carries)

    def close(self) -> None:
        for step in self.steps:
            step.close()
        set_context(self.loaded.eval(), self.default_context)
        self.runtime.close()

    def __enter__(self) -> StreamSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _step(loaded: LoadedModel, context: list[int], request: StreamRequest) -> StreamStep:
    """The tool's own converted step for the candidate, or the user's packages (`--step`)."""
    if request.step_packages:
        from rnnt_tui.core.stream.package_step import PackageStreamStep

        return PackageStreamStep(loaded, context, request.step_packages, request.role_map, request.against)
    return (STATE_STEPS if request.cache_states else STEPS)[request.against](loaded, context, request.use_cache)


def run_stream(request: StreamRequest, emit: Emit, cancel: threading.Event | None = None,
               loaded: LoadedModel | None = None) -> StreamResult:
    """Compare `request.against`'s streaming step with NeMo's chunked loop on every context asked for."""
    with StreamSession(request, emit, cancel, loaded) as session:
        return session.compare(request.clip)
