"""The plain events a running pipeline emits, in the order they happen: one vocabulary for opening, steps, corpus
runs and compute-unit sweeps.

Front ends subscribe with one callback (`emit(event)`): the CLI turns `Progress` into a spinner and reads the
finished session; the app's engine process pickles each event over its pipe and the app wraps it in one Textual
message. Events are frozen dataclasses of plain data (no model, no runtime), so they pickle and never import a
heavy library in the process that reads them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rnnt_tui.core.progress import Progress as ProgressCallback

if TYPE_CHECKING:
    from rnnt_tui.core.clip import ClipInfo
    from rnnt_tui.core.pipeline.facts import FuseView
    from rnnt_tui.core.stats.results import DecodeComparison, StepResult
    from rnnt_tui.core.summary import ModelSummary


@dataclass(frozen=True)
class Event:
    """Base of every pipeline event."""


@dataclass(frozen=True)
class Progress(Event):
    """Work under way: `fraction` None means indeterminate. `job` groups updates (prepare, step, corpus, …)."""

    job: str
    text: str
    fraction: float | None = None


@dataclass(frozen=True)
class SummaryRead(Event):
    """The checkpoint's config was read (nothing restored or executed yet); `recorded`: it is a bundle, whose
    reference was recorded (nothing of NeMo's will run)."""

    path: Path
    summary: ModelSummary
    recorded: bool = False


@dataclass(frozen=True)
class ClipLoaded(Event):
    """The clip was read, downmixed and resampled for the model (`audio`: what it is, not its samples)."""

    audio: ClipInfo


@dataclass(frozen=True)
class ModelRestored(Event):
    """NeMo restored the model (the slow part)."""

    path: Path
    restore_s: float
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class CandidateFailed(Event):
    """The candidate could not be prepared (an export or conversion raised): the reason in one line and the
    traceback for a folded details view. The reference still runs."""

    label: str
    reason: str
    details: str


@dataclass(frozen=True)
class SessionView:
    """What a front end shows of a prepared comparison (plain data: models and runtimes stay in the core)."""

    path: Path
    summary: ModelSummary
    audio: ClipInfo  # the clip less its samples: a front end never needs them (nor numpy to read them)
    reference_label: str
    candidate_label: str | None
    candidate_note: str | None
    fuse: FuseView
    runs: int
    warmup: int
    options: Any = None
    #: where the candidate runs (its `describe()["runs_on"]`, else its label): "Apple Core AI runtime, Linux CPU"
    candidate_runs_on: str | None = None
    #: every package or asset of the candidate accounted for (`inventory` entries' `to_json`: path, mapped_to,
    #: reason; mapped_to None means skipped)
    candidate_inventory: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class SessionReady(Event):
    """Runtimes prepared; nothing run yet."""

    view: SessionView


@dataclass(frozen=True)
class StepStarted(Event):
    name: str


@dataclass(frozen=True)
class StepFinished(Event):
    """A step finished: that step's result only (front ends keep what they were sent before); `decode` is the
    decode comparison when the step was the decode."""

    name: str
    result: StepResult
    decode: DecodeComparison | None = None
    duration_s: float = 0.0


@dataclass(frozen=True)
class StepCleared(Event):
    """A step's result no longer holds (the joint after its mode changed): show it as not run."""

    name: str


@dataclass(frozen=True)
class FuseChanged(Event):
    """The reference joint's mode changed."""

    fuse: FuseView


# -- corpus runs (`core.corpus.runner`) --------------------------------------------------------------------
# Records are `core.corpus.records.UtteranceRecord` (typed loosely: this package never imports the corpus).


@dataclass(frozen=True)
class CorpusPlanned(Event):
    """The manifest was read: `total` entries selected, `done` already in the results file (a resume)."""

    manifest: Path
    out_dir: Path
    total: int
    done: int
    manifest_errors: int
    done_records: tuple[Any, ...] = ()  # what a resumed run already has, for a view to show
    #: the expected work up front: per candidate, the utterances and audio seconds left (`core.corpus.subset`)
    estimate: str | None = None


@dataclass(frozen=True)
class UtteranceStarted(Event):
    uid: str
    audio: str
    position: int  # 1-based among the selected entries
    total: int


@dataclass(frozen=True)
class UtteranceFinished(Event):
    """One utterance recorded (already on disk). `totals` is `RunningTotals.headline()` over every record so far
    (with `stream`: the per-context rows of `core.corpus.streaming.stream_rows`, in a streaming run);
    `eta_s` each candidate's measured time so far (per audio second when durations are known, else per
    utterance) times what it has left; None until each candidate with work left has finished one (restoring the
    model not counted)."""

    record: Any
    position: int
    total: int
    totals: dict[str, Any]
    eta_s: float | None
    #: on a candidate's first measured utterance: the time estimate it gives (`core.corpus.subset.Estimate`)
    note: str | None = None


@dataclass(frozen=True)
class CorpusFinished(Event):
    """The run ended (`interrupted`: cancelled or Ctrl-C after the recorded utterances); reports are written."""

    out_dir: Path
    interrupted: bool
    totals: dict[str, Any]
    reports: tuple[Path, ...] = ()


# -- compute-unit sweeps (`core.sweep`) ---------------------------------------------------------------------


@dataclass(frozen=True)
class SweepUnitStarted(Event):
    """The sweep starts on compute unit `units` (`position` 1-based of `total`)."""

    units: str
    position: int
    total: int


@dataclass(frozen=True)
class SweepUnitFinished(Event):
    """One compute unit's row (`core.sweep.SweepRow`), whatever happened on it."""

    row: Any


Emit = Callable[[Event], object]


def ignore(event: Event) -> None:
    """An Emit that drops everything."""


def progress_of(emit: Emit, job: str) -> ProgressCallback:  # the core's one callback type (core.progress)
    """The core's progress callback, emitted as `Progress` events of `job`."""

    def progress(text: str, fraction: float | None = None) -> None:
        emit(Progress(job, text, fraction))

    return progress
