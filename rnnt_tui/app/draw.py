"""Drawing the state: every widget of the main view updated from `state.AppState`, nothing computed.

The base of the app's behaviour (`actions.Actions` - what the keys do - and `controller.Controller` - what each
engine event does - build on it). These methods only read the state and update widgets; none calls the engine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.widgets import Static

from rnnt_tui.app.widgets.detail import DetailView
from rnnt_tui.app.widgets.fuse_panel import FusePanel
from rnnt_tui.app.widgets.model_panel import ModelPanel
from rnnt_tui.app.widgets.pictures import PicturesView
from rnnt_tui.app.widgets.pipeline import PipelineStrip
from rnnt_tui.app.widgets.status import StatusLine
from rnnt_tui.app.widgets.tables import DiffsTable, ShapesTable, TimingsTable
from rnnt_tui.app.widgets.transcript import TranscriptView, transcript_line
from rnnt_tui.core.components import COMPONENTS, STEPS
from rnnt_tui.core.names import Status

if TYPE_CHECKING:
    from textual.app import App

    from rnnt_tui.app.client import EngineClient
    from rnnt_tui.app.recent import Recent
    from rnnt_tui.app.state import AppState

    _Base = App[int]
else:
    _Base = object


class Drawing(_Base):
    """The state, drawn."""

    state: AppState
    client: EngineClient
    recent: Recent

    # -- widgets ------------------------------------------------------------------------------------
    @property
    def status(self) -> StatusLine:
        return self.query_one(StatusLine)

    @property
    def pipeline(self) -> PipelineStrip:
        return self.query_one(PipelineStrip)

    def draw_model(self) -> None:
        s = self.state
        for panel in self.query(ModelPanel):
            panel.summary, panel.audio = s.summary, s.audio
            panel.show(status=s.model_status)

    def show_header(self) -> None:
        s, o = self.state, self.state.options
        units = f" {o.compute_units}" if o.against == "coreml" else ""
        self.sub_title = f"{s.checkpoint.name} · {s.audio_path.name} · vs {s.candidate_shown()}{units} {o.precision}"

    def draw_steps(self) -> None:
        for name in STEPS:
            self.pipeline.show(name, self.state.steps[name], self.state.step_extra[name])

    def show_step_detail(self) -> None:
        name = self.pipeline.selected
        result = self.state.results.get(name)
        hint = ""
        if self.state.options.against == "coreai" and name in COMPONENTS and result is not None \
                and result.status == Status.MISMATCH:
            hint = (f"d names the first op where the Core AI {name} drifts from PyTorch (Apple's "
                    "coreai_torch.debugging)")
        self.query_one(DetailView).show(name, result, self.state.labels, self.state.steps[name], hint)

    def show_results(self) -> None:
        """Every widget that shows results, from the state (table rows update in place)."""
        s = self.state
        duration = s.audio.duration_s if s.audio is not None else 0.0
        diffs, timings, shapes = self.query_one(DiffsTable), self.query_one(TimingsTable), self.query_one(ShapesTable)
        self.draw_steps()
        for name in STEPS:
            result = s.results.get(name)
            if result is None:
                continue
            diffs.show(result, s.decode.token_agreement if s.decode is not None else None)
            timings.show(result, duration)
            shapes.show(result)
        pictures = self.query_one(PicturesView)
        pictures.show_encoder(s.results.get("encoder"))
        pictures.show_joint(s.results.get("joint"), s.decode.reference_pieces if s.decode else [])
        self.query_one(TranscriptView).show(s.decode, s.labels)
        self.query_one("#transcript-line", Static).update(transcript_line(s.decode, s.labels))
        self.show_step_detail()

    def reset_results(self) -> None:
        """Empty tables and pictures (the state's results were cleared)."""
        labels = self.state.labels
        self.query_one(DiffsTable).prime()
        self.query_one(ShapesTable).prime()
        self.query_one(TimingsTable).prime(labels)
        self.query_one(PicturesView).clear()
        self.query_one(TranscriptView).show(None, labels)
        self.query_one("#transcript-line", Static).update(transcript_line(None, labels))

    def draw_fuse(self, saved: bool = True) -> None:
        session = self.state.session
        panel = self.query_one(FusePanel)
        if session is None:
            panel.show_nothing("No model open: o opens a checkpoint.")
        else:
            panel.show_used(session.fuse.mode, session.fuse.current, self.state.probe,
                            saved=session.fuse.saved if saved else None)

    def revert_pending(self) -> None:
        """Put the current session back on screen after a pick that failed part way."""
        self.state.revert()
        self.draw_model()
        if self.state.session is None:
            self.query_one(FusePanel).show_nothing("No model open: o opens a checkpoint.")
            self.draw_steps()
            return
        self.draw_fuse()
        self.show_results()

    def save_recent(self) -> None:
        """Remember the recent files and theme; a failed write is said once (remembering is a convenience)."""
        try:
            self.recent.save()
        except OSError as exc:
            if not getattr(self, "_recent_told", False):
                self._recent_told = True
                where = exc.filename or "the state directory"
                self.notify(f"{where}: {exc.strerror or exc}. Recent files and the theme are not remembered.",
                            title="Cannot save recent files", severity="warning", timeout=8)
