"""The rnnt-tui app: layout, key bindings, and the one place errors are handled.

How it is put together (each part only uses the ones before it):
- `client.EngineClient` - every engine call, with an id; which events still count (Textual-free);
- `engine_process.ProcessEngine` (default) runs `engine.Engine`, and so the core, NeMo and the runtimes, in a child
  process; the events it emits come back enveloped (call, session, order) and in order;
- `state.AppState` - what the screen shows, as plain data, folded from accepted events (Textual-free);
- `draw.Drawing` - the widgets drawn from the state; `calls.Calls` - the engine calls (each in a thread worker);
  `actions.Actions` - what the keys do; `controller.Controller` - one handler per event type: accept, apply, draw.
Worker failures land in one `Worker.StateChanged` handler: a bad file becomes a notification naming it (the
current session stays), anything unexpected a modal with the details. Nothing here computes a number.
"""

from __future__ import annotations

import gc
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from textual import events, on
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.widgets import Header, TabbedContent, TabPane
from textual.worker import Worker, WorkerState

from rnnt_tui.app.choices import RuntimeChoices
from rnnt_tui.app.client import EngineClient
from rnnt_tui.app.commands import RnntCommands
from rnnt_tui.app.controller import Controller
from rnnt_tui.app.engine import Engine
from rnnt_tui.app.engine_process import EngineStoppedError, ProcessEngine
from rnnt_tui.app.messages import Exported
from rnnt_tui.app.recent import Recent
from rnnt_tui.app.screens.error import ErrorScreen
from rnnt_tui.app.state import AppState
from rnnt_tui.app.widgets.detail import DetailView
from rnnt_tui.app.widgets.footer import KeyFooter
from rnnt_tui.app.widgets.fuse_panel import FusePanel
from rnnt_tui.app.widgets.model_panel import ModelPanel
from rnnt_tui.app.widgets.pipeline import PipelineStrip
from rnnt_tui.app.widgets.status import StatusLine
from rnnt_tui.core.errors import BadInputError, CancelledError, RuntimeUnavailableError, StepFailedError

if TYPE_CHECKING:
    from rnnt_tui.core.corpus.subset import Subset
    from rnnt_tui.core.pipeline.events import SessionView
    from rnnt_tui.core.stats.results import StepResult
    from rnnt_tui.core.summary import ModelSummary
    pass

NARROW = 120  # columns below which the overview stacks tighter


def _b(key: str, action: str, description: str, tooltip: str, *, show: bool = True,
       key_display: str | None = None, priority: bool = False) -> Binding:
    return Binding(key, action, description, show=show, key_display=key_display, priority=priority,
                   tooltip=tooltip, id=f"rnnt.{action}")


class RnntApp(Controller, App[int]):
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
        _b("8", "tab('tab-stream')", "Streaming tab", "The streaming comparison, chunk by chunk", show=False),
        _b("s", "stream", "Stream", "Stream the clip chunk by chunk", show=False),
        _b("S", "stream_states", "Stream (states)", "Stream the clip chunk by chunk, the candidate's encoder caches "
                                                     "in Core ML / Core AI states (--cache-states)", show=False),
        _b("w", "stream_windows", "Windows", "Compare the clip in fixed windows (window, overlap, mel left context): "
                                             "words lost, doubled or changed at the seams (stream --window)",
           show=False),
        _b("d", "coreai_drift", "Core AI drift", "Core AI: name the first op drifting from PyTorch in each "
                                                 "component out of tolerance (or the selected one)", show=False),
        _b("t", "toggle_theme", "Theme", "Switch between the light and the dark theme", show=False),
    ]

    def __init__(self, checkpoint: Path, audio: Path, options: RuntimeChoices | None = None,
                 export_dir: Path | None = None, engine: Engine | ProcessEngine | None = None,
                 manifest: Path | None = None, notes: tuple[str, ...] = (), subset: Subset | None = None) -> None:
        """`engine`: where the work runs; by default a `ProcessEngine` (a child process, so nothing heavy ever
        holds this process's GIL); an in-process `Engine` serves tests that patch the core. `manifest`: a corpus
        to run as soon as the model is ready (its first clip opens in the explorer). `notes`: said once the
        first frame is up (how the command line was read, e.g. a bundle replayed with another candidate).
        `subset`: the Corpus tab's subset field to start with (`corpus --subset`)."""
        super().__init__()
        self.corpus_subset = subset
        self.state = AppState(checkpoint, audio, options or RuntimeChoices())
        self.manifest = manifest
        self.notes = notes
        self.export_dir = export_dir or Path.cwd()
        self.is_mounted_layout = False
        self.client = EngineClient(engine if engine is not None else ProcessEngine(), self.post_envelope)
        self.recent = Recent.load()
        self.mounted_panes = {"tab-step"}
        self.stale_panes = set()
        self.premounting = []
        self.premount_inflight = None
        self.runtimes_asked = False
        self.sweep_asked = False

    # read-only views of the state (callers outside the app read these; the app itself uses `self.state`)
    @property
    def session(self) -> SessionView | None:
        return self.state.session

    @property
    def checkpoint(self) -> Path:
        return self.state.checkpoint

    @property
    def summary(self) -> ModelSummary | None:
        return self.state.summary

    @property
    def results(self) -> dict[str, StepResult]:
        return self.state.results

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="overview"):
            yield ModelPanel(id="model-panel")
            yield FusePanel(id="fuse-panel")
        yield PipelineStrip(id="pipeline")
        with TabbedContent(id="tabs", initial="tab-step"):
            with TabPane("Step", id="tab-step"):
                yield DetailView(id="detail")
            # the others are filled when first shown or first needed (`Drawing.lazy_pane_widgets`, `mount_pane`):
            # the first frame neither imports nor mounts them
            yield TabPane("Tables", id="tab-tables")
            yield TabPane("Pictures", id="tab-pictures")
            yield TabPane("Transcripts", id="tab-transcripts")
            yield TabPane("Runtimes", id="tab-runtimes")
            yield TabPane("Model", id="tab-model")  # 6: before Corpus (7), as the keys go
            yield TabPane("Corpus", id="tab-corpus")
            yield TabPane("Streaming", id="tab-stream")
        yield StatusLine(id="status")
        yield KeyFooter()

    def on_mount(self) -> None:
        if self.recent.theme in self.available_themes:
            self.theme = self.recent.theme
        self.apply_layout()
        self.show_header()
        self.show_step_detail()

    def on_ready(self) -> None:
        """The first frame is on screen: only now start the background work (the runtime check waits for the
        first session, `check_runtimes`). The objects alive now (Textual, Rich, the widget tree) live as long as
        the app: `gc.freeze()` keeps the cyclic GC from walking them again on every full collection (one such walk
        was a 60 ms stall here); `rnnt-tui` turned the GC off for its start-up (`main.run_app`), so it is turned
        back on here."""
        gc.freeze()
        gc.enable()
        for note in self.notes:
            self.notify(note, title="Opening the bundle", severity="warning", timeout=10)
        self.open_checkpoint(self.state.checkpoint)

    def on_unmount(self) -> None:
        self.client.stop()

    def on_resize(self, event: events.Resize) -> None:
        """The terminal's new size is the event's: this handler runs before Textual's own (`App._on_resize`) has
        stored it, so `self.size` still said the old one and a resize across NARROW kept the old layout."""
        self.apply_layout(event.size.width)

    def apply_layout(self, width: int | None = None) -> None:
        """Below NARROW columns (`width`, by default the app's): one-line pipeline, two-line fuse flags, the model
        summary in its own tab."""
        narrow = (self.size.width if width is None else width) < NARROW
        if narrow == self.has_class("-narrow") and self.is_mounted_layout:
            return
        self.is_mounted_layout = True
        self.set_class(narrow, "-narrow")
        self.query_one(KeyFooter).compact = narrow
        self.query_one(PipelineStrip).redraw()
        self.query_one(FusePanel).redraw()
        tabs = self.query_one(TabbedContent)
        if narrow:
            tabs.show_tab("tab-model")
        else:
            if tabs.active == "tab-model":
                tabs.active = "tab-step"
            tabs.hide_tab("tab-model")

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
            kept = "the current session is unchanged" if self.state.session is not None else "o opens a checkpoint"
            self.job_ended(group, f"{name} not opened: {error.short} ({kept})")  # the reason outlives the notice
            self.revert_pending()
        elif isinstance(error, RuntimeUnavailableError | StepFailedError) and group == "corpus":
            self.notify(str(error), title="The corpus cannot run", severity="warning", timeout=10)
            self.job_ended(group, "Corpus not run: the candidate cannot run here")
        elif isinstance(error, EngineStoppedError):  # the model went with the process: nothing to keep showing
            self.state.stopped()
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
