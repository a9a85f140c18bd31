"""Messages the background workers post to the UI thread: the only way a worker's results reach a widget.

Workers never touch widgets; they post one of these (thread-safe) and the app's handlers update the screen.
`Progress` can replace an earlier, not yet handled `Progress` of the same job so a fast export cannot pile up
hundreds of updates in the queue.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual.message import Message

if TYPE_CHECKING:
    from rnnt_tui.core.audio import Audio
    from rnnt_tui.core.fuse import JointMode
    from rnnt_tui.core.results import DecodeComparison, StepResult
    from rnnt_tui.core.runtimes.base import Availability
    from rnnt_tui.core.summary import ModelSummary


@dataclass
class SummaryReady(Message):
    """The checkpoint's config was read: show the model and its saved fuse mode before the restore."""

    path: Path
    summary: ModelSummary


@dataclass
class AudioReady(Message):
    """The clip was read and resampled for the model."""

    audio: Audio


@dataclass
class ModelRestored(Message):
    """NeMo restored the model (the slow part); the runtimes are being prepared next."""

    path: Path
    restore_s: float
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SessionView:
    """What the app shows of a prepared session (plain data: the model itself stays with the engine)."""

    path: Path
    summary: ModelSummary
    audio: Audio
    reference_label: str
    candidate_label: str | None
    fuse_name: str
    fuse_current: JointMode
    fuse_saved: JointMode
    runs: int
    warmup: int


@dataclass
class SessionReady(Message):
    """A comparison session is prepared: runtimes exported/loaded, nothing run yet."""

    session: SessionView
    probe: str
    candidate_note: str | None = None
    options: Any = None


@dataclass
class RuntimesChecked(Message):
    """Which candidate runtimes can run here, and why not; `None` when a runtime's module is missing."""

    availability: dict[str, Availability]


@dataclass
class Progress(Message):
    """A worker's progress: `fraction` None means indeterminate."""

    job: str
    text: str
    fraction: float | None = None

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, Progress) and message.job == self.job


@dataclass
class StepStarted(Message):
    """A pipeline step started running."""

    name: str


@dataclass
class StepFinished(Message):
    """A step finished; `results` is a snapshot of every step's result so far (keyed by step name)."""

    name: str
    results: dict[str, StepResult]
    decode: DecodeComparison | None
    duration_s: float


@dataclass
class FuseChanged(Message):
    """The reference joint's mode changed; `probe` says what joint(enc, dec) now returns."""

    mode: str
    current: Any
    probe: str


@dataclass
class JobDone(Message):
    """A job ended (finished or cancelled), so the status line can settle."""

    job: str
    text: str
    cancelled: bool = False


@dataclass
class Exported(Message):
    """A report was written; the paths to tell the user."""

    paths: list[Path]


@dataclass
class CandidateFailed(Message):
    """The candidate runtime could not be prepared; the reference still runs. Details for the modal."""

    reason: str
    details: str
