"""The rnnt-tui app: layout, key bindings, the background workers and the one place errors are handled.

Every piece of work (summary, restore, export/convert, steps, mode switch, report) runs in a thread worker
(`@work(thread=True, exclusive=True, exit_on_error=False)`) that calls the engine - by default a
`engine_process.ProcessEngine`, which runs `engine.Engine` and so the core, NeMo and the runtimes in a child process
- and relays the messages it posts; `controller.Controller` shows what arrives, `actions.Actions` holds what the
keys do. Worker failures land in one `Worker.StateChanged` handler: a bad file becomes a notification naming it (the
current session stays), anything unexpected a modal with the details. Nothing here computes a number.
"""

from __future__ import annotations

import gc
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Footer, Header, Label, Static, TabbedContent, TabPane
from textual.worker import Worker, WorkerState, get_current_worker

from rnnt_tui.app.actions import Actions
from rnnt_tui.app.choices import RuntimeChoices
from rnnt_tui.app.commands import RnntCommands
from rnnt_tui.app.engine import Engine, WorkerCancel
from rnnt_tui.app.engine_process import EngineStoppedError, ProcessEngine
from rnnt_tui.app.messages import CoreEvent, Exported, JobDone, RuntimesChecked
from rnnt_tui.app.recent import Recent
from rnnt_tui.app.screens.error import ErrorScreen
from rnnt_tui.app.widgets.corpus_view import CorpusView
from rnnt_tui.app.widgets.detail import DetailView
from rnnt_tui.app.widgets.fuse_panel import FusePanel
from rnnt_tui.app.widgets.model_panel import ModelPanel
from rnnt_tui.app.widgets.pictures import PicturesView
from rnnt_tui.app.widgets.pipeline import PipelineStrip
from rnnt_tui.app.widgets.runtime_panel import RuntimePanel
from rnnt_tui.app.widgets.status import StatusLine
from rnnt_tui.app.widgets.tables import DiffsTable, ShapesTable, TimingsTable
from rnnt_tui.app.widgets.transcript import TranscriptView
from rnnt_tui.core.errors import BadInputError, CancelledError, RuntimeUnavailableError, StepFailedError
from rnnt_tui.core.fuse import VALIDATION

if TYPE_CHECKING:
    from rnnt_tui.app.screens.precision import PrecisionScreen
    from rnnt_tui.app.screens.sweep import SweepScreen

NARROW = 120  # columns below which the overview stacks tighter


def _b(key: str, action: str, description: str, tooltip: str, *, show: bool = True,
       key_display: str | None = None, priority: bool = False) -> Binding:
    return Binding(key, action, description, show=show, key_display=key_display, priority=priority,
                   tooltip=tooltip, id=f"rnnt.{action}")


class RnntApp(Actions, App[int]):
    """Pick a checkpoint and a clip, see the model and its joint's fuse mode, step through the comparison."""

    TITLE = "rnnt-tui"
    CSS_PATH = Path(__file__).with_name("app.tcss")
    COMMANDS: ClassVar = App.COMMANDS | {RnntCommands}
    BINDINGS: ClassVar[list[BindingType]] = [
        _b("n", "next_step", "Next step", "Run the next step that has not run yet"),
        _b("r", "run_all", "Run all", "Run every step, preprocessor to decode"),
        _b("f", "toggle_fuse", "Fuse", "Switch the joint between as saved and validation mode; reruns it"),
        _b("o", "pick_checkpoint", "Open", "Open a .nemo checkpoint"),
        _b("a", "pick_audio", "Clip", "Open an audio clip"),
        _b("e", "export", "Export", "Save the comparison as JSON, Markdown and an SVG screenshot"),
        _b("question_mark", "help", "Help", "Keys, step states and the fuse modes", key_display="?"),
        _b("x", "rerun", "Rerun step", "Run the selected step again"),
        _b("escape", "cancel", "Cancel", "Cancel the running step, export or conversion", key_display="Esc"),
        _b("u", "sweep", "Units sweep", "Core ML compute-unit sweep and op placement"),
        _b("p", "precision", "Precision", "fp16 hazards, lint, mixed precision: the conversion certified in the MIL "
                                          "interpreter"),
        _b("q", "quit", "Quit", "Quit (background work is cancelled)"),
        _b("left_square_bracket", "select_step(-1)", "Prev step", "Select the previous step", show=False,
           key_display="["),
        _b("right_square_bracket", "select_step(1)", "Next sel.", "Select the next step", show=False,
           key_display="]"),
        _b("1", "tab('tab-step')", "Step tab", "Show the selected step's detail", show=False),
        _b("2", "tab('tab-tables')", "Tables tab", "Show the shapes, timings and diffs tables", show=False),
        _b("3", "tab('tab-pictures')", "Pictures tab", "Show the encoder sparkline and joint heatmaps",
           show=False),
        _b("4", "tab('tab-transcripts')", "Transcripts tab", "Show the transcripts side by side", show=False),
        _b("5", "tab('tab-runtimes')", "Runtimes tab", "Choose the second runtime, compute unit, precision",
           show=False),
        _b("6", "tab('tab-model')", "Model tab", "The model summary (its own tab on narrow terminals)",
           show=False),
        _b("7", "tab('tab-corpus')", "Corpus tab", "A corpus run: progress, WER / QoI, utterances", show=False),
        _b("t", "toggle_theme", "Theme", "Switch between the light and the dark theme", show=False),
    ]

    def __init__(self, checkpoint: Path, audio: Path, options: RuntimeChoices | None = None,
                 export_dir: Path | None = None, engine: Engine | ProcessEngine | None = None,
                 manifest: Path | None = None) -> None:
        """`engine`: where the work runs; by default a `ProcessEngine` (a child process, so nothing heavy ever
        holds this process's GIL); an in-process `Engine` serves tests that patch the core. `manifest`: a corpus
        to run as soon as the model is ready (its first clip opens in the explorer)."""
        super().__init__()
        self.checkpoint = checkpoint
        self.audio_path = audio
        self.manifest = manifest
        self.options = options or RuntimeChoices()
        self.joint_mode = VALIDATION
        self.export_dir = export_dir or Path.cwd()
        self.is_mounted_layout = False
        self.engine = engine if engine is not None else ProcessEngine()
        self.recent = Recent.load()
        self.init_state()

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="overview"):
            yield ModelPanel(id="model-panel")
            yield FusePanel(id="fuse-panel")
        yield PipelineStrip(id="pipeline")
        with TabbedContent(id="tabs", initial="tab-step"):
            with TabPane("Step", id="tab-step"):
                yield DetailView(id="detail")
            with TabPane("Tables", id="tab-tables"), VerticalScroll(id="tables"):
                yield Static(id="transcript-line")
                yield Label("Diffs (candidate - reference)", classes="table-title")
                yield DiffsTable(id="diffs")
                yield Label("Timings", classes="table-title")
                yield TimingsTable(id="timings")
                yield Label("Shapes", classes="table-title")
                yield ShapesTable(id="shapes")
            with TabPane("Pictures", id="tab-pictures"):
                yield PicturesView(id="pictures")
            with TabPane("Transcripts", id="tab-transcripts"):
                yield TranscriptView(id="transcripts")
            with TabPane("Runtimes", id="tab-runtimes"):
                yield RuntimePanel(self.options, id="runtime-panel")
            with TabPane("Corpus", id="tab-corpus"):
                yield CorpusView(id="corpus")
            with TabPane("Model", id="tab-model"):
                yield ModelPanel(id="model-tab-panel")
        yield StatusLine(id="status")
        yield Footer()

    def on_mount(self) -> None:
        if self.recent.theme in self.available_themes:
            self.theme = self.recent.theme
        self.apply_layout()
        self.show_header()
        self.query_one(DiffsTable).prime()
        self.query_one(ShapesTable).prime()
        self.query_one(TimingsTable).prime(self.labels)
        self.show_step_detail()

    def on_ready(self) -> None:
        """The first frame is on screen: only now start the background work. The objects alive now (Textual,
        Rich, the widget tree) live as long as the app: `gc.freeze()` keeps the cyclic GC from walking them
        again on every full collection (one such walk was a 60 ms stall here)."""
        gc.freeze()
        self.check_runtimes()
        self.open_checkpoint(self.checkpoint, self.audio_path, self.options, self.joint_mode)

    def on_unmount(self) -> None:
        self.engine.stop()

    def on_resize(self) -> None:
        self.apply_layout()

    def apply_layout(self) -> None:
        """Below NARROW columns: one-line pipeline, two-line fuse flags, the model summary in its own tab."""
        narrow = self.size.width < NARROW
        if narrow == self.has_class("-narrow") and self.is_mounted_layout:
            return
        self.is_mounted_layout = True
        self.set_class(narrow, "-narrow")
        self.query_one(Footer).compact = narrow
        self.query_one(PipelineStrip).redraw()
        self.query_one(FusePanel).redraw()
        tabs = self.query_one(TabbedContent)
        if narrow:
            tabs.show_tab("tab-model")
        else:
            if tabs.active == "tab-model":
                tabs.active = "tab-step"
            tabs.hide_tab("tab-model")

    # -- workers: each calls the engine in a thread and reports by messages ---------------------------
    def post_event(self, event: Any) -> None:
        """What the engine emits (a core event), posted as a message (thread-safe)."""
        self.post_message(CoreEvent(event))

    def _cancel_flag(self) -> WorkerCancel:
        return WorkerCancel(get_current_worker())

    @work(thread=True, exclusive=True, exit_on_error=False, group="runtimes", description="checking runtimes")
    def check_runtimes(self) -> None:
        with self.engine.track():
            self.post_message(RuntimesChecked(self.engine.check_runtimes()))

    @work(thread=True, exclusive=True, exit_on_error=False, group="model", description="opening the checkpoint")
    def open_checkpoint(self, path: Path, audio: Path, options: RuntimeChoices, joint_mode: str) -> None:
        with self.engine.track():
            try:
                self.engine.open_checkpoint(options.request(path, audio, joint_mode), self.post_event,
                                            self._cancel_flag())
            except CancelledError:
                self.post_message(JobDone("model", f"Cancelled opening {path.name}", cancelled=True))

    @work(thread=True, exclusive=True, exit_on_error=False, group="model", description="preparing the session")
    def rebuild_session(self, audio: Path | None, options: RuntimeChoices, joint_mode: str) -> None:
        with self.engine.track():
            try:
                self.engine.rebuild(options.request(self.checkpoint, audio or self.audio_path, joint_mode),
                                    self.post_event, self._cancel_flag())
            except CancelledError:
                self.post_message(JobDone("model", "Cancelled preparing the runtimes", cancelled=True))

    @work(thread=True, exclusive=True, exit_on_error=False, group="corpus", description="corpus run")
    def run_corpus(self, manifest: Path) -> None:
        with self.engine.track():
            try:
                self.engine.run_corpus(manifest, self.post_event, self._cancel_flag())
            except CancelledError:
                self.post_message(JobDone("corpus", "Corpus run stopped; what finished is kept", cancelled=True))
                return
            self.post_message(JobDone("corpus", f"Corpus {manifest.name} done"))

    @work(thread=True, exclusive=True, exit_on_error=False, group="steps", description="running steps")
    def run_steps(self, names: list[str]) -> None:
        with self.engine.track():
            try:
                self.engine.run_steps(names, self.post_event, self._cancel_flag())
            except CancelledError:
                self.post_message(JobDone("steps", "Cancelled", cancelled=True))
                return
            self.post_message(JobDone("steps", "Done: " + ", ".join(names)))

    @work(thread=True, exclusive=True, exit_on_error=False, group="fuse", description="switching the joint mode")
    def switch_joint_mode(self, mode: str, rerun: bool) -> None:
        with self.engine.track():
            try:
                self.engine.set_joint_mode(mode, rerun, self.post_event, self._cancel_flag())
            except CancelledError:
                self.post_message(JobDone("fuse", "Cancelled", cancelled=True))
                return
            self.post_message(JobDone("fuse", f"Joint in {mode} mode" + (" (joint rerun)" if rerun else "")))

    @work(thread=True, exclusive=True, exit_on_error=False, group="export", description="writing the report")
    def write_report(self, directory: Path, stem: str, screenshot: Path) -> None:
        with self.engine.track():
            paths = self.engine.export(directory, stem)
            self.post_message(Exported([*paths, screenshot]))

    @work(thread=True, exclusive=True, exit_on_error=False, group="precision", description="certifying precision")
    def run_precision(self, screen: PrecisionScreen, precision: str, weights: str | None) -> None:
        with self.engine.track():
            try:
                report = self.engine.precision(precision, weights, self.post_event, self._cancel_flag())
            except CancelledError:
                self.post_message(JobDone("precision", "Precision analysis cancelled", cancelled=True))
                return
            from rnnt_tui.app.screens.precision import PrecisionDone  # the screen's module: loaded when it opened

            screen.post_message(PrecisionDone(report))
            self.post_message(JobDone("precision", f"Precision ({precision}): {report.get('status')}"))

    @work(thread=True, exclusive=True, exit_on_error=False, group="sweep", description="compute-unit sweep")
    def run_sweep(self, screen: SweepScreen) -> None:
        with self.engine.track():
            rows = self.engine.sweep(self.post_event, self._cancel_flag())
            from rnnt_tui.app.screens.sweep import SweepDone  # the screen's module: loaded when it opened

            screen.post_message(SweepDone(rows))
            self.post_message(JobDone("sweep", "Sweep done"))

    # -- the one error handler ----------------------------------------------------------------------
    @on(Worker.StateChanged)
    def worker_failed(self, event: Worker.StateChanged) -> None:
        if event.state != WorkerState.ERROR:
            return
        error = event.worker.error
        group = event.worker.group
        if isinstance(error, CancelledError):
            self.job_ended(group, "Cancelled", cancelled=True)
        elif isinstance(error, OSError) and error.filename:
            self.notify(f"{error.filename}: {error.strerror or error}", title="Cannot write there",
                        severity="error", timeout=10)
            self.job_ended(group, f"{event.worker.description} failed: {error.strerror or error}", failed=True)
        elif isinstance(error, BadInputError):
            name = error.path.name if error.path is not None else "that file"
            self.notify(error.problem, title=f"Cannot use {name}", severity="error", timeout=10)
            kept = "the current session is unchanged" if self.session is not None else "o opens a checkpoint"
            self.job_ended(group, f"{name} not opened: {kept}")
            self.revert_pending()
        elif isinstance(error, RuntimeUnavailableError | StepFailedError) and group == "corpus":
            self.notify(str(error), title="The corpus cannot run", severity="warning", timeout=10)
            self.job_ended(group, "Corpus not run: the candidate cannot run here")
        elif isinstance(error, EngineStoppedError):  # the model went with the process: nothing to keep showing
            self.session = None
            self.reset_results()
            self.job_ended(group, "The engine process stopped: o opens a checkpoint", failed=True)
            self.revert_pending()
            self.push_screen(ErrorScreen("The engine process stopped", f"{error}.\n\nNeMo, the runtimes and the "
                                         "model run in a child process so the screen never freezes; it ended "
                                         "(out of memory, or a crash in a native library). Nothing of yours "
                                         "was written.", ""))
        else:
            details = "".join(traceback.format_exception(error)) if error is not None else ""
            message = f"{type(error).__name__}: {error}" if error is not None else "unknown error"
            self.job_ended(group, f"{event.worker.description} failed", failed=True)
            self.revert_pending()
            self.push_screen(ErrorScreen(f"Something went wrong while {event.worker.description}", message,
                                         details))

    @on(Exported)
    def exported(self, message: Exported) -> None:
        listing = "\n".join(str(p) for p in message.paths)
        self.notify(listing, title="Report saved", timeout=12)
        self.status.idle(f"Report saved: {message.paths[0].with_suffix('.*')}")
