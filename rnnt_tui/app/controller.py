"""What the app shows for each message from the workers: the core's results, put into the widgets.

A base of `RnntApp` (with `actions.Actions`, what the keys do; kept apart so each module stays short). Handlers
use Textual's `on_<message>` names so they are found through the MRO (a mixin's `@on` handlers would not be).
The state shown is only replaced when a new session is ready; until then a pending checkpoint's summary is on
screen, and `revert_pending` puts the current session back if the new one fails.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from textual.widgets import Static, TabbedContent
from textual.worker import WorkerState

from rnnt_tui.app.choices import RuntimeChoices
from rnnt_tui.app.messages import CoreEvent, JobDone, RuntimesChecked
from rnnt_tui.app.widgets.corpus_view import CorpusView
from rnnt_tui.app.widgets.detail import DetailView
from rnnt_tui.app.widgets.fuse_panel import FusePanel
from rnnt_tui.app.widgets.model_panel import ModelPanel
from rnnt_tui.app.widgets.pictures import PicturesView
from rnnt_tui.app.widgets.pipeline import PipelineStrip
from rnnt_tui.app.widgets.runtime_panel import RuntimePanel
from rnnt_tui.app.widgets.status import StatusLine
from rnnt_tui.app.widgets.tables import DiffsTable, ShapesTable, TimingsTable
from rnnt_tui.app.widgets.transcript import TranscriptView, transcript_line
from rnnt_tui.core.components import STEPS
from rnnt_tui.core.fuse import VALIDATION, JointMode
from rnnt_tui.core.names import RUNTIME_LABELS, Status
from rnnt_tui.core.pipeline.events import (
    CandidateFailed,
    ClipLoaded,
    FuseChanged,
    ModelRestored,
    Progress,
    SessionReady,
    SessionView,
    StepCleared,
    StepFinished,
    StepStarted,
    SummaryRead,
)

if TYPE_CHECKING:
    from textual.app import App

    from rnnt_tui.app.engine import Engine
    from rnnt_tui.app.engine_process import ProcessEngine
    from rnnt_tui.app.recent import Recent
    from rnnt_tui.core.audio import Audio
    from rnnt_tui.core.pipeline.pipeline import RuntimeChoice as Availability
    from rnnt_tui.core.stats.results import DecodeComparison, StepResult
    from rnnt_tui.core.summary import ModelSummary

    _Base = App[int]
else:
    _Base = object


def _runtime_fields(request: Any) -> tuple[Any, ...]:
    """What a session was built with that a rebuild would change (not the paths, not the joint mode)."""
    return request.against, request.options, request.settings.runs, request.settings.warmup


def saved_mode(summary: ModelSummary) -> JointMode:
    """The joint flags as the checkpoint's config has them (before NeMo restores it)."""
    j = summary.joint
    return JointMode(fuse_loss_wer=j.fuse_loss_wer, fused_batch_size=j.fused_batch_size, log_softmax=j.log_softmax)


class Controller(_Base):
    """Message handlers and actions of the app."""

    checkpoint: Path
    audio_path: Path
    manifest: Path | None
    from_corpus: bool = False
    run_when_ready: bool = False  # an utterance opened from the Corpus tab runs every step at once
    options: RuntimeChoices
    joint_mode: str
    export_dir: Path
    engine: Engine | ProcessEngine
    recent: Recent

    if TYPE_CHECKING:  # the workers, defined on RnntApp with @work
        def open_checkpoint(self, path: Path, audio: Path, options: RuntimeChoices, joint_mode: str) -> Any: ...
        def rebuild_session(self, audio: Path | None, options: RuntimeChoices, joint_mode: str) -> Any: ...
        def run_steps(self, names: list[str]) -> Any: ...
        def switch_joint_mode(self, mode: str, rerun: bool) -> Any: ...
        def write_report(self, directory: Path, stem: str, screenshot: Path) -> Any: ...
        def run_sweep(self, screen: Any) -> Any: ...
        def start_corpus(self, manifest: Path) -> None: ...
        def run_corpus(self, manifest: Path) -> Any: ...
        def run_precision(self, screen: Any, precision: str, weights: str | None) -> Any: ...

    def init_state(self) -> None:
        self.session: SessionView | None = None
        self.summary: ModelSummary | None = None
        self.audio: Audio | None = None
        self.results: dict[str, StepResult] = {}
        self.decode: DecodeComparison | None = None
        self.availability: dict[str, Availability] = {}
        against = self.options.against
        self.labels = {"reference": RUNTIME_LABELS["pytorch"], "candidate": RUNTIME_LABELS.get(against, against)}
        self.probe = ""

    # -- widgets ------------------------------------------------------------------------------------
    @property
    def status(self) -> StatusLine:
        return self.query_one(StatusLine)

    @property
    def pipeline(self) -> PipelineStrip:
        return self.query_one(PipelineStrip)

    def model_panels_show(self, summary: ModelSummary | None = None, audio: Audio | None = None,
                          status: str | None = None) -> None:
        for panel in self.query(ModelPanel):
            panel.show(summary, audio, status)

    def show_header(self) -> None:
        o = self.options
        units = f" {o.compute_units}" if o.against == "coreml" else ""
        self.sub_title = (f"{self.checkpoint.name} · {self.audio_path.name} · vs {self.labels['candidate']}{units} "
                          f"{o.precision}")

    def show_step_detail(self) -> None:
        name = self.pipeline.selected
        self.query_one(DetailView).show(name, self.results.get(name), self.labels, self.pipeline.status(name))

    def show_results(self) -> None:
        """Every widget that shows results, from `self.results` / `self.decode` (rows update in place)."""
        duration = self.audio.duration_s if self.audio is not None else 0.0
        diffs, timings, shapes = self.query_one(DiffsTable), self.query_one(TimingsTable), self.query_one(ShapesTable)
        for name in STEPS:
            result = self.results.get(name)
            if self.pipeline.status(name) not in (Status.RUNNING, Status.PREPARING) or result is not None:
                self.pipeline.show(name, result.status if result is not None else Status.PENDING)
            if result is None:
                continue
            diffs.show(result, self.decode.token_agreement if self.decode is not None else None)
            timings.show(result, duration)
            shapes.show(result)
        pictures = self.query_one(PicturesView)
        pictures.show_encoder(self.results.get("encoder"))
        pictures.show_joint(self.results.get("joint"), self.decode.reference_pieces if self.decode else [])
        self.query_one(TranscriptView).show(self.decode, self.labels)
        self.query_one("#transcript-line", Static).update(transcript_line(self.decode, self.labels))
        self.show_step_detail()

    def reset_results(self) -> None:
        self.results, self.decode = {}, None
        self.query_one(DiffsTable).prime()
        self.query_one(ShapesTable).prime()
        self.query_one(TimingsTable).prime(self.labels)
        self.query_one(PicturesView).clear()
        self.query_one(TranscriptView).show(None, self.labels)
        self.query_one("#transcript-line", Static).update(transcript_line(None, self.labels))

    # -- events from the engine ---------------------------------------------------------------------
    def on_core_event(self, message: CoreEvent) -> None:
        """Route one pipeline event to its handler (events without one are not shown)."""
        handler = self.EVENT_HANDLERS.get(type(message.event).__name__)
        if handler is not None:
            getattr(self, handler)(message.event)

    EVENT_HANDLERS: ClassVar[dict[str, str]] = {
        "SummaryRead": "on_summary_read", "ClipLoaded": "on_clip_loaded", "ModelRestored": "on_model_restored",
        "Progress": "on_progress", "SessionReady": "on_session_ready", "CandidateFailed": "on_candidate_failed",
        "StepStarted": "on_step_started", "StepFinished": "on_step_finished", "StepCleared": "on_step_cleared",
        "FuseChanged": "on_fuse_changed",
        "CorpusPlanned": "on_corpus_planned", "UtteranceStarted": "on_utterance_started",
        "UtteranceFinished": "on_utterance_finished", "CorpusFinished": "on_corpus_finished"}

    def on_summary_read(self, message: SummaryRead) -> None:
        if message.recorded:
            self.model_panels_show(message.summary, status="recorded reference (a bundle: NeMo does not run)")
            self.notify("A bundle: NeMo's side is as recorded (its arrays checked against the bundle's manifest); "
                        "steps run the candidate only. The joint's mode was fixed when it was recorded.",
                        title="Replaying a bundle", timeout=8)
        else:
            self.model_panels_show(message.summary, status="restoring with NeMo…")
        if not message.recorded and not getattr(self, "_trust_told", False):
            self._trust_told = True
            self.notify("Reading the summary ran nothing from the archive; restoring runs NeMo's loader, which "
                        "unpickles the weights. Only open checkpoints you trust.", title="Restoring with NeMo",
                        timeout=20)  # a trust notice: on screen until well after the model is ready
        self.query_one(FusePanel).show_saved(saved_mode(message.summary))
        self.pipeline.reset(Status.PREPARING)
        self.summary = message.summary

    def on_clip_loaded(self, message: ClipLoaded) -> None:
        self.model_panels_show(audio=message.audio)

    def on_model_restored(self, message: ModelRestored) -> None:
        self.model_panels_show(status=f"restored in {message.restore_s:.1f} s; preparing runtimes…")

    def on_progress(self, message: Progress) -> None:
        self.status.working(message.text, message.fraction)
        extra = f" {message.fraction:.0%}" if message.fraction is not None else ""
        if message.job == "prepare":
            self.pipeline.reset(Status.PREPARING, extra)
        elif message.job == "step":
            for name in STEPS:
                if self.pipeline.status(name) == Status.RUNNING:
                    self.pipeline.show(name, Status.RUNNING, extra)

    def on_runtimes_checked(self, message: RuntimesChecked) -> None:
        self.availability = message.availability
        self.query_one(RuntimePanel).show_availability(message.availability)

    def on_session_ready(self, message: SessionReady) -> None:
        session = message.view
        self.session = session
        self.summary, self.audio = session.summary, session.audio
        self.checkpoint, self.audio_path = session.path, session.audio.path
        fallback = RUNTIME_LABELS.get(self.options.against, self.options.against)
        self.labels = {"reference": session.reference_label, "candidate": session.candidate_label or fallback}
        self.recent.add("checkpoints", self.checkpoint)
        self.recent.add("audio", self.audio_path)
        self.recent.save()
        recorded = "recorded" in session.reference_label
        self.model_panels_show(session.summary, session.audio,
                               status="recorded reference · ready" if recorded else "restored · ready")
        self.probe = session.fuse.probe
        self.query_one(FusePanel).show_used(session.fuse.mode, session.fuse.current, session.fuse.probe,
                                            saved=session.fuse.saved)
        self.reset_results()
        self.pipeline.reset(Status.PENDING)
        self.show_header()
        self.show_results()
        if session.candidate_note:
            self.notify(f"{session.candidate_note}. The reference (NeMo / PyTorch) still runs.",
                        title=f"{self.labels['candidate']} cannot run here", severity="warning", timeout=10)
        self.status.idle("Ready · n: next step · r: run all · f: fuse mode · ?: help", style="bold green")
        manifest, self.manifest = self.manifest, None
        if manifest is not None:  # `rnnt-tui CHECKPOINT MANIFEST`: the corpus starts now
            self.start_corpus(manifest)
        elif self.run_when_ready:
            self.run_when_ready = False
            self.run_steps(list(STEPS))
        # Settings changed while this session was being built: apply them now (never silently drop them).
        if session.options is not None and _runtime_fields(session.options) != _runtime_fields(
                self.options.request(session.path, session.audio.path, self.joint_mode)):
            self.pipeline.reset(Status.PREPARING)
            self.rebuild_session(None, self.options, self.joint_mode)
        elif session.fuse.mode != self.joint_mode:
            self.switch_joint_mode(self.joint_mode, False)

    def on_candidate_failed(self, message: CandidateFailed) -> None:
        from rnnt_tui.app.screens.error import ErrorScreen

        self.push_screen(ErrorScreen("The second runtime could not be prepared", message.reason + "\n\nThe "
                                     "reference still runs; the report says why the candidate did not.",
                                     message.details))

    def on_step_started(self, message: StepStarted) -> None:
        self.pipeline.show(message.name, Status.RUNNING)
        self.pipeline.select(message.name)
        self.status.working(f"Running {message.name}…")
        self.show_step_detail()

    def on_step_finished(self, message: StepFinished) -> None:
        self.results = {**self.results, message.name: message.result}
        if message.name == "decode":
            self.decode = message.decode
        self.show_results()
        if message.name == "decode" and message.decode is not None and message.decode.candidate_tokens is not None:
            agree = message.decode.first_divergence is None
            self.notify(f"{self.labels['reference']}: {message.decode.reference_text!r}\n"
                        f"{self.labels['candidate']}: {message.decode.candidate_text!r}",
                        title="Transcripts agree" if agree else "Transcripts differ",
                        severity="information" if agree else "warning", timeout=6)

    def on_step_cleared(self, message: StepCleared) -> None:
        self.results = {k: v for k, v in self.results.items() if k != message.name}
        self.show_results()

    def on_fuse_changed(self, message: FuseChanged) -> None:
        fuse = message.fuse
        self.joint_mode, self.probe = fuse.mode, fuse.probe
        if self.session is not None:
            self.session = replace(self.session, fuse=fuse)
        self.query_one(FusePanel).show_used(fuse.mode, fuse.current, fuse.probe)
        words = "validation mode (fuse off, log_softmax off)" if fuse.mode == VALIDATION else "as saved"
        self.notify(f"joint(enc, dec) → {fuse.probe}", title=f"Joint now {words}", timeout=6)

    # -- corpus runs ----------------------------------------------------------------------------------
    def on_corpus_planned(self, event: Any) -> None:
        view = self.query_one(CorpusView)
        view.planned(event.manifest, event.out_dir, event.total, event.done, event.manifest_errors)
        for position, record in enumerate(event.done_records, start=1):
            view.finished_one(record, position, event.total, {}, None, self.labels)
        self.query_one(TabbedContent).active = "tab-corpus"
        self.query_one(CorpusView).focus_table()

    def on_utterance_started(self, event: Any) -> None:
        self.status.working(f"Corpus: utterance {event.position}/{event.total} · {Path(event.audio).name}",
                            (event.position - 1) / max(event.total, 1))

    def on_utterance_finished(self, event: Any) -> None:
        self.query_one(CorpusView).finished_one(event.record, event.position, event.total, event.totals,
                                                event.eta_s, self.labels)

    def on_corpus_finished(self, event: Any) -> None:
        view = self.query_one(CorpusView)
        view.show_totals(event.totals, self.labels)
        view.ended(event.interrupted, event.reports)

    def on_job_done(self, message: JobDone) -> None:
        self.job_ended(message.job, message.text, cancelled=message.cancelled)

    def job_ended(self, job: str | None, text: str, cancelled: bool = False, failed: bool = False) -> None:
        if cancelled:
            for name in STEPS:
                if self.pipeline.status(name) in (Status.RUNNING, Status.PREPARING):
                    self.pipeline.show(name, Status.CANCELLED)
            self.show_step_detail()
        busy = any(w.state in (WorkerState.PENDING, WorkerState.RUNNING) and w.group not in (job, "runtimes")
                   for w in self.workers)
        if not busy:
            style = "bold red" if failed else "yellow" if cancelled else "bold green"
            self.status.idle(text, style=style)

    def revert_pending(self) -> None:
        """Put the current session back on screen after a pick that failed part way."""
        if self.session is None:
            self.summary = None
            for panel in self.query(ModelPanel):
                panel.summary = None
            self.model_panels_show(status="no model open · o opens a checkpoint")
            self.query_one(FusePanel).show_nothing("No model open: o opens a checkpoint.")
            self.pipeline.reset(Status.PENDING)
            return
        s = self.session
        self.summary, self.audio = s.summary, s.audio
        self.model_panels_show(s.summary, s.audio, status="restored · ready")
        self.query_one(FusePanel).show_used(s.fuse.mode, s.fuse.current, self.probe, saved=s.fuse.saved)
        self.pipeline.reset(Status.PENDING)
        self.show_results()
