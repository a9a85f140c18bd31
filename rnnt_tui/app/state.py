"""What the app shows, as plain data, and how each core event changes it.

Textual-free (unit-tested without it, `tests/test_app_state.py`): `AppState.apply(event)` folds one accepted event
(`client.EngineClient.accept` has dropped stale ones) into the state; the app's handlers then draw the widgets from
it. The state shown is only replaced when a new session is ready: until then a pending checkpoint's summary is on
screen, and `revert` puts the current session back if the new one fails. Nothing here computes a number.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rnnt_tui.app.choices import WindowChoices
from rnnt_tui.core.components import COMPONENTS, STEPS
from rnnt_tui.core.fuse import VALIDATION, JointMode
from rnnt_tui.core.names import RUNTIME_LABELS, Status
from rnnt_tui.core.pipeline import events as ev

if TYPE_CHECKING:
    from rnnt_tui.app.choices import RuntimeChoices
    from rnnt_tui.core.clip import ClipInfo
    from rnnt_tui.core.pipeline.pipeline import RuntimeChoice
    from rnnt_tui.core.stats.results import DecodeComparison, StepResult
    from rnnt_tui.core.summary import ModelSummary

BUSY = (Status.RUNNING, Status.PREPARING)


def saved_mode(summary: ModelSummary) -> JointMode:
    """The joint flags as the checkpoint's config has them (before NeMo restores it)."""
    j = summary.joint
    return JointMode(fuse_loss_wer=j.fuse_loss_wer, fused_batch_size=j.fused_batch_size, log_softmax=j.log_softmax)


def runtime_fields(request: Any) -> tuple[Any, ...]:
    """What a session was built with that a rebuild would change (not the paths, not the joint mode)."""
    return request.against, request.options, request.settings.runs, request.settings.warmup


@dataclass
class AppState:
    """The open comparison as the screen shows it. `summary` / `audio` / `model_status` may be a pending
    checkpoint's (being opened); `session` is the last ready one."""

    checkpoint: Path
    audio_path: Path
    options: RuntimeChoices
    joint_mode: str = VALIDATION  # what the user asked for (the session's own is `session.fuse.mode`)
    session: ev.SessionView | None = None
    summary: ModelSummary | None = None
    audio: ClipInfo | None = None
    recorded: bool = False
    model_status: str | None = None
    results: dict[str, StepResult] = field(default_factory=dict)
    decode: DecodeComparison | None = None
    steps: dict[str, str] = field(default_factory=lambda: dict.fromkeys(STEPS, Status.PENDING))
    step_extra: dict[str, str] = field(default_factory=lambda: dict.fromkeys(STEPS, ""))
    activity: tuple[str, float | None] | None = None  # the last progress: text and fraction
    availability: dict[str, RuntimeChoice] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    probe: str = ""
    corpus_stream: bool = False  # the Corpus tab's mode: streaming transcripts (`corpus --stream`) or offline
    windows: WindowChoices = field(default_factory=WindowChoices)  # what `w` last ran with (this session)

    def __post_init__(self) -> None:
        if not self.labels:
            self.labels = {"reference": RUNTIME_LABELS["pytorch"], "candidate": self.candidate_fallback()}

    def candidate_fallback(self) -> str:
        return RUNTIME_LABELS.get(self.options.against, self.options.against)

    def runs_on(self) -> str:
        """Where the open candidate runs (`describe()["runs_on"]`, e.g. "Apple Core AI runtime, Linux CPU"; its
        label for a runtime that names no more), or the candidate's label before a session is ready."""
        s = self.session
        current = s is not None and s.candidate_runs_on and s.candidate_label == self.labels["candidate"]
        return s.candidate_runs_on if current and s is not None and s.candidate_runs_on else self.labels["candidate"]

    def candidate_shown(self) -> str:
        """The candidate's label with where it runs, said once (on Linux Core AI's label names it already)."""
        label, where = self.labels["candidate"], self.runs_on()
        return label if where in label else f"{RUNTIME_LABELS.get(self.options.against, label)} ({where})"

    def packages_dir(self) -> str | None:
        """The folder of packages or assets the open session's candidate uses (None: the tool's own conversion)."""
        request = self.session.options if self.session is not None else None
        return getattr(getattr(request, "options", None), "packages_dir", None)

    def drift_refusal(self) -> str | None:
        """Why the Core AI drift search cannot run on what is open (None: it can)."""
        coreai = self.availability.get("coreai")
        if coreai is not None and not coreai.ok:
            return f"Core AI cannot run here: {coreai.reason}"
        if self.options.against != "coreai":
            return (f"The drift search names where a Core AI conversion drifts from PyTorch; the open candidate is "
                    f"{self.labels['candidate']} (choose Core AI in the Runtimes tab, 5).")
        if self.session is not None and self.session.candidate_note:
            return f"Core AI cannot run here: {self.session.candidate_note}"
        if self.recorded:
            return "The drift search converts the component again from the restored model; a bundle holds none."
        return None

    def drift_components(self, selected: str) -> list[str]:
        """The components out of tolerance; when none is, the `selected` step's component (on demand)."""
        out = [n for n in COMPONENTS if (r := self.results.get(n)) is not None and r.status == Status.MISMATCH]
        return out or ([selected] if selected in COMPONENTS else [])

    # -- steps ---------------------------------------------------------------------------------------
    def set_steps(self, status: str, extra: str = "") -> None:
        for name in STEPS:
            self.steps[name], self.step_extra[name] = status, extra

    def set_step(self, name: str, status: str, extra: str = "") -> None:
        self.steps[name], self.step_extra[name] = status, extra

    def todo(self) -> list[str]:
        return [name for name in STEPS if name not in self.results]

    def cancel_running(self) -> None:
        """A cancel: every step running or preparing shows cancelled (nothing the engine still sends for the
        cancelled call changes that: the client drops it)."""
        for name in STEPS:
            if self.steps[name] in BUSY:
                self.set_step(name, Status.CANCELLED)
        self.activity = None

    def clear_results(self) -> None:
        self.results, self.decode = {}, None

    def revert(self) -> None:
        """Back to the current session after a pick that failed part way (or to nothing open)."""
        self.activity = None
        self.set_steps(Status.PENDING)
        if self.session is None:
            self.summary, self.audio, self.model_status = None, None, "no model open · o opens a checkpoint"
            self.clear_results()
            return
        s = self.session
        self.summary, self.audio = s.summary, s.audio
        self.model_status = "recorded reference · ready" if self.recorded else "restored · ready"
        for name, result in self.results.items():
            self.set_step(name, result.status)

    def stopped(self) -> None:
        """The engine process ended: the model went with it."""
        self.session = None
        self.clear_results()
        self.revert()

    def request(self, clip: Path | None = None, checkpoint: Path | None = None) -> Any:
        """The core request for the current choices."""
        return self.options.request(checkpoint or self.checkpoint, clip or self.audio_path, self.joint_mode)

    def needs_rebuild(self) -> bool:
        """Settings changed while the session on screen was being built."""
        s = self.session
        return s is not None and s.options is not None and \
            runtime_fields(s.options) != runtime_fields(self.request(s.audio.path, s.path))

    def chunk_compared(self, event: Any) -> None:
        """Fold a `core.stream.compare.ChunkCompared` in (not registered on `apply`: its module loads numpy, and
        the state loads without it)."""
        chunk = event.chunk
        left, right = event.context
        self.activity = (f"Streaming [{left},{right}]: chunk {chunk.index + 1} "
                         f"{'ok' if chunk.ok else 'out of tolerance'}", None)

    def window_compared(self, event: Any) -> None:
        """Fold a `core.stream.windows.WindowCompared` in (not on `apply`, as `chunk_compared`)."""
        window = event.window
        self.activity = (f"Windows: window {window.index + 1} of {event.total} "
                         f"{'ok' if window.encoder_ok else 'out of tolerance'}", (window.index + 1) / event.total)

    # -- events ----------------------------------------------------------------------------------------
    @functools.singledispatchmethod
    def apply(self, event: ev.Event) -> None:
        """Fold one event in (events that change nothing shown are ignored)."""

    @apply.register
    def _(self, event: ev.SummaryRead) -> None:
        self.summary, self.recorded = event.summary, event.recorded
        self.model_status = ("recorded reference (a bundle: NeMo does not run)" if event.recorded
                             else "restoring with NeMo…")
        self.set_steps(Status.PREPARING)

    @apply.register
    def _(self, event: ev.ClipLoaded) -> None:
        self.audio = event.audio

    @apply.register
    def _(self, event: ev.ModelRestored) -> None:
        self.model_status = f"restored in {event.restore_s:.1f} s; preparing runtimes…"

    @apply.register
    def _(self, event: ev.Progress) -> None:
        self.activity = (event.text, event.fraction)
        extra = f" {event.fraction:.0%}" if event.fraction is not None else ""
        if event.job == "prepare":
            self.set_steps(Status.PREPARING, extra)
        elif event.job == "step":
            for name in STEPS:
                if self.steps[name] == Status.RUNNING:
                    self.set_step(name, Status.RUNNING, extra)

    @apply.register
    def _(self, event: ev.SweepUnitStarted) -> None:
        self.activity = (f"Sweep: {event.units} ({event.position}/{event.total})",
                         (event.position - 1) / max(event.total, 1))

    @apply.register
    def _(self, event: ev.SweepUnitFinished) -> None:
        row = event.row
        self.activity = (f"Sweep: {row.compute_units} {row.status}", None)

    @apply.register
    def _(self, event: ev.SessionReady) -> None:
        view = event.view
        self.session, self.summary, self.audio = view, view.summary, view.audio
        self.checkpoint, self.audio_path = view.path, view.audio.path
        self.recorded = "recorded" in view.reference_label
        self.labels = {"reference": view.reference_label, "candidate": view.candidate_label or
                       self.candidate_fallback()}
        self.model_status = "recorded reference · ready" if self.recorded else "restored · ready"
        self.probe = view.fuse.probe
        self.clear_results()
        self.set_steps(Status.PENDING)
        self.activity = None

    @apply.register
    def _(self, event: ev.StepStarted) -> None:
        self.set_step(event.name, Status.RUNNING)
        self.activity = (f"Running {event.name}…", None)

    @apply.register
    def _(self, event: ev.StepFinished) -> None:
        self.results = {**self.results, event.name: event.result}
        if event.name == "decode":
            self.decode = event.decode
        self.set_step(event.name, event.result.status)

    @apply.register
    def _(self, event: ev.StepCleared) -> None:
        self.results = {k: v for k, v in self.results.items() if k != event.name}
        if event.name == "decode":
            self.decode = None
        if self.steps[event.name] not in BUSY:
            self.set_step(event.name, Status.PENDING)

    @apply.register
    def _(self, event: ev.FuseChanged) -> None:
        self.joint_mode, self.probe = event.fuse.mode, event.fuse.probe
        if self.session is not None:
            self.session = replace(self.session, fuse=event.fuse)
