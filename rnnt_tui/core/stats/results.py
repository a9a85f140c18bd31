"""The result objects that cross the core/UI line: per-output comparisons, per-step results, decode comparison.

Frozen where possible; every one has `to_json()`. Large arrays meant for pictures (per-frame diffs, the joint's
T x U maps) live in `StepResult.maps` and are left out of JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rnnt_tui.core.components import TensorInfo
from rnnt_tui.core.names import Status

if TYPE_CHECKING:  # the app's process reads results without importing numpy (stats and timing need it)
    import numpy as np

    from rnnt_tui.core.stats.diff import DiffStats
    from rnnt_tui.core.timing import Timings



@dataclass(frozen=True)
class OutputComparison:
    """One output of one component, reference vs candidate."""

    name: str
    reference: TensorInfo | None
    candidate: TensorInfo | None
    stats: DiffStats | None
    atol: float | None
    rtol: float | None
    note: str = ""

    @property
    def shape_match(self) -> bool:
        return self.reference is not None and self.candidate is not None and \
            self.reference.shape == self.candidate.shape

    @property
    def ok(self) -> bool | None:
        """True/False when compared; None when the candidate does not expose this output."""
        if self.candidate is None:
            return None
        return self.shape_match and self.stats is not None and self.stats.ok

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "shape_reference": list(self.reference.shape) if self.reference else None,
            "shape_candidate": list(self.candidate.shape) if self.candidate else None,
            "dtype_reference": self.reference.dtype if self.reference else None,
            "dtype_candidate": self.candidate.dtype if self.candidate else None,
            "stats": self.stats.to_json() if self.stats else None,
            "atol": self.atol,
            "rtol": self.rtol,
            "ok": self.ok,
            "note": self.note,
        }


@dataclass
class StepResult:
    """What one pipeline step produced on the reference and (if any) the candidate runtime."""

    name: str
    status: Status
    inputs: list[TensorInfo] = field(default_factory=list)
    reference_outputs: list[TensorInfo] = field(default_factory=list)
    candidate_outputs: list[TensorInfo] = field(default_factory=list)
    comparisons: list[OutputComparison] = field(default_factory=list)
    timings: dict[str, Timings | None] = field(default_factory=dict)
    samples: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    maps: dict[str, np.ndarray] = field(default_factory=dict)
    decisions: dict[str, Any] = field(default_factory=dict)  # joint: each decision head vs the reference's decision

    @property
    def speedup(self) -> float | None:
        ref, cand = self.timings.get("reference"), self.timings.get("candidate")
        if ref and cand and cand.median_ms > 0:
            return ref.median_ms / cand.median_ms
        return None

    def output_rows(self) -> list[OutputComparison]:
        """One row per output, in one shape whether or not a candidate ran (then its side is empty)."""
        if self.comparisons:
            return list(self.comparisons)
        return [OutputComparison(t.name, t, None, None, None, None, "") for t in self.reference_outputs]

    def to_json(self, duration_s: float | None = None) -> dict[str, Any]:
        timings = {side: (t.to_json() if t else None) for side, t in self.timings.items()}
        rtf = {side: (t.median_ms / (duration_s * 1000.0) if t and duration_s else None)
               for side, t in self.timings.items()}
        return {
            "name": self.name,
            "status": str(self.status),
            "inputs": [t.to_json() for t in self.inputs],
            "outputs": [c.to_json() for c in self.output_rows()],
            "timings": timings,
            "rtf": rtf,
            "speedup": self.speedup,
            "notes": list(self.notes),
            "error": self.error,
            "decisions": dict(self.decisions),
        }


@dataclass(frozen=True)
class Divergence:
    """Where two token sequences first differ."""

    index: int
    frame_reference: int | None
    frame_candidate: int | None
    token_reference: int | None
    token_candidate: int | None
    piece_reference: str | None
    piece_candidate: str | None

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "frame_reference": self.frame_reference, "frame_candidate": self.frame_candidate,
                "token_reference": self.token_reference, "token_candidate": self.token_candidate,
                "piece_reference": self.piece_reference, "piece_candidate": self.piece_candidate}


@dataclass(frozen=True)
class DecodeComparison:
    """Greedy transcripts from the reference, the candidate, and NeMo's own decoding."""

    reference_text: str
    nemo_text: str | None
    reference_tokens: list[int]
    nemo_tokens: list[int] | None
    reference_pieces: list[str]
    candidate_text: str | None = None
    candidate_tokens: list[int] | None = None
    candidate_pieces: list[str] | None = None
    token_agreement: float | None = None
    wer: float | None = None
    first_divergence: Divergence | None = None
    matches_nemo: bool | None = None
    candidate_matches_nemo: bool | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "reference_text": self.reference_text,
            "candidate_text": self.candidate_text,
            "nemo_text": self.nemo_text,
            "reference_tokens": self.reference_tokens,
            "candidate_tokens": self.candidate_tokens,
            "nemo_tokens": self.nemo_tokens,
            "token_agreement": self.token_agreement,
            "wer": self.wer,
            "first_divergence": self.first_divergence.to_json() if self.first_divergence else None,
            "reference_matches_nemo": self.matches_nemo,
            "candidate_matches_nemo": self.candidate_matches_nemo,
        }
