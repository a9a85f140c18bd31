"""The streaming comparison's results: plain frozen data that JSON, Markdown, the CLI table and the app all read.

One `ChunkResult` per chunk (teacher-forced and free-running diffs of the encoder output and of every cache,
cache lengths compared exactly, tokens each side emitted, compute times against the chunk's audio), one
`ContextResult` per att context (chunks, transcripts, first divergence, latency), one `StreamResult` per run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rnnt_tui.core.stats.diff import DiffStats


@dataclass(frozen=True)
class TensorDiff:
    """One output of one chunk: max |Δ| and where, relative to the reference's range, within tolerance."""

    name: str
    stats: DiffStats | None  # None: shapes differ
    value_range: float
    shape_reference: tuple[int, ...]
    shape_candidate: tuple[int, ...]
    gates: bool = True  # False: shown, but not part of the verdict (the padded last chunk's caches)

    @property
    def ok(self) -> bool:
        return self.stats is not None and self.stats.ok

    @property
    def max_abs(self) -> float:
        return float("nan") if self.stats is None else self.stats.max_abs

    def to_json(self) -> dict[str, Any]:
        s = self.stats
        return {"name": self.name, "ok": self.ok, "gates": self.gates,
                "max_abs": None if s is None else s.to_json()["max_abs"],
                "where": None if s is None else s.max_abs_index,
                "relative_to_range": None if s is None or not self.value_range else s.max_abs / self.value_range,
                "range": self.value_range, "violations": None if s is None else s.violations,
                "shape_reference": list(self.shape_reference), "shape_candidate": list(self.shape_candidate)}


@dataclass(frozen=True)
class FeedResult:
    """The candidate's step on one chunk under one feed ("teacher-forced": the reference's caches went in;
    "free-running": its own caches from the previous chunk)."""

    feed: str
    diffs: tuple[TensorDiff, ...]
    cache_len_reference: int
    cache_len_candidate: int
    encoded_length_reference: int
    encoded_length_candidate: int

    @property
    def ok(self) -> bool:
        lengths = self.encoded_length_reference == self.encoded_length_candidate
        gated = [d for d in self.diffs if d.gates]
        cache_len = self.cache_len_reference == self.cache_len_candidate or not all(d.gates for d in self.diffs)
        return lengths and cache_len and all(d.ok for d in gated)

    @property
    def encoder_max_abs(self) -> float:
        return self.diffs[0].max_abs

    def to_json(self) -> dict[str, Any]:
        return {"feed": self.feed, "ok": self.ok, "outputs": [d.to_json() for d in self.diffs],
                "cache_last_channel_len": {"reference": self.cache_len_reference,
                                           "candidate": self.cache_len_candidate,
                                           "equal": self.cache_len_reference == self.cache_len_candidate},
                "encoded_length": {"reference": self.encoded_length_reference,
                                   "candidate": self.encoded_length_candidate}}


@dataclass(frozen=True)
class ChunkResult:
    index: int
    start_s: float
    audio_s: float
    feature_frames: int
    teacher_forced: FeedResult
    free_running: FeedResult
    reference_tokens: tuple[int, ...]  # emitted in this chunk
    candidate_tokens: tuple[int, ...]
    reference_piece: str
    candidate_piece: str
    reference_ms: float  # NeMo's conformer_stream_step (encoder + decode)
    candidate_ms: float  # the candidate's step (free-running) + its decode
    candidate_step_ms: float
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.teacher_forced.ok and self.free_running.ok

    def to_json(self) -> dict[str, Any]:
        audio = self.audio_s or float("nan")
        return {"index": self.index, "start_s": round(self.start_s, 4), "audio_s": round(self.audio_s, 4),
                "feature_frames": self.feature_frames, "ok": self.ok,
                "teacher_forced": self.teacher_forced.to_json(), "free_running": self.free_running.to_json(),
                "tokens": {"reference": list(self.reference_tokens), "candidate": list(self.candidate_tokens),
                           "reference_text": self.reference_piece, "candidate_text": self.candidate_piece},
                "timing_ms": {"reference": round(self.reference_ms, 3), "candidate": round(self.candidate_ms, 3),
                              "candidate_step": round(self.candidate_step_ms, 3),
                              "reference_rtf": round(self.reference_ms / 1000 / audio, 4) if self.audio_s else None,
                              "candidate_rtf": round(self.candidate_ms / 1000 / audio, 4) if self.audio_s else None},
                "notes": list(self.notes)}


@dataclass(frozen=True)
class Divergence:
    chunk: int
    time_s: float
    reference_so_far: str
    candidate_so_far: str

    def to_json(self) -> dict[str, Any]:
        return {"chunk": self.chunk, "time_s": round(self.time_s, 4), "reference_so_far": self.reference_so_far,
                "candidate_so_far": self.candidate_so_far}


@dataclass(frozen=True)
class OfflineHow:
    """How NeMo's offline transcript was made (`core.stream.offline`): one full-context pass, in windows (a clip
    longer than the offline window: approximate), or skipped (`--no-offline`)."""

    mode: str  # "full" | "windowed" | "skipped"
    window_s: float = 0.0
    overlap_s: float = 0.0
    windows: int = 0

    def describe(self) -> str:
        if self.mode == "skipped":
            return "skipped (--no-offline)"
        if self.mode == "windowed":
            return (f"windowed: {self.windows} windows of {self.window_s:g} s, {self.overlap_s:g} s overlap, tokens "
                    "merged by time (the clip is longer than the offline window; an approximation of one pass)")
        return "one full-context pass"

    def to_json(self) -> dict[str, Any]:
        return {"mode": self.mode, "window_s": self.window_s or None, "overlap_s": self.overlap_s or None,
                "windows": self.windows or None, "description": self.describe()}

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> OfflineHow:
        if not data:
            return cls("full")
        return cls(str(data["mode"]), float(data.get("window_s") or 0.0), float(data.get("overlap_s") or 0.0),
                   int(data.get("windows") or 0))


@dataclass(frozen=True)
class ContextResult:
    """Everything about one att context."""

    att_context_size: tuple[int, int]
    streaming_cfg: dict[str, Any]
    latency_ms: float
    chunks: tuple[ChunkResult, ...]
    reference_text: str
    offline_text: str
    candidate_text: str
    first_divergence: Divergence | None
    offline_vs_streaming: Divergence | None  # NeMo's own streaming transcript against its offline one
    offline_how: OfflineHow = field(default_factory=lambda: OfflineHow("full"))

    @property
    def streaming_equals_offline(self) -> bool | None:
        """NeMo's streaming transcript equals its offline one (None: the offline one was skipped)."""
        return None if self.offline_how.mode == "skipped" else self.reference_text == self.offline_text

    @property
    def wer_vs_offline(self) -> dict[str, float] | None:
        """Word error rate against NeMo's offline transcript of the candidate's and of NeMo's own streaming one:
        what streaming at this context costs, and what the port adds (None: the offline one was skipped)."""
        if self.offline_how.mode == "skipped":
            return None
        from rnnt_tui.core.textmetrics import wer

        return {"candidate": wer(self.offline_text, self.candidate_text),
                "nemo_streaming": wer(self.offline_text, self.reference_text)}

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.chunks) and self.candidate_text == self.reference_text

    @property
    def max_drift(self) -> float:
        values = [c.free_running.encoder_max_abs for c in self.chunks]
        return max(values) if values else 0.0

    def decode_json(self) -> dict[str, Any]:
        return {"reference_text": self.reference_text, "offline_text": self.offline_text,
                "offline": self.offline_how.to_json(), "candidate_text": self.candidate_text,
                "first_divergence": None if self.first_divergence is None else self.first_divergence.to_json(),
                "streaming_equals_offline": self.streaming_equals_offline, "wer_vs_offline": self.wer_vs_offline,
                "offline_vs_streaming": None if self.offline_vs_streaming is None else {
                    "offline_so_far": self.offline_vs_streaming.reference_so_far,
                    "streaming_so_far": self.offline_vs_streaming.candidate_so_far},
                "candidate_equals_reference": self.candidate_text == self.reference_text}

    def row_json(self) -> dict[str, Any]:
        return {"att_context_size": list(self.att_context_size), "latency_ms": self.latency_ms,
                "chunks": len(self.chunks), "max_drift_free_running": self.max_drift,
                "max_step_error_teacher_forced": max((c.teacher_forced.encoder_max_abs for c in self.chunks),
                                                     default=0.0),
                "identical_transcript": self.candidate_text == self.reference_text,
                "streaming_equals_offline": self.streaming_equals_offline, "wer_vs_offline": self.wer_vs_offline,
                "offline": self.offline_how.mode, "ok": self.ok}

    def to_json(self) -> dict[str, Any]:
        return {"att_context_size": list(self.att_context_size), "streaming_cfg": self.streaming_cfg,
                "algorithmic_latency_ms": self.latency_ms, "chunks": [c.to_json() for c in self.chunks],
                "decode": self.decode_json(), "ok": self.ok}


@dataclass(frozen=True)
class StreamResult:
    checkpoint: str
    clip: str
    clip_s: float
    reference_label: str
    candidate_label: str
    candidate_notes: tuple[str, ...]
    contexts: tuple[ContextResult, ...]
    tolerance: dict[str, float]
    notes: tuple[str, ...] = field(default_factory=tuple)
    resampler: str | None = None  # what resampled the clip for both sides, and who read it (`core.audio.Audio`)
    audio_loader: str | None = None
    caches_carried_in: str = "explicit inputs and outputs"  # the step's `carries`: where the caches live between chunks

    @property
    def status(self) -> str:
        return "ok" if all(c.ok for c in self.contexts) else "mismatch"

    def to_json(self) -> dict[str, Any]:
        first = self.contexts[0]
        out = {"status": self.status, "checkpoint": self.checkpoint, "clip": self.clip, "clip_s": self.clip_s,
               "reference": self.reference_label, "candidate": self.candidate_label,
               "candidate_notes": list(self.candidate_notes), "tolerance": self.tolerance, "notes": list(self.notes),
               "caches_carried_in": self.caches_carried_in}
        out.update(first.to_json())
        if len(self.contexts) > 1:
            out["contexts"] = [c.row_json() for c in self.contexts]
            out["per_context"] = [c.to_json() for c in self.contexts[1:]]
        return out
