"""What every step reads: the two runtimes, the settings, the model's facts, the clip and the upstream data.

`Upstream` holds, typed, what earlier steps produced that later ones consume (the reference's features, encoder
output, decode and decoder chain; the candidate's own outputs for its end-to-end decode). `StepContext` bundles
it with the runtimes so a step is a plain function of its context; `candidate_skip` is the one place that decides
whether the candidate runs a component, and says why not when it does not.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from rnnt_tui.core.names import CANDIDATE, REFERENCE, Status
from rnnt_tui.core.progress import Progress, no_progress
from rnnt_tui.core.runtimes.base import PrepareReport, Runtime
from rnnt_tui.core.stats.results import StepResult
from rnnt_tui.core.timing import Timings, measure

if TYPE_CHECKING:
    from rnnt_tui.core.audio import Audio
    from rnnt_tui.core.pipeline.facts import ModelFacts
    from rnnt_tui.core.pipeline.greedy import DecodeResult
    from rnnt_tui.core.pipeline.request import Settings

Arrays = dict[str, np.ndarray]


@dataclass
class Upstream:
    """Data passed between steps. Reference arrays feed both runtimes, so each diff isolates one component."""

    features: Arrays | None = None
    encoded: Arrays | None = None
    decode: DecodeResult | None = None
    decode_timings: Timings | None = None  # the reference decode's wall time, when it ran
    decoder: Arrays | None = None  # decoder_output [1,H,U], h and c [U,L,1,H] along the reference path
    targets: np.ndarray | None = None  # [1,U]: blank (start), then each reference token
    candidate: dict[str, Arrays] = field(default_factory=dict)  # the candidate's own outputs per component

    @property
    def encoded_frames(self) -> tuple[np.ndarray, int]:
        assert self.encoded is not None
        return self.encoded["encoded"], int(self.encoded["encoded_length"].reshape(-1)[0])


@dataclass
class StepContext:
    facts: ModelFacts
    audio: Audio
    reference: Runtime
    candidate: Runtime | None
    candidate_note: str | None  # why the candidate cannot run (None: it can, or there is none)
    settings: Settings
    prepared: dict[str, dict[str, PrepareReport]]
    upstream: Upstream = field(default_factory=Upstream)
    progress: Progress = no_progress
    cancel: threading.Event | None = None

    @property
    def comparing(self) -> bool:
        return self.candidate is not None and self.candidate_note is None

    def timed(self, runtime: Runtime, component: str, inputs: Arrays) -> tuple[Arrays, Timings]:
        """Run `component` as the settings say (first call, warm-ups, timed runs); outputs of the first call."""
        bound = runtime.bind(component, inputs)
        raw, timings = measure(bound, runs=self.settings.runs, warmup=self.settings.warmup)
        return bound.outputs(raw), timings

    def with_prepare(self, side: str, component: str, timings: Timings | None) -> Timings | None:
        """`timings` with how the side's runtime prepared and loaded `component`."""
        report = self.prepared.get(side, {}).get(component)
        if timings is None or report is None:
            return timings
        cached = report.cached if side == CANDIDATE else None
        return Timings(**{**timings.__dict__, "prepare_ms": report.prepare_ms, "load_ms": report.load_ms,
                          "cached": cached})

    def candidate_skip(self, result: StepResult, component: str | None = None) -> bool:
        """True when the candidate does not run this step; marks `result` reference-only and says why."""
        if self.candidate is None:
            return True
        if self.candidate_note is not None:
            result.status = Status.REFERENCE_ONLY if result.status == Status.DONE else result.status
            result.notes.append(f"candidate not run: {self.candidate_note}")
            return True
        if component is not None and component not in self.candidate.components:
            result.status = Status.REFERENCE_ONLY if result.status == Status.DONE else result.status
            result.notes.append(f"{self.candidate.label} has no {component}; the next component is fed the "
                                f"reference's output")
            return True
        return False

    def candidate_notes(self, component: str) -> list[str]:
        """What the candidate said about binding `component` (a fixed window padded, tiles, …)."""
        return list(self.candidate.bind_notes.get(component, [])) if self.candidate is not None else []

    def reference_timings(self, component: str, timings: Timings) -> dict[str, Timings | None]:
        return {REFERENCE: self.with_prepare(REFERENCE, component, timings)}


def audio_inputs(ctx: StepContext) -> Arrays:
    """The preprocessor's inputs: the clip as a [1, N] float32 signal and its length."""
    signal = ctx.audio.samples[None, :].astype(np.float32)
    return {"audio_signal": signal, "length": np.array([signal.shape[1]], dtype=np.int64)}


def error_text(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
